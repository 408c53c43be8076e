"""Every dashboard page over odd recorded data and hostile query values: shown or refused, never a 500.

Issue #17: pages answered 500 on recorded content they did not expect and on bad query values.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from proxy.models import Exchange, Provider, Rule

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert(1)</script>"
HOSTILE_VALUES = [
    SCRIPT,
    '"><img src=x onerror=alert(1)>',
    "99999999999999999999",
    "-99999999999999999999",
    "-1",
    "0",
    "1e3",
    "NaN",
    "²",  # str.isdigit() says yes, int() says no
    "",
    " ",
    "%",
    "' OR 1=1 --",
    "\x00",
    "a\x00b",
    "2024-13-45T25:61",
    "9999-12-31T23:59:59",
    "0001-01-01T00:00",
    "x" * 5000,
    "🙂" * 50,
    "../../etc/passwd",
]


def _odd_rows() -> list[Exchange]:
    """Rows whose recorded bodies have shapes the pages did not expect (written straight to the DB)."""
    now = timezone.now()
    base: dict[str, Any] = {"created_at": now, "status": "ok", "client_model": "claude-sonnet-4-5",
                            "session_id": "odd-session", "rule": "default"}  # fmt: skip
    shapes: list[dict[str, Any]] = [
        {"client_request": ["not", "an", "object"]},
        {"client_request": "a bare string", "client_response": "also a string"},
        {"client_request": 42, "client_response": 7},
        {"client_request": {"model": "m", "messages": {"role": "user"}}, "client_response": {"content": 5}},
        {"client_request": {"model": "m", "messages": "hello", "system": 3, "tools": {"a": 1}}},
        {"client_request": {"model": "m", "messages": [1, None, "x", {"role": 5, "content": 12}]}},
        {
            "client_request": {"model": "m", "messages": [{"role": "user", "content": [1, "x", None]}],
                               "tools": [{"name": "Write", "input_schema": "not a schema"}, 3]},
            "client_response": {"content": [
                {"type": "tool_use", "id": "t1", "name": "Write", "input": "a string, not JSON"},
                {"type": "tool_use", "id": "t2", "name": "Agent", "input": '{"prompt": 5}'},
                {"type": "tool_use", "id": "t3", "name": "Agent", "input": ["list"]},
                {"type": "tool_use", "id": 4, "name": None, "input": None},
                {"type": "text", "text": None}, {"type": "image", "source": "nope"}, "bare", 9,
            ]},
            "tool_calls": 4, "tool_call_errors": 3,
        },
        {
            "client_request": {"model": "m", "messages": [
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": None, "content": 12,
                                              "is_error": "yes"}]},
                {"role": "assistant", "content": {"type": "text"}},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "is_error": True,
                                              "content": [{"type": "text", "text": None}, 3]}]},
            ]},
        },
        {"client_request": None, "client_response": None, "upstream_request": ["x"], "upstream_response": "{",
         "changes": "not a list", "attempts": {"a": 1}, "client_headers": ["x"]},
        {"changes": [1, "x", {"kind": None}], "attempts": [None, 3],
         "client_headers": {"anthropic-version": 5}},
        {"status": "weird", "http_status": 999, "cost_usd": None, "claude_cost_usd": None,
         "duration_ms": -5, "first_token_ms": 1e12, "input_tokens": -3, "session_id": "", "agent": SCRIPT,
         "client_model": SCRIPT, "backend_model": SCRIPT, "rule": SCRIPT, "endpoint": "count_tokens"},
        {"session_id": "x" * 100, "client_model": "m" * 200, "client_request": {"model": "m"}},
    ]  # fmt: skip
    return [Exchange.objects.create(**{**base, **shape}) for shape in shapes]


def _config() -> tuple[Rule, Provider]:
    provider = Provider.objects.create(name="p", dialect="openai", base_url="http://127.0.0.1:9/v1")
    rule = Rule.objects.create(name="default", provider=provider, is_default=True)
    return rule, provider


def _pages(rows: list[Exchange], rule: Rule, provider: Provider) -> list[str]:
    pages = ["/", "/sessions", "/sessions/odd-session", f"/sessions/{'x' * 100}", "/tools", "/costs",
             "/tools/failures?agent=main&model=claude-sonnet-4-5&tool=Write", "/routes",
             "/routes/rules/new", f"/routes/rules/{rule.pk}", "/routes/providers/new",
             f"/routes/providers/{provider.pk}", "/api/exchanges"]  # fmt: skip
    pages += [f"/exchanges/{e.pk}" for e in rows]
    pages += [f"/exchanges/{e.pk}/raw/{side}" for e in rows[:3] + rows[-4:] for side in SIDES]
    return pages


SIDES = ("client-request", "upstream-request", "upstream-response", "client-response")


def test_every_page_shows_odd_recorded_data_without_a_500() -> None:
    rows = _odd_rows()
    rule, provider = _config()
    client = Client(raise_request_exception=True)
    for url in _pages(rows, rule, provider):
        response = client.get(url)
        # A raw side that was never recorded (no upstream request sent) is a 404 with a reason.
        assert response.status_code in ((200, 404) if "/raw/" in url else (200,)), (url, response.status_code)
        body = response.content.decode()
        if response["content-type"].startswith("text/html"):
            assert SCRIPT not in body, url  # recorded content stays escaped
    for r in ("24h", "7d", "30d", "all"):
        assert client.get(f"/costs?range={r}").status_code == 200


PARAMS = {
    "/": ["q", "status", "model", "route", "agent", "session", "failed", "range", "since", "until", "before"],
    "/costs": ["range"],
    "/tools": ["agent"],
    "/tools/failures": ["agent", "model", "tool"],
    "/sessions": ["limit"],
    "/routes": ["exchange"],
    "/api/exchanges": ["limit", "session", "settle"],
}


@pytest.mark.parametrize("path", list(PARAMS))
def test_every_parameter_refuses_or_ignores_hostile_values(path: str) -> None:
    _odd_rows()
    _config()
    client = Client(raise_request_exception=True)
    for name in PARAMS[path]:
        for value in HOSTILE_VALUES:
            response = client.get(path, {name: value})
            assert response.status_code in (200, 400), (path, name, value, response.status_code)
            if response["content-type"].startswith("text/html"):
                assert SCRIPT not in response.content.decode(), (path, name)
        # The same parameter twice, and htmx asking for the partial.
        assert client.get(path, {name: ["1", SCRIPT]}).status_code in (200, 400)
        assert client.get(path, {name: SCRIPT}, HTTP_HX_REQUEST="true").status_code in (200, 400)


@pytest.mark.parametrize(
    "url",
    [
        "/exchanges/99999999999999999999",
        "/exchanges/99999999999999999999/raw/client-request",
        "/exchanges/1/raw/secrets",
        "/routes/rules/99999999999999999999",
        "/routes/providers/99999999999999999999",
        "/sessions/%00",
        "/sessions/nope",
    ],
)
def test_unknown_or_huge_ids_are_404_not_500(url: str) -> None:
    _config()
    assert Client(raise_request_exception=True).get(url).status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "/routes/rules/99999999999999999999/move/up",
        "/routes/rules/12345/move/up",
        "/routes/rules/12345/move/sideways",
        "/routes/rules/99999999999999999999/delete",
        "/routes/providers/99999999999999999999/delete",
        "/routes/rules/99999999999999999999/test",
        "/routes/rules/99999999999999999999/dry-run",
        "/exchanges/99999999999999999999/replay",
    ],
)
def test_posts_to_unknown_or_huge_ids_are_refused_not_500(url: str) -> None:
    _config()
    response = Client(raise_request_exception=True).post(url)
    assert 400 <= response.status_code < 500, (url, response.status_code)


def test_explain_with_a_huge_exchange_id_says_so() -> None:
    _config()
    response = Client(raise_request_exception=True).post("/routes/explain", {"exchange": "9" * 30})
    assert response.status_code == 200
    assert "exchange" in response.content.decode()


def test_session_and_tool_failure_pages_stay_small_over_many_big_rows() -> None:
    # Issue #12: no page over ~2 MB whatever was recorded. 60 threads of 200 messages each, every one
    # answered with a 100 KB tool call that fails its schema.
    tool = {"name": "Write", "input_schema": {"type": "object", "required": ["file_path"]}}
    call = {"type": "tool_use", "id": "t", "name": "Write", "input": {"content": "c" * 100_000}}
    for i in range(60):
        history = [{"role": "user", "content": f"thread {i} message {j} " + "h" * 300} for j in range(200)]
        Exchange.objects.create(
            created_at=timezone.now(), session_id="big", client_model="m", status="ok", tool_calls=1,
            client_request={"model": "m", "messages": history, "tools": [tool]},
            client_response={"content": [{**call, "id": f"t{i}"}]},
        )  # fmt: skip
    client = Client(raise_request_exception=True)
    session = client.get("/sessions/big")
    assert session.status_code == 200 and len(session.content) < 2_000_000, len(session.content)
    assert "188 more" in session.content.decode()
    failures = client.get("/tools/failures", {"agent": "main", "model": "m", "tool": "Write"})
    assert failures.status_code == 200 and len(failures.content) < 2_000_000, len(failures.content)
    assert "missing required file_path" in failures.content.decode()
    assert "and 10 more like these" in failures.content.decode()


def test_a_request_that_is_not_an_object_is_shown_as_recorded_with_a_note() -> None:
    e = Exchange.objects.create(created_at=timezone.now(), client_request=["not", SCRIPT], client_response=7)
    html = Client(raise_request_exception=True).get(f"/exchanges/{e.pk}").content.decode()
    assert "The recorded client request is a list, not a Messages request object" in html
    assert "The recorded client response is a number, not a message" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and SCRIPT not in html


def test_a_session_of_thousands_of_requests_stays_under_2_mb() -> None:
    # Issue #12: each turn adds its new messages; the page shows the first MAX_EXCHANGES requests.
    from dashboard.sessions import MAX_EXCHANGES

    first = {"role": "user", "content": "start the job " + "p" * 200}
    rows = []
    for i in range(MAX_EXCHANGES + 200):
        new = [{"type": "tool_result", "tool_use_id": f"t{i}-{k}", "content": "r" * 400} for k in range(2)]
        messages = [
            first,
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [*new, {"type": "text", "text": f"step {i} " + "q" * 300}]},
        ]
        rows.append(Exchange(
            created_at=timezone.now(), session_id="long", client_model="claude-sonnet-4-5",
            backend_model="gpt-4.1", status="ok", input_tokens=12000, output_tokens=300, cost_usd=0.01,
            client_request={"model": "m", "messages": messages, "tools": [{"name": "Read"}]},
            client_response={"content": [{"type": "text", "text": "done"}]},
        ))  # fmt: skip
    Exchange.objects.bulk_create(rows)
    response = Client(raise_request_exception=True).get("/sessions/long")
    assert response.status_code == 200
    assert len(response.content) < 2_000_000, len(response.content)
    assert "Showing the first requests only" in response.content.decode()

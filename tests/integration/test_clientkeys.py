"""Client keys over real HTTP with the real anthropic SDK: who is served, labels, revocation, limits,
redaction of echoed keys, and the passthrough of a client's own Anthropic key. Issue #17."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from tests.conftest import (
    Server,
    start_server,
    stop_server,
    without_request_id,
)
from tests.fakes.anthropic_upstream import FakeAnthropic, anthropic_error, message
from tests.fakes.openai_upstream import FakeOpenAI, error, text_stream

ENV_KEY = "sk-sb-env-" + "e" * 30
UPSTREAM_KEY = "sk-upstream-" + "u" * 30
HI = [{"role": "user", "content": "hi"}]


def keyed_env(fake: FakeOpenAI, **extra: str) -> dict[str, str]:
    return {
        "OPENAI_BASE_URL": fake.url,
        "OPENAI_API_KEY": UPSTREAM_KEY,
        "BIG_MODEL": "big-model",
        "MIDDLE_MODEL": "mid-model",
        "SMALL_MODEL": "small-model",
        "SWITCHBOARD_API_KEYS": ENV_KEY,
        **extra,
    }


@pytest.fixture(scope="module")
def keyed(fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("keyed"), keyed_env(fake_openai))
    yield srv
    stop_server(srv)


def client(server: Server, **auth: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, max_retries=0, **auth)  # type: ignore[arg-type]


def exchanges(server: Server, key: str) -> list[dict[str, Any]]:
    """/api/exchanges, which the dashboard serves (no client key: the dashboard login guards it)."""
    response = server.dashboard().get("/api/exchanges", params={"limit": 50, "settle": 1}, timeout=15)
    response.raise_for_status()
    return [row for row in response.json()["data"] if key in json.dumps(row)]


def make_key(server: Server, label: str, **limits: int) -> tuple[str, int]:
    """Through the Keys page as a browser would: GET it (CSRF cookie), POST the form. (key, pk)"""
    http = server.dashboard()  # logged in when the server needs a login
    page = http.get("/keys")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, page.text[:500]
    data = {"label": label, "csrfmiddlewaretoken": token.group(1)}
    data.update({name: str(value) for name, value in limits.items()})
    made = http.post("/keys/new", data=data)
    assert made.status_code == 200, made.text[:2000]
    assert made.headers["cache-control"] == "no-store"
    key = re.search(r'id="made-key-value" value="([^"]+)"', made.text) or re.search(
        r'value="(sk-sb-[^"]+)"', made.text
    )
    assert key, made.text[:2000]
    pk = re.findall(r'id="clientkey-(\d+)"', made.text)
    return key.group(1), int(pk[0])


def revoke(server: Server, pk: int) -> None:
    http = server.dashboard()  # logged in when the server needs a login
    page = http.get("/keys")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token
    response = http.post(f"/keys/{pk}/revoke", data={"csrfmiddlewaretoken": token.group(1)})
    assert response.status_code in (200, 302)


# --- no key configured ------------------------------------------------------------------------------


def test_no_key_configured_serves_loopback_clients(server: Server, upstream: FakeOpenAI) -> None:
    reply = client(server, api_key="anything").messages.create(
        model="claude-opus-4-8", max_tokens=5, messages=HI
    )
    assert reply.content[0].text == "ok"  # type: ignore[union-attr]


# --- keys configured ---------------------------------------------------------------------------------


def test_missing_or_wrong_key_is_refused_with_anthropics_401(keyed: Server, upstream: FakeOpenAI) -> None:
    before = len(upstream.requests)
    missing = httpx.post(
        f"{keyed.url}/v1/messages", json={"model": "claude-opus-4-8", "max_tokens": 5, "messages": HI}
    )
    assert missing.status_code == 401
    assert without_request_id(missing.json()) == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "x-api-key header is required"},
    }
    wrong = "sk-sb-wrong-" + "w" * 30
    with pytest.raises(anthropic.AuthenticationError) as refused:
        client(keyed, api_key=wrong).messages.create(model="claude-opus-4-8", max_tokens=5, messages=HI)
    assert refused.value.body["error"]["message"] == "invalid x-api-key"  # type: ignore[index]
    with pytest.raises(anthropic.AuthenticationError):
        client(keyed, auth_token=wrong).models.list()
    assert len(upstream.requests) == before  # nothing reached a backend
    rows = [r for r in keyed.exchanges(10) if r["error_type"] == "authentication_error"]
    assert rows and rows[0]["status"] == "error" and rows[0]["http_status"] == 401
    assert wrong not in json.dumps(keyed.exchanges(50))


def test_right_key_via_x_api_key_or_bearer_is_served_and_labelled(
    keyed: Server, upstream: FakeOpenAI
) -> None:
    # Claude Code's ANTHROPIC_API_KEY (x-api-key) and ANTHROPIC_AUTH_TOKEN (Bearer).
    by_header = anthropic.Anthropic(base_url=keyed.url, default_headers={"x-api-key": ENV_KEY}, max_retries=0)
    for sdk in (by_header, client(keyed, auth_token=ENV_KEY)):
        upstream.reset()
        reply = sdk.messages.create(model="claude-opus-4-8", max_tokens=5, messages=HI)
        assert reply.content[0].text == "ok"  # type: ignore[union-attr]
        sent = upstream.headers[-1]
        assert sent["authorization"] == f"Bearer {UPSTREAM_KEY}"  # the backend's key, never ours
        assert ENV_KEY not in json.dumps(sent)
    rows = [r for r in keyed.exchanges(5) if r["status"] == "ok"]
    assert rows[0]["client_key"] == "env-1" == rows[1]["client_key"]
    assert len(client(keyed, api_key=ENV_KEY).models.list().data) > 0
    # The feed filters by it, and shows it on the row.
    feed = keyed.dashboard().get("/", params={"key": "env-1"}).text
    assert f'id="exchange-{rows[0]["id"]}"' in feed and "env-1" in feed
    assert f'id="exchange-{rows[0]["id"]}"' not in keyed.dashboard().get("/", params={"key": "other"}).text


def test_a_key_made_in_the_dashboard_works_once_shown_and_not_after_revocation(
    keyed: Server, upstream: FakeOpenAI
) -> None:
    key, pk = make_key(keyed, "laptop")
    assert key.startswith("sk-sb-")
    reply = client(keyed, api_key=key).messages.create(model="claude-opus-4-8", max_tokens=5, messages=HI)
    assert reply.content[0].text == "ok"  # type: ignore[union-attr]
    row = keyed.wait_for_exchange(lambda e: e["client_key"] == "laptop")
    assert row["status"] == "ok"
    page = keyed.dashboard().get("/keys").text
    assert "laptop" in page and key not in page  # listed, never shown again
    assert "never" not in page.split(f'id="clientkey-{pk}"')[1].split("</div>")[0]  # last used is set
    detail = keyed.dashboard().get(f"/exchanges/{row['id']}").text
    assert "laptop" in detail
    revoke(keyed, pk)
    with pytest.raises(anthropic.AuthenticationError):
        client(keyed, api_key=key).messages.create(model="claude-opus-4-8", max_tokens=5, messages=HI)
    assert "revoked" in keyed.dashboard().get("/keys").text


def test_a_keys_concurrency_limit_answers_429_with_retry_after_and_frees_the_slot(
    keyed: Server, upstream: FakeOpenAI
) -> None:
    key, _ = make_key(keyed, "one-at-a-time", max_concurrent=1)
    slow = text_stream(*[f"w{i} " for i in range(6)])
    slow.delay_s = 0.2
    upstream.script(slow)
    body = {"model": "claude-opus-4-8", "max_tokens": 20, "stream": True, "messages": HI}
    with httpx.stream("POST", f"{keyed.url}/v1/messages", json=body, headers={"x-api-key": key}) as first:
        events = first.iter_bytes()  # kept: a dropped iterator closes the response (a hang-up)
        next(events)  # the stream is running
        with pytest.raises(anthropic.RateLimitError) as limited:
            client(keyed, api_key=key).messages.create(model="claude-opus-4-8", max_tokens=5, messages=HI)
        assert limited.value.response.headers["retry-after"] == "1"
        assert limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    # The client hung up mid-stream: its slot is freed (within the moment the server takes to notice).
    deadline = time.monotonic() + 5
    while True:
        try:
            reply = client(keyed, api_key=key).messages.create(
                model="claude-opus-4-8", max_tokens=5, messages=HI
            )
            break
        except anthropic.RateLimitError:
            assert time.monotonic() < deadline, "the slot of a stream the client left was never freed"
            time.sleep(0.05)
    for _ in range(3):  # and each finished request frees its own
        client(keyed, api_key=key).messages.create(model="claude-opus-4-8", max_tokens=5, messages=HI)
    assert reply.content[0].text == "ok"  # type: ignore[union-attr]
    refused = [r for r in keyed.exchanges(20) if r["error_type"] == "rate_limit_error"]
    assert refused and refused[0]["client_key"] == "one-at-a-time" and refused[0]["http_status"] == 429


def test_a_keys_rate_limit_answers_429_with_retry_after(keyed: Server, upstream: FakeOpenAI) -> None:
    key, _ = make_key(keyed, "two-a-minute", requests_per_minute=2)
    sdk = client(keyed, api_key=key)
    for _ in range(2):
        sdk.messages.create(model="claude-opus-4-8", max_tokens=5, messages=HI)
    with pytest.raises(anthropic.RateLimitError) as limited:
        sdk.messages.create(model="claude-opus-4-8", max_tokens=5, messages=HI)
    assert 1 <= int(limited.value.response.headers["retry-after"]) <= 30
    assert limited.value.response.headers["anthropic-ratelimit-requests-limit"] == "2"
    assert limited.value.response.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert "2 requests per minute" in limited.value.message
    # Another key is not held back by this one's limit.
    client(keyed, api_key=ENV_KEY).messages.create(model="claude-opus-4-8", max_tokens=5, messages=HI)


def test_an_upstream_error_echoing_its_key_is_redacted_for_client_and_record(
    keyed: Server, upstream: FakeOpenAI
) -> None:
    upstream.script(error(401, f"Incorrect API key provided: {UPSTREAM_KEY}. Bearer {UPSTREAM_KEY}"))
    with pytest.raises(anthropic.APIStatusError) as failed:
        client(keyed, api_key=ENV_KEY).messages.create(model="claude-opus-4-8", max_tokens=5, messages=HI)
    assert UPSTREAM_KEY not in failed.value.response.text
    assert "[redacted]" in failed.value.message
    row = keyed.wait_for_exchange(
        lambda e: e["status"] == "error" and "Incorrect API key" in e["error_message"]
    )
    assert UPSTREAM_KEY not in json.dumps(row)
    assert "[redacted]" in row["upstream_response"] and "[redacted]" in row["attempts"][0]["error"]


# --- passthrough: our key and the client's own Anthropic key -------------------------------------------


@pytest.fixture(scope="module")
def fake_anthropic() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture(scope="module")
def keyed_passthrough(
    fake_anthropic: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("keyed-passthrough"),
        {"SWITCHBOARD_ANTHROPIC_URL": fake_anthropic.url, "SWITCHBOARD_API_KEYS": ENV_KEY},
    )
    yield srv
    stop_server(srv)


def test_passthrough_forwards_the_clients_own_key_and_never_ours(
    keyed_passthrough: Server, fake_anthropic: FakeAnthropic
) -> None:
    own_key = "sk-ant-api03-" + "o" * 40
    oauth = "sk-ant-oat01-" + "t" * 40
    fake_anthropic.reset()
    fake_anthropic.script(message("one"), message("two"))
    # An API-key user: ours as Bearer (ANTHROPIC_AUTH_TOKEN), theirs as x-api-key (ANTHROPIC_API_KEY).
    both = anthropic.Anthropic(
        base_url=keyed_passthrough.url,
        auth_token=ENV_KEY,
        default_headers={"x-api-key": own_key},
        max_retries=0,
    )
    assert both.messages.create(model="claude-opus-4-8", max_tokens=5, messages=HI).content[0].text == "one"  # type: ignore[union-attr]
    sent = fake_anthropic.headers[-1]
    assert sent["x-api-key"] == own_key and "authorization" not in sent
    # A subscriber: their OAuth token as Bearer, ours in a header of its own (ANTHROPIC_CUSTOM_HEADERS).
    subscriber = anthropic.Anthropic(
        base_url=keyed_passthrough.url,
        auth_token=oauth,
        default_headers={"x-switchboard-key": ENV_KEY},
        max_retries=0,
    )
    assert (
        subscriber.messages.create(model="claude-opus-4-8", max_tokens=5, messages=HI).content[0].text
        == "two"
    )  # type: ignore[union-attr]
    sent = fake_anthropic.headers[-1]
    assert sent["authorization"] == f"Bearer {oauth}" and "x-switchboard-key" not in sent
    assert "x-api-key" not in sent
    rows = keyed_passthrough.exchanges(5)
    assert [r["client_key"] for r in rows[:2]] == ["env-1"] * 2
    stored = json.dumps(rows)
    assert own_key not in stored and oauth not in stored and ENV_KEY not in stored


def test_passthrough_error_echoing_the_clients_key_is_redacted(
    keyed_passthrough: Server, fake_anthropic: FakeAnthropic
) -> None:
    own_key = "sk-ant-api03-" + "p" * 40
    fake_anthropic.reset()
    fake_anthropic.script(anthropic_error(401, "authentication_error", f"invalid x-api-key {own_key}"))
    both = anthropic.Anthropic(
        base_url=keyed_passthrough.url,
        auth_token=ENV_KEY,
        default_headers={"x-api-key": own_key},
        max_retries=0,
    )
    with pytest.raises(anthropic.AuthenticationError) as refused:
        both.messages.create(model="claude-opus-4-8", max_tokens=5, messages=HI)
    assert own_key not in refused.value.response.text and "[redacted]" in refused.value.message
    assert own_key not in json.dumps(keyed_passthrough.exchanges(10))

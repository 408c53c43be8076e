"""The exchange detail page over real Claude Code bodies: readable, collapsed where long, inert."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.utils import timezone

from dashboard.conversation import curl_command, to_blocks
from proxy.models import Exchange
from tests.conftest import load_fixture

pytestmark = pytest.mark.django_db

FIXTURES = [
    "main_turn",
    "tool_result_turn",
    "subagent_turn",
    "subagent_result_turn",
    "read_tool_result_turn",
    "background_title",
    "count_tokens",
]


@pytest.mark.parametrize("name", FIXTURES)
def test_detail_renders_real_claude_code_bodies(name: str) -> None:
    body = load_fixture(name)
    e = Exchange.objects.create(
        created_at=timezone.now(),
        client_model=body["model"],
        client_request=body,
        endpoint="count_tokens" if name == "count_tokens" else "messages",
    )
    response = Client().get(f"/exchanges/{e.pk}")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="msg user"' in html
    if name == "read_tool_result_turn":
        # The ~110 KB tool result is collapsed behind a summary.
        assert '<details><summary><span class="preview">' in html


def test_images_render_only_as_base64_raster_data_urls() -> None:
    png = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    svg = {"type": "image", "source": {"type": "base64", "media_type": "image/svg+xml", "data": "PHN2Zz4="}}
    bad = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": '"><script>'}}
    url = {"type": "image", "source": {"type": "url", "url": "https://example.com/x.png"}}
    blocks = to_blocks([png, svg, bad, url])
    assert blocks[0].image_src == "data:image/png;base64,iVBORw0KGgo="
    assert [b.image_src for b in blocks[1:]] == ["", "", ""]


def test_tool_use_with_unparseable_arguments_is_flagged() -> None:
    (block,) = to_blocks([{"type": "tool_use", "id": "t", "name": "Write", "input": '{"file_path": '}])
    assert block.invalid == "arguments are not valid JSON"


def test_curl_command_quotes_the_body_with_a_heredoc() -> None:
    e = Exchange(
        client_request={"model": "m", "messages": [{"role": "user", "content": "it's $HOME `x`"}]},
        client_headers={"anthropic-version": "2023-06-01", "anthropic-beta": "a,b'; rm -rf /"},
    )
    cmd = curl_command(e, host="127.0.0.1:8082", scheme="http")
    assert cmd.startswith("curl -sS http://127.0.0.1:8082/v1/messages")
    assert "<<'SWITCHBOARD_JSON'\n" in cmd and "it's $HOME `x`" in cmd
    assert "-H 'anthropic-beta: a,b rm -rf /'" in cmd  # the quote and ; are dropped, not passed to the shell


def test_detail_marks_calls_that_failed_their_schema_or_came_back_as_errors() -> None:
    tools = [
        {"name": "Write", "input_schema": {"type": "object", "required": ["file_path"]}},
        {"name": "Bash", "input_schema": {"type": "object"}},
    ]
    calls = [
        {"type": "tool_use", "id": "toolu_w", "name": "Write", "input": {"content": "x"}},
        {"type": "tool_use", "id": "toolu_b", "name": "Bash", "input": {"command": "false"}},
        {"type": "tool_use", "id": "toolu_r", "name": "Bash", "input": {"command": "ls"}},
    ]
    first = Exchange.objects.create(
        created_at=timezone.now(),
        session_id="s",
        client_model="m",
        client_request={"model": "m", "messages": [{"role": "user", "content": "go"}], "tools": tools},
        client_response={"role": "assistant", "content": calls},
    )
    refused = "<tool_use_error>InputValidationError: Bash failed: command is not a string</tool_use_error>"
    results = [
        {"type": "tool_result", "tool_use_id": "toolu_b", "is_error": True, "content": "Exit code 1"},
        {"type": "tool_result", "tool_use_id": "toolu_r", "is_error": True, "content": refused},
    ]
    Exchange.objects.create(
        created_at=timezone.now(),
        session_id="s",
        client_model="m",
        client_request={
            "model": "m",
            "tools": tools,
            "messages": [
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": calls},
                {"role": "user", "content": results},
            ],
        },
    )
    html = Client().get(f"/exchanges/{first.pk}").content.decode()
    assert '<span class="bad">missing required file_path</span>' in html
    assert '<span class="bad">InputValidationError: Bash failed: command is not a string</span>' in html
    # Issue #12: a command that failed is the tool's result, not a failed call.
    assert '<span class="bad">Exit code N</span>' not in html


def _big_exchange(mb: int = 20) -> Exchange:
    """A request of `mb` MB, like a Claude Code turn that read a huge file: one giant tool result, a
    long history, and an escaping-heavy text (quotes and brackets grow when escaped)."""
    chunk = 'line "quoted" <tag> & more\n' * 40_000  # ~1.1 MB, each line about twice as big escaped
    history = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} " + "x" * 2000}
               for i in range(2000)]  # fmt: skip
    tool_result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": chunk * max(mb - 6, 1)}
    body = {"model": "claude-sonnet-4-5", "max_tokens": 100, "system": chunk,
            "messages": [*history, {"role": "user", "content": [tool_result]}]}  # fmt: skip
    return Exchange.objects.create(
        created_at=timezone.now(),
        client_model="claude-sonnet-4-5",
        client_request=body,
        upstream_request=body,
        upstream_response="data: " + chunk,
        client_response={"role": "assistant", "content": [{"type": "text", "text": "the end " + chunk}]},
        stream=True,
    )


def test_detail_page_of_a_huge_exchange_stays_small_and_links_the_rest() -> None:
    # Issue #12: a 20 MB request made an 84 MB page (the body four times over).
    e = _big_exchange()
    html = Client().get(f"/exchanges/{e.pk}").content.decode()
    assert len(html.encode()) < 2_000_000
    assert "turn 1999 " in html and "turn 0 " in html  # the newest turns and the first
    assert "messages not shown here" in html
    for side in ("client-request", "upstream-request", "upstream-response", "client-response"):
        assert f'href="/exchanges/{e.pk}/raw/{side}?download=1"' in html
    assert f"--data-binary @exchange-{e.pk}-client-request.json" in html  # curl reads the downloaded file
    assert "context (estimated tokens)" in html  # counted, not "Input too long to encode safely"


def test_raw_sides_download_exactly_what_was_recorded() -> None:
    e = _big_exchange(4)
    response = Client().get(f"/exchanges/{e.pk}/raw/client-request?download=1")
    assert response.status_code == 200
    assert response["content-type"] == "application/json"
    assert response["content-disposition"] == f'attachment; filename="exchange-{e.pk}-client-request.json"'
    assert json.loads(response.content) == e.client_request
    inline = Client().get(f"/exchanges/{e.pk}/raw/upstream-response")
    assert inline["content-type"] == "text/plain; charset=utf-8"
    assert inline["content-disposition"] == f'inline; filename="exchange-{e.pk}-upstream-response.txt"'
    assert inline["x-content-type-options"] == "nosniff"
    assert inline.content.decode() == e.upstream_response
    assert Client().get(f"/exchanges/{e.pk}/raw/everything").status_code == 404


def test_raw_side_that_was_never_sent_is_a_404() -> None:
    e = Exchange.objects.create(created_at=timezone.now(), client_request={"model": "m"})
    assert Client().get(f"/exchanges/{e.pk}/raw/upstream-request").status_code == 404
    assert Client().get(f"/exchanges/{e.pk}/raw/upstream-response").status_code == 404


def test_an_exchange_without_an_answer_shows_no_empty_response() -> None:
    e = Exchange.objects.create(
        created_at=timezone.now(), status="error", client_request={"model": "m", "messages": []}
    )
    html = Client().get(f"/exchanges/{e.pk}").content.decode()
    assert "<h3>response</h3>" not in html


def test_turns_beyond_the_block_allowance_become_gaps_not_empty_turns() -> None:
    from dashboard.conversation import Budget, turns

    blocks = [{"type": "text", "text": f"b{j}"} for j in range(10)]
    messages = [{"role": "user", "content": blocks} for _ in range(100)]
    shown = turns(messages, Budget(blocks=205))
    # 205 blocks: the newest 20 messages whole, the one before them in part, the 79 older in one gap.
    assert [(t.role, t.skipped, len(t.blocks)) for t in shown[:2]] == [("gap", 79, 0), ("user", 0, 5)]
    assert len(shown) == 22 and all(len(t.blocks) == 10 for t in shown[2:])
    assert shown[-1].role == "user" and shown[-1].blocks[-1].text == "b9"  # the newest turn is whole

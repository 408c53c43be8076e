"""The exchange detail page over real Claude Code bodies: readable, collapsed where long, inert."""

from __future__ import annotations

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

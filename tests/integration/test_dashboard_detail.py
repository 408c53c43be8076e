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

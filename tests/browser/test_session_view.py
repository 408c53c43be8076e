"""A Claude Code session with a subagent, sent through the real server, shows as a tree."""

from __future__ import annotations

import json
import uuid
from typing import Any

import anthropic
from playwright.sync_api import Page, expect

from tests.conftest import Server, load_fixture
from tests.fakes.openai_upstream import FakeOpenAI, text_stream, tool_stream

AGENT_PROMPT = "Subagent job: reply with the single word PONG."
SDK_FIELDS = ("model", "max_tokens", "messages", "system", "tools")


def send(client: anthropic.Anthropic, body: dict[str, Any], headers: dict[str, str]) -> Any:
    """Send a captured Claude Code body as Claude Code would (streaming), through the SDK."""
    known = {k: body[k] for k in SDK_FIELDS if k in body}
    extra = {k: v for k, v in body.items() if k not in SDK_FIELDS and k != "stream"}
    with client.messages.stream(**known, extra_body=extra, extra_headers=headers) as stream:
        return stream.get_final_message()


def test_session_with_subagent_shows_as_tree(
    page: Page, server: Server, upstream: FakeOpenAI, screenshot
) -> None:
    session = str(uuid.uuid4())
    client = anthropic.Anthropic(base_url=server.url, api_key="sk-client", max_retries=0)
    main_headers = {"x-claude-code-session-id": session}
    agent_input = {"description": "Say pong", "prompt": AGENT_PROMPT, "subagent_type": "general-purpose"}

    upstream.script(
        tool_stream([("call_agent", "Agent", [json.dumps(agent_input)])], prompt=4000, completion=40),
        text_stream("PONG", prompt=3000, completion=2),
        text_stream("The subagent said PONG.", prompt=4100, completion=8),
    )
    main1 = load_fixture("main_turn")
    answer = send(client, main1, main_headers)
    (call,) = [b for b in answer.content if b.type == "tool_use"]
    assert call.name == "Agent"
    send(
        client, load_fixture("subagent_turn"), {**main_headers, "x-claude-code-agent-id": "ae92c2c6a46dd5384"}
    )
    main2 = dict(main1)
    main2["messages"] = [
        *main1["messages"],
        {"role": "assistant", "content": [call.model_dump(exclude_none=True)]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                      "content": [{"type": "text", "text": "PONG"}]}]},
    ]  # fmt: skip
    send(client, main2, main_headers)
    server.wait_for_exchange(lambda e: e["session_id"] == session and e.get("output_tokens") == 8)

    page.goto(f"{server.url}/sessions/{session}")
    main = page.locator("li.thread.main")
    expect(main).to_have_count(1)
    turns = main.locator(":scope > ul > li")
    expect(turns).to_have_count(2)
    nested = turns.nth(0).locator("li.thread.subagent")
    expect(nested).to_have_count(1)
    expect(nested.locator(".thread-head")).to_contain_text("general-purpose")
    expect(nested.locator(".thread-head")).to_contain_text(call.id)
    expect(turns.nth(1).locator(".new-items")).to_contain_text("PONG")
    expect(turns.nth(1).locator("li.thread")).to_have_count(0)
    screenshot("session-tree-session_view")

    page.goto(f"{server.url}/sessions")
    expect(page.locator(f'a[href="/sessions/{session}"]')).to_be_visible()

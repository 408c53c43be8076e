"""A tour of every page over a realistic mix of traffic, on a server routed to priced OpenAI models.

It sends a Claude Code session (main thread, a subagent, a failed Write, an is_error result, a
broken prompt cache), background and haiku calls, an upstream error and a slow stream, all through
the real server, then checks each page and saves the screenshots used in the README.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_session_view import AGENT_PROMPT, send
from tests.conftest import Server, load_fixture, start_server, stop_server
from tests.fakes.openai_upstream import FakeOpenAI, Reply, completion, error, text_stream, tool_stream

SESSION = str(uuid.uuid4())


@pytest.fixture(scope="module")
def priced_server(fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("tour"), {
        "OPENAI_BASE_URL": fake_openai.url, "OPENAI_API_KEY": "sk-test-upstream",
        "BIG_MODEL": "gpt-4.1", "MIDDLE_MODEL": "gpt-4.1-mini", "SMALL_MODEL": "gpt-4.1-nano",
    })  # fmt: skip
    yield srv
    stop_server(srv)


def _cached(reply: Reply, tokens: int = 12000) -> Reply:
    """The same reply, with a prompt-cache hit reported in its usage chunk."""
    reply.chunks[-2]["usage"]["prompt_tokens_details"]["cached_tokens"] = tokens
    return reply


def _session_traffic(client: anthropic.Anthropic, upstream: FakeOpenAI) -> None:
    headers = {"x-claude-code-session-id": SESSION}
    agent = {"description": "Say pong", "prompt": AGENT_PROMPT, "subagent_type": "general-purpose"}
    upstream.script(
        text_stream('{"title": "Create hello file"}', prompt=300, completion=12),
        tool_stream([("call_agent", "Agent", [json.dumps(agent)])], prompt=14000, completion=90),
        text_stream("PONG", prompt=9000, completion=3),
        # The routed model forgets file_path: invalid against Write's input_schema.
        _cached(
            tool_stream(
                [("call_write", "Write", ['{"content": "hi from proxy"}'])], prompt=14500, completion=60
            )
        ),
        # Switchboard retries the broken call once (issue #15); this model still gets it wrong, so the
        # call goes out as written and Claude Code refuses it.
        completion("I cannot tell which file.", prompt=14600, completion_tokens=8),
        text_stream("Sorry, retrying with the path.", prompt=15000, completion=40, cached=0),
    )
    send(client, load_fixture("background_title"), headers)
    main = load_fixture("main_turn")
    first = send(client, main, headers)
    call = next(b for b in first.content if b.type == "tool_use")
    send(client, load_fixture("subagent_turn"), {**headers, "x-claude-code-agent-id": "ae92c2c6a46dd5384"})
    turn2 = {**main, "messages": [
        *main["messages"], {"role": "assistant", "content": [call.model_dump(exclude_none=True)]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "PONG"}]},
    ]}  # fmt: skip
    second = send(client, turn2, headers)
    write = next(b for b in second.content if b.type == "tool_use")
    failure = (
        "<tool_use_error>InputValidationError: Write failed: the required parameter `file_path` is missing"
    )
    turn3 = {**turn2, "messages": [
        *turn2["messages"], {"role": "assistant", "content": [write.model_dump(exclude_none=True)]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": write.id, "is_error": True,
                                      "content": failure}]},
    ]}  # fmt: skip
    send(client, turn3, headers)


def _other_traffic(client: anthropic.Anthropic, upstream: FakeOpenAI) -> None:
    upstream.script(
        *[completion(f"Short answer {i}.", prompt=900 + i * 50, completion_tokens=30) for i in range(4)]
    )
    for i in range(4):
        client.messages.create(model="claude-haiku-4-5", max_tokens=100,
                               messages=[{"role": "user", "content": f"quick question {i}"}])  # fmt: skip
    # Healthy tool calls from the small model, so the matrix has something to compare with.
    read = {"name": "Read", "input_schema": {"type": "object", "required": ["file_path"]}}
    grep = {"name": "Grep", "input_schema": {"type": "object", "required": ["pattern"]}}
    calls = [
        ("c_r1", "Read", ['{"file_path": "/src/app.py"}']),
        ("c_g1", "Grep", ['{"pattern": "TODO"}']),
        ("c_r2", "Read", ['{"file_path": "/src/db.py"}']),
    ]
    look = [{"role": "user", "content": "look around"}]
    for call in calls:
        upstream.script(tool_stream([call], prompt=2500, completion=30))
        with client.messages.stream(
            model="claude-haiku-4-5", max_tokens=100, tools=[read, grep], messages=look
        ) as s:
            s.get_final_message()
    # The backend drops the connection mid-call: the proxy ends the stream with an error event.
    bash = {"name": "Bash", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}
    cut = tool_stream([("call_bash", "Bash", ['{"command": "ls -la'])], prompt=1800, completion=20)
    cut.break_after = 2
    upstream.script(cut)
    with (
        pytest.raises(anthropic.APIStatusError),
        client.messages.stream(
            model="claude-haiku-4-5",
            max_tokens=100,
            tools=[bash],
            messages=[{"role": "user", "content": "list files"}],
        ) as stream,
    ):
        stream.get_final_message()
    upstream.script(error(400, "This model's maximum context length is 128000 tokens."))
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model="claude-sonnet-4-5", max_tokens=100,
                               messages=[{"role": "user", "content": "a very long prompt"}])  # fmt: skip


def test_tour_of_every_page(page: Page, priced_server: Server, upstream: FakeOpenAI, screenshot) -> None:
    server = priced_server
    client = anthropic.Anthropic(base_url=server.url, api_key="sk-client", max_retries=0)
    _other_traffic(client, upstream)
    _session_traffic(client, upstream)
    server.wait_for_exchange(lambda e: e["output_tokens"] == 40)

    page.goto(f"{server.url}/")
    expect(page.locator("#live.connected")).to_be_visible(timeout=10_000)
    # A slow stream: it shows as pending in the open feed, then finishes in place.
    slow = text_stream("Thinking ", "about ", "it ", "slowly.", prompt=2000, completion=25)
    slow.delay_s = 0.7
    upstream.script(slow)
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 200,
        "messages": [{"role": "user", "content": "slow"}],
    }
    worker = threading.Thread(
        target=lambda: send(client, body, {"x-claude-code-session-id": str(uuid.uuid4())})
    )
    worker.start()
    expect(page.locator("#exchange-rows tr.status-pending")).to_have_count(1, timeout=5_000)
    expect(page.locator("#exchange-rows .status.error")).to_have_count(2)
    screenshot("feed", docs=True, full_page=False)
    worker.join(20)
    expect(page.locator("#exchange-rows tr.status-pending")).to_have_count(0, timeout=5_000)
    page.emulate_media(color_scheme="dark")
    screenshot("feed-dark", docs=True, full_page=False)
    page.emulate_media(color_scheme="light")
    page.set_viewport_size({"width": 1280, "height": 760})  # a laptop screen
    screenshot("feed-laptop", full_page=False)
    page.set_viewport_size({"width": 1440, "height": 900})

    page.goto(f"{server.url}/sessions/{SESSION}")
    expect(page.locator("li.thread.subagent")).to_have_count(1)
    expect(page.locator(".cache-broke").first).to_be_visible()
    screenshot("session-tree", docs=True)

    failing = page.locator(".node", has_text="1 failed").first.get_by_role("link").first
    failing.click()
    expect(page.locator(".block.tool_use").last).to_contain_text('"content": "hi from proxy"')
    expect(page.locator("#upstream-request")).to_contain_text('"model": "gpt-4.1"')
    screenshot("exchange-detail", docs=True, full_page=False)

    page.goto(f"{server.url}/tools")
    cell = page.locator("table.matrix tbody tr", has_text="gpt-4.1").locator('a[href*="tool=Write"]').first
    expect(cell).to_contain_text("failed")
    screenshot("tool-matrix", docs=True)
    cell.click()
    expect(page.locator("section.failure-group").first).to_contain_text("missing required file_path")
    screenshot("tool-failures", docs=True)

    page.goto(f"{server.url}/costs")
    expect(page.locator("figure.chart rect.s0").first).to_be_attached()
    expect(page.locator("table").first).to_contain_text("haiku")
    screenshot("costs", docs=True)

    page.goto(f"{server.url}/sessions")
    expect(page.locator(f'a[href="/sessions/{SESSION}"]')).to_be_visible()
    screenshot("sessions")
    assert Path(__file__).parents[2].joinpath("docs", "screenshots", "feed.png").exists()

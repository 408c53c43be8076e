"""Healed tool calls on the pages (issue #15), made through the real server: the exchange page shows the
raw arguments and each edit, the feed marks the row, the tool-call page counts it; desktop and phone."""

from __future__ import annotations

import json

import anthropic
from playwright.sync_api import Page, expect

from tests.browser.conftest import SHOTS
from tests.conftest import Server
from tests.fakes.openai_upstream import FakeOpenAI, completion, tool_stream

BASH = {
    "name": "Bash",
    "description": "run a command",
    "input_schema": {
        "type": "object",
        "properties": {"command": {"type": "string"}, "timeout": {"type": "number"}},
        "required": ["command"],
        "additionalProperties": False,
    },
}
LONG = "/very/long/path/" + "deeply/nested/" * 12 + "file.txt"


def ask(server: Server, model: str) -> str:
    client = anthropic.Anthropic(base_url=server.url, api_key="sk-client", max_retries=0)
    with client.messages.stream(
        model=model, max_tokens=200, tools=[BASH],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "list it"}],
    ) as stream:  # fmt: skip
        stream.get_final_message()
        return stream.response.headers["request-id"]


def test_healed_calls_show_on_the_exchange_page_the_feed_and_the_tool_page(
    page: Page, server: Server, upstream: FakeOpenAI, screenshot
) -> None:
    raw = '```json\n{"command": "cat ' + LONG + '", "timeout": "120",}\n```'
    upstream.script(tool_stream([("call_r", "bash", [raw[i : i + 5] for i in range(0, len(raw), 5)])]))
    repaired = ask(server, "claude-sonnet-4-5")
    fixed = {
        "id": "c2",
        "type": "function",
        "function": {"name": "Bash", "arguments": json.dumps({"command": "ls"})},
    }
    upstream.script(
        tool_stream([("call_t", "Bash", ['{"cmd": "ls"}'])]),
        completion(None, tool_calls=[fixed], finish="tool_calls"),
    )
    ask(server, "claude-sonnet-4-5")
    row = server.wait_for_exchange(lambda e: e["request_id"] == repaired)

    page.goto(f"{server.url}/exchanges/{row['id']}")
    section = page.locator("#healing")
    expect(section).to_contain_text("repaired")
    expect(section.locator("pre.raw-arguments")).to_contain_text("```json")
    for repair in ("fence_stripped", "trailing_comma", "string_to_integer", "tool_name"):
        expect(section.locator("table.edits")).to_contain_text(repair)
    timeout = section.locator("table.edits tr", has_text="/timeout")
    expect(timeout.locator("td").nth(2)).to_have_text('"120"')
    expect(timeout.locator("td").nth(3)).to_have_text("120")
    expect(page.locator("#fallback")).to_have_count(0)  # a repair is no fallback
    screenshot("healing-exchange-desktop")
    section.screenshot(path=str(SHOTS / "healing-section-desktop.png"))
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot("healing-exchange-phone")
    section.screenshot(path=str(SHOTS / "healing-section-phone.png"))

    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"{server.url}/")
    expect(page.locator(f"#exchange-{row['id']} .healed")).to_have_text("1 healed")
    screenshot("healing-feed-desktop")

    page.goto(f"{server.url}/tools")
    table = page.locator("table.healing")
    bash = table.locator("tbody tr", has_text="Bash").filter(has_text=row["backend_model"])
    expect(bash.locator(".heal-repaired")).to_have_text("1")
    expect(bash.locator(".heal-retried")).to_have_text("1")
    screenshot("healing-tools-desktop")
    table.screenshot(path=str(SHOTS / "healing-table-desktop.png"))
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot("healing-tools-phone")
    page.locator("#healing").scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "healing-table-phone.png"))

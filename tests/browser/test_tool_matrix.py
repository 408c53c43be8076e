"""A failed tool call, made through the real server, shows up in the matrix and in its error group."""

from __future__ import annotations

import anthropic
from playwright.sync_api import Page, expect

from tests.browser.test_exchange_detail import WRITE_TOOL
from tests.conftest import Server
from tests.fakes.openai_upstream import FakeOpenAI, text_stream, tool_stream


def test_failed_tool_call_shows_in_matrix_and_its_group(
    page: Page, server: Server, upstream: FakeOpenAI, screenshot
) -> None:
    client = anthropic.Anthropic(base_url=server.url, api_key="sk-client", max_retries=0)
    # The model forgets the required file_path: invalid against the tool's input_schema.
    upstream.script(tool_stream([("call_w", "Write", ['{"content": "hi"}'])]), text_stream("Retrying."))
    first = [{"role": "user", "content": "write hi to a file"}]
    with client.messages.stream(
        model="claude-sonnet-4-5", max_tokens=200, tools=[WRITE_TOOL], messages=first
    ) as s:
        answer = s.get_final_message()
    call = next(b for b in answer.content if b.type == "tool_use")
    error = (
        "<tool_use_error>InputValidationError: The required parameter `file_path` is missing</tool_use_error>"
    )
    second = [
        *first,
        {"role": "assistant", "content": [call.model_dump(exclude_none=True)]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "is_error": True, "content": error}],
        },
    ]
    with client.messages.stream(
        model="claude-sonnet-4-5", max_tokens=200, tools=[WRITE_TOOL], messages=second
    ) as s:
        s.get_final_message()
    row = server.wait_for_exchange(
        lambda e: e["tool_calls"] == 1 and e["client_model"] == "claude-sonnet-4-5"
    )

    page.goto(f"{server.url}/tools")
    matrix_row = page.locator("table.matrix tbody tr", has_text=row["backend_model"]).filter(has_text="main")
    cell = matrix_row.locator('a[href*="tool=Write"]')
    expect(cell).to_contain_text("100% failed")
    screenshot("tool-matrix-tool_matrix")
    cell.click()
    group = page.locator("section.failure-group", has_text="missing required file_path")
    expect(group).to_be_visible()
    expect(group.locator(f'a[href="/exchanges/{row["id"]}"]')).to_be_visible()
    expect(group.locator("pre").first).to_contain_text('"content": "hi"')
    screenshot("tool-failures-tool_matrix")

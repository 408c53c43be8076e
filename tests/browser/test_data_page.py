"""The Data page in Chromium: the database's size and the retention form, edited, at desktop and phone
widths, under the CSP."""

from __future__ import annotations

import anthropic
from playwright.sync_api import Page, expect

from tests.conftest import Server
from tests.fakes.openai_upstream import FakeOpenAI


def test_data_page_shows_the_size_and_edits_the_retention(
    page: Page, server: Server, upstream: FakeOpenAI, screenshot
) -> None:
    client = anthropic.Anthropic(base_url=server.url, api_key="sk-client", max_retries=0)
    client.messages.create(
        model="claude-opus-4-8", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    )
    server.wait_for_exchange()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    page.goto(f"{server.url}/data")
    size = page.locator("#database-size")
    expect(size).to_contain_text("database file")
    expect(size).to_contain_text("KB")
    page.get_by_label("Keep days").fill("90")
    page.get_by_label("Keep at most GB").fill("5")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Saved.")
    expect(page.locator("#retention")).to_contain_text("90 days and 5 GB (set here)")
    expect(page.get_by_label("Keep days")).to_have_value("90")
    screenshot("data-desktop")
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the phone
    screenshot("data-phone")
    assert not errors, errors

    page.get_by_label("Keep days").fill("")  # back to no limit for the other tests on this server
    page.get_by_label("Keep at most GB").fill("")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#retention")).to_contain_text("everything (no limit) (set here)")

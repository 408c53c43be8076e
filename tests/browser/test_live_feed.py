"""The live feed: a request sent with the anthropic SDK appears in the open page without a reload."""

from __future__ import annotations

import threading

import anthropic
import pytest
from playwright.sync_api import Page, expect

from tests.conftest import Server
from tests.fakes.openai_upstream import FakeOpenAI, Reply, completion, error, text_stream


def _slow(reply: Reply, delay_s: float) -> Reply:
    reply.delay_s = delay_s
    return reply


def test_live_feed_shows_new_exchange_then_its_update_without_reload(
    page: Page, server: Server, upstream: FakeOpenAI, screenshot
) -> None:
    page.goto(f"{server.url}/")
    expect(page.locator("#live.connected")).to_be_visible(timeout=10_000)
    page.evaluate("window.__notReloaded = true")
    before = page.locator("#exchange-rows tr.exchange").count()

    # A slow stream: the row appears while pending, then the same row turns ok when it finishes.
    upstream.script(_slow(text_stream("Hel", "lo ", "from ", "the ", "fake"), 0.4))
    client = anthropic.Anthropic(base_url=server.url, api_key="sk-client", max_retries=0)
    result: dict[str, str] = {}

    def call() -> None:
        with client.messages.stream(
            model="claude-sonnet-4-5",
            max_tokens=100,
            messages=[{"role": "user", "content": "live feed test"}],
        ) as stream:
            result["text"] = stream.get_final_text()

    worker = threading.Thread(target=call)
    worker.start()
    rows = page.locator("#exchange-rows tr.exchange")
    expect(rows).to_have_count(before + 1, timeout=5_000)
    newest = rows.first
    expect(newest).to_contain_text("claude-sonnet-4-5")
    screenshot("feed-live-pending")
    worker.join(20)
    assert result.get("text") == "Hello from the fake"
    expect(newest.locator(".status")).to_have_text("ok", timeout=5_000)
    expect(rows).to_have_count(before + 1)
    assert page.evaluate("window.__notReloaded") is True
    screenshot("feed-live_feed")


def test_feed_keyboard_navigation_search_filters_and_paging(
    page: Page, server: Server, upstream: FakeOpenAI, screenshot
) -> None:
    client = anthropic.Anthropic(base_url=server.url, api_key="sk-client", max_retries=0)
    upstream.script(*[completion(f"answer {i}") for i in range(55)])
    for i in range(55):
        word = "needle-in-the-haystack" if i == 7 else f"hay {i}"
        client.messages.create(
            model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": word}]
        )
    server.wait_for_exchange(lambda e: e["client_response"] and "answer 54" in str(e["client_response"]))

    page.goto(f"{server.url}/")
    rows = page.locator("#exchange-rows tr.exchange")
    expect(rows).to_have_count(50)
    page.get_by_role("link", name="Load older").click()
    expect(rows).not_to_have_count(50)
    assert rows.count() > 55 - 1

    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    expect(page.locator("#exchange-rows tr.selected")).to_have_count(1)
    selected_id = page.locator("#exchange-rows tr.selected").get_attribute("id")
    assert selected_id == rows.first.get_attribute("id")
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{server.url}/exchanges/{selected_id.removeprefix('exchange-')}")

    page.goto(f"{server.url}/")
    page.keyboard.press("/")
    page.keyboard.type("needle-in-the")
    expect(rows).to_have_count(1, timeout=5_000)
    expect(page).to_have_url(f"{server.url}/?q=needle-in-the")
    page.locator("select[name=status]").select_option("error")
    expect(rows).to_have_count(0)
    expect(page.locator(".empty")).to_contain_text("Nothing matches")
    page.locator("select[name=status]").select_option("")
    page.fill("#q", "")
    expect(rows).to_have_count(50, timeout=5_000)
    page.emulate_media(color_scheme="dark")
    screenshot("feed-dark-live_feed", full_page=False)


def test_filtered_live_feed_shows_a_row_once_it_starts_matching(
    page: Page, server: Server, upstream: FakeOpenAI
) -> None:
    page.goto(f"{server.url}/?status=error")
    expect(page.locator("#live.connected")).to_be_visible(timeout=10_000)
    before = page.locator("#exchange-rows tr.exchange").count()
    # Pending when it starts (filtered out), an error when it ends: the update must still show up.
    slow_error = error(400, "prompt is too long for this model")
    slow_error.first_delay_s = 0.5
    upstream.script(slow_error)
    client = anthropic.Anthropic(base_url=server.url, api_key="sk-client", max_retries=0)
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(
            model="claude-sonnet-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    rows = page.locator("#exchange-rows tr.exchange")
    expect(rows).to_have_count(before + 1, timeout=5_000)
    expect(rows.first.locator(".status")).to_have_text("error 400")

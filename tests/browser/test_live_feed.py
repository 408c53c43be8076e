"""The live feed: a request sent with the anthropic SDK appears in the open page without a reload."""

from __future__ import annotations

import threading

import anthropic
from playwright.sync_api import Page, expect

from tests.conftest import Server
from tests.fakes.openai_upstream import FakeOpenAI, Reply, text_stream


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
    screenshot("feed", docs=True)

"""The live feed while things happen: a stream's progress in its row, and the socket coming back fast
after a server restart (issue #12)."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import anthropic
import httpx
from playwright.sync_api import Page, expect

from tests.conftest import Server, free_port, start_server, stop_server
from tests.fakes.openai_upstream import FakeOpenAI, completion, text_stream


def _stream_in_background(url: str, prompt: str, result: dict[str, str]) -> threading.Thread:
    client = anthropic.Anthropic(base_url=url, api_key="sk-client", max_retries=0)

    def call() -> None:
        with client.messages.stream(
            model="claude-sonnet-4-5", max_tokens=200, messages=[{"role": "user", "content": prompt}]
        ) as stream:
            result["text"] = stream.get_final_text()

    worker = threading.Thread(target=call)
    worker.start()
    return worker


def test_a_streaming_row_shows_elapsed_time_and_tokens_so_far(
    page: Page, server: Server, upstream: FakeOpenAI, screenshot
) -> None:
    page.goto(f"{server.url}/")
    expect(page.locator("#live.connected")).to_be_visible(timeout=10_000)
    pieces = [f"word{i:02d} " for i in range(16)]
    reply = text_stream(*pieces)
    reply.delay_s = 0.3  # ~5 s of streaming
    upstream.script(reply)
    result: dict[str, str] = {}
    worker = _stream_in_background(server.url, "progress test", result)

    progress = page.locator("#exchange-rows tr.exchange").first.locator(".progress")
    expect(progress).to_contain_text("tok", timeout=5_000)
    first = progress.inner_text()
    time.sleep(1.5)
    later = progress.inner_text()
    elapsed = [float(re.match(r"([\d.]+) s", text)[1]) for text in (first, later)]  # type: ignore[index]
    tokens = [int(re.search(r"~(\d+) tok", text)[1]) for text in (first, later)]  # type: ignore[index]
    assert elapsed[1] > elapsed[0] and tokens[1] > tokens[0], (first, later)
    screenshot("feed-live-progress-1440")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot("feed-live-progress-390", full_page=False)
    page.set_viewport_size({"width": 1440, "height": 900})

    worker.join(20)
    assert result.get("text") == "".join(pieces)
    row = page.locator("#exchange-rows tr.exchange").first
    expect(row.locator(".status")).to_have_text("ok", timeout=5_000)
    expect(row.locator(".progress")).to_have_count(0)


def test_the_feed_reconnects_within_two_seconds_of_the_server_coming_back(
    page: Page, fake_openai: FakeOpenAI, tmp_path: Path, no_csp_violations: list[str], screenshot
) -> None:
    env = {"OPENAI_BASE_URL": fake_openai.url, "OPENAI_API_KEY": "sk-test", "BIG_MODEL": "big-model",
           "MIDDLE_MODEL": "mid-model", "SMALL_MODEL": "small-model"}  # fmt: skip
    port = free_port()
    data_dir = tmp_path / "data"
    server = start_server(tmp_path, env, port=port, data_dir=data_dir)
    try:
        page.goto(f"{server.url}/")
        expect(page.locator("#live.connected")).to_be_visible(timeout=10_000)
        stop_server(server)
        expect(page.locator("#live.connected")).to_have_count(0, timeout=5_000)
        time.sleep(3)  # down long enough for the extension's own backoff to have grown (it reached ~14 s)
        server = start_server(tmp_path, env, port=port, data_dir=data_dir)
        back_at = time.monotonic()
        # Traffic while the page was away: it shows once the page is back, without a reload.
        fake_openai.reset()
        fake_openai.script(completion("while you were away"))
        response = httpx.post(f"{server.url}/v1/messages", timeout=10, json={
            "model": "claude-sonnet-4-5", "max_tokens": 20,
            "messages": [{"role": "user", "content": "sent during the reconnect"}]})  # fmt: skip
        assert response.status_code == 200
        expect(page.locator("#live.connected")).to_be_visible(timeout=5_000)
        took = time.monotonic() - back_at
        print(f"reconnected {took:.2f} s after the server was back")
        assert took < 2.0, f"reconnected {took:.1f} s after the server was back"
        server.exchanges(1)  # settled: the row is written
        expect(page.locator("#exchange-rows tr.exchange").first).to_contain_text("claude-sonnet-4-5")
        screenshot("feed-reconnected")
    finally:
        stop_server(server)
        fake_openai.reset()
    # The browser reports each refused connection while the server was down: expected here, nothing else.
    # (the ws extension logs each socket error event as such; a fetch made meanwhile is refused too).
    expected = (
        "WebSocket connection",
        "[object Event]",
        "Failed to load resource: net::ERR_CONNECTION_REFUSED",
    )
    no_csp_violations[:] = [p for p in no_csp_violations if not p.startswith(expected)]


def test_a_request_waiting_for_its_backend_shows_its_elapsed_time(
    page: Page, server: Server, upstream: FakeOpenAI
) -> None:
    page.goto(f"{server.url}/")
    expect(page.locator("#live.connected")).to_be_visible(timeout=10_000)
    slow = completion("at last")
    slow.first_delay_s = 3.0  # the backend thinks before it answers (not streamed)
    upstream.script(slow)
    client = anthropic.Anthropic(base_url=server.url, api_key="sk-client", max_retries=0)
    result: dict[str, str] = {}

    def call() -> None:
        message = client.messages.create(
            model="claude-sonnet-4-5", max_tokens=20, messages=[{"role": "user", "content": "wait"}]
        )
        result["text"] = message.content[0].text  # type: ignore[union-attr]

    worker = threading.Thread(target=call)
    worker.start()
    progress = page.locator("#exchange-rows tr.exchange").first.locator(".progress")
    expect(progress).to_have_text(re.compile(r"^\d+ ms$|^[\d.]+ s$"), timeout=5_000)
    expect(progress).to_have_attribute("title", re.compile("no token yet"))
    worker.join(20)
    assert result.get("text") == "at last"
    expect(page.locator("#exchange-rows tr.exchange").first.locator(".status")).to_have_text(
        "ok", timeout=5_000
    )

"""The costs page renders its server-side SVG charts under the CSP (no inline styles or scripts)."""

from __future__ import annotations

import anthropic
from playwright.sync_api import Page, expect

from tests.conftest import Server
from tests.fakes.openai_upstream import FakeOpenAI, completion


def test_costs_page_shows_charts_and_rule_table(
    page: Page, server: Server, upstream: FakeOpenAI, screenshot
) -> None:
    upstream.script(completion("four", prompt=1200, completion_tokens=300))
    client = anthropic.Anthropic(base_url=server.url, api_key="sk-client", max_retries=0)
    client.messages.create(
        model="claude-opus-4-8", max_tokens=50, messages=[{"role": "user", "content": "2+2?"}]
    )
    server.wait_for_exchange(lambda e: e["output_tokens"] == 300)

    page.goto(f"{server.url}/costs")
    charts = page.locator("figure.chart svg")
    expect(charts).to_have_count(2)
    expect(page.locator("figure.chart rect.s1").first).to_be_attached()
    expect(
        page.get_by_role("heading", name="Per routing rule: what it saves, and what it costs in quality")
    ).to_be_visible()
    expect(page.locator("table").first).to_contain_text("opus")
    screenshot("costs-costs")

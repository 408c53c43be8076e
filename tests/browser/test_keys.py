"""The Keys page in Chromium: a key made is shown once, works at once, and stops working once revoked."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import pytest
from playwright.sync_api import Page, expect

from tests.conftest import Server, start_server, stop_server
from tests.fakes.openai_upstream import FakeOpenAI

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def own_server(fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Its own server: once a key exists, every client needs one (the shared server stays open)."""
    srv = start_server(
        tmp_path_factory.mktemp("keys-browser"),
        {"OPENAI_BASE_URL": fake_openai.url, "OPENAI_API_KEY": "sk-upstream", "BIG_MODEL": "big-model"},
    )
    yield srv
    stop_server(srv)


def test_a_key_made_in_the_browser_is_shown_once_and_revoked(
    page: Page, own_server: Server, upstream: FakeOpenAI, screenshot
) -> None:
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{own_server.url}/keys")
    expect(page.locator("#keys-config")).to_contain_text("only clients on this machine")
    form = page.locator("#key-form")
    form.get_by_label("Label").fill("laptop")
    form.get_by_label("Max requests in flight").fill("4")
    form.get_by_role("button", name="Make key").click()
    shown = page.locator("#made-key-value")
    expect(shown).to_be_visible()
    key = shown.input_value()
    assert key.startswith("sk-sb-")
    expect(page.locator(".key-row", has_text="laptop")).to_contain_text("4 in flight")
    # A key in force turns the login on: the maker is logged in as the first admin, shown its password once.
    expect(page.locator("#first-admin")).to_contain_text("admin")
    screenshot("keys")

    sdk = anthropic.Anthropic(base_url=own_server.url, auth_token=key, max_retries=0)
    assert sdk.messages.create(model="claude-opus-4-8", max_tokens=5, messages=HI).content
    own_server.exchanges(1, key=key)  # settle: the exchange is written
    page.goto(f"{own_server.url}/keys")
    assert key not in page.content()  # never shown again
    row = page.locator(".key-row", has_text="laptop")
    expect(row).not_to_contain_text("last used never")
    row.get_by_role("button", name="Revoke").click()
    expect(page.locator(".key-row", has_text="laptop")).to_contain_text("revoked")
    with pytest.raises(anthropic.AuthenticationError):
        sdk.messages.create(model="claude-opus-4-8", max_tokens=5, messages=HI)
    # The feed shows the label on the exchange it made, and filters by it.
    page.goto(f"{own_server.url}/?key=laptop")
    expect(page.locator("tr.exchange").first).to_contain_text("laptop")
    expect(page.locator("select[name=key]")).to_have_value("laptop")
    screenshot("keys-feed", full_page=False)
    page.locator("tr.exchange a").first.click()
    expect(page.locator("dl.facts")).to_contain_text("client key")
    screenshot("keys-exchange-detail", full_page=False)

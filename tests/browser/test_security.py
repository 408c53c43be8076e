"""The security edge in Chromium (issue #17): a server with client keys asks for the login, the first
start's admin password opens it, the live feed streams over the logged-in session, and logging out closes
it; the routes editor refuses a key variable outside the allowlist."""

from __future__ import annotations

import re
from collections.abc import Iterator

import anthropic
import pytest
from playwright.sync_api import Page, expect

from tests.conftest import Server, free_port, stop_server
from tests.fakes.openai_upstream import FakeOpenAI, completion
from tests.integration.test_security import KEY, admin_password, serve, wait_ready


@pytest.fixture(scope="module")
def keyed_server(fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("login")
    port = free_port()
    env = {
        "SWITCHBOARD_API_KEYS": KEY,
        "OPENAI_BASE_URL": fake_openai.url,
        "OPENAI_API_KEY": "sk-test-upstream",
        "BIG_MODEL": "big-model",
        "MIDDLE_MODEL": "mid-model",
        "SMALL_MODEL": "small-model",
    }
    process, log, full_env = serve(tmp, "--port", str(port), env=env)
    server = Server(
        url=f"http://127.0.0.1:{port}", process=process, data_dir=tmp / "data", log=log, env=full_env
    )
    wait_ready(process, log, server.url)
    yield server
    stop_server(server)


def test_login_flow_opens_the_dashboard_and_its_live_feed(
    page: Page, keyed_server: Server, upstream: FakeOpenAI, screenshot
) -> None:
    page.goto(f"{keyed_server.url}/routes")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Froutes$"))
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    screenshot("login")

    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".errorlist")).to_be_visible()

    page.get_by_label("Password").fill(admin_password(keyed_server))
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{keyed_server.url}/routes")
    expect(page.locator(".topbar .logout")).to_contain_text("admin")

    page.goto(f"{keyed_server.url}/")
    expect(page.locator("#live.connected")).to_be_visible(timeout=10_000)
    upstream.script(completion("after the login"))
    client = anthropic.Anthropic(base_url=keyed_server.url, api_key=KEY, max_retries=0)
    client.messages.create(
        model="claude-sonnet-4-5", max_tokens=5, messages=[{"role": "user", "content": "logged in feed"}]
    )
    expect(page.locator("#exchange-rows tr.exchange").first).to_contain_text(
        "claude-sonnet-4-5", timeout=5_000
    )
    screenshot("feed-logged-in")

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto(f"{keyed_server.url}/")
    expect(page).to_have_url(re.compile(r"/login\?next=%2F$"))


def test_provider_form_refuses_a_key_variable_outside_the_allowlist(
    page: Page, server: Server, screenshot
) -> None:
    page.goto(f"{server.url}/routes")
    page.get_by_role("link", name="New provider").click()
    form = page.locator("form.edit-form").first
    form.get_by_label("Name").fill("exfil")
    form.get_by_label("Base url").fill("https://collector.example/v1")
    form.get_by_label("API key from env var").fill("AWS_SECRET_ACCESS_KEY")
    form.get_by_role("button", name="Save").click()
    expect(page.locator(".errorlist")).to_contain_text("not an allowed key variable")
    screenshot("provider-key-variable-refused")
    page.reload()
    expect(page.locator("#routes-config")).not_to_contain_text("exfil")

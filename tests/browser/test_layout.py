"""Every dashboard page fits a phone (390 px) and is not widened on a desktop by long recorded values.

Issue #12: on a phone the routes page was 798 px wide with buttons outside their cards, the costs
page overflowed and the feed hid status and latency; on a desktop one 200-character model id widened
the feed to 2782 px. Long ids are cut with an ellipsis, the whole id on hover (title attribute).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import anthropic
import pytest
from playwright.sync_api import Page, expect

from tests.conftest import ROOT, Server, start_server, stop_server
from tests.fakes.openai_upstream import FakeOpenAI, completion, error, text_stream, tool_stream

LONG_MODEL = "claude-sonnet-4-5-" + "x" * 182  # 200 characters, no break opportunity
LONG_BACKEND = "vendor/" + "y" * 193
LONG_SESSION = "s" * 100
LONG_TOOL = "mcp__" + "z" * 59  # the longest tool name Anthropic accepts
LONG_RULE = "rule-" + "r" * 95
LONG_PROVIDER = "p" * 64
LONG_URL = "http://127.0.0.1:9/" + "u" * 300

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}


@pytest.fixture(scope="module")
def layout_server(fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("layout")
    srv = start_server(tmp, {"OPENAI_BASE_URL": fake_openai.url, "OPENAI_API_KEY": "sk-test-upstream"})
    # A rule and a provider with the longest names the editor allows, imported as the README says.
    config = tmp / "routes.toml"
    exported = subprocess.run(
        [sys.executable, "manage.py", "routes", "export"], cwd=ROOT, env=srv.env, check=True,
        capture_output=True, text=True,
    ).stdout  # fmt: skip
    config.write_text(
        f'[[providers]]\nname = "{LONG_PROVIDER}"\ndialect = "openai"\nbase_url = "{fake_openai.url}"\n'
        f'api_key_env = "OPENAI_API_KEY"\n\n'
        f'[[providers]]\nname = "unused"\ndialect = "openai"\nbase_url = "{LONG_URL}"\n\n'
        + exported.replace("[[rules]]", _long_rule() + "[[rules]]", 1)
    )
    subprocess.run([sys.executable, "manage.py", "routes", "import", str(config)], cwd=ROOT, env=srv.env,
                   check=True, capture_output=True)  # fmt: skip
    yield srv
    stop_server(srv)


def _long_rule() -> str:
    return (
        f'[[rules]]\nname = "{LONG_RULE}"\nprovider = "{LONG_PROVIDER}"\nmodel = "{LONG_BACKEND}"\n'
        f'conditions = {{ model = "*xxxxxxxxxx*" }}\n'
        f'fallbacks = [{{ provider = "{LONG_PROVIDER}", model = "{LONG_BACKEND}-fallback" }}]\n\n'
    )


def _traffic(server: Server, upstream: FakeOpenAI) -> None:
    client = anthropic.Anthropic(base_url=server.url, api_key="sk-client", max_retries=0)
    headers = {"x-claude-code-session-id": LONG_SESSION}
    tool = {"name": LONG_TOOL, "input_schema": {"type": "object", "required": ["path"]}}
    unbroken = "w" * 3000
    upstream.script(
        text_stream("Fine. " + unbroken, prompt=1200, completion=800),
        tool_stream([("call_1", LONG_TOOL, ['{"other": "' + unbroken + '"}'])], prompt=1500, completion=900),
        completion("no call", prompt=1500, completion_tokens=2),  # healing's retry of the broken call
        completion("ok", prompt=100, completion_tokens=5),
        error(500, "upstream exploded: " + "e" * 4000),
        error(500, "the fallback exploded too: " + "f" * 4000),
    )
    with client.messages.stream(model=LONG_MODEL, max_tokens=100, extra_headers=headers,
                                messages=[{"role": "user", "content": unbroken}]) as s:  # fmt: skip
        s.get_final_message()
    with client.messages.stream(model=LONG_MODEL, max_tokens=100, extra_headers=headers, tools=[tool],
                                messages=[{"role": "user", "content": "call it"}]) as s:  # fmt: skip
        s.get_final_message()
    hi = [{"role": "user", "content": "hi"}]
    client.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=hi)
    with pytest.raises(anthropic.APIStatusError):
        client.messages.create(model=LONG_MODEL, max_tokens=5, extra_headers=headers,
                               messages=[{"role": "user", "content": "fail"}])  # fmt: skip


def _pages(page: Page, server: Server) -> dict[str, str]:
    rows = server.exchanges(10)
    tool_call = next(r for r in rows if r["tool_calls"])
    page.goto(f"{server.url}/routes")
    rule_id = _pk(page, ".route-row", LONG_RULE)
    provider_id = _pk(page, ".route-row.provider", LONG_PROVIDER)
    return {
        "feed": "/",
        "exchange-detail": f"/exchanges/{tool_call['id']}",
        "exchange-error": f"/exchanges/{rows[0]['id']}",
        "sessions": "/sessions",
        "session-detail": f"/sessions/{LONG_SESSION}",
        "tools": "/tools",
        "tool-failures": f"/tools/failures?agent=main&model={LONG_BACKEND}&tool={LONG_TOOL}",
        "costs": "/costs",
        "routes": "/routes",
        "rule-editor": f"/routes/rules/{rule_id}",
        "provider-editor": f"/routes/providers/{provider_id}",
        "new-rule": "/routes/rules/new",
        "new-provider": "/routes/providers/new",
    }


def _pk(page: Page, selector: str, text: str) -> str:
    return str(page.locator(selector, has_text=text).get_attribute("id")).split("-")[1]


def _width(page: Page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


def test_every_page_fits_a_phone_and_long_values_do_not_widen_the_desktop(
    page: Page, layout_server: Server, upstream: FakeOpenAI, screenshot
) -> None:
    server = layout_server
    _traffic(server, upstream)
    pages = _pages(page, server)
    too_wide = {}
    for viewport, suffix in ((DESKTOP, "desktop"), (PHONE, "phone")):
        page.set_viewport_size(viewport)
        for name, path in pages.items():
            page.goto(server.url + path)
            page.wait_for_load_state("networkidle")
            screenshot(f"layout-{name}-{suffix}")
            if _width(page) > viewport["width"]:
                too_wide[f"{name} at {viewport['width']}"] = _width(page)
    assert not too_wide, str(too_wide)


def test_long_ids_are_cut_with_the_whole_id_on_hover(
    page: Page, layout_server: Server, upstream: FakeOpenAI
) -> None:
    server = layout_server
    if not any(r["client_model"] == LONG_MODEL for r in server.exchanges(20)):
        _traffic(server, upstream)
    page.set_viewport_size(DESKTOP)
    page.goto(f"{server.url}/")
    row = page.locator("#exchange-rows tr.exchange", has_text="xxxxxxxx").first
    requested = row.locator(f'[title="{LONG_MODEL}"]').first
    expect(requested).to_be_visible()
    box = requested.bounding_box()
    assert box is not None and box["width"] < 400  # cut, not 200 characters wide
    assert requested.evaluate("el => el.scrollWidth > el.clientWidth")  # with an ellipsis
    expect(row.locator(f'[title^="{LONG_BACKEND}"]').first).to_be_visible()

    # On a phone the feed still shows each row's status and latency.
    page.set_viewport_size(PHONE)
    page.goto(f"{server.url}/")
    first = page.locator("#exchange-rows tr.exchange").first
    for cell in (first.locator(".status"), first.locator("td.latency")):
        expect(cell).to_be_visible()
        box = cell.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]

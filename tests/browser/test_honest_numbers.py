"""Issue #12 in the browser, from real traffic: a fallback shows in the row and at the top of its
exchange, a refused request names its model, unpriced traffic is unknown (not $0) with a link to set its
price, a tool error is apart from failed calls, and the sessions list tells runs apart."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.conftest import ROOT, Server
from tests.fakes.openai_upstream import FakeOpenAI, completion, tool_stream

SESSION = "b0a7c0de-1234-4000-8000-00000000beef"


def routes(server: Server, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", "routes", *args],
        cwd=ROOT, env=server.env, input=stdin, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return result.stdout


@pytest.fixture
def fallback_rule(server: Server, tmp_path: Path) -> Iterator[None]:
    """A rule whose first target is down, falling back to the scripted upstream's provider."""
    config = routes(server, "export")
    provider = config.split("[[providers]]", 2)[1].split('name = "', 1)[1].split('"', 1)[0]
    path = tmp_path / "routes.toml"
    extra = f"""
[[providers]]
name = "down"
dialect = "openai"
base_url = "http://127.0.0.1:9/v1"

[[rules]]
name = "fallback-demo"
provider = "down"
model = "big-model"
conditions = {{ model = "*opus*" }}
fallbacks = [{{ provider = "{provider}", model = "mid-model" }}]
"""
    # The new rule goes first: rules are tried top to bottom.
    head, _, rest = config.partition("[[rules]]")
    path.write_text(head + extra.split("[[rules]]", 1)[0] + "[[rules]]" + extra.split("[[rules]]", 1)[1]
                    + "\n[[rules]]" + rest)  # fmt: skip
    routes(server, "import", str(path))
    yield
    path.write_text(config)
    routes(server, "import", str(path))


def test_honest_numbers_from_real_traffic(
    page: Page, server: Server, upstream: FakeOpenAI, fallback_rule: None, screenshot
) -> None:
    client = anthropic.Anthropic(base_url=server.url, api_key="sk-client", max_retries=0)
    headers = {"x-claude-code-session-id": SESSION, "user-agent": "claude-cli/2.1.332 (external, cli)"}
    tools = [{"name": "Bash", "description": "run", "input_schema": {"type": "object"}}]
    system = "You are Claude Code.\n - Primary working directory: /home/user/honest-project\n"
    ask = [{"role": "user", "content": "run the tests please"}]
    upstream.script(tool_stream([("call_1", "Bash", ['{"command": "pytest"}'])]), completion("A test fails."))
    with client.messages.stream(model="claude-opus-4-8", max_tokens=100, tools=tools, system=system,
                                messages=ask, extra_headers=headers) as stream:  # fmt: skip
        answer = stream.get_final_message()
    (call,) = [b for b in answer.content if b.type == "tool_use"]
    failing = {
        "type": "tool_result",
        "tool_use_id": call.id,
        "is_error": True,
        "content": "Exit code 1\nFAILED",
    }
    follow_up = [*ask, {"role": "assistant", "content": answer.model_dump()["content"]},
                 {"role": "user", "content": [failing]}]  # fmt: skip
    client.messages.create(model="claude-opus-4-8", max_tokens=100, tools=tools, system=system,
                           messages=follow_up, extra_headers=headers)  # fmt: skip
    refused = httpx.post(f"{server.url}/v1/messages", headers=headers, timeout=10,
                         json={"model": "claude-sonnet-4-5", "messages": []})  # fmt: skip
    assert refused.status_code == 400
    rows = server.exchanges(3, session=SESSION)
    refused_row, _answer_row, call_row = rows
    assert len(call_row["attempts"]) == 2 and call_row["tool_result_errors"] == 1
    assert refused_row["client_model"] == "claude-sonnet-4-5"

    for width, height in ((1440, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.goto(f"{server.url}/?session={SESSION[:8]}")
        feed = page.locator("#exchange-rows tr.exchange")
        expect(feed).to_have_count(3)
        call_tr = page.locator(f"#exchange-{call_row['id']}")
        expect(call_tr.locator(".fallback")).to_have_text("fallback 1")
        expect(call_tr.locator(".tool-errors")).to_contain_text("1 tool error")
        expect(call_tr.locator(".bad")).to_have_count(0)  # no call failed
        expect(call_tr.locator(".lossy")).to_have_count(0)  # nothing was lost
        expect(page.locator(f"#exchange-{refused_row['id']}")).to_contain_text("claude-sonnet-4-5")
        screenshot(f"honest-feed-{width}", full_page=False)

        page.goto(f"{server.url}/exchanges/{call_row['id']}")
        expect(page.locator("#fallback")).to_contain_text("answered by fallback 1")
        expect(page.locator("#fallback")).to_contain_text("down")
        expect(page.locator("a.set-price")).to_be_visible()
        screenshot(f"honest-exchange-{width}", full_page=False)

        page.goto(f"{server.url}/costs?range=24h")
        expect(page.locator("#unpriced")).to_contain_text("mid-model")
        link = page.locator("#unpriced a.set-price").first
        expect(link).to_have_attribute("href", re.compile(r"^/routes/providers/\d+$"))
        screenshot(f"honest-costs-{width}")

        page.goto(f"{server.url}/sessions")
        session_row = page.locator(f"#session-{SESSION[:8]}")
        expect(session_row).to_contain_text("run the tests please")
        expect(session_row).to_contain_text("/home/user/honest-project")
        expect(session_row).to_contain_text("Claude Code 2.1.332")
        expect(session_row).to_contain_text("mid-model")
        screenshot(f"honest-sessions-{width}", full_page=False)
    page.set_viewport_size({"width": 1440, "height": 900})

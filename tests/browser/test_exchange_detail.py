"""The exchange detail page, and hostile recorded content staying inert in every page that shows it."""

from __future__ import annotations

import json

import anthropic
from playwright.sync_api import Page, expect

from tests.conftest import Server
from tests.fakes.openai_upstream import FakeOpenAI, completion, tool_stream

WRITE_TOOL = {
    "name": "Write",
    "description": "Write a file",
    "input_schema": {
        "type": "object",
        "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}},
        "required": ["file_path", "content"],
    },
}

HOSTILE = (
    "<script>window.__xss = 1</script>"
    '<img src="x" onerror="window.__xss = 2">'
    '<div hx-get="/evil" hx-trigger="load" hx-swap="outerHTML">htmx bait</div>'
)


def _client(server: Server) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key="sk-client", max_retries=0)


def test_detail_shows_tool_call_and_both_sides_of_the_translation(
    page: Page, server: Server, upstream: FakeOpenAI, screenshot
) -> None:
    fragments = ['{"file_path": "/tmp/hello.txt", ', '"content": "hi"}']
    upstream.script(tool_stream([("call_1", "Write", fragments)]))
    with _client(server).messages.stream(
        model="claude-opus-4-8",
        max_tokens=64000,
        system=[{"type": "text", "text": "You write files.", "cache_control": {"type": "ephemeral"}}],
        tools=[WRITE_TOOL],
        messages=[{"role": "user", "content": "create hello.txt containing hi"}],
    ) as stream:
        message = stream.get_final_message()
    assert message.content[-1].type == "tool_use"
    row = server.wait_for_exchange(lambda e: e["client_model"] == "claude-opus-4-8")

    page.goto(f"{server.url}/exchanges/{row['id']}")
    tool_use = page.locator(".block.tool_use").last
    expect(tool_use).to_contain_text("Write")
    expect(tool_use.locator("pre")).to_contain_text('"file_path": "/tmp/hello.txt"')
    expect(page.locator("#client-request")).to_contain_text('"input_schema"')
    # The OpenAI side of the same request: the tool became a function.
    expect(page.locator("#upstream-request")).to_contain_text('"function"')
    expect(page.locator("#upstream-response")).to_contain_text("chat.completion.chunk")
    expect(page.locator("#client-response")).to_contain_text('"tool_use"')
    expect(page.locator(".msg.system")).to_contain_text("You write files.")
    screenshot("exchange-detail-exchange_detail")

    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Copy as curl").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("curl -sS ") and "/v1/messages" in copied
    assert '"create hello.txt containing hi"' in copied


def test_hostile_prompt_renders_as_inert_text_in_feed_and_detail(
    page: Page, server: Server, upstream: FakeOpenAI, screenshot
) -> None:
    evil_requests: list[str] = []
    bait = ("/evil", "/x")
    page.on("request", lambda r: evil_requests.append(r.url) if r.url.endswith(bait) else None)
    page.goto(f"{server.url}/")
    expect(page.locator("#live.connected")).to_be_visible(timeout=10_000)

    upstream.script(completion("Sure: " + HOSTILE))
    reply = _client(server).messages.create(
        model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": HOSTILE}]
    )
    assert HOSTILE in reply.content[0].text
    row = server.wait_for_exchange(lambda e: e["client_model"] == "claude-haiku-4-5")
    expect(page.locator(f"#exchange-{row['id']}")).to_be_visible(timeout=5_000)

    # Search by the hostile text: results come back through htmx and stay inert too.
    page.fill("#q", "window.__xss")
    expect(page.locator("#exchange-rows tr.exchange")).to_have_count(1, timeout=5_000)

    page.goto(f"{server.url}/exchanges/{row['id']}")
    expect(page.locator(".msg.user pre").first).to_have_text(HOSTILE)
    expect(page.locator(".msg.assistant pre").last).to_contain_text(HOSTILE)
    page.wait_for_timeout(300)
    assert page.evaluate("window.__xss") is None
    assert page.locator("img[src='x']").count() == 0
    assert page.get_by_text("htmx bait", exact=True).count() == 0  # only ever inside escaped text
    assert evil_requests == []
    screenshot("xss-inert")


def test_replay_through_another_rule_shows_both_answers_with_tool_calls(
    page: Page, server: Server, upstream: FakeOpenAI, screenshot
) -> None:
    upstream.script(tool_stream([("call_1", "Write", ['{"file_path": "/tmp/a.txt", "content": "A"}'])]))
    with _client(server).messages.stream(
        model="claude-opus-4-8",
        max_tokens=1000,
        tools=[WRITE_TOOL],
        messages=[{"role": "user", "content": "replay me: write a.txt"}],
    ) as stream:
        stream.get_final_message()
    row = server.wait_for_exchange(
        lambda e: e["tool_calls"] == 1 and "replay me" in str(e["client_request"]["messages"][0]["content"])
    )

    page.goto(f"{server.url}/exchanges/{row['id']}")
    # The replay is not streamed: the cheaper model answers with a JSON completion and its own tool call.
    call = {
        "id": "call_r",
        "type": "function",
        "function": {"name": "Write", "arguments": '{"file_path": "/tmp/b.txt"}'},
    }
    upstream.script(completion(None, tool_calls=[call], finish="tool_calls"))
    page.locator("select[name=rule]").select_option("haiku")
    page.get_by_role("button", name="Replay").click()
    result = page.locator("#replay-result")
    expect(result).to_contain_text("replay · rule haiku · small-model")
    columns = result.locator(".side-by-side > div")
    expect(columns.nth(0).locator(".block.tool_use")).to_contain_text("/tmp/a.txt")
    expect(columns.nth(1).locator(".block.tool_use")).to_contain_text("/tmp/b.txt")
    assert upstream.requests[-1]["model"] == "small-model"
    expect(result.locator("a", has_text="exchange")).to_be_visible()
    [replayed] = [e for e in server.exchanges(5) if e["origin"] == "replay"]  # the link: its own row
    assert result.locator("a", has_text="exchange").get_attribute("href") == f"/exchanges/{replayed['id']}"
    assert replayed["route_reason"] == f"replay of exchange {row['id']} through rule 'haiku'"
    screenshot("replay", docs=True)


def test_huge_exchange_shows_a_slice_and_downloads_whole(
    page: Page, server: Server, upstream: FakeOpenAI, screenshot, tmp_path
) -> None:
    # Issue #12: the page shows the start of each big body and links the rest.
    big = "".join(f'line {i}: <b>not bold</b> & "quoted"\n' for i in range(90_000))  # ~3.4 MB
    upstream.script(completion("Summarised."))
    _client(server).messages.create(
        model="claude-sonnet-4-5", max_tokens=50, messages=[{"role": "user", "content": big}]
    )
    row = server.wait_for_exchange(lambda e: e["client_model"] == "claude-sonnet-4-5" and e["input_tokens"])

    page.goto(f"{server.url}/exchanges/{row['id']}")
    assert page.evaluate("document.documentElement.outerHTML.length") < 2_000_000
    side = page.locator("#client-request").locator("xpath=..")
    expect(side.locator(".cut")).to_contain_text("Only the first")
    expect(page.locator(".msg.user .cut")).to_contain_text("more characters are not shown here")
    assert page.locator("b", has_text="not bold").count() == 0  # still text, not markup
    screenshot("exchange-detail-huge")
    with page.expect_download() as info:
        side.get_by_role("link", name="download").click()
    download = info.value
    assert download.suggested_filename == f"exchange-{row['id']}-client-request.json"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert json.loads(saved.read_text())["messages"][0]["content"] == big

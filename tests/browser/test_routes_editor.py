"""A route created and edited in the UI changes where the very next request goes."""

from __future__ import annotations

import anthropic
from playwright.sync_api import Page, expect

from tests.conftest import Server
from tests.fakes.openai_upstream import FakeOpenAI, completion


def ask(server: Server, upstream: FakeOpenAI, model: str) -> str:
    """Send one request; return the model the upstream was asked for."""
    upstream.script(completion("ok"))
    client = anthropic.Anthropic(base_url=server.url, api_key="sk-client", max_retries=0)
    client.messages.create(model=model, max_tokens=5, messages=[{"role": "user", "content": "route me"}])
    return upstream.requests[-1]["model"]


def test_route_edited_in_the_ui_changes_where_the_next_request_goes(
    page: Page, server: Server, upstream: FakeOpenAI, screenshot
) -> None:
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{server.url}/routes")
    page.get_by_role("link", name="New rule").click()
    form = page.locator("#rule-form-new")
    form.get_by_label("Name").fill("special")
    form.get_by_label("Position").fill("1")
    form.get_by_label("Model", exact=True).fill("special-backend")
    form.get_by_label("Conditions").fill('{"model": "*special*"}')
    form.get_by_role("button", name="Save").click()
    row = page.locator(".route-row", has_text="special")
    expect(row).to_contain_text("special-backend")
    expect(page.locator("#rules .route-row").first).to_contain_text("special")
    assert ask(server, upstream, "claude-special-1") == "special-backend"

    # Inline validation: broken JSON is refused and shown on the form.
    row.get_by_role("link", name="Edit").click()
    form = page.locator("form.edit-form", has_text="Edit rule special")
    form.get_by_label("Conditions").fill('{"model": ')
    form.get_by_role("button", name="Save").click()
    expect(form.locator(".errorlist")).to_contain_text("not valid JSON")
    form.get_by_label("Conditions").fill('{"model": "*special*"}')
    form.get_by_label("Model", exact=True).fill("special-backend-2")
    form.get_by_role("button", name="Dry run on recent traffic").click()
    expect(form.locator(".dry-run")).to_contain_text("would move")
    expect(form.locator(".dry-run")).to_contain_text("special-backend-2")
    screenshot("routes-editor", docs=True)
    form.get_by_role("button", name="Save").click()
    expect(page.locator(".route-row", has_text="special").first).to_contain_text("special-backend-2")
    assert ask(server, upstream, "claude-special-1") == "special-backend-2"

    # "Test this target": a one-token request to the rule's own target.
    upstream.script(completion("pong"))
    haiku = page.locator("#rules .route-row", has_text="small-model")
    haiku.get_by_role("button", name="Test").click()
    expect(haiku.locator(".check")).to_contain_text("openai/small-model answered")
    assert upstream.requests[-1]["model"] == "small-model" and upstream.requests[-1]["max_tokens"] == 1

    # Explain a stored exchange, then delete the rule: traffic goes back to the default.
    page.get_by_label("or paste a request body").fill(
        '{"model": "claude-special-9", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}'
    )
    page.get_by_role("button", name="Explain").click()
    expect(page.locator("#explain-result")).to_contain_text("Rule special")
    page.locator(".route-row", has_text="special").first.get_by_role("button", name="Delete").click()
    expect(page.locator("#rules .route-row", has_text="special-backend-2")).to_have_count(0)
    assert ask(server, upstream, "claude-special-1") == "mid-model"
    screenshot("routes")


def test_an_editor_link_opened_on_its_own_is_a_whole_page_that_saves(
    page: Page, server: Server, upstream: FakeOpenAI
) -> None:
    """A new tab or a reload of an editor's link: the form in the page's layout, and saving it works."""
    page.goto(f"{server.url}/routes/providers/new")
    expect(page.get_by_role("navigation").get_by_role("link", name="Routes")).to_be_visible()
    form = page.locator("#provider-form-new")
    form.get_by_label("Name").fill("local-ollama")
    form.get_by_label("Base url").fill("http://127.0.0.1:11434/v1")
    form.get_by_label("Model settings").fill('{"*": {"input_price": 0, "output_price": 0}}')
    form.get_by_role("button", name="Save").click()
    # The save answers with the whole configuration, which replaces the form.
    expect(page.locator("#routes-config")).to_contain_text("local-ollama")
    expect(page.locator("#provider-form-new")).to_have_count(0)


def test_the_routes_page_lists_rules_in_the_order_they_are_tried(
    page: Page, server: Server, upstream: FakeOpenAI, screenshot
) -> None:
    """Issue #12: a rule saved at 1 is shown at 1, the default is last and stays last, and a rule that
    takes everything is flagged, on a desktop and on a phone."""
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{server.url}/routes")
    page.get_by_role("link", name="New rule").click()
    form = page.locator("#rule-form-new")
    expect(form.get_by_label("Position")).to_have_value("3")  # haiku 1, opus 2: just above the default
    form.get_by_label("Name").fill("first-rule")
    form.get_by_label("Position").fill("1")
    form.get_by_label("Model", exact=True).fill("first-backend")
    form.get_by_label("Conditions").fill('{"model": "*first*"}')
    form.get_by_role("button", name="Save").click()
    rows = page.locator("#rules .route-row")
    expect(rows.first).to_contain_text("first-rule")
    expect(rows.first.locator(".pos")).to_have_text("1")
    default = rows.last
    expect(default).to_contain_text("default, tried last")
    expect(default.get_by_role("button", name="↑")).to_be_disabled()
    expect(rows.nth(2).get_by_role("button", name="↓")).to_be_disabled()  # nothing goes below the default
    assert ask(server, upstream, "claude-first-1") == "first-backend"

    # a rule with no conditions takes everything: flagged, and what the warning says is what happens
    page.get_by_role("link", name="New rule").click()
    form = page.locator("#rule-form-new")
    form.get_by_label("Name").fill("everything")
    form.get_by_label("Position").fill("2")
    form.get_by_label("Model", exact=True).fill("everything-backend")
    form.get_by_role("button", name="Save").click()
    expect(page.locator("#order-warnings")).to_contain_text("rule 'everything' has no conditions")
    expect(
        page.locator("#rules .route-row", has_text="everything-backend").locator(".tag.warn")
    ).to_have_text("takes everything")
    assert ask(server, upstream, "claude-opus-4-8") == "everything-backend"
    screenshot("routes-order-1440")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot("routes-order-390")
    page.set_viewport_size({"width": 1440, "height": 900})

    for name in ("everything-backend", "first-backend"):  # the session's server is shared: leave it as found
        page.locator("#rules .route-row", has_text=name).first.get_by_role("button", name="Delete").click()
        expect(page.locator("#rules .route-row", has_text=name)).to_have_count(0)
    expect(page.locator("#order-warnings")).to_have_count(0)


def test_a_provider_from_a_preset_is_choosing_its_name_and_pasting_a_key(
    page: Page, server: Server, screenshot
) -> None:
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{server.url}/routes")
    page.get_by_role("link", name="New provider").click()
    form = page.locator("#provider-form-new")
    form.get_by_label("Preset").select_option(label="DeepSeek")
    form = page.locator("#provider-form-new")
    expect(form.get_by_label("Base url")).to_have_value("https://api.deepseek.com/anthropic")
    expect(form.get_by_label("Dialect")).to_have_value("anthropic")
    expect(form.get_by_label("Quirks")).to_have_value(
        "tool_choice_any_is_auto, replay_reasoning, no_images, no_documents, no_count_tokens"
    )
    expect(form.get_by_label("Name")).to_have_value("deepseek")
    form.get_by_label("API key", exact=True).fill("sk-pasted-in-the-browser")
    screenshot("routes-preset-1440")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot("routes-preset-390")
    page.set_viewport_size({"width": 1440, "height": 900})
    form.get_by_role("button", name="Save").click()
    row = page.locator(".route-row.provider", has_text="deepseek")
    expect(row).to_contain_text("stored (hidden)")
    expect(row.locator(".tag.quirk")).to_have_count(5)
    row.get_by_role("button", name="Delete").click()  # the session's server is shared: leave it as found
    expect(page.locator(".route-row.provider", has_text="deepseek")).to_have_count(0)

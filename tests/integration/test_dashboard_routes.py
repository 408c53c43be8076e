"""The routes editor: validated edits, inline errors, write-only secrets, reorder, explain, dry run."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from proxy.models import ConfigVersion, Exchange, Provider, Rule
from proxy.routing import snapshot
from proxy.routing.rules import compile_config

pytestmark = pytest.mark.django_db(transaction=True)
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def config() -> dict[str, Any]:
    with snapshot.config_edit():
        openai = Provider.objects.create(
            name="openai", dialect="openai", base_url="http://127.0.0.1:9/v1", api_key_env="OPENAI_API_KEY"
        )
        haiku = Rule.objects.create(
            name="haiku", position=0, conditions={"model": "haiku"}, provider=openai, model="small-model"
        )
        default = Rule.objects.create(
            name="default", position=1, is_default=True, provider=openai, model="mid-model"
        )
    return {"openai": openai, "haiku": haiku, "default": default}


def rule_post(config: dict[str, Any], **fields: Any) -> dict[str, Any]:
    data = {
        "name": "special",
        "position": 1,
        "enabled": "on",
        "provider": config["openai"].pk,
        "model": "x-model",
        "conditions": '{"model": "*special*"}',
        "overrides": "",
        "fallbacks": "",
        "aliases": "",
    }
    return {**data, **fields}


def version() -> int:
    return ConfigVersion.objects.get().version


def test_new_rule_is_saved_and_bumps_the_config_version(config: dict[str, Any]) -> None:
    before = version()
    response = Client().post("/routes/rules/new", rule_post(config), **HX)
    assert response.status_code == 200
    assert 'id="routes-config"' in response.content.decode()
    rule = Rule.objects.get(name="special")
    assert rule.conditions == {"model": "*special*"} and rule.model == "x-model"
    assert version() == before + 1


def test_invalid_json_is_shown_inline_and_nothing_is_saved(config: dict[str, Any]) -> None:
    response = Client().post("/routes/rules/new", rule_post(config, conditions='{"model": '), **HX)
    html = response.content.decode()
    assert "not valid JSON" in html and 'id="rule-form-new"' in html
    assert response.headers["HX-Retarget"] == "#rule-form-new"
    assert not Rule.objects.filter(name="special").exists()


def test_configuration_problems_roll_back_the_edit_and_are_listed(config: dict[str, Any]) -> None:
    before = version()
    bad = rule_post(config, fallbacks='[{"provider": "nowhere", "model": "m"}]')
    html = Client().post("/routes/rules/new", bad, **HX).content.decode()
    assert "nowhere" in html and 'class="errorlist nonfield"' in html
    assert not Rule.objects.filter(name="special").exists()
    assert version() == before


def test_provider_secret_is_write_only(config: dict[str, Any]) -> None:
    pk = config["openai"].pk
    data = {
        "name": "openai",
        "dialect": "openai",
        "base_url": "http://127.0.0.1:9/v1",
        "api_key_env": "",
        "new_secret": "sk-very-secret",
        "extra_headers": "",
        "model_settings": "",
        "connect_timeout": 10,
        "first_byte_timeout": 300,
        "idle_timeout": 120,
        "total_timeout": 0,
    }
    client = Client()
    assert client.post(f"/routes/providers/{pk}", data, **HX).status_code == 200
    assert Provider.objects.get(pk=pk).api_key_secret == "sk-very-secret"
    for page in (client.get(f"/routes/providers/{pk}", **HX), client.get("/routes")):
        assert "sk-very-secret" not in page.content.decode()
    client.post(
        f"/routes/providers/{pk}", {**data, "new_secret": "", "base_url": "http://127.0.0.1:8/v1"}, **HX
    )
    assert Provider.objects.get(pk=pk).api_key_secret == "sk-very-secret"  # empty = keep
    client.post(f"/routes/providers/{pk}", {**data, "new_secret": "", "clear_secret": "on"}, **HX)
    assert Provider.objects.get(pk=pk).api_key_secret == ""


def names_in_order() -> list[str]:
    return list(Rule.objects.order_by("position").values_list("name", flat=True))


def shown_order(html: str) -> list[str]:
    """The rule names as the routes page lists them, with the number it shows for each."""
    pattern = r'<span class="pos">(\d+)</span>\s*<span class="name"><strong[^>]*>([^<]+)</strong>'
    return re.findall(pattern, html)


def test_provider_timeouts_are_edited_and_a_negative_one_is_refused_inline(config: dict[str, Any]) -> None:
    pk = config["openai"].pk
    data = {
        "name": "openai",
        "dialect": "openai",
        "base_url": "http://127.0.0.1:9/v1",
        "api_key_env": "OPENAI_API_KEY",
        "extra_headers": "",
        "model_settings": "",
        "connect_timeout": 5,
        "first_byte_timeout": 600,
        "idle_timeout": 45,
        "total_timeout": 1800,
    }
    client = Client()
    form = client.get(f"/routes/providers/{pk}", **HX).content.decode()
    assert "First-byte timeout (s)" in form and "Idle timeout (s)" in form and "Total timeout (s)" in form
    assert client.post(f"/routes/providers/{pk}", data, **HX).status_code == 200
    saved = Provider.objects.get(pk=pk)
    assert (saved.connect_timeout, saved.first_byte_timeout, saved.idle_timeout, saved.total_timeout) == (
        5,
        600,
        45,
        1800,
    )
    page = client.post(f"/routes/providers/{pk}", {**data, "idle_timeout": -1}, **HX).content.decode()
    assert "timeouts cannot be negative (0 means no limit)" in page
    assert Provider.objects.get(pk=pk).idle_timeout == 45


def test_rules_move_and_delete(config: dict[str, Any]) -> None:
    client = Client()
    client.post("/routes/rules/new", rule_post(config), **HX)
    assert names_in_order() == ["special", "haiku", "default"]
    client.post(f"/routes/rules/{config['haiku'].pk}/move/up", **HX)
    assert names_in_order() == ["haiku", "special", "default"]
    client.post(f"/routes/rules/{config['haiku'].pk}/delete", **HX)
    assert names_in_order() == ["special", "default"]


def test_the_default_rule_cannot_be_moved_above_other_rules(config: dict[str, Any]) -> None:
    # Issue #12: it is tried last wherever it sits, so moving it up only made the list lie.
    html = Client().post(f"/routes/rules/{config['default'].pk}/move/up", **HX).content.decode()
    assert names_in_order() == ["haiku", "default"]
    assert shown_order(html) == [("1", "haiku"), ("2", "default")]
    row = html[html.index(f'id="rule-{config["default"].pk}"') :]
    assert "default, tried last" in row
    assert re.search(
        r'title="the default rule is always tried last" hx-post="[^"]+/move/up"[^>]*disabled', row
    )
    form = Client().get(f"/routes/rules/{config['default'].pk}", **HX).content.decode()
    assert re.search(r'name="position" value="2"[^>]*disabled', form)
    assert "the default rule is always tried last" in form
    edited = rule_post(config, name="default", is_default="on", conditions="", model="mid-2", position=1)
    assert Client().post(f"/routes/rules/{config['default'].pk}", edited, **HX).status_code == 200
    assert names_in_order() == ["haiku", "default"] and Rule.objects.get(name="default").model == "mid-2"
    # a rule can not be moved below it either
    Client().post(f"/routes/rules/{config['haiku'].pk}/move/down", **HX)
    assert names_in_order() == ["haiku", "default"]


def test_a_rule_saved_at_a_position_is_shown_at_that_position(config: dict[str, Any]) -> None:
    client = Client()
    client.post("/routes/rules/new", rule_post(config, name="second", position=2), **HX)
    client.post("/routes/rules/new", rule_post(config, name="first", position=1), **HX)
    html = client.get("/routes").content.decode()
    assert shown_order(html) == [("1", "first"), ("2", "haiku"), ("3", "second"), ("4", "default")]
    # moving an existing rule down to 3 puts it at 3 (not before the rule that was there)
    first = Rule.objects.get(name="first")
    form = client.get(f"/routes/rules/{first.pk}", **HX).content.decode()
    assert re.search(r'name="position" value="1"', form)
    client.post(f"/routes/rules/{first.pk}", rule_post(config, name="first", position=3), **HX)
    html = client.get("/routes").content.decode()
    assert shown_order(html) == [("1", "haiku"), ("2", "second"), ("3", "first"), ("4", "default")]
    assert snapshot.load_specs()[1][2].name == "first"  # the order used is the order shown


def test_a_new_rule_goes_above_the_default_and_past_the_end_is_just_above_it(config: dict[str, Any]) -> None:
    client = Client()
    form = client.get("/routes/rules/new", **HX).content.decode()
    assert re.search(r'name="position" value="2"', form)  # haiku is 1, the default stays last
    client.post("/routes/rules/new", rule_post(config, position=40), **HX)
    assert names_in_order() == ["haiku", "special", "default"]
    client.post("/routes/rules/new", rule_post(config, name="no-position", position=""), **HX)
    assert names_in_order() == ["haiku", "special", "no-position", "default"]


def test_a_default_stored_above_other_rules_is_listed_last(config: dict[str, Any]) -> None:
    Rule.objects.filter(pk=config["default"].pk).update(position=-5)  # a database from before the fix
    html = Client().get("/routes").content.decode()
    assert shown_order(html) == [("1", "haiku"), ("2", "default")]


def test_a_rule_that_takes_everything_is_flagged_with_the_rules_it_hides(config: dict[str, Any]) -> None:
    client = Client()
    client.post("/routes/rules/new", rule_post(config, name="everything", conditions=""), **HX)
    html = client.get("/routes").content.decode()
    assert shown_order(html)[0] == ("1", "everything")
    body = '{"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}'
    explained = client.post("/routes/explain", {"body": body}, **HX).content.decode()
    assert "Rule <strong>everything</strong>" in explained and "has no conditions: it takes" in explained
    assert (
        "rule &#x27;everything&#x27; has no conditions: it takes every request, so the rules below it" in html
    )
    assert '<span class="tag warn"' in html and "takes everything" in html


def test_a_rule_hidden_by_one_above_it_is_flagged_as_never_matching(config: dict[str, Any]) -> None:
    client = Client()
    narrower = rule_post(
        config, name="haiku-bg", conditions='{"model": "haiku", "task": "background"}', position=2
    )
    client.post("/routes/rules/new", narrower, **HX)
    html = client.get("/routes").content.decode()
    assert "rule &#x27;haiku-bg&#x27; can never match: rule &#x27;haiku&#x27; above it" in html
    assert "never matches" in html
    client.post(f"/routes/rules/{Rule.objects.get(name='haiku-bg').pk}/move/up", **HX)
    assert "never matches" not in client.get("/routes").content.decode()


def test_deleting_a_provider_in_use_is_refused_with_a_reason(config: dict[str, Any]) -> None:
    html = Client().post(f"/routes/providers/{config['openai'].pk}/delete", **HX).content.decode()
    assert "rules still use this provider" in html
    assert Provider.objects.filter(pk=config["openai"].pk).exists()


def test_explain_a_pasted_request_and_a_stored_exchange(config: dict[str, Any]) -> None:
    client = Client()
    body = '{"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}'
    html = client.post("/routes/explain", {"body": body}, **HX).content.decode()
    assert "Rule <strong>haiku</strong>" in html and "small-model" in html
    assert "(number 1 of 2 in the order tried)" in html
    e = Exchange.objects.create(
        created_at=timezone.now(),
        client_model="claude-opus-4-8",
        client_request={"model": "claude-opus-4-8", "max_tokens": 5, "messages": []},
    )
    html = client.post("/routes/explain", {"exchange": e.pk}, **HX).content.decode()
    assert "Rule <strong>default</strong>" in html and "mid-model" in html
    assert "not valid JSON" in client.post("/routes/explain", {"body": "{"}, **HX).content.decode()


def test_dry_run_counts_requests_that_would_move(config: dict[str, Any]) -> None:
    for model, backend in (
        ("claude-special-1", "mid-model"),
        ("claude-special-2", "mid-model"),
        ("claude-x", "mid-model"),
    ):
        Exchange.objects.create(
            created_at=timezone.now(),
            client_model=model,
            provider="openai",
            backend_model=backend,
            client_request={"model": model, "max_tokens": 5, "messages": []},
        )
    html = Client().post("/routes/rules/new/dry-run", rule_post(config), **HX).content.decode()
    assert "<strong>2</strong> of the last 3 requests would move" in html
    assert 'openai/mid-model</span> → <span class="mono">openai/x-model</span>: 2' in html
    assert not Rule.objects.filter(name="special").exists()


def test_dry_run_prices_the_new_target_with_its_providers_model_settings(config: dict[str, Any]) -> None:
    # Issue #12: a price set in model_settings counts, as it does when the request is served.
    with snapshot.config_edit():
        Provider.objects.filter(pk=config["openai"].pk).update(
            model_settings={"x-model": {"input_price": 1.0, "output_price": 2.0}}
        )
    Exchange.objects.create(
        created_at=timezone.now(), client_model="claude-special-1", provider="openai",
        backend_model="mid-model", input_tokens=1_000_000, output_tokens=0, cost_usd=0.5,
        client_request={"model": "claude-special-1", "max_tokens": 5, "messages": []},
    )  # fmt: skip
    html = Client().post("/routes/rules/new/dry-run", rule_post(config), **HX).content.decode()
    assert "without a known price" not in html and "$0.500 → $1.000" in html


def test_tool_call_healing_is_edited_on_providers_and_rules(config: dict[str, Any]) -> None:
    # Issue #15: the editor has both settings; a rule's empty ones are its provider's.
    pk = config["openai"].pk
    data = {
        "name": "openai", "dialect": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "",
        "extra_headers": "", "model_settings": "", "connect_timeout": 10, "first_byte_timeout": 300,
        "idle_timeout": 120, "total_timeout": 0, "tool_call_retries": 2,
    }  # fmt: skip
    client = Client()
    form = client.get(f"/routes/providers/{pk}", **HX).content.decode()
    assert "Heal tool calls" in form and "Tool-call retries" in form
    assert client.post(f"/routes/providers/{pk}", data, **HX).status_code == 200  # the box left unticked
    saved = Provider.objects.get(pk=pk)
    assert (saved.heal_tool_calls, saved.tool_call_retries) == (False, 2)
    assert "no healing" in client.get("/routes").content.decode()
    page = client.post(f"/routes/providers/{pk}", {**data, "tool_call_retries": 9}, **HX).content.decode()
    assert "tool_call_retries must be an integer from 0 to 5" in page
    client.post("/routes/rules/new", rule_post(config, heal_tool_calls="true", tool_call_retries=0), **HX)
    rule = Rule.objects.get(name="special")
    assert (rule.heal_tool_calls, rule.tool_call_retries) == (True, 0)
    target = snapshot.current_snapshot_sync().rules[0].targets[0]
    assert (target.heal_tool_calls, target.tool_call_retries) == (True, 0)


def test_a_preset_fills_the_new_provider_form_and_its_quirks_are_saved(
    config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    client = Client()
    html = client.get("/routes/providers/new?preset=deepseek", **HX).content.decode()
    assert 'value="https://api.deepseek.com/anthropic"' in html
    assert (
        'value="tool_choice_any_is_auto, replay_reasoning, no_images, no_documents, no_count_tokens"' in html
    )
    assert '<option value="anthropic" selected>' in html
    # The key variable is suggested only when it is set: else a pasted key would lose to an unset one.
    assert 'value="DEEPSEEK_API_KEY"' not in html
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-ds")
    html = client.get("/routes/providers/new?preset=deepseek", **HX).content.decode()
    assert 'value="DEEPSEEK_API_KEY"' in html
    data = {
        "preset": "deepseek",
        "name": "deepseek",
        "dialect": "anthropic",
        "base_url": "https://api.deepseek.com/anthropic",
        "api_key_env": "",
        "new_secret": "sk-pasted",
        "extra_headers": "",
        "model_settings": "",
        "quirks": "tool_choice_any_is_auto, no_images",
        "connect_timeout": 10,
        "first_byte_timeout": 300,
        "idle_timeout": 120,
        "total_timeout": 0,
    }
    assert client.post("/routes/providers/new", data, **HX).status_code == 200
    saved = Provider.objects.get(name="deepseek")
    assert (saved.quirks, saved.api_key_secret) == (["tool_choice_any_is_auto", "no_images"], "sk-pasted")
    # A second one from the same preset gets a free name.
    assert (
        'name="name" value="deepseek-2"'
        in client.get("/routes/providers/new?preset=deepseek", **HX).content.decode()
    )


def test_a_providers_quirks_reach_its_targets_options(config: dict[str, Any]) -> None:
    with snapshot.config_edit():
        Provider.objects.filter(pk=config["openai"].pk).update(quirks=["no_tool_choice"])
    spec = snapshot.load_specs()[0][0]
    assert spec.quirks == ("no_tool_choice",)
    snap = compile_config(*snapshot.load_specs())
    assert "no_tool_choice" in snap.default.targets[0].options  # type: ignore[union-attr]

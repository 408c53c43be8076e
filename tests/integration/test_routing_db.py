"""Routing against the database: seeding, the snapshot seeing edits, validation refusing bad ones, import."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.test import AsyncRequestFactory

from dashboard import api
from proxy.models import ConfigVersion, Provider, Rule
from proxy.routing import snapshot
from proxy.routing.rules import ConfigError
from proxy.routing.seed import ensure_seeded
from proxy.translate.base import TranslationError
from proxy.translate.dialects import DIALECTS
from tests.conftest import load_fixture, run_async

pytestmark = pytest.mark.django_db(transaction=True)  # the snapshot reads on its own thread: commit for real

CCR_CONFIG = Path(__file__).resolve().parent.parent / "fixtures" / "ccr" / "config.json"


@pytest.fixture(autouse=True)
def fresh_snapshot(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """No backend in the environment unless a test sets one; no snapshot left by an earlier test."""
    settings.OPENAI_API_KEY = settings.OPENAI_BASE_URL = settings.GEMINI_API_KEY = ""
    settings.BIG_MODEL = settings.MIDDLE_MODEL = settings.SMALL_MODEL = ""
    settings.ANTHROPIC_UPSTREAM_URL = "https://api.anthropic.com"
    monkeypatch.delenv("SWITCHBOARD_PORT", raising=False)
    snapshot.invalidate()
    yield
    snapshot.invalidate()


def decide(body: dict[str, Any], headers: dict[str, str] | None = None) -> snapshot.Decision:
    return run_async(snapshot.decide(body, headers or {}))


def test_ensure_seeded_without_backend_is_an_anthropic_passthrough() -> None:
    ensure_seeded()
    ensure_seeded()  # idempotent
    assert list(Provider.objects.values_list("name", "dialect", "base_url", "api_key_env")) == [
        ("anthropic", "anthropic", "https://api.anthropic.com", "")
    ]
    decision = decide(load_fixture("main_turn"))
    assert decision.rule == "default"
    assert [(t.provider, t.model, t.api_key) for t in decision.targets] == [("anthropic", "", "")]
    assert ConfigVersion.objects.get().version == 1


def test_ensure_seeded_with_an_openai_key_creates_the_three_rules(settings: Any, monkeypatch: Any) -> None:
    settings.OPENAI_API_KEY = "sk-test"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    settings.BIG_MODEL, settings.SMALL_MODEL = "big-model", "small-model"
    ensure_seeded()
    provider = Provider.objects.get()
    assert (provider.name, provider.base_url, provider.api_key_env) == (
        "openai",
        "https://api.openai.com/v1",
        "OPENAI_API_KEY",
    )
    rules = list(Rule.objects.values_list("name", "model", "conditions", "is_default"))
    assert rules == [
        ("haiku", "small-model", {"model": "haiku"}, False),
        ("opus", "big-model", {"model": "opus"}, False),
        ("default", "big-model", {}, True),  # MIDDLE_MODEL falls back to BIG_MODEL
    ]
    haiku = decide(load_fixture("background_haiku"))
    assert (haiku.rule, haiku.reason) == ("haiku", "rule 'haiku': model contains 'haiku'")
    assert (haiku.targets[0].model, haiku.targets[0].api_key) == ("small-model", "sk-test")
    assert decide(load_fixture("main_turn")).rule == "opus"
    assert decide({**load_fixture("main_turn"), "model": "claude-sonnet-4-5"}).targets[0].model == "big-model"


def test_ensure_seeded_uses_gpt_4o_models_when_none_are_set(settings: Any) -> None:
    settings.OPENAI_BASE_URL = "http://10.0.0.5:8000/v1"
    ensure_seeded()
    assert dict(Rule.objects.values_list("name", "model")) == {
        "haiku": "gpt-4o-mini",
        "opus": "gpt-4o",
        "default": "gpt-4o",
    }
    assert Provider.objects.get().base_url == "http://10.0.0.5:8000/v1"


def test_ensure_seeded_with_only_a_gemini_key_routes_to_gemini(settings: Any, monkeypatch: Any) -> None:
    settings.GEMINI_API_KEY = "AIza-test"
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-test")
    ensure_seeded()
    provider = Provider.objects.get()
    assert (provider.name, provider.api_key_env) == ("gemini", "GEMINI_API_KEY")
    if "gemini" in DIALECTS:
        assert (provider.dialect, provider.base_url) == (
            "gemini",
            "https://generativelanguage.googleapis.com",
        )
    else:  # until the gemini dialect is on main: the same models through Gemini's OpenAI endpoint
        assert (provider.dialect, provider.quirks) == ("openai", ["thought_signatures"])
        assert provider.base_url == "https://generativelanguage.googleapis.com/v1beta/openai"
    assert dict(Rule.objects.values_list("name", "model")) == {
        "haiku": "gemini-2.5-flash",
        "opus": "gemini-2.5-pro",
        "default": "gemini-2.5-pro",
    }
    assert decide(load_fixture("main_turn")).targets[0].api_key == "AIza-test"


def test_ensure_seeded_refuses_a_backend_url_that_is_this_proxy(settings: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("SWITCHBOARD_PORT", "8082")
    settings.OPENAI_BASE_URL = "http://localhost:8082/v1"
    with pytest.raises(ImproperlyConfigured, match="points at this proxy itself"):
        ensure_seeded()
    assert not Provider.objects.exists()


def test_decide_sees_an_edit_made_elsewhere_on_the_next_request() -> None:
    ensure_seeded()
    assert decide(load_fixture("background_haiku")).rule == "default"
    # What another process does: commit rows and bump the version. This process is not told.
    provider = Provider.objects.create(name="cheap", dialect="openai", base_url="http://10.0.0.9/v1")
    Rule.objects.create(
        name="bg", position=-1, conditions={"task": "background"}, provider=provider, model="q"
    )
    snapshot.bump_version()
    decision = decide(load_fixture("background_haiku"))
    assert (decision.rule, decision.targets[0].provider, decision.task) == ("bg", "cheap", "background")


def test_decide_sees_an_edit_through_the_config_thread_as_on_postgres(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(snapshot, "_direct_reads", False)  # what a non-SQLite database gets
    ensure_seeded()
    assert decide(load_fixture("background_haiku")).rule == "default"
    provider = Provider.objects.create(name="cheap", dialect="openai", base_url="http://10.0.0.9/v1")
    Rule.objects.create(
        name="bg", position=-1, conditions={"task": "background"}, provider=provider, model="q"
    )
    snapshot.bump_version()
    assert decide(load_fixture("background_haiku")).rule == "bg"


def test_decide_keeps_the_snapshot_while_the_version_is_unchanged() -> None:
    ensure_seeded()
    before = run_async(snapshot.snapshot())
    Rule.objects.filter(name="default").update(model="changed-without-bump")
    after = run_async(snapshot.snapshot())
    assert after is before  # no reload without a version change (edits go through config_edit)


def test_config_edit_refuses_an_invalid_change_and_the_old_configuration_keeps_serving() -> None:
    ensure_seeded()
    version = ConfigVersion.objects.get().version
    with pytest.raises(ConfigError, match="rule 'broken': condition model: bad glob"), snapshot.config_edit():
        Rule.objects.create(
            name="broken",
            position=-1,
            conditions={"model": "claude-[opus"},
            provider=Provider.objects.get(name="anthropic"),
        )
    assert not Rule.objects.filter(name="broken").exists()
    assert ConfigVersion.objects.get().version == version
    assert decide(load_fixture("main_turn")).rule == "default"


def test_config_edit_refuses_deleting_the_default_rule() -> None:
    ensure_seeded()
    with pytest.raises(ConfigError, match="exactly one enabled default rule"), snapshot.config_edit():
        Rule.objects.filter(is_default=True).delete()
    assert Rule.objects.filter(is_default=True).count() == 1


def test_decide_answers_many_concurrent_requests_with_one_snapshot() -> None:
    ensure_seeded()

    async def many() -> list[snapshot.Decision]:
        body = load_fixture("main_turn")
        return await asyncio.gather(*(snapshot.decide(body, {}) for _ in range(200)))

    decisions = run_async(many())
    assert {d.rule for d in decisions} == {"default"}


def test_repeated_decisions_reuse_the_snapshot_until_the_version_changes() -> None:
    # The cost of a decision is measured by bench/run.py; here: the snapshot is reused, not rebuilt.
    ensure_seeded()
    body = load_fixture("main_turn")

    async def twice() -> tuple[object, object]:
        await snapshot.decide(body, {})
        first = await snapshot.snapshot()
        await snapshot.decide(body, {})
        return first, await snapshot.snapshot()

    first, second = run_async(twice())
    assert first is second


def test_decide_raises_translation_error_when_no_rule_serves() -> None:
    ensure_seeded()
    Rule.objects.all().delete()  # a hand-edited database: nothing validated it
    snapshot.bump_version()
    with pytest.raises((TranslationError, ConfigError)):
        decide(load_fixture("main_turn"))


def test_model_ids_lists_aliases() -> None:
    ensure_seeded()
    with snapshot.config_edit():
        Rule.objects.create(
            name="fast",
            position=-1,
            provider=Provider.objects.get(),
            model="claude-haiku-4-5",
            aliases=["claude-fast"],
        )
    ids = run_async(snapshot.model_ids())
    assert ids[0] == "claude-fast"
    assert "claude-opus-4-8" in ids  # the seeded default rule answers to every model


def test_routes_export_then_import_round_trips(tmp_path: Path) -> None:
    ensure_seeded()
    with snapshot.config_edit():
        provider = Provider.objects.create(
            name="local", dialect="openai", base_url="http://10.1.1.1/v1", api_key_secret="sk-kept"
        )
        Rule.objects.create(
            name="bg",
            position=-1,
            provider=provider,
            model="q",
            conditions={"task": "background"},
            fallbacks=[{"provider": "anthropic", "model": "claude-haiku-4-5"}],
        )
    out = io.StringIO()
    path = tmp_path / "routes.toml"
    call_command("routes", "export", "-o", str(path), stderr=out)
    text = path.read_text()
    assert "sk-kept" not in text
    before = snapshot.load_specs()
    Rule.objects.filter(name="bg").update(model="edited")
    call_command("routes", "import", str(path), stderr=out)
    assert snapshot.load_specs() == before  # the stored secret is kept
    assert Provider.objects.get(name="local").api_key_secret == "sk-kept"


def test_routes_import_refuses_an_invalid_file_and_changes_nothing(tmp_path: Path) -> None:
    ensure_seeded()
    before = snapshot.load_specs()
    path = tmp_path / "bad.toml"
    path.write_text(
        '[[providers]]\nname = "p"\ndialect = "openai"\nbase_url = "https://x.example/v1"\n\n'
        '[[rules]]\nname = "default"\nprovider = "nowhere"\nmodel = "m"\ndefault = true\n'
    )
    with pytest.raises(CommandError, match="unknown provider 'nowhere'"):
        call_command("routes", "import", str(path), stderr=io.StringIO())
    assert snapshot.load_specs() == before


def test_routes_import_from_claude_code_router_reports_what_was_not_carried(tmp_path: Path) -> None:
    ensure_seeded()
    err = io.StringIO()
    call_command("routes", "import", "--from-claude-code-router", str(CCR_CONFIG), stderr=err)
    assert set(Provider.objects.values_list("name", flat=True)) == {
        "openrouter",
        "deepseek",
        "ollama",
        "kimi",
        "gemini",
    }
    assert Provider.objects.get(name="ollama").api_key_secret == "ollama"
    assert "imported 5 providers and 6 rules" in err.getvalue()
    assert decide(load_fixture("background_title")).targets[0].model == "qwen2.5-coder:latest"


def test_routes_list_numbers_rules_in_the_order_tried_and_warns(capsys: pytest.CaptureFixture[str]) -> None:
    # Issue #12: the default stored first was listed first, yet tried last.
    ensure_seeded()
    with snapshot.config_edit():
        provider = Provider.objects.get(name="anthropic")
        Rule.objects.filter(is_default=True).update(position=5)
        Rule.objects.create(name="everything", position=9, provider=provider)
        Rule.objects.create(name="haiku", position=7, provider=provider, conditions={"model": "haiku"})
    out, err = io.StringIO(), io.StringIO()
    call_command("routes", "list", stdout=out, stderr=err)
    rules = [line for line in out.getvalue().splitlines() if ". rule " in line]
    assert rules == [
        '1. rule haiku: {"model":"haiku"} => anthropic/(client model)',
        "2. rule everything: always => anthropic/(client model)",
        "3. rule default: default, tried last => anthropic/(client model)",
    ]
    assert "warning: rule 'everything' has no conditions: it takes every request" in err.getvalue()
    assert decide(load_fixture("main_turn")).rule == "everything"  # what the list says is what happens


def test_routes_import_stores_the_default_last_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "routes.toml"
    path.write_text(
        '[[providers]]\nname = "p"\ndialect = "openai"\nbase_url = "https://x.example/v1"\n\n'
        '[[rules]]\nname = "default"\nprovider = "p"\nmodel = "mid"\ndefault = true\n\n'
        '[[rules]]\nname = "bg"\nprovider = "p"\nmodel = "small"\nconditions = { task = "background" }\n'
    )
    err = io.StringIO()
    call_command("routes", "import", str(path), stderr=err)
    assert "note: rule 'default' is the default, which is always tried last: it is stored after 'bg'" in (
        err.getvalue()
    )
    assert list(Rule.objects.order_by("position").values_list("name", flat=True)) == ["bg", "default"]
    exported = io.StringIO()
    call_command("routes", "export", "-o", str(tmp_path / "out.toml"), stderr=exported)
    text = (tmp_path / "out.toml").read_text()
    assert text.index('name = "bg"') < text.index('name = "default"')


def explain(body: dict[str, Any]) -> Any:
    """The view itself, as POST /api/route/explain serves it (the live tests go through the URL)."""
    request = AsyncRequestFactory().post(
        "/api/route/explain", data=json.dumps(body), content_type="application/json"
    )
    return run_async(api.explain(request))


def test_explain_returns_the_decision_without_calling_a_backend() -> None:
    ensure_seeded()
    body = load_fixture("subagent_explore_haiku")
    response = explain(body)
    assert response.status_code == 200
    assert json.loads(response.content) == {
        "rule": "default",
        "position": 1,
        "warnings": [],
        "reason": "rule 'default': the default (no other rule matched)",
        "task": "background",
        "agent": "Explore",
        "targets": [{"provider": "anthropic", "model": "claude-haiku-4-5-20251001", "dialect": "anthropic"}],
    }


def test_explain_refuses_a_body_without_model() -> None:
    ensure_seeded()
    response = explain({"messages": []})
    assert response.status_code == 400
    assert json.loads(response.content)["error"]["type"] == "invalid_request_error"


def test_a_stored_key_variable_outside_the_allowlist_sends_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue #17: a row written before the allowlist (or by hand) cannot send that variable anywhere."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    monkeypatch.setenv("X_API_KEY", "sk-x")
    provider = Provider.objects.create(
        name="x",
        dialect="openai",
        base_url="https://collector.example/v1",
        api_key_env="AWS_SECRET_ACCESS_KEY",
    )
    Rule.objects.create(name="default", position=0, is_default=True, provider=provider, model="m")
    snapshot.bump_version()
    assert decide({"model": "claude-sonnet-4-5"}).targets[0].api_key == ""
    with pytest.raises(ConfigError, match="not an allowed key variable"), snapshot.config_edit():
        Rule.objects.filter(name="default").update(model="m2")  # any edit: the stored name is refused
    Provider.objects.filter(pk=provider.pk).update(api_key_env="X_API_KEY")
    snapshot.bump_version()
    assert decide({"model": "claude-sonnet-4-5"}).targets[0].api_key == "sk-x"


def test_a_change_of_where_keys_go_is_logged_without_the_secret(caplog: pytest.LogCaptureFixture) -> None:
    """Issue #17: repointing a provider, or changing its key or headers, leaves a WARNING naming who."""
    ensure_seeded()  # the Anthropic passthrough
    with caplog.at_level("WARNING", logger="proxy.routing.snapshot"), snapshot.config_edit(actor="tester"):
        Provider.objects.filter(name="anthropic").update(
            base_url="https://elsewhere.example", api_key_secret="sk-very-secret", extra_headers={"x-a": "1"}
        )
    [line] = [r.getMessage() for r in caplog.records if "configuration:" in r.getMessage()]
    assert "base URL changed from https://api.anthropic.com to https://elsewhere.example" in line
    assert "key source changed" in line and "extra headers changed" in line
    assert "passthrough" in line and "(by tester)" in line and "sk-very-secret" not in line

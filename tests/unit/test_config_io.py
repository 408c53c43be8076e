"""TOML export/import of the routing configuration, and claude-code-router's config.json import."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from proxy.routing.config_io import export_toml, from_claude_code_router, parse_toml, toml_value
from proxy.routing.rules import (
    ConfigError,
    ProviderSpec,
    RuleSpec,
    choose_target,
    compile_config,
    validate_config,
)
from proxy.translate.dialects import DIALECTS
from tests.conftest import load_fixture

CCR_CONFIG = Path(__file__).resolve().parent.parent / "fixtures" / "ccr" / "config.json"

PROVIDERS = [
    ProviderSpec(
        name="openai",
        dialect="openai",
        base_url="https://api.openai.com/v1",
        api_key_env="OPENAI_API_KEY",
        extra_headers={"OpenAI-Organization": "org-1"},
        idle_timeout=90.0,
        total_timeout=900.0,
        model_settings={"gpt-4o": {"max_output_tokens": 16384, "options": ["max_completion_tokens"]}},
    ),
    ProviderSpec(
        name="local", dialect="openai", base_url="http://127.0.0.1:11434/v1", api_key_secret="sk-secret"
    ),
    ProviderSpec(name="anthropic", dialect="anthropic", base_url="https://api.anthropic.com"),
    # A capability profile (quirks) goes out and comes back with the file.
    ProviderSpec(
        name="ollama",
        dialect="anthropic",
        base_url="http://127.0.0.1:11434",
        quirks=["no_tool_choice", "no_count_tokens"],
    ),
]
RULES = [
    RuleSpec(
        name="background",
        provider="local",
        model="qwen2.5-coder:7b",
        conditions={"task": ["background"], "model": ["haiku", "claude-*-mini"]},
        fallbacks=[{"provider": "openai", "model": "gpt-4o-mini"}],
    ),
    RuleSpec(
        name='long "quoted" rule',
        provider="openai",
        model="gpt-4.1",
        conditions={"task": "long_context", "threshold": 90000},
        overrides={"max_tokens": 8192, "temperature": 0.5, "reasoning_effort": "high"},
        aliases=["claude-gpt-long"],
        enabled=False,
    ),
    RuleSpec(
        name="default", provider="anthropic", model="", is_default=True, fallbacks=[{"rule": "background"}]
    ),
]


def test_export_toml_round_trips_the_whole_configuration_except_secrets() -> None:
    text = export_toml(PROVIDERS, RULES)
    providers, rules = parse_toml(text)
    assert rules == RULES
    assert providers[0] == PROVIDERS[0]
    assert providers[3] == PROVIDERS[3] and providers[3].quirks == ("no_tool_choice", "no_count_tokens")
    assert 'quirks = ["no_tool_choice", "no_count_tokens"]' in text
    assert providers[1].api_key_secret == ""  # never exported
    assert providers[1] == ProviderSpec(name="local", dialect="openai", base_url="http://127.0.0.1:11434/v1")
    assert "sk-secret" not in text
    assert "stored in the database and is not exported" in text
    validate_config(providers, rules)


def test_export_toml_is_readable_by_tomllib_with_ordered_rules() -> None:
    data = tomllib.loads(export_toml(PROVIDERS, RULES))
    assert [r["name"] for r in data["rules"]] == ["background", 'long "quoted" rule', "default"]
    assert data["providers"][0]["model_settings"]["gpt-4o"]["max_output_tokens"] == 16384


def test_toml_value_escapes_strings_and_quotes_keys() -> None:
    assert (
        toml_value({"a b": 'x\n"y"', "ok": [1, 2.5, True]})
        == '{ "a b" = "x\\n\\"y\\"", ok = [1, 2.5, true] }'
    )
    assert tomllib.loads("v = " + toml_value({"a b": 'x\n"y"\u0001'}))["v"] == {"a b": 'x\n"y"\u0001'}


def test_toml_value_leaves_out_nulls() -> None:
    assert toml_value({"max_output_tokens": 100, "context_window": None}) == "{ max_output_tokens = 100 }"


def test_parse_toml_refuses_unknown_keys_and_bad_toml() -> None:
    with pytest.raises(ConfigError, match="rules\\[0\\]: unknown key 'modle'"):
        parse_toml('[[rules]]\nname = "x"\nprovider = "p"\nmodle = "m"\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_toml("[[rules]\n")
    with pytest.raises(ConfigError, match="providers\\[0\\]: missing or bad 'base_url'"):
        parse_toml('[[providers]]\nname = "x"\n')


def test_from_claude_code_router_maps_providers_keys_and_routes() -> None:
    providers, rules, notes = from_claude_code_router(json.loads(CCR_CONFIG.read_text()))
    by_name = {p.name: p for p in providers}
    assert sorted(by_name) == ["deepseek", "gemini", "kimi", "ollama", "openrouter"]
    assert by_name["openrouter"].base_url == "https://openrouter.ai/api/v1"
    assert by_name["openrouter"].api_key_env == "OPENROUTER_API_KEY"  # $VAR
    assert by_name["deepseek"].api_key_env == "DEEPSEEK_API_KEY"  # ${VAR}
    assert (by_name["ollama"].api_key_env, by_name["ollama"].api_key_secret) == ("", "ollama")
    assert (by_name["kimi"].dialect, by_name["kimi"].base_url) == (
        "anthropic",
        "https://api.moonshot.ai/anthropic",
    )
    assert by_name["deepseek"].total_timeout == 600.0  # API_TIMEOUT_MS
    assert [(r.name, r.provider, r.model, dict(r.conditions), r.is_default) for r in rules] == [
        ("long-context", "openrouter", "google/gemini-2.5-pro-preview",
         {"task": "long_context", "threshold": 100000}, False),
        ("background", "ollama", "qwen2.5-coder:latest", {"task": "background"}, False),
        ("web-search", "gemini", "gemini-2.5-flash", {"task": "web_search"}, False),
        ("image", "kimi", "kimi-k2-0905-preview", {"task": "image"}, False),
        ("think", "deepseek", "deepseek-reasoner", {"task": "think"}, False),
        ("default", "deepseek", "deepseek-chat", {}, True),
    ]  # fmt: skip
    text = "\n".join(notes)
    assert "transformers deepseek, tooluse were not carried over" in text
    assert "PROXY_URL" in text and "APIKEY" in text
    assert "Router.think became rule 'think'" in text and "adaptive thinking on every main turn" in text
    validate_config(providers, rules)


def test_from_claude_code_router_config_routes_captured_requests_like_ccr() -> None:
    providers, rules, _ = from_claude_code_router(json.loads(CCR_CONFIG.read_text()))
    snap = compile_config(providers, rules)
    title = choose_target(snap, load_fixture("background_haiku"), {})
    main = choose_target(snap, load_fixture("main_turn"), {})
    plain = choose_target(snap, load_fixture("count_tokens"), {})
    assert title is not None and (title.rule, title.targets[0].model) == (
        "background",
        "qwen2.5-coder:latest",
    )
    # Issue #12: Claude Code's adaptive thinking on every main turn is not claude-code-router's `think`.
    assert main is not None and (main.rule, main.targets[0].model) == ("default", "deepseek-chat")
    asked = load_fixture("main_turn")
    asked["thinking"] = {"type": "enabled", "budget_tokens": 31999}
    think = choose_target(snap, asked, {})
    assert think is not None and (think.rule, think.targets[0].model) == ("think", "deepseek-reasoner")
    assert plain is not None and plain.rule == "default"


def test_from_claude_code_router_takes_gemini_providers_as_the_gemini_dialect() -> None:
    providers, _, notes = from_claude_code_router(json.loads(CCR_CONFIG.read_text()))
    gemini = next(p for p in providers if p.name == "gemini")
    assert gemini.api_key_env == "GEMINI_API_KEY"
    if "gemini" in DIALECTS:
        assert (gemini.dialect, gemini.base_url) == ("gemini", "https://generativelanguage.googleapis.com")
    else:  # until the gemini dialect is on main: Gemini's OpenAI-compatible endpoint, said so
        assert (gemini.dialect, gemini.base_url) == (
            "openai",
            "https://generativelanguage.googleapis.com/v1beta/openai",
        )
        assert "thought_signatures" in gemini.quirks
        assert "provider 'gemini': imported through Gemini's OpenAI-compatible endpoint" in notes
    assert not any("transformers gemini" in n for n in notes)


def test_from_claude_code_router_takes_the_openai_responses_transformer_as_its_dialect() -> None:
    config = {
        "Providers": [
            {
                "name": "codex",
                "api_base_url": "https://api.openai.com/v1/responses",
                "api_key": "$OPENAI_API_KEY",
                "transformer": {"use": ["openai-responses"]},
            },
            {"name": "vertex", "api_base_url": "https://x", "transformer": {"use": ["vertex-gemini"]}},
        ],
        "Router": {"default": "codex,gpt-5-codex"},
    }
    if "openai_responses" not in DIALECTS:
        with pytest.raises(ConfigError, match=r"Router\.default"):  # skipped, said so, until it lands
            from_claude_code_router(config)
        return
    providers, _, notes = from_claude_code_router(config)
    assert [(p.name, p.dialect, p.base_url) for p in providers] == [
        ("codex", "openai_responses", "https://api.openai.com/v1")
    ]
    assert "provider 'vertex': Vertex AI is not supported yet; it and its routes were skipped" in notes


def test_from_claude_code_router_refuses_a_default_on_an_unknown_provider() -> None:
    config = {"Providers": [], "Router": {"default": "nowhere,model"}}
    with pytest.raises(ConfigError, match="no provider named 'nowhere'"):
        from_claude_code_router(config)


def test_parse_toml_reads_the_four_timeouts_and_defaults_the_rest() -> None:
    text = """
[[providers]]
name = "local"
base_url = "http://127.0.0.1:8080/v1"
first_byte_timeout = 900.0
total_timeout = 3600.0
"""
    [provider], _ = parse_toml(text)
    assert (provider.connect_timeout, provider.first_byte_timeout) == (10.0, 900.0)
    assert (provider.idle_timeout, provider.total_timeout) == (120.0, 3600.0)


def test_parse_toml_takes_read_timeout_from_older_exports_as_the_idle_timeout() -> None:
    # Files exported before the timeouts were split (read_timeout was httpx's wait for any chunk).
    text = '[[providers]]\nname = "old"\nbase_url = "http://127.0.0.1:8080/v1"\nread_timeout = 600.0\n'
    [provider], _ = parse_toml(text)
    assert provider.idle_timeout == 600.0

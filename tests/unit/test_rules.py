"""Routing rules over plain dataclasses: detection on captured Claude Code bodies, conditions, validation."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from proxy.routing.detect import (
    claude_code_agent,
    detect_tasks,
    has_image,
    has_web_search,
    is_background,
    is_think,
    request_facts,
    session_of,
    strip_agent_marker,
)
from proxy.routing.rules import (
    ConfigError,
    ProviderSpec,
    RuleSpec,
    choose_target,
    compile_config,
    compile_pattern,
    is_own_address,
    validate_config,
)
from tests.conftest import FIXTURES, load_fixture

OPENAI = ProviderSpec(
    name="openai", dialect="openai", base_url="https://api.openai.com/v1", api_key_env="OAI_KEY"
)
CHEAP = ProviderSpec(name="cheap", dialect="openai", base_url="http://127.0.0.1:11434/v1")
ANTHROPIC = ProviderSpec(name="anthropic", dialect="anthropic", base_url="https://api.anthropic.com")
PROVIDERS = [OPENAI, CHEAP, ANTHROPIC]
DEFAULT = RuleSpec(name="default", provider="anthropic", model="", is_default=True)


def snapshot(*rules: RuleSpec, providers: list[ProviderSpec] | None = None, **kwargs: Any) -> Any:
    return compile_config(providers or PROVIDERS, [*rules, DEFAULT], **kwargs)


# --- task detection over the captured fixtures ------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("background_haiku", True),  # haiku-class model
        ("background_title", True),  # the title call on the main model: recognised by its shape
        ("subagent_explore_haiku", True),
        ("main_turn", False),
        ("main_turn_interactive", False),
        ("subagent_turn", False),
        ("tool_result_turn", False),
    ],
)
def test_is_background_recognises_haiku_and_title_calls(fixture: str, expected: bool) -> None:
    assert is_background(load_fixture(fixture)) is expected


def test_is_background_is_false_for_a_title_shape_with_tools() -> None:
    body = load_fixture("background_title")
    body["tools"] = load_fixture("main_turn")["tools"]
    assert not is_background(body)


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("main_turn", False),  # thinking adaptive, effort high: what 2.1.197 sends on every main turn
        ("tool_result_turn", False),
        ("background_title", False),  # thinking disabled
        ("background_haiku", False),  # no thinking field
        ("subagent_turn", False),
        ("count_tokens", False),
    ],
)
def test_is_think_is_false_for_what_claude_code_sends_on_every_turn(fixture: str, expected: bool) -> None:
    assert is_think(load_fixture(fixture)) is expected


@pytest.mark.parametrize(
    "name", ["main_turn", "main_turn_interactive", "tool_result_turn", "agent_turn", "subagent_turn"]
)
def test_is_think_is_false_on_the_latest_cli_main_turns(name: str) -> None:
    # Issue #12: adaptive thinking (effort medium) on every 2.1.332 turn sent all main traffic to `think`.
    body = json.loads((FIXTURES / "claude-code-2.1.332" / f"{name}.json").read_text())
    assert body["thinking"]["type"] == "adaptive"
    assert not is_think(body)


@pytest.mark.parametrize(
    ("model", "thinking", "effort", "expected"),
    [
        ("claude-opus-4-8", {"type": "enabled", "budget_tokens": 31999}, "high", True),  # an explicit budget
        ("claude-opus-4-8", {"type": "adaptive"}, "max", True),
        ("claude-opus-4-8", {"type": "adaptive"}, "xhigh", True),
        ("claude-opus-4-8", {"type": "adaptive"}, "high", False),  # its default
        ("claude-opus-5-5", {"type": "adaptive"}, "high", True),  # above its default (medium)
        ("claude-opus-5-5", {"type": "adaptive"}, "medium", False),
        ("claude-opus-4-7", {"type": "adaptive"}, "xhigh", False),  # its default is xhigh
        ("claude-opus-4-7", {"type": "adaptive"}, "max", True),
        ("claude-haiku-5-5-20261001", {"type": "adaptive"}, "high", True),  # a dated id: haiku-5-5's default
        ("env-main-model", {"type": "adaptive"}, "high", False),  # not a listed model: above high
        ("env-main-model", {"type": "adaptive"}, "xhigh", True),
        ("claude-opus-4-8", {"type": "disabled"}, None, False),
    ],
)
def test_is_think_means_thinking_the_user_asked_for(
    model: str, thinking: dict[str, Any], effort: str | None, expected: bool
) -> None:
    body = load_fixture("main_turn")
    body["model"], body["thinking"] = model, thinking
    body["output_config"] = {"effort": effort} if effort else {}
    assert is_think(body) is expected


def test_is_think_is_true_in_plan_mode_even_with_thinking_disabled() -> None:
    body = load_fixture("subagent_turn")
    body["messages"][0]["content"].insert(
        0,
        {
            "type": "text",
            "text": "<system-reminder>\nPlan mode is active. The user indicated that they do not "
            "want you to execute yet\n</system-reminder>",
        },
    )
    assert is_think(body)


def test_has_web_search_is_true_only_with_a_server_tool() -> None:
    body = load_fixture("main_turn")
    assert not has_web_search(body)
    body["tools"].append({"type": "web_search_20250305", "name": "web_search", "max_uses": 5})
    assert has_web_search(body)
    fetch_only = {
        "model": "x",
        "messages": [],
        "tools": [{"type": "web_fetch_20250910", "name": "web_fetch"}],
    }
    assert has_web_search(fetch_only)


def test_has_image_looks_only_at_the_latest_user_turn() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    body = load_fixture("tool_result_turn")
    assert not has_image(body)
    body["messages"][-1]["content"].append(image)
    assert has_image(body)
    earlier = load_fixture("tool_result_turn")
    earlier["messages"][0]["content"].append(image)
    assert not has_image(earlier)


def test_has_image_finds_an_image_inside_a_tool_result() -> None:
    body = load_fixture("tool_result_turn")
    result = next(b for b in body["messages"][-1]["content"] if b["type"] == "tool_result")
    result["content"] = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}}
    ]
    assert has_image(body)


def test_detect_tasks_on_the_explore_subagent_is_background_only() -> None:
    assert detect_tasks(load_fixture("subagent_explore_haiku")) == {"background"}


# --- agent detection ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "agent"),
    [
        ("subagent_turn", "general-purpose"),
        ("subagent_explore_haiku", "Explore"),
        ("main_turn", ""),
        ("main_turn_interactive", ""),
        ("background_title", ""),
        ("subagent_result_turn", ""),  # the main thread after a subagent is not a subagent
    ],
)
def test_claude_code_agent_names_the_builtin_subagents(fixture: str, agent: str) -> None:
    assert claude_code_agent(load_fixture(fixture)) == agent


def test_claude_code_agent_is_subagent_for_an_unknown_prompt_with_the_billing_marker() -> None:
    body = load_fixture("subagent_turn")
    body["system"][2]["text"] = "You review pull requests for style."  # a user-defined agent
    assert claude_code_agent(body) == "subagent"


def test_strip_agent_marker_removes_it_from_a_system_block() -> None:
    body = load_fixture("main_turn")
    original = copy.deepcopy(body)
    body["system"].append({"type": "text", "text": "<switchboard-agent>reviewer</switchboard-agent>\n"})
    stripped, name = strip_agent_marker(body)
    assert name == "reviewer"
    assert stripped["system"] == original["system"]  # the emptied block is dropped, not sent empty
    assert body["system"][-1]["text"].startswith("<switchboard-agent>")  # the client's dict is not mutated


def test_strip_agent_marker_removes_it_from_the_first_user_message_text() -> None:
    body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [
            {"role": "user", "content": "<switchboard-agent>planner</switchboard-agent>\nPlan the work"}
        ],
    }
    stripped, name = strip_agent_marker(body)
    assert name == "planner"
    assert stripped["messages"][0]["content"] == "Plan the work"


def test_strip_agent_marker_returns_the_same_dict_when_there_is_none() -> None:
    body = load_fixture("main_turn")
    stripped, name = strip_agent_marker(body)
    assert stripped is body
    assert name == ""


def test_request_facts_prefers_the_header_to_the_marker_and_to_claude_code() -> None:
    body = load_fixture("subagent_turn")
    body["system"] = "<switchboard-agent>marked</switchboard-agent>"
    assert request_facts(body, {"x-switchboard-agent": "from-header"}).agent == "from-header"
    facts = request_facts(body, {})
    assert facts.agent == "marked"
    assert "system" not in facts.body


def test_session_of_reads_the_header_then_metadata() -> None:
    body = load_fixture("main_turn")
    assert session_of(body, {"x-claude-code-session-id": "abc"}) == "abc"
    assert session_of(body, {}) == "00000000-0000-4000-8000-000000000000"


# --- patterns ---------------------------------------------------------------------------------------


def test_compile_pattern_plain_model_is_a_substring_and_glob_is_whole() -> None:
    assert compile_pattern("haiku", exact=False).matches("claude-haiku-4-5")
    glob = compile_pattern("claude-*-4-5*", exact=False)
    assert glob.matches("claude-haiku-4-5-20251001")
    assert not glob.matches("xclaude-opus-4-8")


def test_compile_pattern_refuses_an_unclosed_bracket() -> None:
    with pytest.raises(ValueError, match="bad glob"):
        compile_pattern("claude-[opus", exact=False)


# --- choosing -----------------------------------------------------------------------------------------


def test_choose_target_first_matching_rule_wins_with_reason_in_words() -> None:
    snap = snapshot(
        RuleSpec(name="background", provider="cheap", model="qwen", conditions={"model": "haiku"}),
        RuleSpec(name="also-haiku", provider="openai", model="gpt-4o", conditions={"model": "haiku"}),
    )
    decision = choose_target(snap, load_fixture("background_haiku"), {})
    assert decision is not None
    assert decision.rule == "background"
    assert decision.reason == "rule 'background': model contains 'haiku'"
    assert decision.task == "background"
    assert [(t.provider, t.model) for t in decision.targets] == [("cheap", "qwen")]


def test_choose_target_falls_to_the_default_rule() -> None:
    snap = snapshot(RuleSpec(name="bg", provider="cheap", model="qwen", conditions={"task": "background"}))
    decision = choose_target(snap, load_fixture("main_turn"), {})
    assert decision is not None
    assert decision.rule == "default"
    assert decision.reason == "rule 'default': the default (no other rule matched)"
    assert decision.task == ""
    assert decision.targets[0].dialect == "anthropic" and decision.targets[0].model == ""


def test_choose_target_routes_the_title_call_by_task_even_on_the_main_model() -> None:
    snap = snapshot(RuleSpec(name="bg", provider="cheap", model="qwen", conditions={"task": "background"}))
    decision = choose_target(snap, load_fixture("background_title"), {})
    assert decision is not None and decision.rule == "bg"
    assert decision.reason == "rule 'bg': task is background"


def test_choose_target_matches_an_agent_by_name_case_insensitively() -> None:
    snap = snapshot(RuleSpec(name="explore", provider="cheap", model="qwen", conditions={"agent": "explore"}))
    decision = choose_target(snap, load_fixture("subagent_explore_haiku"), {})
    assert decision is not None
    assert (decision.rule, decision.agent) == ("explore", "Explore")
    assert decision.reason == "rule 'explore': agent is 'explore'"
    main = choose_target(snap, load_fixture("main_turn"), {})
    assert main is not None and main.rule == "default"


def test_choose_target_any_agent_glob_matches_every_subagent_but_not_the_main_thread() -> None:
    snap = snapshot(RuleSpec(name="agents", provider="cheap", model="qwen", conditions={"agent": "*"}))
    assert choose_target(snap, load_fixture("subagent_turn"), {}).rule == "agents"  # type: ignore[union-attr]
    assert choose_target(snap, load_fixture("main_turn"), {}).rule == "default"  # type: ignore[union-attr]


def test_choose_target_combines_conditions_with_and() -> None:
    rule = RuleSpec(
        name="cc-bg",
        provider="cheap",
        model="qwen",
        conditions={"task": "background", "client": "claude-cli"},
    )
    snap = snapshot(rule)
    body = load_fixture("background_title")
    hit = choose_target(snap, body, {"user-agent": "claude-cli/2.1.197 (external, cli)"})
    assert hit is not None and hit.rule == "cc-bg"
    assert hit.reason == "rule 'cc-bg': client contains 'claude-cli' and task is background"
    miss = choose_target(snap, body, {"user-agent": "python-httpx/0.28"})
    assert miss is not None and miss.rule == "default"


def test_choose_target_matches_a_session_exactly() -> None:
    snap = snapshot(RuleSpec(name="s", provider="cheap", model="qwen", conditions={"session": "abc"}))
    assert choose_target(snap, load_fixture("main_turn"), {"x-claude-code-session-id": "ABC"}).rule == "s"  # type: ignore[union-attr]
    assert (
        choose_target(snap, load_fixture("main_turn"), {"x-claude-code-session-id": "abcd"}).rule == "default"
    )  # type: ignore[union-attr]


def test_choose_target_counts_tokens_only_when_a_reached_rule_needs_them() -> None:
    calls: list[int] = []

    def counter(body: Any) -> int:
        calls.append(1)
        return 70000

    early = snapshot(
        RuleSpec(name="haiku", provider="cheap", model="qwen", conditions={"model": "haiku"}),
        RuleSpec(name="long", provider="openai", model="gpt-4.1", conditions={"task": "long_context"}),
    )
    assert choose_target(early, load_fixture("background_haiku"), {}, count_tokens=counter).rule == "haiku"  # type: ignore[union-attr]
    assert calls == []
    decision = choose_target(early, load_fixture("main_turn"), {}, count_tokens=counter)
    assert decision is not None and decision.rule == "long"
    assert decision.reason == "rule 'long': task is long_context (70000 input tokens > 60000)"
    assert decision.task == "long_context"
    assert calls == [1]


def test_choose_target_long_context_uses_the_rule_threshold() -> None:
    snap = snapshot(
        RuleSpec(
            name="long",
            provider="openai",
            model="gpt-4.1",
            conditions={"task": "long_context", "threshold": 100000},
        ),
    )
    decision = choose_target(snap, load_fixture("main_turn"), {}, count_tokens=lambda body: 70000)
    assert decision is not None and decision.rule == "default"


def test_choose_target_alias_selects_its_rule_and_is_listed() -> None:
    snap = snapshot(
        RuleSpec(name="fast", provider="openai", model="gpt-4o-mini", aliases=["claude-fast-gpt"]),
        RuleSpec(name="opus", provider="openai", model="gpt-4o", conditions={"model": "claude-opus-4-8"}),
    )
    body = {**load_fixture("main_turn"), "model": "claude-fast-gpt"}
    decision = choose_target(snap, body, {})
    assert decision is not None
    assert decision.reason == "rule 'fast': model is alias 'claude-fast-gpt'"
    assert snap.model_ids[:2] == ("claude-fast-gpt", "claude-opus-4-8")
    other = choose_target(snap, load_fixture("main_turn"), {})
    assert other is not None and other.rule == "opus"


def test_model_ids_lists_aliases_then_the_known_ids_each_rule_answers_to() -> None:
    haiku_only = compile_config(
        PROVIDERS,
        [
            RuleSpec(name="haiku", provider="cheap", model="q", conditions={"model": "haiku"}),
            RuleSpec(name="bg", provider="cheap", model="q", conditions={"task": "background"}),
            RuleSpec(name="d", provider="cheap", model="q", is_default=True, aliases=["claude-local"]),
        ],
    )
    assert haiku_only.model_ids[:2] == ("claude-local", "claude-haiku-4-5-20251001")
    assert "claude-opus-4-8" in haiku_only.model_ids  # the default rule answers to every model
    assert all(i.startswith("claude") for i in haiku_only.model_ids)


def test_choose_target_skips_disabled_rules() -> None:
    snap = snapshot(RuleSpec(name="off", provider="cheap", model="qwen", enabled=False))
    assert choose_target(snap, load_fixture("main_turn"), {}).rule == "default"  # type: ignore[union-attr]


def test_choose_target_returns_the_marker_stripped_body() -> None:
    snap = snapshot(RuleSpec(name="rev", provider="cheap", model="qwen", conditions={"agent": "reviewer"}))
    body = load_fixture("main_turn")
    body["messages"][0]["content"].insert(
        0, {"type": "text", "text": "<switchboard-agent>reviewer</switchboard-agent>"}
    )
    decision = choose_target(snap, body, {})
    assert decision is not None and decision.rule == "rev"
    assert decision.body["messages"][0]["content"] == load_fixture("main_turn")["messages"][0]["content"]


def test_compile_config_builds_the_fallback_chain_with_keys_limits_and_overrides() -> None:
    provider = ProviderSpec(
        name="openai",
        dialect="openai",
        base_url="https://api.openai.com/v1",
        api_key_env="OAI_KEY",
        extra_headers={"x-team": "a"},
        model_settings={"gpt-4o": {"max_output_tokens": 1234, "options": ["x"]}},
        idle_timeout=30.0,
    )
    rules = [
        RuleSpec(name="other", provider="cheap", model="qwen", conditions={"model": "sonnet"}),
        RuleSpec(
            name="main",
            provider="openai",
            model="gpt-4o",
            conditions={"model": "opus"},
            overrides={"temperature": 0.2, "max_tokens": 4096},
            fallbacks=[{"rule": "other"}, {"provider": "anthropic", "model": "claude-opus-4-8"}],
        ),
    ]
    snap = compile_config(
        [provider, CHEAP, ANTHROPIC],
        [*rules, DEFAULT],
        environ={"OAI_KEY": "sk-test"},
        max_output_tokens=lambda model, table: (table or {}).get(model, {}).get("max_output_tokens", 999),
    )
    decision = choose_target(snap, load_fixture("main_turn"), {})
    assert decision is not None and decision.rule == "main"
    primary, second, third = decision.targets
    assert (primary.provider, primary.model, primary.api_key) == ("openai", "gpt-4o", "sk-test")
    assert primary.extra_headers == (("x-team", "a"),)
    assert primary.max_output_tokens == 1234
    assert primary.options == frozenset({"x"})
    assert primary.overrides == (("max_tokens", 4096), ("temperature", 0.2))
    assert primary.idle_timeout == 30.0
    assert (second.provider, second.model, second.api_key, second.max_output_tokens) == (
        "cheap",
        "qwen",
        "",
        999,
    )
    assert (third.provider, third.model) == ("anthropic", "claude-opus-4-8")


def test_model_settings_keys_may_be_globs_and_the_exact_id_wins() -> None:
    local = ProviderSpec(
        name="ollama",
        dialect="openai",
        base_url="http://127.0.0.1:11434/v1",
        model_settings={
            "*": {"input_price": 0, "output_price": 0},
            "qwen3-*": {"input_price": 0.1, "output_price": 0.2, "options": ["reasoning"]},
            "qwen3-coder:30b": {"input_price": 0.3, "output_price": 0.4},
        },
    )
    models = {"opus": "llama3.3:70b", "sonnet": "qwen3-next:80b", "haiku": "QWEN3-CODER:30B"}
    rules = [
        RuleSpec(name=name, provider="ollama", model=model, conditions={"model": name})
        for name, model in models.items()
    ]
    snap = compile_config([local, ANTHROPIC], [*rules, DEFAULT])
    targets = {rule.name: rule.targets[0] for rule in snap.rules if rule.name != "default"}
    assert dict(targets["opus"].prices) == {"input_price": 0.0, "output_price": 0.0}  # only "*" matches
    assert dict(targets["sonnet"].prices) == {"input_price": 0.1, "output_price": 0.2}  # longest glob
    assert "reasoning" in targets["sonnet"].options
    assert dict(targets["haiku"].prices) == {"input_price": 0.3, "output_price": 0.4}  # exact, any case


def test_choose_target_costs_well_under_a_millisecond_for_100_rules() -> None:
    rules = [
        RuleSpec(
            name=f"r{i}", provider="openai", model=f"m{i}", conditions={"model": f"*never{i}*", "agent": "x"}
        )
        for i in range(99)
    ]
    snap = snapshot(*rules)
    body = load_fixture("main_turn")
    # Its cost (well under a millisecond) is measured by bench/run.py, not asserted here.
    decision = choose_target(snap, body, {"user-agent": "claude-cli/2.1.197"})
    assert decision is not None and decision.rule == "default"


# --- validation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([RuleSpec(name="x", provider="nope", model="m")], "rule 'x': unknown provider 'nope'"),
        (
            [RuleSpec(name="x", provider="openai", model="m", conditions={"model": "claude-[opus"})],
            "bad glob",
        ),
        ([RuleSpec(name="x", provider="openai", model="")], "rule 'x': empty target (no model"),
        ([RuleSpec(name="x", provider="", model="m")], "rule 'x': empty target (no provider)"),
        (
            [
                RuleSpec(name="a", provider="openai", model="m", fallbacks=[{"rule": "b"}]),
                RuleSpec(name="b", provider="cheap", model="q", fallbacks=[{"rule": "a"}]),
            ],
            "fallback cycle: a -> b -> a",
        ),
        (
            [
                RuleSpec(
                    name="a", provider="openai", model="m", fallbacks=[{"provider": "openai", "model": "m"}]
                )
            ],
            "fallback cycle: openai/m comes twice",
        ),
        (
            [RuleSpec(name="x", provider="openai", model="m", conditions={"task": "coding"})],
            "unknown task 'coding'",
        ),
        (
            [RuleSpec(name="x", provider="openai", model="m", conditions={"modle": "x"})],
            "unknown condition 'modle'",
        ),
        ([RuleSpec(name="x", provider="openai", model="m", aliases=["fast"])], "must start with 'claude'"),
        ([RuleSpec(name="x", provider="openai", model="m", overrides={"temperature": 5})], "between 0 and 2"),
        (
            [RuleSpec(name="x", provider="openai", model="m", is_default=True)],
            "exactly one enabled default rule",
        ),
    ],
)
def test_validate_config_refuses_with_a_clear_message(rules: list[RuleSpec], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config(PROVIDERS, [*rules, DEFAULT])
    assert any(message in problem for problem in caught.value.problems), caught.value.problems


def test_validate_config_requires_a_default_rule() -> None:
    with pytest.raises(ConfigError, match=re.escape("exactly one enabled default rule is needed (found 0)")):
        validate_config(PROVIDERS, [RuleSpec(name="x", provider="openai", model="m")])


def test_validate_config_refuses_a_provider_pointing_at_this_proxy() -> None:
    loop = ProviderSpec(name="self", dialect="anthropic", base_url="http://localhost:8082")
    with pytest.raises(ConfigError, match="points at this proxy itself"):
        validate_config([loop], [RuleSpec(name="d", provider="self", is_default=True)], own_port=8082)
    validate_config([loop], [RuleSpec(name="d", provider="self", is_default=True)], own_port=9000)


def test_validate_config_refuses_an_unknown_dialect() -> None:
    cohere = ProviderSpec(name="c", dialect="cohere", base_url="https://api.cohere.example")
    with pytest.raises(ConfigError, match="unknown dialect 'cohere'"):
        validate_config([cohere], [RuleSpec(name="d", provider="c", model="command-r", is_default=True)])


def test_is_own_address_uses_the_scheme_default_port() -> None:
    assert is_own_address("http://0.0.0.0/v1", 80)
    assert not is_own_address("https://api.openai.com/v1", 443)
    assert not is_own_address("http://127.0.0.1:8080", None)

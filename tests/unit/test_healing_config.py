"""heal_tool_calls / tool_call_retries (issue #15, fixed names): in the routes TOML both ways, checked,
and compiled into each target, a rule's setting winning over its providers'."""

from __future__ import annotations

import pytest

from proxy.healing import wants_healing
from proxy.routing.config_io import export_toml, parse_toml
from proxy.routing.rules import ConfigError, ProviderSpec, RuleSpec, compile_config

OPENAI = ProviderSpec(name="cheap", dialect="openai", base_url="https://api.example.com/v1")
QUIET = ProviderSpec(
    name="quiet", dialect="openai", base_url="https://b.example.com/v1", heal_tool_calls=False
)
CLAUDE = ProviderSpec(name="claude", dialect="anthropic", base_url="https://api.anthropic.com")


def test_healing_is_on_with_one_retry_by_default_and_files_stay_as_they_were() -> None:
    text = export_toml([OPENAI], [RuleSpec(name="default", provider="cheap", model="m", is_default=True)])
    assert "heal_tool_calls" not in text and "tool_call_retries" not in text
    providers, rules = parse_toml(text)
    assert (providers[0].heal_tool_calls, providers[0].tool_call_retries) == (True, 1)
    assert (rules[0].heal_tool_calls, rules[0].tool_call_retries) == (None, None)


def test_the_toml_keys_turn_healing_off_and_bound_the_retries_on_providers_and_rules() -> None:
    text = """
[[providers]]
name = "cheap"
base_url = "https://api.example.com/v1"
heal_tool_calls = false
tool_call_retries = 3

[[rules]]
name = "bg"
provider = "cheap"
model = "small"
conditions = { task = "background" }
heal_tool_calls = true
tool_call_retries = 0

[[rules]]
name = "default"
provider = "cheap"
model = "big"
default = true
"""
    providers, rules = parse_toml(text)
    assert (providers[0].heal_tool_calls, providers[0].tool_call_retries) == (False, 3)
    assert (rules[0].heal_tool_calls, rules[0].tool_call_retries) == (True, 0)
    assert parse_toml(export_toml(providers, rules)) == (providers, rules)
    snapshot = compile_config(providers, rules)
    background, default = snapshot.rules[0].targets[0], snapshot.default.targets[0]  # type: ignore[union-attr]
    assert (background.heal_tool_calls, background.tool_call_retries) == (True, 0)  # the rule's own
    assert (default.heal_tool_calls, default.tool_call_retries) == (False, 3)  # the provider's


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('heal_tool_calls = "no"', "heal_tool_calls must be true or false"),
        ('tool_call_retries = "1"', "tool_call_retries must be an integer"),
    ],
)
def test_bad_healing_values_are_refused_by_name(line: str, problem: str) -> None:
    text = f'[[providers]]\nname = "cheap"\nbase_url = "https://x/v1"\n{line}\n'
    with pytest.raises(ConfigError, match=problem):
        parse_toml(text)


def test_retries_out_of_range_are_refused_when_compiled() -> None:
    rules = [RuleSpec(name="default", provider="cheap", model="m", is_default=True, tool_call_retries=9)]
    with pytest.raises(ConfigError, match="tool_call_retries must be an integer from 0 to 5"):
        compile_config([OPENAI], rules)


def test_a_rule_setting_applies_to_its_fallbacks_too() -> None:
    rule = RuleSpec(
        name="default", provider="cheap", model="m", is_default=True, heal_tool_calls=True,
        fallbacks=[{"provider": "quiet", "model": "n"}],
    )  # fmt: skip
    targets = compile_config([OPENAI, QUIET], [rule]).default.targets  # type: ignore[union-attr]
    assert [t.heal_tool_calls for t in targets] == [True, True]


def test_passthrough_and_requests_without_tools_are_not_healed() -> None:
    rule = RuleSpec(name="default", provider="claude", model="", is_default=True)
    passthrough = compile_config([CLAUDE], [rule]).default.targets  # type: ignore[union-attr]
    assert not wants_healing({"tools": [{"name": "Bash"}]}, passthrough)
    rule = RuleSpec(name="default", provider="cheap", model="m", is_default=True)
    translated = compile_config([OPENAI], [rule]).default.targets  # type: ignore[union-attr]
    assert wants_healing({"tools": [{"name": "Bash"}]}, translated)
    assert not wants_healing({"messages": []}, translated)
    off = compile_config([QUIET], [RuleSpec(name="default", provider="quiet", model="m", is_default=True)])
    assert not wants_healing({"tools": [{"name": "Bash"}]}, off.default.targets)  # type: ignore[union-attr]

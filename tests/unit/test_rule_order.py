"""The order rules are tried in (the default last) and the rules that order makes useless. Issue #12."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.routing.config_io import export_toml, parse_toml
from proxy.routing.order import evaluation_order, order_notes, order_warnings
from proxy.routing.rules import ProviderSpec, RuleSpec, choose_target, compile_config
from tests.conftest import load_fixture

P = ProviderSpec(name="p", dialect="openai", base_url="http://127.0.0.1:9/v1")
DEFAULT = RuleSpec(name="default", provider="p", model="mid", is_default=True)


def rule(name: str, **conditions: Any) -> RuleSpec:
    return RuleSpec(name=name, provider="p", model=f"{name}-model", conditions=conditions)


def test_evaluation_order_puts_the_default_last_wherever_it_is() -> None:
    a, b = rule("a", model="haiku"), rule("b", model="opus")
    assert [r.name for r in evaluation_order([DEFAULT, a, b])] == ["a", "b", "default"]
    assert [r.name for r in evaluation_order([a, DEFAULT, b])] == ["a", "b", "default"]


def test_choose_target_tries_rules_in_the_evaluation_order() -> None:
    # The rule stored below the default still answers first: the order shown must be this one.
    snapshot = compile_config([P], [DEFAULT, rule("catch-all")])
    decision = choose_target(snapshot, load_fixture("main_turn"), {})
    assert decision is not None and decision.rule == "catch-all"


def test_order_notes_say_when_an_import_moves_the_default() -> None:
    assert order_notes([rule("a", model="x"), DEFAULT]) == []
    (note,) = order_notes([DEFAULT, rule("a", model="x"), rule("b", model="y")])
    assert note == (
        "rule 'default' is the default, which is always tried last: it is stored after 'a', 'b', "
        "which the file lists below it"
    )


def test_a_rule_without_conditions_is_said_to_take_everything_once() -> None:
    warnings = order_warnings(
        [rule("bg", task="background"), rule("all"), rule("opus", model="opus"), DEFAULT]
    )
    assert [(w.rule, w.kind) for w in warnings] == [("all", "takes everything")]
    assert warnings[0].message == (
        "rule 'all' has no conditions: it takes every request, so the rules below it ('opus') and the "
        "default never get any (give it a condition, or make it the default)"
    )


def test_a_last_rule_without_conditions_hides_the_default() -> None:
    (warning,) = order_warnings([rule("bg", task="background"), rule("all"), DEFAULT])
    assert "so the default never gets any" in warning.message


@pytest.mark.parametrize(
    ("wide", "narrow"),
    [
        ({"model": "haiku"}, {"model": "haiku", "task": "background"}),  # more conditions
        ({"model": "haiku"}, {"model": "claude-haiku"}),  # a longer substring
        ({"model": "*"}, {"model": "claude-*-4-5"}),
        ({"model": ["haiku", "opus"]}, {"model": "opus"}),
        ({"task": ["background", "think"]}, {"task": "think", "agent": "Explore"}),
        ({"agent": "explore"}, {"agent": "Explore"}),  # case-insensitive
        ({"agent": "Expl*"}, {"agent": "Explore"}),  # a glob over one exact name
        ({"task": "long_context", "threshold": 50000}, {"task": "long_context", "threshold": 90000}),
    ],
)
def test_a_rule_covered_by_one_above_can_never_match(wide: dict[str, Any], narrow: dict[str, Any]) -> None:
    warnings = order_warnings([rule("wide", **wide), rule("narrow", **narrow), DEFAULT])
    assert [(w.rule, w.kind) for w in warnings] == [("narrow", "never matches")]
    assert warnings[0].message.startswith("rule 'narrow' can never match: rule 'wide' above it takes")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"model": "haiku", "task": "background"}, {"model": "haiku"}),  # the narrow one first: fine
        ({"model": "claude-haiku"}, {"model": "haiku"}),
        ({"model": "haiku"}, {"model": "*haiku*"}),  # a glob: not provably covered, so no warning
        ({"task": "long_context", "threshold": 90000}, {"task": "long_context", "threshold": 50000}),
        ({"agent": "Explore"}, {"agent": "Plan"}),
        ({"model": "haiku"}, {"task": "background"}),
    ],
)
def test_rules_that_can_still_match_are_not_flagged(first: dict[str, Any], second: dict[str, Any]) -> None:
    assert order_warnings([rule("first", **first), rule("second", **second), DEFAULT]) == []


def test_aliases_count_as_model_conditions() -> None:
    aliased = RuleSpec(name="fast", provider="p", model="m", aliases=("claude-fast",))
    assert order_warnings([aliased, DEFAULT]) == []  # not a catch-all: it answers to its alias only
    narrower = RuleSpec(name="fast-bg", provider="p", model="m", conditions={"model": "claude-fast-x"})
    assert order_warnings([rule("fast", model="claude-fast"), narrower, DEFAULT])[0].rule == "fast-bg"


def test_disabled_rules_are_neither_flagged_nor_hide_others() -> None:
    off = RuleSpec(name="off", provider="p", model="m", enabled=False)
    assert order_warnings([off, rule("opus", model="opus"), DEFAULT]) == []


def test_export_writes_the_default_last_with_warnings_above_their_rule() -> None:
    text = export_toml([P], [DEFAULT, rule("all"), rule("opus", model="opus")])
    assert text.index('name = "all"') < text.index('name = "opus"') < text.index('name = "default"')
    warning = text.index("# warning: rule 'all' has no conditions")
    assert warning < text.index('name = "all"')
    _, rules = parse_toml(text)
    assert [r.name for r in rules] == ["all", "opus", "default"]


def test_export_keeps_a_warning_about_a_multiline_name_a_comment() -> None:
    text = export_toml([P], [rule("a\nb"), rule("c", model="x"), DEFAULT])
    parse_toml(text)  # the newline in the name did not end the comment

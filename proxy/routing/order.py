"""The order rules are tried in, and the rules that order makes useless.

Pure: no Django, no IO. The default rule is tried last wherever it is stored (choose_target falls to it
when nothing else matched), so every place that shows or stores the order (the routes editor, `routes
list`, the TOML export, import) shows it last too: the order on screen is the order used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from proxy.routing.rules import DEFAULT_LONG_CONTEXT_TOKENS, Pattern, RuleSpec, compile_pattern

_PATTERN_KEYS = {"model": False, "client": False, "agent": True, "session": True}  # key -> exact match


def evaluation_order(rules: Sequence[RuleSpec]) -> list[RuleSpec]:
    """The rules in the order they are tried: as given, with the default rule(s) moved last."""
    return [r for r in rules if not r.is_default] + [r for r in rules if r.is_default]


def order_notes(rules: Sequence[RuleSpec]) -> list[str]:
    """What an import changes about the order it was given (a default rule listed above others)."""
    notes = []
    for index, rule in enumerate(rules):
        below = [r.name for r in rules[index + 1 :] if not r.is_default]
        if rule.is_default and below:
            notes.append(
                f"rule '{rule.name}' is the default, which is always tried last: it is stored after "
                f"{_names(below)}, which the file lists below it"
            )
    return notes


@dataclass(frozen=True, slots=True)
class OrderWarning:
    rule: str
    kind: str  # "takes everything" (no rule below it is reached) or "never matches"
    message: str


@dataclass(frozen=True, slots=True)
class _Conditions:
    model: tuple[Pattern, ...]
    aliases: frozenset[str]
    patterns: dict[str, tuple[Pattern, ...]]  # agent, client, session
    tasks: tuple[str, ...]
    threshold: int

    @property
    def catch_all(self) -> bool:
        return not (self.model or self.aliases or self.tasks or any(self.patterns.values()))


def _conditions(rule: RuleSpec) -> _Conditions | None:
    """The rule's conditions compiled, or None when they do not compile (validation reports those)."""
    try:
        compiled = {
            key: tuple(compile_pattern(str(raw), exact=exact) for raw in _as_list(rule.conditions[key]))
            for key, exact in _PATTERN_KEYS.items()
            if key in rule.conditions
        }
    except ValueError:
        return None
    threshold = rule.conditions.get("threshold", DEFAULT_LONG_CONTEXT_TOKENS)
    return _Conditions(
        model=compiled.pop("model", ()),
        aliases=frozenset(str(a).lower() for a in rule.aliases),
        patterns=compiled,
        tasks=tuple(str(t) for t in _as_list(rule.conditions.get("task", []))),
        threshold=threshold if isinstance(threshold, int) else DEFAULT_LONG_CONTEXT_TOKENS,
    )


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _pattern_covers(wide: Pattern, narrow: Pattern) -> bool:
    """Every value `narrow` matches, `wide` matches too (only the cases that can be told for sure)."""
    if wide.lowered == narrow.lowered and (wide.regex is None) == (narrow.regex is None):
        return True  # the same pattern (exactness is the condition's, so the same for both)
    if wide.regex is not None and wide.regex.pattern == r"(?s:.*)\Z":  # "*"
        return True
    if narrow.regex is not None:
        return False
    if narrow.exact:  # one value only: wide matches it or not
        return wide.matches(narrow.lowered)
    # narrow: "contains n"; wide "contains w" covers it when w is inside n
    return wide.regex is None and not wide.exact and wide.lowered in narrow.lowered


def _any_covers(wide: tuple[Pattern, ...], narrow: tuple[Pattern, ...]) -> bool:
    return all(any(_pattern_covers(w, n) for w in wide) for n in narrow)


def _covers(wide: _Conditions, narrow: _Conditions) -> bool:
    """Every request `narrow` matches is matched by `wide` (conservative: False when unsure)."""
    if wide.model or wide.aliases:
        if not (narrow.model or narrow.aliases):
            return False
        aliases_covered = all(
            a in wide.aliases or any(p.matches(a) for p in wide.model) for a in narrow.aliases
        )
        if not aliases_covered or not _any_covers(wide.model, narrow.model):
            return False
    for key, patterns in wide.patterns.items():
        if patterns and not (narrow.patterns.get(key) and _any_covers(patterns, narrow.patterns[key])):
            return False
    if wide.tasks:
        if not narrow.tasks or not set(narrow.tasks) <= set(wide.tasks):
            return False
        if "long_context" in narrow.tasks and wide.threshold > narrow.threshold:
            return False
    return True


def order_warnings(rules: Sequence[RuleSpec]) -> list[OrderWarning]:
    """A rule that takes every request (so none below it ever matches), and rules that can never match.

    Disabled rules are left out: they match nothing on purpose.
    """
    tried = [r for r in evaluation_order(rules) if r.enabled and not r.is_default]
    compiled = [(r, _conditions(r)) for r in tried]
    warnings: list[OrderWarning] = []
    for index, (rule, conditions) in enumerate(compiled):
        if conditions is None:
            continue
        if conditions.catch_all:
            below = [f"'{r.name}'" for r in tried[index + 1 :]]
            shadowed = (
                f"the rules below it ({', '.join(below)}) and the default never get any"
                if below
                else "the default never gets any"
            )
            warnings.append(
                OrderWarning(
                    rule.name,
                    "takes everything",
                    f"rule '{rule.name}' has no conditions: it takes every request, so {shadowed} "
                    "(give it a condition, or make it the default)",
                )
            )
            return warnings  # every rule below is shadowed: saying it once per rule adds nothing
        earlier = next(
            (e for e, c in compiled[:index] if c is not None and _covers(c, conditions)),
            None,
        )
        if earlier is not None:
            warnings.append(
                OrderWarning(
                    rule.name,
                    "never matches",
                    f"rule '{rule.name}' can never match: rule '{earlier.name}' above it takes every "
                    "request it would (move it above, or narrow the other)",
                )
            )
    return warnings


def _names(names: Sequence[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)

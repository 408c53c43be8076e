"""Dry run of a routing edit: route the last N stored requests with the edited configuration and
compare with where they actually went (how many move, from which model to which, cost difference)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, cast

from proxy import catalog
from proxy.models import Exchange
from proxy.routing import snapshot
from proxy.routing.rules import RuleSpec, choose_target, compile_config, needs_token_count
from proxy.translate.tokens import count_tokens
from proxy.translate.types import MessagesRequest


@dataclass(slots=True)
class DryRun:
    considered: int = 0
    moved: int = 0
    unroutable: int = 0
    moves: Counter[tuple[str, str]] = field(default_factory=Counter)  # (from, to) -> count
    cost_before: float = 0.0
    cost_after: float = 0.0
    unpriced: int = 0

    @property
    def top_moves(self) -> list[tuple[str, str, int]]:
        return [(a, b, n) for (a, b), n in self.moves.most_common(10)]

    @property
    def cost_delta(self) -> float:
        return self.cost_after - self.cost_before


def _usage(e: Exchange) -> dict[str, int]:
    return {
        "input_tokens": e.input_tokens,
        "output_tokens": e.output_tokens,
        "cache_read_input_tokens": e.cache_read_tokens,
        "cache_creation_input_tokens": e.cache_write_tokens,
    }


def with_rule(
    rules: list[RuleSpec], edited: RuleSpec, *, replaces: str | None, position: int | None
) -> list[RuleSpec]:
    """The rule list with `edited` in place of the rule named `replaces` (or inserted at `position`)."""
    out = [r for r in rules if r.name != replaces]
    index = next((i for i, r in enumerate(rules) if r.name == replaces), None)
    if index is None:
        index = len(out) if position is None else max(0, min(position, len(out)))
    out.insert(min(index, len(out)), edited)
    return out


def dry_run(rules: list[RuleSpec], *, last_n: int = 200) -> DryRun:
    """Raises snapshot.ConfigError when the edited configuration would not serve."""
    providers, _ = snapshot.load_specs()
    compiled = compile_config(providers, rules, own_port=snapshot.own_port())
    counter: Any = count_tokens if needs_token_count(compiled) else None
    result = DryRun()
    fields = (
        "id",
        "client_request",
        "client_headers",
        "client_model",
        "backend_model",
        "provider",
        "cost_usd",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
    )
    rows = (
        Exchange.objects.filter(endpoint="messages")
        .exclude(client_request=None)
        .only(*fields)
        .order_by("-id")
    )
    for e in rows[:last_n]:
        if not isinstance(e.client_request, dict):
            continue
        result.considered += 1
        request = cast(MessagesRequest, e.client_request)  # the recorded body, routed as it was sent
        decision = choose_target(compiled, request, e.client_headers or {}, count_tokens=counter)
        if decision is None or not decision.targets:
            result.unroutable += 1
            continue
        target = decision.targets[0]
        new_model = target.model or e.client_model
        before = f"{e.provider}/{e.backend_model}"
        after = f"{target.provider}/{new_model}"
        if before != after:
            result.moved += 1
            result.moves[(before, after)] += 1
        new_cost = catalog.cost_usd(
            model=new_model,
            usage=_usage(e),
            provider=target.provider or None,
            overrides=dict(target.prices) or None,  # the provider's model_settings price it, as when served
            at=e.created_at,
        )
        if new_cost is None or e.cost_usd is None:
            result.unpriced += 1
            continue
        result.cost_before += e.cost_usd
        result.cost_after += new_cost
    return result

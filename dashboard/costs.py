"""Costs and usage: tokens and cost by day, model, route, agent and session; what the same traffic
would have cost on the Claude model the client asked for; latency percentiles per backend."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from dashboard import toolcalls
from proxy.models import Exchange, Provider

# Traffic that used tokens on a backend model with no known price (an error with no usage costs nothing).
UNPRICED = Q(cost_usd__isnull=True) & (
    Q(input_tokens__gt=0) | Q(output_tokens__gt=0) | Q(cache_read_tokens__gt=0)
)

RANGES = {"24h": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30), "all": None}
_SUMS = {
    "requests": Count("id"),
    "input": Coalesce(Sum(F("input_tokens") + F("cache_write_tokens")), 0),
    "cache_read": Coalesce(Sum("cache_read_tokens"), 0),
    "output": Coalesce(Sum("output_tokens"), 0),
    # None when no exchange of the group has a known price: unknown is not $0.
    "cost": Sum("cost_usd"),
    "claude_cost": Coalesce(Sum("claude_cost_usd"), 0.0),
    # What was saved is only known where both prices are: the Claude side of the priced traffic.
    "claude_cost_priced": Sum("claude_cost_usd", filter=Q(cost_usd__isnull=False)),
    "unpriced": Count("id", filter=UNPRICED),
    "tool_calls": Coalesce(Sum("tool_calls"), 0),
    "tool_failures": Coalesce(Sum("tool_call_errors"), 0),
    "errors": Count("id", filter=Q(status="error")),
}


def window(range_key: str) -> QuerySet[Exchange]:
    qs = Exchange.objects.filter(endpoint="messages")
    span = RANGES.get(range_key, RANGES["30d"])
    return qs.filter(created_at__gte=timezone.now() - span) if span else qs


def _with_rates(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for r in rows:
        priced = r.pop("claude_cost_priced")
        r["saving"] = priced - r["cost"] if r["cost"] is not None and priced is not None else None
        r["failure_rate"] = r["tool_failures"] / r["tool_calls"] if r["tool_calls"] else None
        r["error_rate"] = r["errors"] / r["requests"] if r["requests"] else None
    return rows


def by(qs: QuerySet[Exchange], *keys: str, limit: int = 50) -> list[dict[str, Any]]:
    rows = qs.values(*keys).annotate(**_SUMS).order_by(F("cost").desc(nulls_last=True), "-requests")[:limit]
    return _with_rates(list(rows))


def per_day(qs: QuerySet[Exchange]) -> list[dict[str, Any]]:
    rows = qs.annotate(day=TruncDate("created_at")).values("day").annotate(**_SUMS).order_by("day")
    return _with_rates([dict(r) for r in rows])


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def latency(qs: QuerySet[Exchange], key: str) -> dict[str, dict[str, float | None]]:
    """p50/p95 of latency and TTFT per `key` value (computed here: portable across SQLite and Postgres)."""
    durations: dict[str, list[float]] = defaultdict(list)
    ttfts: dict[str, list[float]] = defaultdict(list)
    for name, duration, ttft in qs.exclude(status="pending").values_list(
        key, "duration_ms", "first_token_ms"
    ):
        if duration is not None:
            durations[name].append(duration)
        if ttft is not None:
            ttfts[name].append(ttft)
    return {
        name: {"p50": percentile(durations[name], 0.5), "p95": percentile(durations[name], 0.95),
               "ttft_p50": percentile(ttfts[name], 0.5), "ttft_p95": percentile(ttfts[name], 0.95)}
        for name in set(durations) | set(ttfts)
    }  # fmt: skip


def report(range_key: str) -> dict[str, Any]:
    qs = window(range_key)
    rules = by(qs, "rule")
    rule_latency = latency(qs, "rule")
    # Failures as the tool-calls page counts them (schema, is_error results, broken streams), not only
    # the invalid-JSON count recorded on the row.
    tools = toolcalls.recent_report(base=qs)
    for r in rules:
        r.update(rule_latency.get(r["rule"], {}))
    backends = by(qs, "provider", "backend_model")
    backend_latency = latency(qs, "backend_model")
    for b in backends:
        b.update(backend_latency.get(b["backend_model"], {}))
    totals = _with_rates([{**qs.aggregate(**_SUMS), "all": ""}])[0]
    agents = by(qs, "agent")
    sessions = by(qs.exclude(session_id=""), "session_id", limit=20)
    for dimension, rows in (("rule", rules), ("agent", agents), ("session_id", sessions), ("all", [totals])):
        _use_tool_analysis(rows, tools.by.get(dimension, {}), dimension)
    models = by(qs, "client_model", "backend_model", "provider")
    _link_prices(models)
    return {
        "totals": totals,
        "unpriced_models": [m for m in models if m["unpriced"]],
        "days": per_day(qs),
        "models": models,
        "rules": rules,
        "agents": agents,
        "sessions": sessions,
        "backends": backends,
    }


def _use_tool_analysis(rows: list[dict[str, Any]], cells: dict[str, toolcalls.Cell], key: str) -> None:
    """Failures as the tool-calls page counts them (schema, not offered, is_error results, broken
    streams), rather than only the invalid-JSON count recorded on each row."""
    for row in rows:
        cell = cells.get(row[key])
        if cell is not None:
            row["tool_calls"], row["tool_failures"], row["failure_rate"] = (
                cell.calls,
                cell.failures,
                cell.rate,
            )


def price_link(e: Exchange) -> str:
    """Where to set the price of an exchange's unpriced backend model ("" when it has a price)."""
    if e.cost_usd is not None or not (e.input_tokens or e.output_tokens or e.cache_read_tokens):
        return ""
    pk = Provider.objects.filter(name=e.provider).values_list("pk", flat=True).first() if e.provider else None
    return f"/routes/providers/{pk}" if pk else "/routes"


def _link_prices(rows: list[dict[str, Any]]) -> None:
    """Each unpriced row's link to its provider's editor, where model_settings takes a price."""
    names = {r["provider"] for r in rows if r["unpriced"] and r["provider"]}
    pks = dict(Provider.objects.filter(name__in=names).values_list("name", "pk")) if names else {}
    for r in rows:
        pk = pks.get(r["provider"]) if r["unpriced"] else None
        r["price_link"] = f"/routes/providers/{pk}" if pk else ("/routes" if r["unpriced"] else "")

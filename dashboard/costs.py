"""Costs and usage: tokens and cost by day, model, route, agent and session; what the same traffic
would have cost on the Claude model the client asked for; latency percentiles per backend."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.db import connection
from django.db.models import Case, Count, F, FloatField, Q, QuerySet, Sum, When
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from dashboard import toolcalls
from proxy.models import DailyUsage, Exchange, Provider, SessionUsage

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


LATENCY_SAMPLE = 10_000  # the window's newest exchanges that the latency percentiles are read from


def report_from_rows(range_key: str) -> dict[str, Any]:
    """The costs page from every row of the window: the reference the rollups are tested against, and
    what a database without the rollups' triggers (neither SQLite nor PostgreSQL) shows."""
    qs = window(range_key)
    rules = by(qs, "rule")
    rule_latency = latency(qs, "rule")
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


def report(range_key: str) -> dict[str, Any]:
    """The costs page. Sums come from the rollups (DailyUsage, SessionUsage) for the days and sessions
    wholly inside the window, and from the rows for the part of a day (or session) it cuts: the same
    numbers as adding up every row, read from a few thousand rows instead of a million."""
    if connection.vendor not in ("sqlite", "postgresql"):
        return report_from_rows(range_key)
    qs = window(range_key)
    span = RANGES.get(range_key, RANGES["30d"])
    cutoff = timezone.now() - span if span else None
    cells = _cells(cutoff)
    rules = _group(cells, ("rule",))
    rule_latency, backend_latency = _latency(qs)
    # Failures as the tool-calls page counts them (schema, is_error results, broken streams), not only
    # the invalid-JSON count recorded on the row.
    tools = toolcalls.recent_report(base=qs)
    for r in rules:
        r.update(rule_latency.get(r["rule"], {}))
    backends = _group(cells, ("provider", "backend_model"))
    for b in backends:
        b.update(backend_latency.get(b["backend_model"], {}))
    totals = {**_total(cells), "all": ""}
    agents = _group(cells, ("agent",))
    sessions = _top_sessions(cutoff)
    for dimension, rows in (("rule", rules), ("agent", agents), ("session_id", sessions), ("all", [totals])):
        _use_tool_analysis(rows, tools.by.get(dimension, {}), dimension)
    models = _group(cells, ("client_model", "backend_model", "provider"))
    _link_prices(models)
    days = sorted(_group(cells, ("day",), limit=None), key=lambda d: d["day"])
    return {
        "totals": totals,
        "unpriced_models": [m for m in models if m["unpriced"]],
        "days": days,
        "models": models,
        "rules": rules,
        "agents": agents,
        "sessions": sessions,
        "backends": backends,
    }


# The rollups' sums, as the rows' aggregates: for the part of the window no whole bucket covers.
_ROW_SUMS = {
    "requests": Count("id"),
    "errors": Count("id", filter=Q(status="error")),
    "unpriced": Count("id", filter=UNPRICED),
    "input_tokens": Coalesce(Sum("input_tokens"), 0),
    "cache_write_tokens": Coalesce(Sum("cache_write_tokens"), 0),
    "cache_read_tokens": Coalesce(Sum("cache_read_tokens"), 0),
    "output_tokens": Coalesce(Sum("output_tokens"), 0),
    "cost_usd": Coalesce(Sum("cost_usd"), 0.0),
    "priced": Count("cost_usd"),
    "claude_cost_usd": Coalesce(Sum("claude_cost_usd"), 0.0),
    "claude_priced": Count("claude_cost_usd"),
    "claude_cost_priced_usd": Coalesce(Sum("claude_cost_usd", filter=Q(cost_usd__isnull=False)), 0.0),
    "claude_priced_both": Count("claude_cost_usd", filter=Q(cost_usd__isnull=False)),
    "tool_calls": Coalesce(Sum("tool_calls"), 0),
    "tool_call_errors": Coalesce(Sum("tool_call_errors"), 0),
    "tool_result_errors": Coalesce(Sum("tool_result_errors"), 0),
}
_DAY_KEYS = ("day", "provider", "backend_model", "client_model", "rule", "agent")


def _cells(cutoff: datetime | None) -> list[dict[str, Any]]:
    """Sums per day and route since `cutoff`: whole days from DailyUsage, the cut day from its rows."""
    rolled = DailyUsage.objects.all()
    if cutoff is None:
        return list(rolled.values(*_DAY_KEYS, *_ROW_SUMS))
    first_day = cutoff.astimezone(UTC).date()
    if datetime.combine(first_day, time(), UTC) < cutoff:
        first_day += timedelta(days=1)
    edge = Exchange.objects.filter(
        endpoint="messages", created_at__gte=cutoff, created_at__lt=datetime.combine(first_day, time(), UTC)
    )
    cut = _summed(edge.annotate(day=TruncDate("created_at", tzinfo=UTC)), _DAY_KEYS)
    return [*rolled.filter(day__gte=first_day).values(*_DAY_KEYS, *_ROW_SUMS), *cut]


def _summed(qs: QuerySet[Exchange], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """The rows' sums per `keys`, named as the rollups' columns (aliased first: the names are fields)."""
    rows = qs.values(*keys).annotate(**{f"sum_{name}": agg for name, agg in _ROW_SUMS.items()}).order_by()
    return [{**{k: r[k] for k in keys}, **{name: r[f"sum_{name}"] for name in _ROW_SUMS}} for r in rows]


def _total(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """One row of the page from the sums of some cells (what `_SUMS` gave over their rows)."""
    return _row(_summed_cells(cells))


def _summed_cells(cells: list[dict[str, Any]]) -> dict[str, Any]:
    totals = [0] * len(_ROW_SUMS)
    for c in cells:  # one pass, in plain lists: ~20,000 cells and six groupings at a year of use
        totals = [t + c[name] for t, name in zip(totals, _ROW_SUMS, strict=True)]
    return dict(zip(_ROW_SUMS, totals, strict=True))


def _row(sums: dict[str, Any]) -> dict[str, Any]:
    return _with_rates(
        [
            {
                "requests": sums["requests"],
                "input": sums["input_tokens"] + sums["cache_write_tokens"],
                "cache_read": sums["cache_read_tokens"],
                "output": sums["output_tokens"],
                "cost": sums["cost_usd"] if sums["priced"] else None,  # unknown is not $0
                "claude_cost": sums["claude_cost_usd"],
                "claude_cost_priced": sums["claude_cost_priced_usd"] if sums["claude_priced_both"] else None,
                "unpriced": sums["unpriced"],
                "tool_calls": sums["tool_calls"],
                "tool_failures": sums["tool_call_errors"],
                "errors": sums["errors"],
            }
        ]
    )[0]


def _ranked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """By cost (unknown last), then requests: the order the page had."""
    return sorted(rows, key=lambda r: (r["cost"] is None, -(r["cost"] or 0), -r["requests"]))


def _group(
    cells: list[dict[str, Any]], keys: tuple[str, ...], limit: int | None = 50
) -> list[dict[str, Any]]:
    names = tuple(_ROW_SUMS)
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for c in cells:
        key = tuple(c[k] for k in keys)
        values = [c[name] for name in names]
        held = groups.get(key)
        groups[key] = values if held is None else [a + b for a, b in zip(held, values, strict=True)]
    rows = [
        {**dict(zip(keys, key, strict=True)), **_row(dict(zip(names, sums, strict=True)))}
        for key, sums in groups.items()
    ]
    return _ranked(rows)[:limit]


def _top_sessions(cutoff: datetime | None, limit: int = 20) -> list[dict[str, Any]]:
    """The most expensive sessions in the window: those wholly inside it from SessionUsage, those it cuts
    (running at the cutoff, a few) from their rows since the cutoff."""
    rolled = SessionUsage.objects.filter(endpoint="messages")
    inside = rolled if cutoff is None else rolled.filter(first_at__gte=cutoff)
    known = Case(When(priced__gt=0, then=F("cost_usd")), default=None, output_field=FloatField())
    top = inside.annotate(known=known).order_by(F("known").desc(nulls_last=True), "-requests")
    cells = [[row] for row in top.values("session_id", *_ROW_SUMS)[:limit]]
    if cutoff is not None:
        cut = list(
            rolled.filter(first_at__lt=cutoff, last_at__gte=cutoff).values_list("session_id", flat=True)
        )
        rows = Exchange.objects.filter(endpoint="messages", session_id__in=cut, created_at__gte=cutoff)
        cells += [[row] for row in _summed(rows, ("session_id",))]
    return _ranked([{"session_id": c[0]["session_id"], **_total(c)} for c in cells])[:limit]


def _latency(qs: QuerySet[Exchange]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Percentiles per rule and per backend model over the window's newest LATENCY_SAMPLE exchanges
    (all of them in a window that has fewer): exact, and bounded at a year of use."""
    sample = list(
        qs.exclude(status="pending")
        .order_by("-id")
        .values_list("rule", "backend_model", "duration_ms", "first_token_ms")[:LATENCY_SAMPLE]
    )
    return _percentiles((r, d, t) for r, _, d, t in sample), _percentiles((m, d, t) for _, m, d, t in sample)


def _percentiles(
    rows: Iterable[tuple[str, float | None, float | None]],
) -> dict[str, dict[str, float | None]]:
    durations: dict[str, list[float]] = defaultdict(list)
    ttfts: dict[str, list[float]] = defaultdict(list)
    for name, duration, ttft in rows:
        if duration is not None:
            durations[name].append(duration)
        if ttft is not None:
            ttfts[name].append(ttft)
    return {
        name: {"p50": percentile(durations[name], 0.5), "p95": percentile(durations[name], 0.95),
               "ttft_p50": percentile(ttfts[name], 0.5), "ttft_p95": percentile(ttfts[name], 0.95)}
        for name in set(durations) | set(ttfts)
    }  # fmt: skip


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

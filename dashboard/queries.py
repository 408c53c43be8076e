"""Feed queries: filters, full-text search and keyset paging over Exchange.

Paging is by primary key (`id < before`, newest first), never OFFSET: every page costs the same at
100,000 rows. The list never loads the big JSON columns (requests are often 100+ KB each).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.http import QueryDict
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from proxy.models import Exchange

PAGE_SIZE = 50

# What a feed row shows: everything else (bodies, transcripts) stays on disk until the detail page.
ROW_FIELDS = (
    "id", "created_at", "finished_at", "endpoint", "status", "http_status", "error_type", "stream",
    "session_id", "agent", "client_model", "backend_model", "provider", "rule", "task",
    "changes", "upstream_first_byte_ms", "first_token_ms", "duration_ms",
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "cost_usd", "claude_cost_usd", "tool_calls", "tool_call_errors",
)  # fmt: skip

RANGES = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "24h": timedelta(days=1),
          "7d": timedelta(days=7), "30d": timedelta(days=30)}  # fmt: skip


@dataclass(frozen=True, slots=True)
class FeedFilters:
    status: str = ""
    model: str = ""
    route: str = ""
    agent: str = ""
    session: str = ""
    failed: bool = False
    range: str = ""
    since: str = ""
    until: str = ""
    q: str = ""

    def is_empty(self) -> bool:
        return self == FeedFilters()

    def as_query(self) -> str:
        """The filters as a query string (for links, "load more" and the websocket URL)."""
        params = QueryDict(mutable=True)
        for f in fields(self):
            value = getattr(self, f.name)
            if value:
                params[f.name] = "1" if value is True else value
        return params.urlencode()


def parse_filters(params: QueryDict) -> FeedFilters:
    def get(name: str) -> str:
        return (params.get(name) or "").strip()[:500]

    return FeedFilters(
        status=get("status"), model=get("model"), route=get("route"), agent=get("agent"),
        session=get("session"), failed=get("failed") in ("1", "on", "true"), range=get("range"),
        since=get("since"), until=get("until"), q=get("q"),
    )  # fmt: skip


def _when(value: str) -> datetime | None:
    parsed = parse_datetime(value) if value else None
    if parsed is not None and timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, timezone.get_current_timezone())
    return parsed


def search_q(term: str) -> Q:
    """Substring search over both bodies, both responses and the error.

    A LIKE scan over the stored JSON text (SQLite has no JSON-aware full-text index here): correct
    across all rows, and fast enough with keyset paging because the scan stops at a page of hits.
    Django stores JSON with ASCII escapes, so the term is matched both raw and JSON-escaped.
    """
    variants = {term, json.dumps(term)[1:-1]}
    q = Q(request_id=term)  # the req_… id a user quotes from an error (indexed)
    for v in variants:
        for name in ("_req_text", "_resp_text", "_up_req_text"):
            q |= Q(**{f"{name}__icontains": v})
        q |= Q(upstream_response__icontains=v) | Q(error_message__icontains=v)
    return q


def filter_exchanges(qs: QuerySet[Exchange], f: FeedFilters) -> QuerySet[Exchange]:
    if f.status:
        qs = qs.filter(status=f.status)
    if f.model:
        qs = qs.filter(Q(client_model=f.model) | Q(backend_model=f.model))
    if f.route:
        qs = qs.filter(rule=f.route)
    if f.agent:
        qs = qs.filter(agent=f.agent)
    if f.session:
        qs = qs.filter(session_id=f.session)
    if f.failed:
        qs = qs.filter(tool_call_errors__gt=0)
    if f.range in RANGES:
        qs = qs.filter(created_at__gte=timezone.now() - RANGES[f.range])
    if since := _when(f.since):
        qs = qs.filter(created_at__gte=since)
    if until := _when(f.until):
        qs = qs.filter(created_at__lt=until)
    if f.q:
        qs = qs.annotate(
            _req_text=Cast("client_request", TextField()),
            _resp_text=Cast("client_response", TextField()),
            _up_req_text=Cast("upstream_request", TextField()),
        ).filter(search_q(f.q))
    return qs


def feed_page(
    f: FeedFilters, *, before: int | None = None, limit: int = PAGE_SIZE
) -> tuple[list[Exchange], int | None]:
    """One page of rows, newest first, and the `before` cursor of the next page (None at the end)."""
    rows = list(feed_query(f, before=before)[: limit + 1])
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1].pk
    return rows, None


def feed_query(f: FeedFilters, *, before: int | None = None) -> QuerySet[Exchange]:
    qs = filter_exchanges(Exchange.objects.only(*ROW_FIELDS), f)
    if before is not None:
        qs = qs.filter(id__lt=before)
    return qs.order_by("-id")


def row_if_matching(pk: int, f: FeedFilters) -> Exchange | None:
    """The row for a live update, or None if this page's filters exclude it."""
    qs = filter_exchanges(Exchange.objects.only(*ROW_FIELDS), f)
    return qs.filter(pk=pk).first()


def filter_choices() -> dict[str, list[str]]:
    """Distinct values for the filter drop-downs (small indexed columns only)."""

    def distinct(name: str) -> list[str]:
        values = Exchange.objects.exclude(**{name: ""}).order_by(name).values_list(name, flat=True).distinct()
        return list(values[:200])

    models = sorted(set(distinct("client_model")) | set(distinct("backend_model")))
    return {"models": models, "routes": distinct("rule"), "agents": distinct("agent")}

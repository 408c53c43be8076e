"""Feed queries: filters, full-text search and keyset paging over Exchange.

Paging is by primary key (`id < before`, newest first), never OFFSET: every page costs the same at
100,000 rows. The list never loads the big JSON columns (requests are often 100+ KB each).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Field, Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.http import QueryDict
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from proxy.models import Exchange
from proxy.recording import blobs, fulltext

PAGE_SIZE = 50

# What a feed row shows: everything else (bodies, transcripts) stays on disk until the detail page.
ROW_FIELDS = (
    "id", "created_at", "finished_at", "endpoint", "status", "http_status", "error_type", "stream",
    "session_id", "agent", "client_key", "client_model", "backend_model", "provider", "rule", "task",
    "changes", "upstream_first_byte_ms", "first_token_ms", "duration_ms",
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "cost_usd", "claude_cost_usd", "tool_calls", "tool_call_errors", "tool_result_errors", "origin",
    "attempts",
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
    key: str = ""  # the client key's label
    failed: bool = False
    tool_errors: bool = False
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


def param(params: QueryDict, name: str) -> str:
    """A query value as the pages use it: trimmed, bounded, and without NUL (PostgreSQL refuses it)."""
    return (params.get(name) or "").replace("\x00", "").strip()[:500]


def parse_filters(params: QueryDict) -> FeedFilters:
    """The feed's filters; a value that cannot be used (an unknown status, a date that is none) is
    dropped, and filter_notes() says so."""

    def get(name: str) -> str:
        return param(params, name)

    status, range_, since, until = get("status"), get("range"), get("since"), get("until")
    return FeedFilters(
        status=status if status in Exchange.Status.values else "", model=get("model"), route=get("route"),
        agent=get("agent"), session=get("session"), failed=get("failed") in ("1", "on", "true"),
        tool_errors=get("tool_errors") in ("1", "on", "true"),
        range=range_ if range_ in RANGES else "", since=since if _when(since) else "",
        until=until if _when(until) else "", q=get("q"), key=get("key"),
    )  # fmt: skip


def filter_notes(params: QueryDict, f: FeedFilters) -> list[str]:
    """One line per filter value that was given but could not be used (shown above the feed)."""
    notes = []
    for name in ("status", "range", "since", "until"):
        given = param(params, name)
        if given and not getattr(f, name):
            notes.append(f"{name}: {given[:60]!r} is not a valid value; ignored")
    if param(params, "failed") not in ("", "1", "on", "true", "0", "off", "false"):
        notes.append("failed: expected 1 or 0; ignored")
    return notes


def _when(value: str) -> datetime | None:
    try:
        parsed = parse_datetime(value) if value else None
    except ValueError:  # well formed but no such date (2024-13-45)
        return None
    if parsed is not None and timezone.is_naive(parsed):
        try:
            parsed = timezone.make_aware(parsed, timezone.get_current_timezone())
        except (OverflowError, ValueError):
            return None
    return parsed


def session_prefix_q(prefix: str) -> Q:
    """Sessions whose id starts with `prefix`: the feed shows ids cut to 8 characters, and a full id
    matches too. On SQLite a range on the indexed column (its LIKE cannot use the index, and it compares
    bytewise); elsewhere a collation may not, so LIKE 'prefix%'."""
    if connection.vendor == "sqlite":
        return Q(session_id__gte=prefix, session_id__lt=prefix + "\U0010ffff")
    return Q(session_id__startswith=prefix)


def search_q(term: str, found: tuple[list[str], Any] | None = None) -> Q:
    """Substring search over both bodies, both responses and the error (and session ids by prefix).

    The condition each row is checked against (a LIKE over the stored JSON text). On a page, the
    full-text indexes first narrow which rows are read (indexed_search_q). Django stores JSON with ASCII
    escapes, so the term is matched both raw and JSON-escaped. `found`: the matching blobs, if known.
    """
    variants = {term, json.dumps(term)[1:-1]}
    q = Q(request_id=term)  # the req_… id a user quotes from an error (indexed)
    if term.strip():
        q |= session_prefix_q(term)
    for v in variants:
        for name in ("_req_text", "_resp_text", "_up_req_text"):
            q |= Q(**{f"{name}__icontains": v})
        q |= Q(upstream_response__icontains=v) | Q(error_message__icontains=v)
    # Repeated parts are stored once (recording/blobs.py): a row matches when it stored a matching blob first,
    # or refers to one of the first few matching blobs (system prompts and tool lists are few and shared).
    # A term in many messages finds the turns that first sent them, not every later turn resending them.
    shas, first_senders = found if found is not None else blobs.matching(variants)
    q |= Q(pk__in=first_senders)
    for sha in shas:
        q |= Q(_req_text__contains=sha) | Q(_up_req_text__contains=sha)
    return q


SEARCH_BUDGET = 1000  # ids asked of each index per page: a common term fills it from the newest rows


def indexed_search_q(term: str, *, before: int | None) -> Q:
    """What search_q finds, below `before`, with the full-text indexes (recording/fulltext.py) choosing
    which rows are read.

    Each part (the bodies' text, the request id, the session prefix, the rows referring to a matching
    blob) gives the newest SEARCH_BUDGET candidate ids below `before`: every match in the range down to
    the highest id where a part had more is among them. Rows below that are read as before, which only
    happens for a term so common that a page is found quickly, or with filters that exclude most hits.
    Each candidate is then checked by search_q itself, so the result is what reading every row finds.
    A term shorter than three characters (no trigram) is searched the old way."""
    if len(term) < fulltext.MIN_CHARS or not fulltext.available(connection):
        return search_q(term)
    variants = {term, json.dumps(term)[1:-1]}
    found, complete = fulltext.matching_blobs(connection, variants, limit=SEARCH_BUDGET)
    if not complete:  # a term in very many stored blobs: the rows are read as before
        return search_q(term)
    shas, senders = [sha for sha, _ in found[:20]], [first for _, first in found]
    exact = search_q(term, found=(shas, senders))
    below = Q(id__lt=before) if before is not None else Q()
    newest = Exchange.objects.filter(below).order_by("-id").values_list("id", flat=True)
    parts = [
        fulltext.text_ids(connection, variants, before=before, limit=SEARCH_BUDGET),
        list(newest.filter(request_id=term)[:SEARCH_BUDGET]),
        list(newest.filter(session_prefix_q(term))[:SEARCH_BUDGET]) if term.strip() else [],
        fulltext.referring_ids(connection, shas, before=before, limit=SEARCH_BUDGET),
    ]
    floor = max((min(p) for p in parts if len(p) >= SEARCH_BUDGET), default=None)
    candidates = sorted({i for p in [*parts, senders] for i in p if floor is None or i >= floor})
    where = Q(pk__in=candidates) if floor is None else Q(pk__in=candidates) | Q(pk__lt=floor)
    return where & exact


def filter_exchanges(
    qs: QuerySet[Exchange], f: FeedFilters, *, before: int | None = None, indexed: bool = True
) -> QuerySet[Exchange]:
    """The feed's filters. `indexed`: search by the full-text indexes, for a page below `before`; else by
    reading each row (one row's live update: cheaper than asking the indexes)."""
    if f.status:
        qs = qs.filter(status=f.status)
    if f.model:
        qs = qs.filter(Q(client_model=f.model) | Q(backend_model=f.model))
    if f.route:
        qs = qs.filter(rule=f.route)
    if f.agent:
        qs = qs.filter(agent=f.agent)
    if f.session:
        qs = qs.filter(session_prefix_q(f.session))
    if f.key:
        qs = qs.filter(client_key=f.key)
    if f.failed:
        qs = qs.filter(tool_call_errors__gt=0)
    if f.tool_errors:
        qs = qs.filter(tool_result_errors__gt=0)
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
        ).filter(indexed_search_q(f.q, before=before) if indexed else search_q(f.q))
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
    qs = filter_exchanges(Exchange.objects.only(*ROW_FIELDS), f, before=before)
    if before is not None:
        qs = qs.filter(id__lt=before)
    return qs.order_by("-id")


def row_if_matching(pk: int, f: FeedFilters) -> Exchange | None:
    """The row for a live update, or None if this page's filters exclude it."""
    qs = filter_exchanges(Exchange.objects.only(*ROW_FIELDS), f, indexed=False)
    return qs.filter(pk=pk).first()


def filter_choices() -> dict[str, list[str]]:
    """Distinct values for the filter drop-downs (small indexed columns only)."""

    def distinct(name: str) -> list[str]:
        field = Exchange._meta.get_field(name)
        assert isinstance(field, Field) and field.column, name  # one of the row's own columns
        return _distinct_values(field.column)

    models = sorted(set(distinct("client_model")) | set(distinct("backend_model")))
    return {
        "models": models,
        "routes": distinct("rule"),
        "agents": distinct("agent"),
        "keys": distinct("client_key"),
    }


def _distinct_values(column: str, limit: int = 200) -> list[str]:
    """A column's distinct non-empty values, in order, by one index seek per value (a "loose index
    scan" as a recursive query: SQLite and PostgreSQL both run it). `SELECT DISTINCT` read the whole
    index instead: at 1,000,000 exchanges 30-40 ms per menu on SQLite and 0.6-0.7 s on PostgreSQL, four
    menus per feed page (bench/bigdb.py)."""
    from django.db import connection

    table, col = connection.ops.quote_name(Exchange._meta.db_table), connection.ops.quote_name(column)
    sql = (
        f"WITH RECURSIVE seen(value) AS ("
        f" SELECT MIN({col}) FROM {table} WHERE {col} > ''"
        f" UNION ALL"
        f" SELECT (SELECT MIN({col}) FROM {table} WHERE {col} > seen.value) FROM seen"
        f" WHERE seen.value IS NOT NULL"
        f") SELECT value FROM seen WHERE value IS NOT NULL LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [limit])
        return [row[0] for row in cursor.fetchall()]

"""Rollups: the sums the costs page and the sessions list show, kept per bucket as the rows are written.

Two tables (proxy/models.py): DailyUsage (messages exchanges per UTC day x provider x backend model x
client model x rule x agent) and SessionUsage (per session and endpoint: first and last seen, the newest
route, the sums). Database triggers on the exchange table keep them: an insert adds the row's share to
its buckets, an update takes the old share out and puts the new one in (a pending row finishing, a
fallback that changed the model, a failed tool result credited later), a delete takes it out. So they
change in the same statement, in the writer's thread and transaction, as the rows they sum, whatever
writes them (the recorder's multi-row INSERTs, the prune, the ORM), and one recount (`rebuild`, run by
migration 0010_rollups and `manage.py rollups rebuild`) builds them for rows written before.

A delete cannot take a first/last seen out of a session: the prune calls `refresh_sessions` for the
sessions it touched, which reads them again from their remaining rows (by the session_id index).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

EXCHANGE = "proxy_exchange"
DAILY = "proxy_dailyusage"
SESSIONS = "proxy_sessionusage"

# Each sum's share of one exchange row `{r}`: the same expressions the pages used to aggregate.
SUMS: dict[str, str] = {
    "requests": "1",
    "errors": "CASE WHEN {r}.status = 'error' THEN 1 ELSE 0 END",
    "unpriced": "CASE WHEN {r}.cost_usd IS NULL AND ({r}.input_tokens > 0 OR {r}.output_tokens > 0"
    " OR {r}.cache_read_tokens > 0) THEN 1 ELSE 0 END",
    "input_tokens": "{r}.input_tokens",
    "cache_write_tokens": "{r}.cache_write_tokens",
    "cache_read_tokens": "{r}.cache_read_tokens",
    "output_tokens": "{r}.output_tokens",
    "cost_usd": "COALESCE({r}.cost_usd, 0)",
    "priced": "CASE WHEN {r}.cost_usd IS NOT NULL THEN 1 ELSE 0 END",
    "claude_cost_usd": "COALESCE({r}.claude_cost_usd, 0)",
    "claude_priced": "CASE WHEN {r}.claude_cost_usd IS NOT NULL THEN 1 ELSE 0 END",
    "claude_cost_priced_usd": "CASE WHEN {r}.cost_usd IS NOT NULL THEN COALESCE({r}.claude_cost_usd, 0)"
    " ELSE 0 END",
    "claude_priced_both": "CASE WHEN {r}.cost_usd IS NOT NULL AND {r}.claude_cost_usd IS NOT NULL THEN 1"
    " ELSE 0 END",
    "tool_calls": "{r}.tool_calls",
    "tool_call_errors": "{r}.tool_call_errors",
    "tool_result_errors": "{r}.tool_result_errors",
}
DAILY_KEYS = ("provider", "backend_model", "client_model", "rule", "agent")  # after `day`
# An update of any other column (bodies, timings) leaves the sums as they are: the trigger does not fire.
WATCHED = (
    "created_at", "endpoint", "status", "session_id", "agent", "user_agent", "client_model", "backend_model",
    "provider", "rule", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "cost_usd", "claude_cost_usd", "tool_calls", "tool_call_errors", "tool_result_errors",
)  # fmt: skip
_SESSION_LAST = (
    ("last_provider", "provider"),
    ("last_backend_model", "backend_model"),
    ("last_rule", "rule"),
)


def _day(vendor: str, r: str) -> str:
    # UTC days (settings.TIME_ZONE is UTC): what TruncDate grouped by on the costs page.
    if vendor == "sqlite":  # Django writes 'YYYY-MM-DD HH:MM:SS'; any other text still has a day (never NULL)
        return f"COALESCE(date({r}.created_at), substr({r}.created_at, 1, 10))"
    return f"({r}.created_at AT TIME ZONE 'UTC')::date"


def _least(vendor: str) -> tuple[str, str]:
    return ("min", "max") if vendor == "sqlite" else ("LEAST", "GREATEST")


def _add_daily(vendor: str, r: str) -> str:
    keys = ", ".join(DAILY_KEYS)
    sums = ", ".join(SUMS)
    values = ", ".join(
        [_day(vendor, r), *(f"{r}.{k}" for k in DAILY_KEYS), *(e.format(r=r) for e in SUMS.values())]
    )
    updates = ", ".join(f"{s} = {DAILY}.{s} + excluded.{s}" for s in SUMS)
    return (
        f"INSERT INTO {DAILY} (day, {keys}, {sums}) SELECT {values} WHERE {r}.endpoint = 'messages' "
        f"ON CONFLICT (day, {keys}) DO UPDATE SET {updates}"
    )


def _daily_match(vendor: str, r: str) -> str:
    keys = " AND ".join(f"{k} = {r}.{k}" for k in DAILY_KEYS)
    return f"day = {_day(vendor, r)} AND {keys} AND {r}.endpoint = 'messages'"


def _take_daily(vendor: str, r: str) -> list[str]:
    """The row's share out of its day's bucket, and the bucket gone once it counts nothing."""
    updates = ", ".join(f"{s} = {s} - ({e.format(r=r)})" for s, e in SUMS.items())
    match = _daily_match(vendor, r)
    return [
        f"UPDATE {DAILY} SET {updates} WHERE {match}",
        f"DELETE FROM {DAILY} WHERE {match} AND requests <= 0",
    ]


def _add_session(vendor: str, r: str) -> str:
    least, greatest = _least(vendor)
    sums = ", ".join(SUMS)
    lasts = ", ".join(last for last, _ in _SESSION_LAST)
    values = ", ".join([
        f"{r}.session_id", f"{r}.endpoint", f"{r}.created_at", f"{r}.created_at", f"{r}.id", f"{r}.id",
        f"{r}.user_agent", *(f"{r}.{column}" for _, column in _SESSION_LAST),
        *(e.format(r=r) for e in SUMS.values()),
    ])  # fmt: skip
    s = SESSIONS
    updates = ", ".join([
        f"first_at = {least}({s}.first_at, excluded.first_at)",
        f"last_at = {greatest}({s}.last_at, excluded.last_at)",
        f"first_id = {least}({s}.first_id, excluded.first_id)",
        # Read before last_id changes: every SET expression sees the row as it was.
        *(f"{last} = CASE WHEN excluded.last_id >= {s}.last_id THEN excluded.{last} ELSE {s}.{last} END"
          for last, _ in _SESSION_LAST),
        f"last_id = {greatest}({s}.last_id, excluded.last_id)",
        f"user_agent = {greatest}({s}.user_agent, excluded.user_agent)",
        *(f"{x} = {s}.{x} + excluded.{x}" for x in SUMS),
    ])  # fmt: skip
    return (
        f"INSERT INTO {s} (session_id, endpoint, first_at, last_at, first_id, last_id, user_agent, {lasts}, "
        f"{sums}) "
        f"SELECT {values} WHERE {r}.session_id <> '' "
        f"ON CONFLICT (session_id, endpoint) DO UPDATE SET {updates}"
    )


def _take_session(r: str) -> list[str]:
    updates = ", ".join(f"{s} = {s} - ({e.format(r=r)})" for s, e in SUMS.items())
    match = f"session_id = {r}.session_id AND endpoint = {r}.endpoint AND {r}.session_id <> ''"
    return [
        f"UPDATE {SESSIONS} SET {updates} WHERE {match}",
        f"DELETE FROM {SESSIONS} WHERE {match} AND requests <= 0",
    ]


def install_statements(vendor: str) -> list[str]:
    """The triggers that keep the rollups (SQLite: three; PostgreSQL: one function, one trigger)."""
    watched = ", ".join(WATCHED)
    add = [_add_daily(vendor, "{r}"), _add_session(vendor, "{r}")]
    take = [*_take_daily(vendor, "{r}"), *_take_session("{r}")]
    if vendor == "sqlite":

        def body(*statements: str) -> str:
            return "BEGIN " + " ".join(f"{s};" for s in statements) + " END"

        new = [s.replace("{r}", "NEW") for s in add]
        old = [s.replace("{r}", "OLD") for s in take]
        return [
            f"CREATE TRIGGER proxy_exchange_usage_insert AFTER INSERT ON {EXCHANGE} {body(*new)}",
            f"CREATE TRIGGER proxy_exchange_usage_update AFTER UPDATE OF {watched} ON {EXCHANGE} "
            + body(*old, *new),
            f"CREATE TRIGGER proxy_exchange_usage_delete AFTER DELETE ON {EXCHANGE} {body(*old)}",
        ]
    old_sql = " ".join(f"{s.replace('{r}', 'OLD')};" for s in take)
    new_sql = " ".join(f"{s.replace('{r}', 'NEW')};" for s in add)
    return [
        "CREATE OR REPLACE FUNCTION proxy_exchange_usage() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF TG_OP <> 'INSERT' THEN {old_sql} END IF; "
        f"IF TG_OP <> 'DELETE' THEN {new_sql} END IF; "
        "RETURN NULL; END $$",
        f"CREATE TRIGGER proxy_exchange_usage AFTER INSERT OR DELETE OR UPDATE OF {watched} ON {EXCHANGE} "
        "FOR EACH ROW EXECUTE FUNCTION proxy_exchange_usage()",
    ]


def uninstall_statements(vendor: str) -> list[str]:
    if vendor == "sqlite":
        return [
            f"DROP TRIGGER IF EXISTS proxy_exchange_usage_{event}" for event in ("insert", "update", "delete")
        ]
    return [
        f"DROP TRIGGER IF EXISTS proxy_exchange_usage ON {EXCHANGE}",
        "DROP FUNCTION IF EXISTS proxy_exchange_usage()",
    ]


def rebuild(connection: Any = None) -> None:
    """Recount both rollups from every exchange row (migration 0010_rollups, `manage.py rollups rebuild`)."""
    if connection is None:
        from django.db import connection
    vendor = connection.vendor
    keys = ", ".join(f"e.{k}" for k in DAILY_KEYS)
    sums = ", ".join(f"SUM({e.format(r='e')})" for e in SUMS.values())
    columns = ", ".join(SUMS)
    lasts = ", ".join(last for last, _ in _SESSION_LAST)
    blanks = ", ".join("''" for _ in _SESSION_LAST)  # filled from each session's newest row, below
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {DAILY}")
        cursor.execute(
            f"INSERT INTO {DAILY} (day, {', '.join(DAILY_KEYS)}, {columns}) "
            f"SELECT {_day(vendor, 'e')}, {keys}, {sums} FROM {EXCHANGE} e WHERE e.endpoint = 'messages' "
            f"GROUP BY {_day(vendor, 'e')}, {keys}"
        )
        cursor.execute(f"DELETE FROM {SESSIONS}")
        cursor.execute(
            f"INSERT INTO {SESSIONS} (session_id, endpoint, first_at, last_at, first_id, last_id, "
            f"user_agent, {lasts}, {columns}) SELECT e.session_id, e.endpoint, MIN(e.created_at), "
            "MAX(e.created_at), "
            f"MIN(e.id), MAX(e.id), MAX(e.user_agent), {blanks}, {sums} "
            f"FROM {EXCHANGE} e WHERE e.session_id <> '' GROUP BY e.session_id, e.endpoint"
        )
        _refresh_lasts(cursor, "")


def _refresh_lasts(cursor: Any, where: str, params: Iterable[Any] = ()) -> None:
    lasts = ", ".join(
        f"{last} = COALESCE((SELECT x.{column} FROM {EXCHANGE} x WHERE x.id = {SESSIONS}.last_id), '')"
        for last, column in _SESSION_LAST
    )
    cursor.execute(f"UPDATE {SESSIONS} SET {lasts} {where}", list(params))


def refresh_sessions(session_ids: Iterable[str], connection: Any = None) -> None:
    """First/last seen, the first and newest ids and the newest route of these sessions, read again from
    their rows: after a delete, which can take a row's sums out of a session but not its bounds."""
    if connection is None:
        from django.db import connection
    ids = sorted(set(session_ids) - {""})
    if not ids:
        return

    def of(aggregate: str) -> str:
        return (
            f"(SELECT {aggregate} FROM {EXCHANGE} x WHERE x.session_id = {SESSIONS}.session_id "
            f"AND x.endpoint = {SESSIONS}.endpoint)"
        )

    bounds = ", ".join(
        f"{column} = COALESCE({of(aggregate)}, {column})"
        for column, aggregate in (
            ("first_at", "MIN(x.created_at)"), ("last_at", "MAX(x.created_at)"), ("first_id", "MIN(x.id)"),
            ("last_id", "MAX(x.id)"), ("user_agent", "MAX(x.user_agent)"),
        )
    )  # fmt: skip
    with connection.cursor() as cursor:
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            where = f"WHERE session_id IN ({', '.join(['%s'] * len(part))})"
            cursor.execute(f"UPDATE {SESSIONS} SET {bounds} {where}", part)
            _refresh_lasts(cursor, where, part)

"""Full-text indexes for the feed's search, which finds a substring, case-insensitive, in the stored bodies.

A substring, not a word: people paste part of an error, a path, an identifier. So trigram indexes, which
answer substring queries of three characters or more from the index:
- SQLite: FTS5 tables with the trigram tokenizer over the exchange's bodies (external content: the text
  stays in the exchange table, the index holds only trigrams) and over the blobs' text, kept by triggers
  in the statement that writes the row (the recorder's thread and transaction);
- PostgreSQL: pg_trgm GIN indexes on the same text (the JSON bodies as text, as the search reads them).
  Creating the extension needs the right to (a superuser or the database's owner: pg_trgm is trusted);
  without it the indexes are skipped and search reads the rows as before.

The request is indexed apart from the rest: it is written once, when the row is, while the answer's
columns are written when the exchange finishes, and re-indexing the request then would double the cost.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)

EXCHANGE = "proxy_exchange"
BLOB = "proxy_blob"
REQUEST_FTS = "proxy_exchange_fts_request"
ANSWER_FTS = "proxy_exchange_fts_answer"
BLOB_FTS = "proxy_blob_fts"
REQUEST_COLUMNS = ("client_request",)
ANSWER_COLUMNS = ("client_response", "upstream_request", "upstream_response", "error_message")
# PostgreSQL: the expressions the search filters on, each with an index of its own.
PG_EXPRESSIONS = {
    "client_request": "(client_request)::text",
    "client_response": "(client_response)::text",
    "upstream_request": "(upstream_request)::text",
    "upstream_response": "upstream_response",
    "error_message": "error_message",
}
MIN_CHARS = 3  # a trigram index cannot answer shorter terms: those are searched by reading rows
# Blobs larger than this are not indexed but read by each search (images, whole files: few, and indexing
# a 20 MB image took the writer 9 s of CPU).
INDEXED_BLOB_BYTES = 1024 * 1024


def _sqlite_table(name: str, columns: tuple[str, ...], content: str, rowid: str, when: str = "") -> list[str]:
    cols = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    # The 'delete' command needs the values that were indexed: the trigger has them as OLD.
    drop = f"INSERT INTO {name} ({name}, rowid, {cols}) VALUES ('delete', old.{rowid}, {old});"
    add = f"INSERT INTO {name} (rowid, {cols}) VALUES (new.{rowid}, {new});"
    if when:  # only the rows `when` holds for are indexed (blobs: up to INDEXED_BLOB_BYTES)
        old_when, new_when = when.format(r="old"), when.format(r="new")
        return [
            f"CREATE VIRTUAL TABLE {name} USING fts5({cols}, content='{content}', content_rowid='{rowid}', "
            "tokenize='trigram', detail=none)",
            f"CREATE TRIGGER {name}_insert AFTER INSERT ON {content} WHEN {new_when} BEGIN {add} END",
            f"CREATE TRIGGER {name}_delete AFTER DELETE ON {content} WHEN {old_when} BEGIN {drop} END",
            # A blob's value never changes (its hash is its key), should a row be rewritten anyway:
            f"CREATE TRIGGER {name}_update AFTER UPDATE OF {cols} ON {content} BEGIN "
            f"INSERT INTO {name} ({name}, rowid, {cols}) SELECT 'delete', old.{rowid}, {old} "
            f"WHERE {old_when}; "
            f"INSERT INTO {name} (rowid, {cols}) SELECT new.{rowid}, {new} WHERE {new_when}; END",
            _fill_blobs_sql(name, cols, rowid, when.format(r=content)),
        ]
    return [
        f"CREATE VIRTUAL TABLE {name} USING fts5({cols}, content='{content}', content_rowid='{rowid}', "
        # detail=none: no positions (a third of the CPU and a fraction of the size of the full index), so
        # a MATCH finds the rows holding every trigram of the term, and search checks those rows.
        "tokenize='trigram', detail=none)",
        f"CREATE TRIGGER {name}_insert AFTER INSERT ON {content} BEGIN {add} END",
        f"CREATE TRIGGER {name}_update AFTER UPDATE OF {cols} ON {content} BEGIN {drop} {add} END",
        f"CREATE TRIGGER {name}_delete AFTER DELETE ON {content} BEGIN {drop} END",
        f"INSERT INTO {name} ({name}) VALUES ('rebuild')",  # index the rows already there
    ]


BLOB_WHEN = f"{{r}}.size <= {INDEXED_BLOB_BYTES}"


def _fill_blobs_sql(name: str, cols: str, rowid: str, when: str) -> str:
    return f"INSERT INTO {name} (rowid, {cols}) SELECT {rowid}, {cols} FROM {BLOB} WHERE {when}"


def install(connection: Any) -> None:
    """Create the indexes and fill them from the rows already there (migration 0010_rollups)."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            statements = [
                *_sqlite_table(REQUEST_FTS, REQUEST_COLUMNS, EXCHANGE, "id"),
                *_sqlite_table(ANSWER_FTS, ANSWER_COLUMNS, EXCHANGE, "id"),
                # The blob table's rowid: stable except across VACUUM, after which vacuum() rebuilds it.
                *_sqlite_table(BLOB_FTS, ("data",), BLOB, "rowid", when=BLOB_WHEN),
            ]
            for statement in statements:
                cursor.execute(statement)
        elif connection.vendor == "postgresql":
            if not _pg_trgm(connection):
                return
            for column, expression in PG_EXPRESSIONS.items():
                cursor.execute(
                    f"CREATE INDEX IF NOT EXISTS proxy_exchange_{column}_trgm ON {EXCHANGE} "
                    f"USING gin (({expression}) gin_trgm_ops)"
                )
            cursor.execute(
                f"CREATE INDEX IF NOT EXISTS proxy_blob_data_trgm ON {BLOB} USING gin (data gin_trgm_ops)"
            )


def uninstall(connection: Any) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            for name in (REQUEST_FTS, ANSWER_FTS, BLOB_FTS):
                for event in ("insert", "update", "delete"):
                    cursor.execute(f"DROP TRIGGER IF EXISTS {name}_{event}")
                cursor.execute(f"DROP TABLE IF EXISTS {name}")
        elif connection.vendor == "postgresql":
            for column in PG_EXPRESSIONS:
                cursor.execute(f"DROP INDEX IF EXISTS proxy_exchange_{column}_trgm")
            cursor.execute("DROP INDEX IF EXISTS proxy_blob_data_trgm")


def _pg_trgm(connection: Any) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SAVEPOINT trgm")
        try:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        except Exception as exc:  # not allowed to: search reads the rows, as before
            cursor.execute("ROLLBACK TO SAVEPOINT trgm")
            logger.warning("search: could not create the pg_trgm extension (%s); search stays a scan", exc)
            return False
        cursor.execute("RELEASE SAVEPOINT trgm")
        return True


def available(connection: Any) -> bool:
    """The indexes are there (PostgreSQL without pg_trgm has none)."""
    if connection.vendor == "sqlite":
        return True
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = 'proxy_exchange_client_request_trgm'")
        return cursor.fetchone() is not None


def compact(connection: Any) -> None:
    """SQLite: merge the index's segments, which drops the entries of deleted rows. A delete only adds a
    tombstone, so without this the index keeps its size after a prune (and a size limit would delete
    every row trying to get under it). Costs a rewrite of the index: run only by size-limited prunes
    and before VACUUM."""
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            for name in (REQUEST_FTS, ANSWER_FTS, BLOB_FTS):
                cursor.execute(f"INSERT INTO {name} ({name}) VALUES ('optimize')")


def after_vacuum(connection: Any) -> None:
    """VACUUM may renumber the blob table's rowids (it has no integer primary key): index them again."""
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {BLOB_FTS} ({BLOB_FTS}) VALUES ('delete-all')")
            cursor.execute(_fill_blobs_sql(BLOB_FTS, "data", "rowid", BLOB_WHEN.format(r=BLOB)))


def _phrase(variants: set[str]) -> str:
    """An FTS5 query for rows holding every trigram of a variant (detail=none has no phrases)."""

    def every_trigram(v: str) -> str:
        grams = sorted({v[i : i + 3] for i in range(len(v) - 2)})[:64]  # more only narrow it further
        return "(" + " AND ".join('"' + g.replace('"', '""') + '"' for g in grams) + ")"

    return " OR ".join(every_trigram(v) for v in sorted(variants))


def _like(value: str) -> str:
    return "%" + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def text_ids(connection: Any, variants: set[str], *, before: int | None, limit: int) -> list[int]:
    """Ids of the newest `limit` exchanges below `before` whose bodies or error may contain a variant
    (SQLite: every trigram of it; the caller checks the rows)."""
    below = before if before is not None else 2**62
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            ids: set[int] = set()
            for table in (REQUEST_FTS, ANSWER_FTS):
                cursor.execute(
                    f"SELECT rowid FROM {table} WHERE {table} MATCH %s AND rowid < %s "
                    "ORDER BY rowid DESC LIMIT %s",
                    [_phrase(variants), below, limit],
                )
                ids.update(row[0] for row in cursor.fetchall())
            return sorted(ids, reverse=True)[:limit]
        ors = " OR ".join(
            f"{expression} ILIKE %s" for expression in PG_EXPRESSIONS.values() for _ in variants
        )
        params = [_like(v) for _ in PG_EXPRESSIONS for v in sorted(variants)]
        cursor.execute(
            f"SELECT id FROM {EXCHANGE} WHERE ({ors}) AND id < %s ORDER BY id DESC LIMIT %s",
            [*params, below, limit],
        )
        return [row[0] for row in cursor.fetchall()]


def referring_ids(connection: Any, shas: list[str], *, before: int | None, limit: int) -> list[int]:
    """Ids of the newest `limit` exchanges below `before` whose request (client's or upstream) refers to
    one of these blobs."""
    if not shas:
        return []
    below = before if before is not None else 2**62
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            ids: set[int] = set()
            for table in (REQUEST_FTS, ANSWER_FTS):  # the answer's other columns too: the caller checks
                cursor.execute(
                    f"SELECT rowid FROM {table} WHERE {table} MATCH %s AND rowid < %s "
                    "ORDER BY rowid DESC LIMIT %s",
                    [_phrase(set(shas)), below, limit],
                )
                ids.update(row[0] for row in cursor.fetchall())
            return sorted(ids, reverse=True)[:limit]
        ors = " OR ".join(
            f"{PG_EXPRESSIONS[column]} LIKE %s"
            for column in ("client_request", "upstream_request")
            for _ in shas
        )
        params = [_like(sha) for _ in range(2) for sha in shas]
        cursor.execute(
            f"SELECT id FROM {EXCHANGE} WHERE ({ors}) AND id < %s ORDER BY id DESC LIMIT %s",
            [*params, below, limit],
        )
        return [row[0] for row in cursor.fetchall()]


def matching_blobs(connection: Any, variants: set[str], *, limit: int) -> tuple[list[tuple[str, int]], bool]:
    """(sha256, first_id) of the blobs whose text contains a variant, oldest first, and whether that is all
    of them (at most `limit`)."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            # The index finds the blobs holding every trigram; LIKE (as search_q's) checks their text.
            likes = " OR ".join("b.data LIKE %s ESCAPE '\\'" for _ in variants)
            patterns = [_like(v) for v in sorted(variants)]
            cursor.execute(
                f"SELECT sha256, first_id FROM (SELECT b.rowid AS r, b.sha256, b.first_id FROM {BLOB_FTS} f "
                f"JOIN {BLOB} b ON b.rowid = f.rowid WHERE {BLOB_FTS} MATCH %s AND ({likes}) "
                f"UNION ALL SELECT b.rowid, b.sha256, b.first_id FROM {BLOB} b "
                f"WHERE b.size > {INDEXED_BLOB_BYTES} AND ({likes})) ORDER BY r LIMIT %s",
                [_phrase(variants), *patterns, *patterns, limit + 1],
            )
        else:
            ors = " OR ".join("data ILIKE %s" for _ in variants)
            # No ORDER BY: the table's own order, as the search read them before (its "first 20").
            cursor.execute(
                f"SELECT sha256, first_id FROM {BLOB} WHERE {ors} LIMIT %s",
                [*(_like(v) for v in sorted(variants)), limit + 1],
            )
        rows = [(sha, int(first)) for sha, first in cursor.fetchall()]
    return rows[:limit], len(rows) <= limit

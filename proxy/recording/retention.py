"""How much of the record is kept: the policy, the database's size, and the prune.

The policy is N days and/or N GB: from the dashboard (the Retention row) when it was edited there, else
from SWITCHBOARD_RETENTION_DAYS / SWITCHBOARD_RETENTION_GB; no limit by default. `prune()` deletes the
oldest exchanges past either limit, then the blobs no kept exchange refers to. It runs from
`manage.py prune` and, step by step, in the recorder's thread (never on the event loop).

Space on SQLite: a deleted row's pages go to the database's free list and new rows reuse them, so under a
size limit the file stops growing instead of shrinking; the WAL is truncated after each prune
(`wal_checkpoint(TRUNCATE)`). `manage.py prune --vacuum` rewrites the file to give the space back to the
disk (it needs the file's size again, free, and blocks writes while it runs).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from django.conf import settings
from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.db.models import Min, QuerySet, Sum
from django.utils import timezone

from proxy.models import Blob, Exchange, Retention
from proxy.recording import fulltext, rollups

logger = logging.getLogger(__name__)

GB = 1024**3
STEP_ROWS = 200  # exchanges deleted per transaction: the writer waits for each step, not the whole prune


@dataclass(frozen=True, slots=True)
class Policy:
    days: int | None
    max_gb: float | None
    source: Literal["dashboard", "environment"]

    @property
    def limited(self) -> bool:
        return bool(self.days) or bool(self.max_gb)

    def describe(self) -> str:
        parts = [f"{self.days} days" if self.days else "", f"{self.max_gb:g} GB" if self.max_gb else ""]
        return " and ".join(p for p in parts if p) or "everything (no limit)"


def current_policy() -> Policy:
    row = Retention.objects.order_by("-id").first()
    if row is not None:
        return Policy(days=row.days or None, max_gb=row.max_gb or None, source="dashboard")
    return Policy(days=settings.RETENTION_DAYS, max_gb=settings.RETENTION_GB, source="environment")


def save_policy(*, days: int | None, max_gb: float | None) -> Policy:
    """The dashboard's edit: one row, replacing the environment's values from now on."""
    with transaction.atomic():
        Retention.objects.all().delete()
        Retention.objects.create(days=days or None, max_gb=max_gb or None)
    return current_policy()


@dataclass(frozen=True, slots=True)
class Size:
    vendor: str
    file_bytes: int  # the database file (SQLite) or the database (PostgreSQL)
    wal_bytes: int
    used_bytes: int  # what the data takes: the file minus its free pages (SQLite), the bodies (PG)
    exchanges: int
    oldest: datetime | None
    blobs: int
    blob_bytes: int


def database_size() -> Size:
    stats = Exchange.objects.aggregate(oldest=Min("created_at"))
    blobs = Blob.objects.aggregate(total=Sum("size"))
    count, blob_count = Exchange.objects.count(), Blob.objects.count()
    if connection.vendor == "sqlite":
        path = str(connection.settings_dict["NAME"])
        with connection.cursor() as cursor:
            page_size = _pragma(cursor, "page_size")
            used = (_pragma(cursor, "page_count") - _pragma(cursor, "freelist_count")) * page_size
        file_bytes, wal_bytes = _file_size(path), _file_size(path + "-wal")
    elif connection.vendor == "postgresql":
        # Deleted rows keep their space in PostgreSQL's files until vacuumed, so "used" is what the kept
        # rows store: pg_column_size reads each body's stored (TOAST-compressed) size from the row's
        # pointer, without fetching the body.
        bodies = " + ".join(
            f"coalesce(pg_column_size({c}), 0)"
            for c in ("client_request", "upstream_request", "upstream_response", "client_response")
        )
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT pg_database_size(current_database()), "
                f"(SELECT coalesce(sum({bodies}), 0) FROM {Exchange._meta.db_table})"
            )
            file_bytes, used = cursor.fetchone()
        used = int(used) + (blobs["total"] or 0)
        wal_bytes = 0
    else:
        file_bytes = used = wal_bytes = 0
    return Size(
        vendor=connection.vendor,
        file_bytes=file_bytes,
        wal_bytes=wal_bytes,
        used_bytes=used,
        exchanges=count,
        oldest=stats["oldest"],
        blobs=blob_count,
        blob_bytes=blobs["total"] or 0,
    )


@dataclass(slots=True)
class Pruned:
    exchanges: int = 0
    blobs: int = 0
    dry_run: bool = False
    more: bool = False  # a step stopped with more to delete
    before: Size | None = None
    after: Size | None = None


def prune(policy: Policy | None = None, *, dry_run: bool = False, now: datetime | None = None) -> Pruned:
    """Apply the policy to the end (the command): steps until nothing is past either limit."""
    policy = policy or current_policy()
    result = Pruned(dry_run=dry_run, before=database_size())
    if dry_run:
        ids = _past_limits(policy, now=now, size=result.before, limit=None)
        result.exchanges = len(ids)
        result.blobs = _blobs_left_unreferenced(ids).count()
        return result
    while True:
        step = prune_step(policy, now=now)
        result.exchanges += step.exchanges
        result.blobs += step.blobs
        if not step.more:
            break
    if result.exchanges:
        reclaim()
    result.after = database_size()
    return result


def prune_step(policy: Policy | None = None, *, now: datetime | None = None) -> Pruned:
    """Delete at most STEP_ROWS exchanges past the policy's limits, and the blobs they leave unreferenced."""
    policy = policy or current_policy()
    if not policy.limited:
        return Pruned()
    ids = _past_limits(policy, now=now, size=database_size() if policy.max_gb else None, limit=STEP_ROWS)
    if not ids:
        return Pruned()
    with transaction.atomic():
        sessions = set(Exchange.objects.filter(pk__in=ids).values_list("session_id", flat=True))
        # The rollups' triggers take each row's sums out; its sessions' first/last seen are read again.
        deleted = Exchange.objects.filter(pk__in=ids).delete()[0]
        rollups.refresh_sessions(sessions)
        blobs = _blobs_left_unreferenced(ids).delete()[0]
        if policy.max_gb:  # the next step measures the size again: the search index must have shrunk too
            fulltext.compact(connection)
    logger.info(
        "retention: deleted %d exchanges and %d blobs (keeping %s)", deleted, blobs, policy.describe()
    )
    # More may be past the limits: a full step, or a size estimate that fell short (measured again next).
    return Pruned(exchanges=deleted, blobs=blobs, more=True)


def reclaim() -> None:
    """After a prune: truncate SQLite's WAL (the freed pages stay in the file, reused by new rows)."""
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def vacuum() -> None:
    """Give the free pages back to the disk (SQLite: rewrites the file; PostgreSQL: VACUUM the tables)."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            fulltext.compact(connection)  # the deleted rows' index entries go first, then the file shrinks
            cursor.execute("VACUUM")
            fulltext.after_vacuum(connection)
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        elif connection.vendor == "postgresql":
            for model in (Exchange, Blob):
                cursor.execute(f"VACUUM {connection.ops.quote_name(model._meta.db_table)}")


def _past_limits(policy: Policy, *, now: datetime | None, size: Size | None, limit: int | None) -> list[int]:
    """Ids of the exchanges to delete, oldest first: those older than `days`, then the oldest of the rest
    until what deleting them frees brings the data within `max_gb`."""
    ids: list[int] = []
    if policy.days:
        cutoff = (now or timezone.now()) - timedelta(days=policy.days)
        old = Exchange.objects.filter(created_at__lt=cutoff).order_by("id").values_list("id", flat=True)
        ids = list(old[:limit] if limit else old)
    if policy.max_gb and size is not None and (limit is None or len(ids) < limit):
        excess = size.used_bytes - policy.max_gb * GB
        if excess > 0:
            ids += _oldest_freeing(excess, skip=set(ids), limit=None if limit is None else limit - len(ids))
    return ids


ROW_OVERHEAD = 300  # bytes a row takes beyond its bodies: small columns, record header, index entries


def _oldest_freeing(excess: float, *, skip: set[int], limit: int | None) -> list[int]:
    """The oldest finished exchanges whose deletion frees `excess` bytes: their bodies as stored, and the
    blobs no later exchange uses (a blob goes once every exchange up to its last_id is gone). Pages only
    part freed stay in use, so the prune measures again after each step and goes on if still over."""
    freed_by_last = dict(
        Blob.objects.values("last_id").annotate(bytes=Sum("size")).values_list("last_id", "bytes")
    )
    lasts = sorted(freed_by_last)
    ids: list[int] = []
    freed, next_blob = 0.0, 0
    for pk, stored in _stored_sizes(skip):
        ids.append(pk)
        freed += stored + ROW_OVERHEAD
        while next_blob < len(lasts) and lasts[next_blob] <= pk:
            freed += freed_by_last[lasts[next_blob]]
            next_blob += 1
        if freed >= excess or (limit is not None and len(ids) >= limit):
            break
    return ids


def _stored_sizes(skip: set[int]) -> Iterator[tuple[int, int]]:
    """(id, bytes its bodies take as stored) of finished exchanges, oldest first, a chunk at a time. Bodies
    are small once their repeated and large parts are blobs; PostgreSQL reads the stored (compressed) size
    from each value's TOAST pointer."""
    bodies = ("client_request", "upstream_request", "upstream_response", "client_response")
    measure = "length" if connection.vendor == "sqlite" else "pg_column_size"
    total = " + ".join(f"coalesce({measure}({connection.ops.quote_name(c)}), 0)" for c in bodies)
    table = connection.ops.quote_name(Exchange._meta.db_table)
    after = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, {total} FROM {table} WHERE id > %s AND status != %s ORDER BY id LIMIT 500",
                [after, Exchange.Status.PENDING],
            )
            rows = cursor.fetchall()
        if not rows:
            return
        for pk, stored in rows:
            if pk not in skip:
                yield pk, int(stored or 0)
        after = rows[-1][0]


def _blobs_left_unreferenced(deleted: list[int]) -> QuerySet[Blob]:
    """Blobs that only these exchanges referred to. A blob's last_id is the newest exchange that may refer
    to it, so a blob older than every kept exchange is unreferenced: no body is read."""
    gone = set(deleted)
    kept = next(
        (
            pk
            for pk in Exchange.objects.order_by("id").values_list("id", flat=True).iterator()
            if pk not in gone
        ),
        None,
    )
    if kept is None:  # nothing kept: every blob the deleted rows could refer to
        kept = max(gone, default=0) + 1
    return Blob.objects.filter(last_id__lt=kept)


def _pragma(cursor: CursorWrapper, name: str) -> int:
    cursor.execute(f"PRAGMA {name}")
    return int(cursor.fetchone()[0])


def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0

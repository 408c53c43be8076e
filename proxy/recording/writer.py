"""The only database writer for exchanges, off the hot path.

`submit()` is `put_nowait` and never awaits. One writer task per process drains the queue in batches
and writes them from a dedicated thread, so neither the stream nor Django's shared sync thread waits
on the database. After each batch commits it publishes the changed rows.

While the database is unavailable (locked, restarting, unreachable) the writer keeps its batch and
tries again with a growing pause; exchanges wait in the queue, compressed, up to RECORD_BACKLOG of
them. What does not fit is counted and reported (`status()`: the log, `GET /api/exchanges`, the
dashboard), never dropped silently.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
import traceback
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, transaction
from django.db.models import F, TextField
from django.db.models.functions import Cast

from proxy.ops import metrics
from proxy.recording import live
from proxy.recording.blobs import BlobWriter
from proxy.recording.rows import row_fields, start_fields, update_fields
from proxy.recording.tape import Packed, Tape
from proxy.security.redact import redact_row

logger = logging.getLogger(__name__)

_MAX_BATCH = 200
_GATHER_S = 0.05  # rows reach the dashboard within this much more; it stays well under a second
# An exchange over within this delay is written once (insert) instead of twice (pending insert, then
# update). Every real agent turn streams for longer, so it still shows in the live feed while it runs.
PENDING_ROW_DELAY_S = 0.25
BACKLOG_YIELD_AT = 16  # exchanges waiting for the writer
# Past this many waiting, with as many in flight, a finished exchange's bodies are compressed before they
# join the queue: ~0.1 ms per 80 KB request on the event loop, worth it only while the writer is behind.
BACKLOG_PACK_AT = 8
# A failed tool result is credited to the call it answers among this many of the session's newest
# exchanges with tool calls (subagents run side by side in one session).
CREDIT_LOOKBACK = 50
PRUNE_POLL_S = 5.0
_CREDITED_LIMIT = 10_000  # tool_use ids credited already: a retried request must not count twice
_RETRY_PAUSES_S = (0.5, 1.0, 2.0, 5.0)  # between attempts while the database is unavailable
_UNAVAILABLE = (OperationalError, InterfaceError)  # locked, gone, restarting: the rows are kept


@dataclass(frozen=True, slots=True)
class Started:
    """A pending row for the live feed: only fields known at the start (copied: the tape keeps changing)."""

    key: int
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Finished:
    tape: Tape


class Recorder:
    def __init__(self) -> None:
        self._queue: asyncio.Queue[Started | Finished] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        # One thread: one DB connection, writes in submission order.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recorder")
        self._pk_of: dict[int, int] = {}  # tape key -> row pk, for rows inserted as pending
        self._open: set[int] = set()  # keys of exchanges started and not finished yet
        self._credited: OrderedDict[str, None] = OrderedDict()  # writer thread only
        self.dropped = 0  # finished exchanges that found the queue full: not recorded
        self.lost = 0  # rows the database refused while it was up (a bug): not recorded
        self.unavailable_since: float | None = None  # time.time() of the first failed write, if failing
        self.last_error = ""
        self._prune_at = 0.0  # monotonic time of the next prune step: the first comes as the writer starts
        self._unreclaimed = False  # a prune deleted rows and the WAL was not truncated since

    def submit(self, item: Started | Finished) -> None:
        if not settings.RECORD_EXCHANGES:
            return
        loop = asyncio.get_running_loop()
        if self._queue is None or self._loop is not loop:
            self._queue = asyncio.Queue(maxsize=settings.RECORD_BACKLOG)
            self._loop = loop
            # A fresh context: the writer must not inherit the request's asgiref thread context.
            self._task = loop.create_task(self._run(), context=contextvars.Context())
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self._drop(item)
            return
        if self._queue.qsize() > BACKLOG_YIELD_AT:
            # Behind: the event loop holds the GIL nearly all the time under saturation, and the writer
            # thread waits a switch interval (5 ms) for it after every database call. Its backlog (each
            # exchange holding ~150 KB of bodies) grew to 400-500 exchanges at c=200. Handing the GIL
            # over once per submission while behind keeps the backlog short at no cost in throughput
            # (measured: docs/benchmarks.md). sleep(0) releases the GIL; it returns at once otherwise.
            time.sleep(0)

    def _drop(self, item: Started | Finished) -> None:
        """The queue is full (the database has been unavailable for long): count what is not kept."""
        if isinstance(item, Started):
            return  # only the live feed's early row: the finished exchange is inserted whole
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 100 == 0:
            logger.error(
                "recorder: %d exchanges waiting for the database (the most kept, SWITCHBOARD_RECORD_BACKLOG);"
                " %d finished exchanges not recorded so far",
                self.backlog(),
                self.dropped,
            )

    def status(self) -> dict[str, Any]:
        """What the recorder holds and what it could not keep, for GET /api/exchanges and the dashboard."""
        return {
            "waiting": self.backlog(),
            "dropped": self.dropped,
            "lost": self.lost,
            "database": "ok" if self.unavailable_since is None else "unavailable",
            "unavailable_for_s": None
            if self.unavailable_since is None
            else round(time.time() - self.unavailable_since, 1),
            "last_error": self.last_error,
        }

    def start(self, tape: Tape) -> None:
        """A pending row for the live feed, unless the exchange is over before PENDING_ROW_DELAY_S."""
        if settings.RECORD_EXCHANGES:
            self._open.add(tape.key)
            asyncio.get_running_loop().call_later(PENDING_ROW_DELAY_S, self._start_if_unfinished, tape)

    def _start_if_unfinished(self, tape: Tape) -> None:
        if not tape.finished:
            if self._behind():
                tape.seal_request()  # it waits in the queue, and the tape holds it until the end
            self.submit(Started(tape.key, start_fields(tape)))

    def finish(self, tape: Tape) -> None:
        tape.finished = True
        if tape.admission is not None:  # the client key's concurrency slot
            tape.admission.release()
        self._open.discard(tape.key)
        if settings.RECORD_EXCHANGES and self._behind():
            tape.seal()
        self.submit(Finished(tape))

    async def drain(self) -> None:
        """Wait until everything submitted so far is written (tests, shutdown)."""
        if self._queue is not None:
            await self._queue.join()

    async def flush_for_shutdown(self, timeout: float = 10.0) -> None:
        """Write what is queued, including exchanges the server is cancelling right now (a client
        mid-stream when the server stops is recorded as cancelled), then stop the writer task."""
        try:
            async with asyncio.timeout(timeout):
                while self._open:  # the server is cancelling them; each finishes in its `finally`
                    await asyncio.sleep(0.01)
                await self.drain()
        except TimeoutError:
            why = f" (the database is unavailable: {self.last_error})" if self.unavailable_since else ""
            logger.error(
                "recorder: at shutdown, %d exchanges still open and %d not written%s: they are not recorded",
                len(self._open),
                self.backlog(),
                why,
            )
        if self._task is not None:
            self._task.cancel()

    def close(self) -> None:
        """After the event loop stopped: close the writer thread's database connection and the thread."""
        from django.db import connections

        self._executor.submit(connections.close_all).result(timeout=10)
        self._executor.shutdown(wait=True)

    def _behind(self) -> bool:
        """Worth compressing what waits for the writer: a backlog while many exchanges are in flight. A
        backlog alone is normal at low load (one client at 200 requests/s leaves ~25 rows per batch, as
        the writer gathers for _GATHER_S), and compressing those cost the event loop a pass over
        every request's bodies for memory that was never short. While the database is unavailable
        everything waits, so everything is compressed."""
        if self.unavailable_since is not None:
            return True
        return self.backlog() >= BACKLOG_PACK_AT and len(self._open) >= BACKLOG_PACK_AT

    def pending_pk(self, key: int) -> int | None:
        """The row pk of an exchange still in flight whose pending row is written (else None)."""
        return self._pk_of.get(key)

    def backlog(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    def in_flight(self) -> int:
        """Messages requests started and not finished yet."""
        return len(self._open)

    def writer_alive(self) -> bool:
        """The writer task runs (or was never needed yet): false once it died with rows waiting."""
        return self._task is None or not self._task.done() or self.backlog() == 0

    async def _run(self) -> None:
        assert self._queue is not None
        queue = self._queue
        loop = asyncio.get_running_loop()
        while True:
            # Busy or idle, the retention policy is applied every PRUNE_INTERVAL_S, between batches.
            if time.monotonic() >= self._prune_at:
                await self._prune(loop)
            try:
                # Awake at least every PRUNE_POLL_S while idle, so prune_soon() is seen promptly.
                wait = min(max(0.0, self._prune_at - time.monotonic()), PRUNE_POLL_S)
                async with asyncio.timeout(wait):
                    first = await queue.get()
            except TimeoutError:
                continue
            batch = [first]
            if queue.qsize() < _MAX_BATCH:
                # Let a few more arrive: one transaction for many rows costs less CPU, and the writer
                # thread then competes for the GIL with requests in flight once per batch, not per row.
                await asyncio.sleep(_GATHER_S)
            while not queue.empty() and len(batch) < _MAX_BATCH:
                batch.append(queue.get_nowait())
            try:
                changed = await self._write_with_retry(loop, batch)
                for pk, created in changed:
                    await live.publish_exchange(pk, created=created)
            finally:
                for _ in batch:
                    queue.task_done()
                batch, changed = [], []  # don't keep the last batch's tapes alive while idle
                metrics.publish_recorder_state(queue.qsize(), self.dropped + self.lost, len(self._open))

    def prune_soon(self) -> None:
        """The retention policy changed (the Data page): apply it at the writer's next wake, not within
        the hour. Any thread: one float written, read by the writer loop."""
        self._prune_at = 0.0

    async def _prune(self, loop: asyncio.AbstractEventLoop) -> None:
        """One step of the prune in the writer's thread (serialised with the writes, each step short); the
        next step comes right after the next batch while there is more to delete."""
        from proxy.recording import retention

        more = False
        try:
            step = await loop.run_in_executor(self._executor, retention.prune_step)
            more = step.more
            if step.exchanges:
                self._unreclaimed = True
            elif self._unreclaimed:  # the prune is over: truncate the WAL it grew
                await loop.run_in_executor(self._executor, retention.reclaim)
                self._unreclaimed = False
        except Exception:  # never the writer's end: the next interval tries again
            logger.exception("recorder: pruning failed")
        self._prune_at = time.monotonic() + (0.0 if more else settings.PRUNE_INTERVAL_S)

    async def _write_with_retry(
        self, loop: asyncio.AbstractEventLoop, batch: list[Started | Finished]
    ) -> list[tuple[int, bool]]:
        """Write the batch. While the database is unavailable, keep it and try again (with a growing
        pause) until it is back; if it is up and refuses the batch, write its items one by one, so one
        bad row loses that row only (counted in `lost`, logged)."""
        pauses = iter(_RETRY_PAUSES_S)
        while True:
            changed, error = await loop.run_in_executor(self._executor, self._write_in_thread, batch)
            if error is None:
                self._available()
                return changed
            if not isinstance(error, _UNAVAILABLE):
                break
            self._unavailable(error, len(batch))
            await asyncio.sleep(next(pauses, _RETRY_PAUSES_S[-1]))
        self._available()
        await loop.run_in_executor(self._executor, close_old_connections)
        changed = []
        for item in batch:
            done, error = await loop.run_in_executor(self._executor, self._write_in_thread, [item])
            if error is not None and isinstance(error, _UNAVAILABLE):
                done, error = await self._write_with_retry(loop, [item]), None  # it went away meanwhile
            if error is not None:
                self.lost += 1
                tape_key = item.key if isinstance(item, Started) else item.tape.key
                logger.error(
                    "recorder: the database refused exchange (tape %s): it is lost: %s", tape_key, error
                )
            changed += done
        return changed

    def _write_in_thread(
        self, batch: list[Started | Finished]
    ) -> tuple[list[tuple[int, bool]], Exception | None]:
        """`_write`, its failure returned, not raised. Runs in the writer thread, and the failure's frames
        are cleared here: they hold cursors of this thread's connection, and finalized by the garbage
        collector on the event loop a cursor waits for the connection's lock, which this thread holds
        for up to the busy timeout while the database is locked (measured: the API stalled 20 s)."""
        try:
            return self._write(batch), None
        except Exception as exc:
            if not isinstance(exc, _UNAVAILABLE):
                logger.exception("recorder: writing %d exchanges failed", len(batch))
            error: BaseException | None = exc
            while error is not None:
                traceback.clear_frames(error.__traceback__)
                error = error.__cause__ or error.__context__
            return [], exc

    def _unavailable(self, error: Exception, waiting: int) -> None:
        self.last_error = f"{type(error).__name__}: {error}"
        if self.unavailable_since is None:
            self.unavailable_since = time.time()
            logger.error(
                "recorder: the database is unavailable (%s); %d exchanges wait in memory and are written"
                " when it is back",
                self.last_error,
                waiting + self.backlog(),
            )

    def _available(self) -> None:
        if self.unavailable_since is not None:
            logger.warning(
                "recorder: the database is back after %.1f s; writing %d waiting exchanges",
                time.time() - self.unavailable_since,
                self.backlog(),
            )
            self.unavailable_since = None

    def _write(self, batch: list[Started | Finished]) -> list[tuple[int, bool]]:
        """Runs in the writer thread. Returns (pk, created) for each row touched."""
        finished_keys = {item.tape.key for item in batch if isinstance(item, Finished)}
        new_rows: list[tuple[int | None, dict[str, Any]]] = []  # (tape key if pending, fields)
        updates: list[tuple[int, dict[str, Any]]] = []
        finished_rows: list[dict[str, Any]] = []  # for the metrics, once committed
        for item in batch:
            if isinstance(item, Started):
                if item.key not in finished_keys:  # else: one insert with everything, below
                    new_rows.append((item.key, item.fields))
                continue
            pk = self._pk_of.pop(item.tape.key, None)
            if pk is None:
                new_rows.append((None, row_fields(item.tape)))
                finished_rows.append(new_rows[-1][1])
            else:
                updates.append((pk, update_fields(item.tape)))
                finished_rows.append(updates[-1][1])
        finished = [item.tape for item in batch if isinstance(item, Finished)]
        with transaction.atomic():
            pks = write_exchanges([fields for _, fields in new_rows], updates=updates)
            credited, tool_ids = self._credit_failed_results(finished)
        try:  # committed: a metrics bug must not make the batch be written again
            for fields in finished_rows:
                metrics.observe(fields)
        except Exception:
            logger.exception("recorder: counting a batch for /metrics failed")
        for tool_id in tool_ids:  # only once committed: a failed batch is retried row by row
            self._credited[tool_id] = None
        while len(self._credited) > _CREDITED_LIMIT:
            self._credited.popitem(last=False)
        changed = [(pk, False) for pk, _ in updates]
        for (key, _), pk in zip(new_rows, pks, strict=True):
            if key is not None:
                self._pk_of[key] = pk
            changed.append((pk, True))
        touched = {pk for pk, _ in changed}
        return changed + [(pk, False) for pk in credited if pk not in touched]

    def _credit_failed_results(self, tapes: list[Tape]) -> tuple[list[int], list[str]]:
        """Count each failed tool result these requests bring against the exchange whose answer made the
        call: a call the client refused (the model's failure) in tool_call_errors, a tool that reported
        an error in tool_result_errors.

        The client reports a failure in its next request (`is_error` on the tool_result); the call's row
        was written before it (FIFO queue, or earlier in this transaction). Returns the rows changed and
        the tool_use ids counted."""
        from proxy.models import Exchange

        credits: dict[str, Counter[int]] = {"tool_call_errors": Counter(), "tool_result_errors": Counter()}
        counted: list[str] = []
        for tape in tapes:
            kind_of = {i: "tool_result_errors" for i in tape.error_results}
            kind_of.update({i: "tool_call_errors" for i in tape.failed_results})
            wanted = [i for i in kind_of if i not in self._credited and i not in counted]
            if not wanted:
                continue
            candidates = (
                Exchange.objects.filter(session_id=tape.session_id, endpoint="messages", tool_calls__gt=0)
                .annotate(answer=Cast("client_response", TextField()))
                .order_by("-id")
                .values_list("id", "answer")[:CREDIT_LOOKBACK]
            )
            for pk, answer in candidates:
                hits = [i for i in wanted if f'"{i}"' in (answer or "")]
                for i in hits:
                    credits[kind_of[i]][pk] += 1
                counted += hits
                wanted = [i for i in wanted if i not in hits]
                if not wanted:
                    break
        for column, counts in credits.items():
            for pk, n in counts.items():
                Exchange.objects.filter(pk=pk).update(**{column: F(column) + n})
        return sorted({pk for counts in credits.values() for pk in counts}), counted


def write_exchanges(rows: list[dict[str, Any]], *, updates: list[tuple[int, dict[str, Any]]]) -> list[int]:
    """Insert new Exchange rows (returning their ids, in order) and rewrite finished pending ones.

    Every update carries the same fields; the columns it leaves out keep what the row has.

    A few multi-row statements per batch, each value prepared by its model field exactly as the ORM
    would. Why not the ORM: under load the writer thread gets the GIL back only every switch interval
    after each statement (sqlite3 releases it around every step), so a statement per row left the
    queue growing at c=200; and Model construction plus the SQL compiler cost more CPU per row than
    the write itself (both measured: docs/benchmarks.md).
    """
    from django.db import connection

    from proxy.models import Exchange

    _blob_writer.begin_batch()  # what a failed batch left is not this one's
    if connection.vendor not in ("sqlite", "postgresql"):  # anything else: the ORM, one row at a time
        for pk, update in updates:
            Exchange.objects.filter(pk=pk).update(**_unpacked(update))
        made = [row.pk for row in Exchange.objects.bulk_create([Exchange(**_unpacked(f)) for f in rows])]
        with connection.cursor() as cursor:
            _blob_writer.store(cursor, connection, pks=[*(pk for pk, _ in updates), *made])
        return made
    meta = Exchange._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    assert meta.pk is not None and meta.pk.column  # Exchange's own id
    table, pk_column = quote(meta.db_table), quote(meta.pk.column)
    named = [(f.name, f.column) for f in fields if f.column]  # a concrete field always has its column
    assert len(named) == len(fields)
    columns = ", ".join(quote(column) for _, column in named)

    def values(row: dict[str, Any]) -> list[Any]:
        # Unpacked here, a statement at a time (see _statements), not for the whole batch at once.
        row = _unpacked(row)
        return [
            f.get_db_prep_save(row[f.name] if f.name in row else f.get_default(), connection) for f in fields
        ]

    pks: list[int] = []
    with connection.cursor() as cursor:
        for chunk in _statements((values(row) for row in rows), len(fields)):
            placeholders = ", ".join(["(" + ", ".join(["%s"] * len(fields)) + ")"] * len(chunk))
            params = [value for row in chunk for value in row]
            sql = f"INSERT INTO {table} ({columns}) VALUES {placeholders}"
            if connection.vendor == "sqlite":
                # One step for the whole statement; the ids of its rows are consecutive (one writer,
                # inside our IMMEDIATE transaction), ending at lastrowid.
                cursor.execute(sql, params)
                pks.extend(range(cursor.lastrowid - len(chunk) + 1, cursor.lastrowid + 1))
            else:
                cursor.execute(sql + f" RETURNING {pk_column}", params)
                pks.extend(sorted(row[0] for row in cursor.fetchall()))
        # The upsert's VALUES need every NOT NULL column, so the columns an update leaves out are bound as
        # their (small) defaults there and left out of SET: the row keeps what it has.
        changed = set(updates[0][1]) if updates else set()
        assert all(set(row) == changed for _, row in updates), "updates must carry the same fields"
        assignments = ", ".join(
            f"{quote(column)} = excluded.{quote(column)}" for name, column in named if name in changed
        )
        for chunk in _statements(([pk, *values(row)] for pk, row in updates), len(fields) + 1):
            placeholders = ", ".join(["(" + ", ".join(["%s"] * (len(fields) + 1)) + ")"] * len(chunk))
            params = [value for row in chunk for value in row]
            cursor.execute(
                f"INSERT INTO {table} ({pk_column}, {columns}) VALUES {placeholders} "
                f"ON CONFLICT ({pk_column}) DO UPDATE SET {assignments}",
                params,
            )
        # In the rows' transaction: a row never refers to a blob that is not there.
        _blob_writer.store(cursor, connection, pks=[*pks, *(pk for pk, _ in updates)])
    return pks


def _unpacked(row: dict[str, Any]) -> dict[str, Any]:
    """A row's bodies as stored: unpacked, secrets redacted (security/redact.py), then their large repeated
    parts split out into blobs (redacted first, so no blob holds a secret)."""
    row = redact_row({name: v.unpack() if isinstance(v, Packed) else v for name, v in row.items()})
    _blob_writer.begin_row()
    if row.get("client_request") is not None:
        row["client_request"] = _blob_writer.split_client_request(row["client_request"])
    if row.get("upstream_request") is not None:
        row["upstream_request"] = _blob_writer.split_upstream_request(row["upstream_request"])
    return row


_blob_writer = BlobWriter()  # the writer thread's (write_exchanges runs there only)


_MAX_PARAMS = 30_000  # SQLite allows 32,766 bound parameters per statement
# The database library copies every bound value while a statement runs: bounding a statement's bytes
# bounds that copy (a 200-row batch of 80 KB prompts was ~50 MB at once, the process's peak memory).
_MAX_STATEMENT_BYTES = 1 << 20


def _statements(rows: Iterable[list[Any]], width: int) -> Iterator[list[list[Any]]]:
    """Rows of prepared values grouped into statements: at most _MAX_PARAMS values and, unless one row
    alone is larger, _MAX_STATEMENT_BYTES of text per statement. Lazy: given a generator, only one
    statement's rows are prepared (encoded) at a time."""
    group: list[list[Any]] = []
    size = 0
    for row in rows:
        row_size = sum(len(v) for v in row if isinstance(v, (str, bytes)))
        if group and (size + row_size > _MAX_STATEMENT_BYTES or (len(group) + 1) * width > _MAX_PARAMS):
            yield group
            group, size = [], 0
        group.append(row)
        size += row_size
    if group:
        yield group


recorder = Recorder()

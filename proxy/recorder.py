"""The only database writer for exchanges, off the hot path.

`submit()` is `put_nowait` and never awaits. One writer task per process drains the queue in batches
and writes them from a dedicated thread, so neither the stream nor Django's shared sync thread waits
on the database. After each batch commits it publishes the changed rows.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import F, TextField
from django.db.models.functions import Cast

from proxy import live, metrics
from proxy.record import row_fields, start_fields, update_fields
from proxy.tape import Packed, Tape

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
_CREDITED_LIMIT = 10_000  # tool_use ids credited already: a retried request must not count twice


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
        self.dropped = 0  # exchanges lost (a row the database refused): /metrics shows it

    def submit(self, item: Started | Finished) -> None:
        if not settings.RECORD_EXCHANGES:
            return
        loop = asyncio.get_running_loop()
        if self._queue is None or self._loop is not loop:
            self._queue = asyncio.Queue()
            self._loop = loop
            # A fresh context: the writer must not inherit the request's asgiref thread context.
            self._task = loop.create_task(self._run(), context=contextvars.Context())
        self._queue.put_nowait(item)
        if self._queue.qsize() > BACKLOG_YIELD_AT:
            # Behind: the event loop holds the GIL nearly all the time under saturation, and the writer
            # thread waits a switch interval (5 ms) for it after every database call. Its backlog (each
            # exchange holding ~150 KB of bodies) grew to 400-500 exchanges at c=200. Handing the GIL
            # over once per submission while behind keeps the backlog short at no cost in throughput
            # (measured: docs/benchmarks.md). sleep(0) releases the GIL; it returns at once otherwise.
            time.sleep(0)

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
            logger.warning(
                "recorder: at shutdown, %d exchanges still open and %d unwritten",
                len(self._open),
                self.backlog(),
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
        every request's bodies for memory that was never short."""
        return self.backlog() >= BACKLOG_PACK_AT and len(self._open) >= BACKLOG_PACK_AT

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
            batch = [await queue.get()]
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
                batch = changed = []  # don't keep the last batch's tapes alive while idle
                metrics.publish_recorder_state(queue.qsize(), self.dropped, len(self._open))

    async def _write_with_retry(
        self, loop: asyncio.AbstractEventLoop, batch: list[Started | Finished]
    ) -> list[tuple[int, bool]]:
        """Write the batch; if that fails, reconnect and write its items one by one, so one bad row or a
        database restart loses at most that row, never the batch (each loss is logged)."""
        try:
            return await loop.run_in_executor(self._executor, self._write, batch)
        except Exception:
            logger.exception("recorder: writing a batch of %d failed; retrying item by item", len(batch))
        await loop.run_in_executor(self._executor, close_old_connections)
        changed: list[tuple[int, bool]] = []
        for item in batch:
            try:
                changed += await loop.run_in_executor(self._executor, self._write, [item])
            except Exception:
                tape_key = item.key if isinstance(item, Started) else item.tape.key
                logger.exception("recorder: could not record exchange (tape %s); it is lost", tape_key)
                self.dropped += 1
        return changed

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
        call, so "failed tool calls" means calls that failed, not only calls with malformed arguments.

        The client reports a failure in its next request (`is_error` on the tool_result); the call's row
        was written before it (FIFO queue, or earlier in this transaction). Returns the rows changed and
        the tool_use ids counted."""
        from proxy.models import Exchange

        credits: Counter[int] = Counter()
        counted: list[str] = []
        for tape in tapes:
            wanted = [i for i in tape.failed_results if i not in self._credited and i not in counted]
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
                if hits:
                    credits[pk] += len(hits)
                    counted += hits
                    wanted = [i for i in wanted if i not in hits]
                if not wanted:
                    break
        for pk, n in credits.items():
            Exchange.objects.filter(pk=pk).update(tool_call_errors=F("tool_call_errors") + n)
        return list(credits), counted


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

    if connection.vendor not in ("sqlite", "postgresql"):  # anything else: the ORM, one row at a time
        for pk, fields in updates:
            Exchange.objects.filter(pk=pk).update(**_unpacked(fields))
        return [row.pk for row in Exchange.objects.bulk_create([Exchange(**_unpacked(f)) for f in rows])]
    meta = Exchange._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    table, pk_column = quote(meta.db_table), quote(meta.pk.column)
    columns = ", ".join(quote(f.column) for f in fields)

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
            f"{quote(f.column)} = excluded.{quote(f.column)}" for f in fields if f.name in changed
        )
        for chunk in _statements(([pk, *values(row)] for pk, row in updates), len(fields) + 1):
            placeholders = ", ".join(["(" + ", ".join(["%s"] * (len(fields) + 1)) + ")"] * len(chunk))
            params = [value for row in chunk for value in row]
            cursor.execute(
                f"INSERT INTO {table} ({pk_column}, {columns}) VALUES {placeholders} "
                f"ON CONFLICT ({pk_column}) DO UPDATE SET {assignments}",
                params,
            )
    return pks


def _unpacked(row: dict[str, Any]) -> dict[str, Any]:
    return {name: v.unpack() if isinstance(v, Packed) else v for name, v in row.items()}


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

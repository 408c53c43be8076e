"""Live progress of the exchanges in flight: elapsed time and tokens so far, for the dashboard's feed.

Off the hot path: an exchange registers here when it starts, and again with its Accumulator once its
answer streams (a dict insert each), and leaves at the end; what a stream sent is already counted by
its Accumulator. One ticker task per process reads
those once a second and publishes one small event per open stream over the channel layer. Nothing in
the stream loop touches the database, a template or the channel layer.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from dataclasses import dataclass

from channels.layers import InMemoryChannelLayer, get_channel_layer

from proxy.recording.live import GROUP
from proxy.recording.tape import Tape
from proxy.recording.writer import recorder
from proxy.translate.accumulate import Accumulator

logger = logging.getLogger(__name__)

TICK_S = 1.0  # at most one update a second per open stream
CHARS_PER_TOKEN = 4  # a rough estimate of the tokens so far; the row has the backend's count at the end


@dataclass(slots=True)
class _Stream:
    tape: Tape
    sent: Accumulator | None  # None until the answer streams (waiting for the backend, or not streamed)


class Progress:
    def __init__(self) -> None:
        self._streams: dict[int, _Stream] = {}
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Live feeds connected to this process. With the in-memory layer nobody else can listen, so
        # with none connected nothing is published (a benchmark run pays only the ticker's wake-ups).
        self.listeners = 0

    def watch(self, tape: Tape, sent: Accumulator | None = None) -> None:
        """Report an exchange's progress until it finishes (or `forget`); `sent` once its answer streams."""
        self._streams[tape.key] = _Stream(tape, sent)
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._loop is not loop:
            self._loop = loop
            # A fresh context: the ticker must not inherit the request's asgiref thread context.
            self._task = loop.create_task(self._run(), context=contextvars.Context())

    def forget(self, tape: Tape) -> None:
        self._streams.pop(tape.key, None)

    def open_streams(self) -> int:
        return len(self._streams)

    async def _run(self) -> None:
        while self._streams:
            await asyncio.sleep(TICK_S)
            try:
                await self.publish_once()
            except Exception:  # a dashboard problem must never touch the streams
                logger.exception("progress: publishing failed")
        self._task = None

    async def publish_once(self) -> int:
        """One update per exchange in flight whose pending row is written (it has a pk); returns how many."""
        layer = get_channel_layer()
        if layer is None or (self.listeners <= 0 and isinstance(layer, InMemoryChannelLayer)):
            return 0
        now = time.perf_counter()
        sent = 0
        for stream in list(self._streams.values()):
            pk = recorder.pending_pk(stream.tape.key)
            if pk is None or stream.tape.finished:
                continue
            await layer.group_send(GROUP, progress_event(pk, stream, now))
            sent += 1
        return sent


def progress_event(pk: int, stream: _Stream, now: float) -> dict[str, object]:
    chars = stream.sent.generated_chars() if stream.sent is not None else 0
    return {
        "type": "exchange.progress",
        "id": pk,
        "elapsed_ms": round((now - stream.tape.t0) * 1000),
        "tokens": -(-chars // CHARS_PER_TOKEN),  # estimated from what the client got so far
        "first_token": stream.tape.first_token_at is not None,
    }


progress = Progress()

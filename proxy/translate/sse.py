"""Incremental server-sent-events decoding and encoding. No IO.

Follows https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation:
lines end in CRLF, LF or CR; a blank line dispatches; `:` starts a comment; `data` lines join with LF.
"""

from __future__ import annotations

import orjson

from .types import SSEEvent, StreamEvent


class SSEDecoder:
    """Feed bytes as they arrive, get whole events back; flush() at end of stream."""

    __slots__ = ("_buffer", "_data", "_event", "_has_data")

    def __init__(self) -> None:
        self._buffer = b""
        self._event: str | None = None
        self._data: list[str] = []
        self._has_data = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buffer = self._buffer + chunk if self._buffer else chunk
        trailing_cr = False
        if b"\r" in buffer:
            # A CR at the very end may be the first half of a CRLF split across chunks: hold it back.
            trailing_cr = buffer.endswith(b"\r")
            if trailing_cr:
                buffer = buffer[:-1]
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buffer.split(b"\n")
        rest = lines.pop()
        self._buffer = rest + b"\r" if trailing_cr else rest
        return self._lines(lines)

    def flush(self) -> list[SSEEvent]:
        """End of stream. An event never closed by its blank line is discarded, as the spec says: it may be
        half of a frame from a connection that broke."""
        # A held-back CR still ended its line (it was only waiting to see whether an LF followed).
        events = self._lines([self._buffer[:-1]]) if self._buffer.endswith(b"\r") else []
        self._buffer = b""
        self._data = []
        self._event = None
        self._has_data = False
        return events

    def _lines(self, lines: list[bytes]) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        for raw in lines:
            if not raw:
                event = self._dispatch()
                if event is not None:
                    events.append(event)
                continue
            line = raw.decode("utf-8", errors="replace")
            if line[0] == ":":
                continue
            name, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if name == "data":
                self._data.append(value)
                self._has_data = True
            elif name == "event":
                self._event = value
            # "id" and "retry" are not used by any LLM API we speak.
        return events

    def _dispatch(self) -> SSEEvent | None:
        if not self._has_data:
            self._event = None
            return None
        event = SSEEvent(data="\n".join(self._data), event=self._event)
        self._data = []
        self._event = None
        self._has_data = False
        return event


def encode_event(event: StreamEvent) -> bytes:
    """An Anthropic stream event as an SSE frame: `event: <type>` then its JSON."""
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def encode_events(events: list[StreamEvent]) -> bytes:
    return b"".join(encode_event(e) for e in events)

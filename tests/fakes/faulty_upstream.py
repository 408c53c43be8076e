"""A fault-injecting OpenAI Chat Completions server: real HTTP on loopback, written byte by byte.

aiohttp's server (tests/fakes/openai_upstream.py) always writes well-formed HTTP; the faults a real
backend shows need lower control: a Content-Length it does not honour, a connection closed or reset
mid-stream, a stall, malformed SSE, a drip. This one speaks HTTP/1.1 itself over asyncio streams,
validates each request as OpenAI would (path, JSON body with `model` and `messages`), and does what the
test scripted for it. It counts connections open at any moment, so tests can see a leaked one, and
when each request's connection went away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.openai_upstream import chunk, usage_chunk


@dataclass
class Fault:
    """What to do with one request. Defaults: a well-formed streamed (or plain) answer."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None  # a plain answer's bytes (default: a chat.completion, or an error body)
    frames: list[bytes] | None = None  # SSE frames as written (default: a short text stream)
    content_length: int | None = None  # announce this length (a lie, when shorter than the body)
    head_delay_s: float = 0.0  # before the status line
    delay_s: float = 0.0  # between frames
    stall_after: int | None = None  # after this many frames, send nothing more (socket kept open)
    close_after: int | None = None  # after this many frames, close the connection (FIN)
    reset_after: int | None = None  # after this many frames, reset the connection (RST)
    close_before_head: bool = False  # read the request, then close without a byte


def sse(payload: Any) -> bytes:
    return b"data: " + (payload if isinstance(payload, bytes) else json.dumps(payload).encode()) + b"\n\n"


def text_frames(*pieces: str, prompt: int = 10, completion: int = 5) -> list[bytes]:
    frames = [sse(chunk({"role": "assistant", "content": ""}))]
    frames += [sse(chunk({"content": p})) for p in pieces]
    frames += [sse(chunk({}, finish="stop")), sse(usage_chunk(prompt, completion)), b"data: [DONE]\n\n"]
    return frames


def completion_body(text: str = "ok") -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-f",
            "object": "chat.completion",
            "created": 1_760_000_000,
            "model": "fake-model",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
        }
    ).encode()


def error_body(status: int, message: str, type_: str = "server_error") -> bytes:
    return json.dumps({"error": {"message": message, "type": type_, "param": None, "code": status}}).encode()


_REASONS = {200: "OK", 400: "Bad Request", 429: "Too Many Requests", 500: "Internal Server Error",
            502: "Bad Gateway", 503: "Service Unavailable", 529: "Overloaded"}  # fmt: skip


@dataclass
class Seen:
    """One request as received, and what became of its connection."""

    body: dict[str, Any]
    received_at: float
    closed_at: float | None = None  # when the peer (the proxy) went away, or we closed


class FaultyOpenAI:
    """`with FaultyOpenAI() as fake:` then `fake.script(Fault(...))`; `fake.url` ends in /v1."""

    def __init__(self) -> None:
        self._faults: deque[Fault] = deque()
        self.seen: list[Seen] = []
        self.open_connections = 0
        self.problems: list[str] = []  # requests that were not valid OpenAI requests
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *faults: Fault) -> None:
        self._faults.extend(faults)

    def reset(self) -> None:
        self._faults.clear()
        self.seen.clear()
        self.problems.clear()

    def __enter__(self) -> FaultyOpenAI:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def wait_for(self, n: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.seen) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.seen)} requests arrived, expected {n}")
            time.sleep(0.01)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One request per connection (`connection: close`), so the peer's going away can be watched
        for while the answer is written: the proxy sends nothing more on it."""
        self.open_connections += 1
        seen: Seen | None = None
        try:
            seen = await self._read_request(reader)
            if seen is None:
                return
            fault = self._faults.popleft() if self._faults else Fault()
            answer = asyncio.ensure_future(self._answer(fault, seen, writer))
            gone = asyncio.ensure_future(reader.read(1))  # b"" once the proxy closed its side
            await asyncio.wait([answer, gone], return_when=asyncio.FIRST_COMPLETED)
            if not answer.done():
                answer.cancel()
            gone.cancel()
            for task in (answer, gone):
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await task
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open_connections -= 1
            if seen is not None:
                seen.closed_at = time.monotonic()
            writer.close()

    async def _read_request(self, reader: asyncio.StreamReader) -> Seen | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None  # the proxy closed an idle keep-alive connection
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {
            k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in header_lines if ":" in h)
        }
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        method, path, _ = request_line.split(" ", 2)
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if method != "POST" or path != "/v1/chat/completions" or not isinstance(parsed, dict):
            self.problems.append(f"{request_line!r}: not an OpenAI chat completion request")
            parsed = {}
        elif not isinstance(parsed.get("model"), str) or not isinstance(parsed.get("messages"), list):
            self.problems.append(f"{request_line!r}: body without model or messages")
        seen = Seen(body=parsed, received_at=time.monotonic())
        self.seen.append(seen)
        return seen

    async def _answer(self, fault: Fault, seen: Seen, writer: asyncio.StreamWriter) -> None:
        """Write the scripted answer."""
        if fault.head_delay_s:
            await asyncio.sleep(fault.head_delay_s)
        if fault.close_before_head:
            return
        stream = bool(seen.body.get("stream")) and fault.status < 400 and fault.body is None
        if stream:
            frames = fault.frames if fault.frames is not None else text_frames("ok")
            headers = {"content-type": "text/event-stream", "transfer-encoding": "chunked"}
        else:
            body = fault.body
            if body is None:
                body = completion_body() if fault.status < 400 else error_body(fault.status, "scripted")
            frames = [body]
            headers = {"content-type": "application/json", "content-length": str(len(body))}
        headers["connection"] = "close"
        if fault.content_length is not None:
            headers.pop("transfer-encoding", None)
            headers["content-length"] = str(fault.content_length)
        headers.update({k.lower(): v for k, v in fault.headers.items()})
        chunked = headers.get("transfer-encoding") == "chunked"
        status_line = f"HTTP/1.1 {fault.status} {_REASONS.get(fault.status, 'Status')}\r\n"
        head = status_line + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        writer.write(head.encode("latin-1"))
        await writer.drain()
        for i, frame in enumerate(frames):
            if fault.stall_after is not None and i >= fault.stall_after:
                await asyncio.sleep(3600)
            if fault.close_after is not None and i >= fault.close_after:
                return
            if fault.reset_after is not None and i >= fault.reset_after:
                writer.transport.abort()
                return
            writer.write(b"%x\r\n%s\r\n" % (len(frame), frame) if chunked else frame)
            await writer.drain()
            if fault.delay_s:
                await asyncio.sleep(fault.delay_s)
        if chunked:
            writer.write(b"0\r\n\r\n")
            await writer.drain()

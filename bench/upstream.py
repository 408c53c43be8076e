"""A fast fake OpenAI Chat Completions server for the benchmark (raw asyncio + orjson, cached replies).

    python bench/upstream.py --port 18080

POST /v1/chat/completions answers from replies built once: non-stream = a ~200-token message; stream =
role chunk, N content chunks, finish chunk, usage chunk (`choices: []`), `data: [DONE]`. In tool mode the
answer is a `Read` tool call whose arguments arrive in N fragments. POST /_config {"chunks", "delay_ms",
"mode"} switches what the next requests get (run.py sets it between phases), so the request bodies are
the real captured ones, untouched. Every request body is parsed, so a proxy sending bad JSON gets a 400.
Costs well under 0.1 ms CPU per request: never the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

import orjson

WORDS = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta")
TEXT = " ".join(WORDS[i % len(WORDS)] for i in range(200))  # ~200 tokens
MODEL = "gpt-bench"


def tool_args(chunks: int) -> str:
    """Valid `Read` arguments long enough to split into `chunks` non-empty fragments."""
    depth = max(1, chunks // 4)
    return orjson.dumps({"file_path": "/repo/" + "src/" * depth + "handlers.py", "limit": 200}).decode()


def _split(text: str, n: int) -> list[str]:
    step = -(-len(text) // n)
    return [text[i : i + step] for i in range(0, len(text), step)]


def _sse(obj: object) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _chunk(delta: dict, finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return _sse(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1764000000,
            "model": MODEL,
            "choices": [choice],
        }
    )


USAGE = {"prompt_tokens": 20000, "completion_tokens": 200, "total_tokens": 20200}


def stream_events(mode: str, chunks: int) -> list[bytes]:
    events = [_chunk({"role": "assistant", "content": ""})]
    if mode == "tool":
        call = {
            "index": 0,
            "id": "call_bench_1",
            "type": "function",
            "function": {"name": "Read", "arguments": ""},
        }
        events.append(_chunk({"tool_calls": [call]}))
        for part in _split(tool_args(chunks), chunks):
            events.append(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}))
        finish = "tool_calls"
    else:
        events += [_chunk({"content": part}) for part in _split(TEXT, chunks)]
        finish = "stop"
    events.append(_chunk({}, finish))
    events.append(
        _sse(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion.chunk",
                "created": 1764000000,
                "model": MODEL,
                "choices": [],
                "usage": USAGE,
            }
        )
    )
    events.append(b"data: [DONE]\n\n")
    return events


def message(mode: str, chunks: int) -> bytes:
    if mode == "tool":
        msg = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_bench_1",
                    "type": "function",
                    "function": {"name": "Read", "arguments": tool_args(chunks)},
                }
            ],
        }
        finish = "tool_calls"
    else:
        msg, finish = {"role": "assistant", "content": TEXT}, "stop"
    return orjson.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1764000000,
            "model": MODEL,
            "choices": [{"index": 0, "message": msg, "finish_reason": finish}],
            "usage": USAGE,
        }
    )


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _head(status: int, ctype: bytes, extra: bytes) -> bytes:
    reason = {200: b"OK", 400: b"Bad Request", 404: b"Not Found"}[status]
    return b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\n%s\r\n" % (status, reason, ctype, extra)


class Replies:
    """The cached bytes of every reply for the current config."""

    def __init__(self) -> None:
        self.set(chunks=100, delay_ms=0.0, mode="text")

    def set(self, chunks: int, delay_ms: float, mode: str) -> None:
        self.chunks, self.delay, self.mode = chunks, delay_ms / 1000, mode
        body = message(mode, chunks)
        self.plain = _head(200, b"application/json", b"content-length: %d\r\n" % len(body)) + body
        self.events = [_http_chunk(e) for e in stream_events(mode, chunks)] + [b"0\r\n\r\n"]
        self.stream_head = _head(
            200, b"text/event-stream", b"transfer-encoding: chunked\r\ncache-control: no-cache\r\n"
        )
        self.stream_all = self.stream_head + b"".join(self.events)


REPLIES = Replies()


def _simple(status: int, body: bytes) -> bytes:
    return _head(status, b"application/json", b"content-length: %d\r\n" % len(body)) + body


class Conn(asyncio.Protocol):
    """Keep-alive HTTP/1.1 with Content-Length request bodies (what httpx and aiohttp send)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport
        self.buf = b""
        self.busy = False

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._next()

    def _next(self) -> None:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[:end].decode("latin-1").split("\r\n")
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if len(self.buf) < end + 4 + length:
            return
        body, self.buf = self.buf[end + 4 : end + 4 + length], self.buf[end + 4 + length :]
        self._answer(head[0].split(" ")[1], body)

    def _answer(self, path: str, raw: bytes) -> None:
        try:
            req = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            return self._send(
                _simple(400, b'{"error":{"message":"bad json","type":"invalid_request_error"}}')
            )
        if path == "/_config":
            REPLIES.set(int(req.get("chunks", 100)), float(req.get("delay_ms", 0)), req.get("mode", "text"))
            return self._send(_simple(200, b"{}"))
        if not path.endswith("/chat/completions"):
            return self._send(_simple(404, b'{"error":{"message":"not found"}}'))
        if not req.get("stream"):
            return self._send(REPLIES.plain)
        if REPLIES.delay <= 0:
            return self._send(REPLIES.stream_all)
        self.busy = True
        self.drip = asyncio.ensure_future(self._drip())  # kept: the loop holds tasks only weakly

    async def _drip(self) -> None:
        self.t.write(REPLIES.stream_head)
        for ev in REPLIES.events:
            if self.t.is_closing():
                return
            self.t.write(ev)
            await asyncio.sleep(REPLIES.delay)
        self.busy = False
        self._next()

    def _send(self, data: bytes) -> None:
        self.t.write(data)
        self._next()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    try:
        import uvloop  # optional: only when installed

        uvloop.install()
    except ImportError:
        pass
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(Conn, "127.0.0.1", args.port, backlog=2048))
    print(f"upstream on {args.port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        loop.run_until_complete(server.serve_forever())


if __name__ == "__main__":
    main()

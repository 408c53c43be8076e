"""A scripted OpenAI Chat Completions server over real HTTP (aiohttp), for tests.

It reproduces the vendor's wire format: `chat.completion` bodies, `chat.completion.chunk` SSE frames,
the usage chunk with `choices: []`, `data: [DONE]`, OpenAI error bodies, and streams that break off.
Tests queue replies with `script(...)`; every request received is kept in `requests`.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

CREATED = 1_760_000_000


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON body (non-stream) or None
    chunks: list[Any] = field(default_factory=list)  # SSE payloads: dicts, "[DONE]", or raw bytes
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # between chunks
    first_delay_s: float = 0.0  # before the headers
    break_after: int | None = None  # close the connection abruptly after this many chunks
    hang_after: int | None = None  # stop sending (keep the socket open) after this many chunks


def chunk(
    delta: dict[str, Any], *, finish: str | None = None, model: str = "fake-model", cid: str = "chatcmpl-1"
) -> dict:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def usage_chunk(prompt: int, completion: int, cached: int = 0, model: str = "fake-model") -> dict:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
        },
    }


def text_stream(
    *pieces: str, prompt: int = 10, completion: int = 5, cached: int = 0, finish: str = "stop"
) -> Reply:
    chunks: list[Any] = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"content": p}) for p in pieces]
    chunks += [chunk({}, finish=finish), usage_chunk(prompt, completion, cached), "[DONE]"]
    return Reply(chunks=chunks)


def tool_stream(
    calls: list[tuple[str, str, list[str]]], *, text: str = "", prompt: int = 10, completion: int = 5
) -> Reply:
    """calls: (id, name, argument fragments). The first fragment carries index/id/name, as OpenAI sends it."""
    chunks: list[Any] = [chunk({"role": "assistant", "content": None})]
    if text:
        chunks.append(chunk({"content": text}))
    for index, (call_id, name, fragments) in enumerate(calls):
        first = fragments[0] if fragments else ""
        chunks.append(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call_id,
                            "type": "function",
                            "function": {"name": name, "arguments": first},
                        }
                    ]
                }
            )
        )
        for fragment in fragments[1:]:
            chunks.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}))
    chunks += [chunk({}, finish="tool_calls"), usage_chunk(prompt, completion), "[DONE]"]
    return Reply(chunks=chunks)


def completion(
    content: str | None = "Hello!",
    *,
    tool_calls: list[dict] | None = None,
    finish: str = "stop",
    prompt: int = 10,
    completion_tokens: int = 5,
    cached: int = 0,
    extra: dict | None = None,
) -> Reply:
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    message.update(extra or {})
    return Reply(
        body={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": CREATED,
            "model": "fake-model",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": cached},
            },
        }
    )


def error(
    status: int, message: str, *, type_: str = "invalid_request_error", headers: dict | None = None
) -> Reply:
    return Reply(
        status=status,
        headers=headers or {},
        body={"error": {"message": message, "type": type_, "param": None, "code": None}},
    )


# What Chat Completions accepts, as OpenAI checks it (https://platform.openai.com/docs/api-reference/chat):
# content part types per role, and a function name's pattern.
_PARTS = {
    "system": {"text"},
    "developer": {"text"},
    "user": {"text", "image_url", "input_audio", "file"},
    "assistant": {"text", "refusal"},
    "tool": {"text"},
}
_FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def chat_request_problem(body: Any) -> str | None:
    """Why OpenAI would refuse this Chat Completions body with a 400, or None."""
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return "model: required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: must be a non-empty array"
    open_calls: set[str] = set()
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in _PARTS:
            return f"messages[{i}].role: invalid value {role!r}"
        content = message.get("content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                kind = part.get("type") if isinstance(part, dict) else None
                if kind not in _PARTS[role]:
                    return f"messages[{i}].content[{j}].type: invalid value {kind!r} for role {role}"
                if kind == "text" and not isinstance(part.get("text"), str):
                    return f"messages[{i}].content[{j}].text: required"
                if kind == "file":
                    file = part.get("file")
                    if not isinstance(file, dict) or not (file.get("file_data") or file.get("file_id")):
                        return f"messages[{i}].content[{j}].file: file_data or file_id required"
        elif not isinstance(content, str) and not (role == "assistant" and message.get("tool_calls")):
            return f"messages[{i}].content: must be a string or an array of content parts"
        if role == "tool":
            if message.get("tool_call_id") not in open_calls:
                return f"messages[{i}]: tool message does not answer a preceding tool call"
            open_calls.discard(message["tool_call_id"])
        else:
            if open_calls and role != "system":  # every call is answered before the conversation goes on
                return f"messages[{i}]: tool calls {sorted(open_calls)} have no tool message"
            open_calls = {c.get("id") for c in message.get("tool_calls") or [] if isinstance(c, dict)}
    for i, tool in enumerate(body.get("tools") or []):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not _FUNCTION_NAME.match(str(function.get("name"))):
            return f"tools[{i}].function.name: must match {_FUNCTION_NAME.pattern}"
        if "strict" in function and not isinstance(function["strict"], bool):
            return f"tools[{i}].function.strict: must be a boolean"
    return None


class FakeOpenAI:
    """Start with `with FakeOpenAI() as fake:`; `fake.url` is the OpenAI base URL (ending in /v1).

    It refuses what OpenAI would refuse (`chat_request_problem`), as OpenAI does, and keeps the reasons
    in `rejections`: a translation bug shows there instead of passing unseen."""

    paths: tuple[str, ...] = ("/v1/chat/completions",)

    def __init__(self) -> None:
        self._replies: deque[Reply] = deque()
        self.queries: list[str] = []
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.disconnects = 0
        self.rejections: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *replies: Reply) -> None:
        self._replies.extend(replies)

    def reset(self) -> None:
        self._replies.clear()
        self.requests.clear()
        self.headers.clear()
        self.queries.clear()
        self.rejections.clear()
        self.disconnects = 0

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        for route in self.paths:
            app.router.add_post(route, self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        self.queries.append(request.query_string)
        self.headers.append({k.lower(): v for k, v in request.headers.items()})
        problem = self.problem(body)
        if problem is not None:
            self.rejections.append(problem)
            return web.json_response(error(400, problem).body, status=400)
        reply = self._replies.popleft() if self._replies else (self.default_reply(body))
        if reply.first_delay_s:
            await asyncio.sleep(reply.first_delay_s)
        if not reply.chunks:
            return web.json_response(reply.body, status=reply.status, headers=reply.headers)
        response = web.StreamResponse(
            status=reply.status, headers={"content-type": "text/event-stream", **reply.headers}
        )
        await response.prepare(request)
        try:
            for i, payload in enumerate(reply.chunks):
                if reply.break_after is not None and i >= reply.break_after:
                    await asyncio.sleep(0.1)  # let what was written reach the peer: abort() drops the buffer
                    request.transport.abort()  # type: ignore[union-attr]
                    return response
                if reply.hang_after is not None and i >= reply.hang_after:
                    await asyncio.sleep(3600)
                if isinstance(payload, bytes):
                    data = payload
                elif payload == "[DONE]":
                    data = b"data: [DONE]\n\n"
                else:
                    data = b"data: " + json.dumps(payload).encode() + b"\n\n"
                await response.write(data)
                if reply.delay_s:
                    await asyncio.sleep(reply.delay_s)
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnects += 1
            raise
        await response.write_eof()
        return response

    def problem(self, body: Any) -> str | None:
        return chat_request_problem(body)

    def default_reply(self, body: dict[str, Any]) -> Reply:
        return text_stream("ok") if body.get("stream") else completion("ok")

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.requests) < n and time.monotonic() < deadline:
            time.sleep(0.01)

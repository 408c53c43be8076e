"""A scripted Anthropic Messages API server: POST /v1/messages (SSE and not) and count_tokens.

Wire format as documented at https://docs.anthropic.com/en/api/messages-streaming: message_start,
content_block_start/delta/stop per block (thinking with a signature_delta, text, tool_use with
input_json_delta), message_delta with stop_reason and usage, message_stop; errors as `event: error`.
"""

from __future__ import annotations

import itertools
import json
from http.server import BaseHTTPRequestHandler
from typing import Any

from .base import ChunkedStream, ScriptedServer, pieces, send_json, text_of
from .script import JSON, Context, Turn, resolve, resolve_call, working_directory


class AnthropicServer(ScriptedServer):
    name = "scripted-anthropic"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ids = itertools.count(1)

    def handle(self, h: BaseHTTPRequestHandler, path: str, body: JSON) -> None:
        if path.endswith("/messages/count_tokens"):
            send_json(h, 200, {"input_tokens": max(1, len(json.dumps(body)) // 4)})
        elif path.endswith("/messages"):
            self.play(h, path, body)
        else:
            send_json(h, 404, self.error_body("not_found_error", f"no route {path}"))

    def context(self, body: JSON) -> Context:
        messages = [m for m in body.get("messages", []) if isinstance(m, dict)]
        users = [m for m in messages if m.get("role") == "user"]
        system = text_of(body.get("system", ""))
        results = [
            text_of(block.get("content", ""))
            for m in users
            if isinstance(m.get("content"), list)
            for block in m["content"]
            if isinstance(block, dict) and block.get("type") == "tool_result"
        ]
        fmt = (body.get("output_config") or {}).get("format") or {}
        return Context(
            model=str(body.get("model", "")),
            tools={t["name"]: t.get("input_schema") or {} for t in body.get("tools") or [] if "name" in t},
            cwd=working_directory(
                "\n".join([system, *(text_of(m.get("content", "")) for m in messages[:3])])
            ),
            prompt=text_of(users[0].get("content", "")) if users else "",
            turn=sum(1 for m in messages if m.get("role") == "assistant"),
            tool_results=results,
            wants_json=fmt.get("schema") if fmt.get("type") == "json_schema" else None,
        )

    def error_body(self, kind: str, message: str) -> JSON:
        return {"type": "error", "error": {"type": kind, "message": message}}

    def _blocks(self, turn: Turn, ctx: Context) -> list[tuple[JSON, int]]:
        """The reply's content blocks, each with the chunk size its stream deltas use."""
        blocks: list[tuple[JSON, int]] = []
        if turn.thinking:
            blocks.append(({"type": "thinking", "thinking": turn.thinking, "signature": "sig-e2e"}, 16))
        text = resolve(turn.text, ctx)
        if text:
            blocks.append(({"type": "text", "text": text}, turn.text_chunk))
        for tc in turn.calls:
            rc = resolve_call(tc, ctx)
            block = {"type": "tool_use", "id": f"toolu_e2e{next(self._ids):04d}", "name": rc.name}
            blocks.append(({**block, "input": rc.arguments}, rc.chunk))
        return blocks

    def reply(self, h: BaseHTTPRequestHandler, turn: Turn, ctx: Context, body: JSON) -> None:
        stream = bool(body.get("stream"))
        if turn.fail_after is not None and not stream and not turn.stream_only:
            send_json(h, 529, self.error_body("overloaded_error", "scripted backend failure"))
            return
        blocks = self._blocks(turn, ctx)
        stop = "tool_use" if turn.calls else "end_turn"
        usage = {"input_tokens": 100, "output_tokens": 20}
        message = {
            "id": f"msg_e2e{next(self._ids):04d}",
            "type": "message",
            "role": "assistant",
            "model": ctx.model,
            "stop_sequence": None,
        }
        if not stream:
            content = [b for b, _ in blocks]
            send_json(h, 200, {**message, "content": content, "stop_reason": stop, "usage": usage})
            return
        out = ChunkedStream(h, self)
        start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
        out.send(json.dumps({"type": "message_start", "message": start}), "message_start")
        if turn.fail_after is not None:
            self._stream_block(
                out, 0, {"type": "text", "text": turn.fail_after}, turn.text_chunk, close=False
            )
            if turn.hang_up:
                out.hang_up()
                return
            err = self.error_body("overloaded_error", "scripted backend failure mid-stream")
            out.send(json.dumps(err), "error")
            out.end()
            return
        for index, (block, chunk) in enumerate(blocks):
            self._stream_block(out, index, block, chunk)
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": 20},
        }
        out.send(json.dumps(delta), "message_delta")
        out.send(json.dumps({"type": "message_stop"}), "message_stop")
        out.end()

    def _stream_block(
        self, out: ChunkedStream, index: int, block: JSON, chunk: int, close: bool = True
    ) -> None:
        kind = block["type"]
        if kind == "thinking":
            empty: JSON = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": p} for p in pieces(block["thinking"], chunk)]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        elif kind == "text":
            empty = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in pieces(block["text"], chunk)]
        else:
            empty = {**block, "input": {}}
            args = json.dumps(block["input"])
            deltas = [
                {"type": "input_json_delta", "partial_json": p} for p in pieces(args, chunk or len(args))
            ]
        start = {"type": "content_block_start", "index": index, "content_block": empty}
        out.send(json.dumps(start), "content_block_start")
        for delta in deltas:
            out.send(
                json.dumps({"type": "content_block_delta", "index": index, "delta": delta}),
                "content_block_delta",
            )
        if close:
            out.send(json.dumps({"type": "content_block_stop", "index": index}), "content_block_stop")

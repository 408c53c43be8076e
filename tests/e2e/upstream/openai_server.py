"""A scripted OpenAI Chat Completions server: POST /v1/chat/completions (SSE and not), GET /v1/models.

Wire format as the OpenAI API sends it (https://platform.openai.com/docs/api-reference/chat-streaming):
`chat.completion.chunk` objects, the role in the first delta, tool calls as `tool_calls[{index, id,
type, function{name, arguments}}]` whose arguments arrive in pieces, `finish_reason` in the last
choice chunk, a usage chunk with empty `choices` when `stream_options.include_usage` is set, then
`data: [DONE]`. Thinking arrives as `reasoning_content` deltas, as DeepSeek and vLLM send it. A
failure mid-stream is a `data: {"error": {...}}` chunk and the end of the body, without [DONE].
"""

from __future__ import annotations

import itertools
import json
from http.server import BaseHTTPRequestHandler
from typing import Any

from .base import ChunkedStream, ScriptedServer, pieces, send_json, text_of
from .script import JSON, Context, Turn, resolve, resolve_call, scenario_name, working_directory

CREATED = 1_764_000_000  # a fixed timestamp: replies are deterministic


class OpenAIServer(ScriptedServer):
    name = "scripted-openai"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ids = itertools.count(1)

    def handle(self, h: BaseHTTPRequestHandler, path: str, body: JSON) -> None:
        if path.endswith("/chat/completions"):
            self.play(h, path, body)
        else:
            send_json(h, 404, self.error_body("invalid_request_error", f"Unknown request URL: POST {path}"))

    def error_body(self, kind: str, message: str) -> JSON:
        return {"error": {"message": message, "type": kind, "param": None, "code": kind}}

    def context(self, body: JSON) -> Context:
        messages = [m for m in body.get("messages", []) if isinstance(m, dict)]
        users = [m for m in messages if m.get("role") == "user"]
        head = "\n".join(text_of(m.get("content", "")) for m in messages[:4])
        fmt = body.get("response_format") or {}
        tools = {
            t["function"]["name"]: t["function"].get("parameters") or {}
            for t in body.get("tools") or []
            if isinstance(t, dict) and isinstance(t.get("function"), dict)
        }
        return Context(
            model=str(body.get("model", "")),
            tools=tools,
            cwd=working_directory(head),
            prompt=text_of(users[0].get("content", "")) if users else "",
            turn=sum(1 for m in messages if m.get("role") == "assistant"),
            tool_results=[text_of(m.get("content", "")) for m in messages if m.get("role") == "tool"],
            wants_json=(fmt.get("json_schema") or {}).get("schema")
            if fmt.get("type") == "json_schema"
            else None,
        )

    def reply(self, h: BaseHTTPRequestHandler, turn: Turn, ctx: Context, body: JSON) -> None:
        scenario = self.scenarios.get(scenario_name(ctx.prompt) or "")
        asked = body.get("max_completion_tokens") or body.get("max_tokens")
        if scenario and scenario.max_output and isinstance(asked, int) and asked > scenario.max_output:
            limit = scenario.max_output
            refusal = f"max_tokens is too large: {asked}. This model supports at most {limit} completion "
            refusal += f"tokens, whereas you provided {asked}."
            error = {"message": refusal, "type": "invalid_request_error", "param": "max_tokens"}
            send_json(h, 400, {"error": {**error, "code": "invalid_value"}})
            return
        stream = bool(body.get("stream"))
        if turn.fail_after is not None and not stream and not turn.stream_only:
            send_json(h, 503, self.error_body("server_error", "scripted backend failure"))
            return
        text = resolve(turn.text, ctx)
        calls = [(f"call_e2e{next(self._ids):04d}", resolve_call(tc, ctx)) for tc in turn.calls]
        finish = "tool_calls" if calls else "stop"
        usage = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
        completion_id = f"chatcmpl-e2e{next(self._ids):04d}"
        if not stream:
            message: JSON = {"role": "assistant", "content": text or None}
            if turn.thinking:
                message["reasoning_content"] = turn.thinking
            if calls:
                message["tool_calls"] = [
                    {
                        "id": cid,
                        "type": "function",
                        "function": {"name": rc.name, "arguments": rc.arguments_text()},
                    }
                    for cid, rc in calls
                ]
            send_json(
                h,
                200,
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": CREATED,
                    "model": ctx.model,
                    "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                    "usage": usage,
                    "system_fingerprint": "fp_e2e",
                },
            )
            return
        out = ChunkedStream(h, self)

        def chunk(delta: JSON, finish_reason: str | None = None) -> None:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            out.send(
                json.dumps(
                    {
                        "id": completion_id,
                        "object": "chat.completion.chunk",
                        "created": CREATED,
                        "model": ctx.model,
                        "system_fingerprint": "fp_e2e",
                        "choices": [choice],
                    }
                )
            )

        chunk({"role": "assistant", "content": ""})
        if turn.fail_after is not None:
            for piece in pieces(turn.fail_after, turn.text_chunk):
                chunk({"content": piece})
            if turn.hang_up:
                out.hang_up()
                return
            out.send(json.dumps(self.error_body("server_error", "scripted backend failure mid-stream")))
            out.end()
            return
        for piece in pieces(turn.thinking, 16) if turn.thinking else []:
            chunk({"reasoning_content": piece})
        for piece in pieces(text, turn.text_chunk) if text else []:
            chunk({"content": piece})
        for index, (cid, rc) in enumerate(calls):
            head = {
                "index": index,
                "id": cid,
                "type": "function",
                "function": {"name": rc.name, "arguments": ""},
            }
            chunk({"tool_calls": [head]})
            args = rc.arguments_text()
            for piece in pieces(args, rc.chunk or 24):
                chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        chunk({}, finish)
        if (body.get("stream_options") or {}).get("include_usage"):
            out.send(
                json.dumps(
                    {
                        "id": completion_id,
                        "object": "chat.completion.chunk",
                        "created": CREATED,
                        "model": ctx.model,
                        "system_fingerprint": "fp_e2e",
                        "choices": [],
                        "usage": usage,
                    }
                )
            )
        out.send("[DONE]")
        out.end()

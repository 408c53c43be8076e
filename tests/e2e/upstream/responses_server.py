"""A scripted OpenAI Responses API server: POST /v1/responses (SSE and not).

Wire format as the API sends it (https://platform.openai.com/docs/api-reference/responses-streaming):
`event: response.<kind>` + `data:` frames numbered by `sequence_number`, built by the same `Stream`
builder the integration fake uses. Thinking is a reasoning item with summary text and encrypted
content; tool calls are `function_call` items whose arguments arrive in pieces. Every request is first
checked as the API checks it (tests/fakes/responses_upstream.request_problem): a refusal is answered
with OpenAI's 400 and kept in `errors`, so a translation bug fails the test instead of passing unseen.
"""

from __future__ import annotations

import itertools
import json
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.responses_upstream import Stream, request_problem, usage

from .base import ChunkedStream, ScriptedServer, pieces, send_json, text_of
from .script import JSON, Context, Turn, resolve, resolve_call, working_directory

_ASSISTANT_ITEMS = ("reasoning", "function_call")


def _is_assistant(item: JSON) -> bool:
    return item.get("type") in _ASSISTANT_ITEMS or item.get("role") == "assistant"


def _output_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    return "\n".join(p.get("text", "") for p in output or [] if isinstance(p, dict))


class ResponsesServer(ScriptedServer):
    name = "scripted-responses"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ids = itertools.count(1)

    def handle(self, h: BaseHTTPRequestHandler, path: str, body: JSON) -> None:
        if not path.endswith("/responses"):
            send_json(h, 404, self.error_body("invalid_request_error", f"Unknown request URL: POST {path}"))
            return
        if not str(h.headers.get("authorization", "")).startswith("Bearer "):
            self.errors.append("no bearer key")
            send_json(h, 401, self.error_body("invalid_request_error", "You didn't provide an API key."))
            return
        problem = request_problem(body)
        if problem is not None:
            self.errors.append(problem[0])
            error = {
                "message": problem[0],
                "type": "invalid_request_error",
                "param": problem[1],
                "code": problem[2],
            }
            send_json(h, 400, {"error": error})
            return
        self.play(h, path, body)

    def error_body(self, kind: str, message: str) -> JSON:
        return {"error": {"message": message, "type": kind, "param": None, "code": kind}}

    def context(self, body: JSON) -> Context:
        items = [i for i in body.get("input", []) if isinstance(i, dict)]
        users = [i for i in items if i.get("role") == "user"]
        head = "\n".join(
            [str(body.get("instructions") or "")] + [text_of(i.get("content", "")) for i in items[:4]]
        )
        fmt = (body.get("text") or {}).get("format") or {}
        tools = {
            t["name"]: t.get("parameters") or {}
            for t in body.get("tools") or []
            if t.get("type") == "function"
        }
        # One assistant turn may be several items (reasoning, text, calls): count where turns begin.
        turns = sum(
            1
            for prev, item in itertools.pairwise([{}, *items])
            if _is_assistant(item) and not _is_assistant(prev)
        )
        return Context(
            model=str(body.get("model", "")),
            tools=tools,
            cwd=working_directory(head),
            prompt=text_of(users[0].get("content", "")) if users else "",
            turn=turns,
            tool_results=[
                _output_text(i.get("output")) for i in items if i.get("type") == "function_call_output"
            ],
            wants_json=fmt.get("schema") if fmt.get("type") == "json_schema" else None,
        )

    def reply(self, h: BaseHTTPRequestHandler, turn: Turn, ctx: Context, body: JSON) -> None:
        stream = bool(body.get("stream"))
        if turn.fail_after is not None and not stream and not turn.stream_only:
            send_json(h, 503, self.error_body("server_error", "scripted backend failure"))
            return
        n = next(self._ids)
        built = Stream(model=ctx.model).created()
        failing = turn.fail_after is not None and stream
        if failing:
            built.message(*pieces(turn.fail_after or "", turn.text_chunk))
            # A failure mid-stream: the stream ends in `response.failed` (or the connection drops).
            built.events = [e for e in built.events if e["type"] != "response.output_item.done"]
            if not turn.hang_up:
                built.failed("server_error", "scripted backend failure mid-stream")
        else:
            if turn.thinking:
                built.reasoning(turn.thinking, encrypted=f"gAAAAB-e2e-{n:04d}", rid=f"rs_e2e{n:04d}")
            text = resolve(turn.text, ctx)
            if text:
                built.message(*pieces(text, turn.text_chunk), mid=f"msg_e2e{n:04d}")
            for k, tc in enumerate(turn.calls):
                call = resolve_call(tc, ctx)
                arguments = pieces(json.dumps(call.arguments), call.chunk or 24)
                built.call(f"call_e2e{n:04d}_{k}", call.name, *arguments, fid=f"fc_e2e{n:04d}_{k}")
            built.completed(100, 20)
        if not stream:
            send_json(h, 200, built.final("completed", usage=usage(100, 20)))
            return
        out = ChunkedStream(h, self)
        for event in built.events:
            out.send(json.dumps(event, separators=(",", ":")), event=event["type"])
        if failing and turn.hang_up:
            out.hang_up()
            return
        out.end()

"""A scripted Gemini API server: POST /v1beta/models/{model}:generateContent, :streamGenerateContent?alt=sse
and :countTokens, validating every request as the real API does (tests/fakes/gemini_upstream.py).

Wire format as Gemini sends it (https://ai.google.dev/api/generate-content): SSE frames
`data: {GenerateContentResponse}` ending in CRLF CRLF, no [DONE]; thoughts as `thought: true` text parts
(only when `includeThoughts` was asked for); a function call whole in one part, the first of a turn
carrying a `thoughtSignature` the next request must send back on that part (Gemini 3 refuses the turn
otherwise); `finishReason: STOP` also after function calls; a turn without calls signs its last part.
A failure mid-stream is a `data: {"error": {...}}` frame and the end of the body.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.gemini_upstream import gemini_request_problem

from .base import ChunkedStream, ScriptedServer, pieces, send_json
from .script import JSON, Context, Turn, resolve, resolve_call, scenario_name, working_directory

KEY = "AIza-e2e-gemini"


class GeminiServer(ScriptedServer):
    name = "scripted-gemini"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ids = itertools.count(1)
        self.issued: set[str] = set()
        self._model = threading.local()  # the model of the request this thread serves (from its path)

    def _signature(self) -> str:
        signature = base64.b64encode(f"e2e-thought-{next(self._ids)}".encode() * 4).decode()
        self.issued.add(signature)
        return signature

    def error_body(self, kind: str, message: str) -> JSON:
        status = {"INVALID_ARGUMENT": 400, "PERMISSION_DENIED": 403, "NOT_FOUND": 404, "UNAVAILABLE": 503}
        return {"error": {"code": status.get(kind, 500), "message": message, "status": kind}}

    def handle(self, h: BaseHTTPRequestHandler, path: str, body: JSON) -> None:
        model, _, method = path.removeprefix("/v1beta/models/").partition(":")
        if h.headers.get("x-goog-api-key") != KEY:
            send_json(
                h, 403, self.error_body("PERMISSION_DENIED", "Method doesn't allow unregistered callers")
            )
            return
        if method == "countTokens":
            send_json(h, 200, {"totalTokens": len(json.dumps(body)) // 4})
            return
        if method not in ("generateContent", "streamGenerateContent") or not path.startswith(
            "/v1beta/models/"
        ):
            send_json(h, 404, self.error_body("NOT_FOUND", f"Unknown request URL: POST {path}"))
            return
        problem = gemini_request_problem(body, model, self.issued)
        if problem is not None:
            self.errors.append(f"Gemini would refuse this request: {problem}")
            send_json(h, 400, self.error_body("INVALID_ARGUMENT", problem))
            return
        self._model.name, self._model.stream = model, method == "streamGenerateContent"
        self.play(h, path, body)

    def context(self, body: JSON) -> Context:
        contents = [c for c in body.get("contents", []) if isinstance(c, dict)]
        system = " ".join(p.get("text", "") for p in (body.get("systemInstruction") or {}).get("parts", []))
        users = [c for c in contents if c.get("role") == "user"]
        tools = {
            d["name"]: d.get("parametersJsonSchema") or d.get("parameters") or {}
            for t in body.get("tools") or []
            for d in t.get("functionDeclarations") or []
        }
        results = [
            str(
                p["functionResponse"]["response"].get(
                    "output", p["functionResponse"]["response"].get("error", "")
                )
            )
            for c in contents
            for p in c.get("parts", [])
            if "functionResponse" in p
        ]
        config = body.get("generationConfig") or {}
        return Context(
            model=getattr(self._model, "name", ""),
            tools=tools,
            cwd=working_directory(system + "\n" + "\n".join(_text(c) for c in contents[:3])),
            prompt=_text(users[0]) if users else "",
            turn=sum(1 for c in contents if c.get("role") == "model"),
            tool_results=results,
            wants_json=config.get("responseJsonSchema") or config.get("responseSchema"),
        )

    def reply(self, h: BaseHTTPRequestHandler, turn: Turn, ctx: Context, body: JSON) -> None:
        stream = bool(getattr(self._model, "stream", False))
        if turn.fail_after is not None and not stream and not turn.stream_only:
            send_json(h, 503, self.error_body("UNAVAILABLE", "scripted backend failure"))
            return
        thoughts = bool(
            ((body.get("generationConfig") or {}).get("thinkingConfig") or {}).get("includeThoughts")
        )
        text = resolve(turn.text, ctx)
        calls = [resolve_call(tc, ctx) for tc in turn.calls]
        call_parts: list[JSON] = []
        for i, rc in enumerate(calls):
            part: JSON = {"functionCall": {"name": rc.name, "args": rc.arguments}}
            if i == 0:  # parallel calls: only the first is signed
                part["thoughtSignature"] = self._signature()
            call_parts.append(part)
        usage = {
            "promptTokenCount": 100,
            "candidatesTokenCount": 20,
            "thoughtsTokenCount": 5,
            "totalTokenCount": 125,
        }
        if not stream:
            parts: list[JSON] = (
                [{"text": turn.thinking, "thought": True}] if turn.thinking and thoughts else []
            )
            parts += [{"text": text}] if text else []
            parts += call_parts
            if not call_parts and parts:
                parts[-1]["thoughtSignature"] = self._signature()
            send_json(h, 200, _response(parts or [{"text": ""}], usage, ctx.model, finish="STOP"))
            return
        out = ChunkedStream(h, self)

        def send(parts: list[JSON], finish: str | None = None, split: int = 0) -> None:
            frame = (
                b"data: "
                + json.dumps(_response(parts, usage, ctx.model, finish=finish)).encode()
                + b"\r\n\r\n"
            )
            for piece in [frame[i : i + split] for i in range(0, len(frame), split)] if split else [frame]:
                h.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")  # one HTTP chunk each
                h.wfile.flush()
            self.pause()

        if turn.fail_after is not None:
            for piece in pieces(turn.fail_after, turn.text_chunk):
                send([{"text": piece}])
            if turn.hang_up:
                out.hang_up()
                return
            error = self.error_body("UNAVAILABLE", "scripted backend failure mid-stream")
            h.wfile.write(_chunk(b"data: " + json.dumps(error).encode() + b"\r\n\r\n"))
            out.end()
            return
        for piece in pieces(turn.thinking, 16) if turn.thinking and thoughts else []:
            send([{"text": piece, "thought": True}])
        for piece in pieces(text, turn.text_chunk) if text else []:
            send([{"text": piece}])
        if call_parts:
            # A function call arrives whole; a long one may still be cut anywhere by the network.
            send(call_parts, finish="STOP", split=max((rc.chunk for rc in calls), default=0))
        else:
            send([{"text": "", "thoughtSignature": self._signature()}], finish="STOP")
        out.end()


def _chunk(payload: bytes) -> bytes:
    return f"{len(payload):x}\r\n".encode() + payload + b"\r\n"


def _response(parts: list[JSON], usage: JSON, model: str, *, finish: str | None) -> JSON:
    candidate: JSON = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model, "responseId": "e2e"}


def _text(content: JSON) -> str:
    return "\n".join(p["text"] for p in content.get("parts", []) if isinstance(p.get("text"), str))


__all__ = ["KEY", "GeminiServer", "scenario_name"]

"""A scripted Gemini API server over real HTTP (aiohttp), for tests.

It speaks the vendor's wire format: `POST /v1beta/models/{model}:generateContent` (a
GenerateContentResponse) and `:streamGenerateContent?alt=sse` (`data: {chunk}` frames ending in CRLF CRLF,
no [DONE]), Google's error bodies, and it refuses what the real API refuses (`gemini_request_problem`):
unknown fields ("Invalid JSON payload received. Unknown name ..."), Schema keywords outside Gemini's
subset, a missing key (403), a Gemini 3 function-call turn without its thought signature, a signature
it never issued ("Corrupted thought signature."), function responses that do not answer the calls.
Tests queue replies with `script(...)`; every request received is kept in `requests`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

JSON = dict[str, Any]
PLACEHOLDERS = {"skip_thought_signature_validator", "context_engineering_is_the_way_to_go"}


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # a GenerateContentResponse (or an error body)
    chunks: list[Any] = field(default_factory=list)  # SSE payloads: dicts, or raw bytes
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    break_after: int | None = None
    hold_s: float = 0.0  # wait this long before answering (a slow backend); `aborted` counts who left


def signature(n: int) -> str:
    """A thought signature as Gemini sends one: base64 of opaque bytes."""
    return base64.b64encode(f"gemini-thought-{n}".encode() * 3).decode()


def usage(prompt: int = 10, candidates: int = 5, thoughts: int = 0, cached: int = 0) -> JSON:
    meta = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates + thoughts,
    }
    if thoughts:
        meta["thoughtsTokenCount"] = thoughts
    if cached:
        meta["cachedContentTokenCount"] = cached
    return meta


def chunk(
    parts: list[JSON],
    *,
    finish: str | None = None,
    meta: JSON | None = None,
    model: str = "gemini-3-flash-preview",
) -> JSON:
    candidate: JSON = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {
        "candidates": [candidate],
        "usageMetadata": meta or usage(),
        "modelVersion": model,
        "responseId": "resp-1",
    }


def response(parts: list[JSON], *, finish: str = "STOP", meta: JSON | None = None) -> Reply:
    return Reply(body=chunk(parts, finish=finish, meta=meta))


def stream(*chunks: JSON) -> Reply:
    return Reply(chunks=list(chunks))


def text_stream(*pieces: str, meta: JSON | None = None) -> Reply:
    chunks = [chunk([{"text": p}]) for p in pieces]
    chunks.append(chunk([{"text": ""}], finish="STOP", meta=meta or usage()))
    return Reply(chunks=chunks)


def error(status: int, code: str, message: str, *, details: list[JSON] | None = None) -> Reply:
    body = {"error": {"code": status, "message": message, "status": code}}
    if details is not None:
        body["error"]["details"] = details
    return Reply(status=status, body=body)


def rate_limited(delay: str = "43s") -> Reply:
    return error(
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details.",
        details=[
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests"}
                ],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay},
        ],
    )


# --- what the real API refuses ------------------------------------------------------------------------

_TOP = {
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "generationConfig",
    "safetySettings",
    "cachedContent",
}
_PART = {"text", "thought", "thoughtSignature", "inlineData", "fileData", "functionCall", "functionResponse",
         "executableCode", "codeExecutionResult", "videoMetadata", "mediaResolution"}  # fmt: skip
_PART_DATA = {
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
}
_GENERATION = {"stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema", "candidateCount",
               "maxOutputTokens", "temperature", "topP", "topK", "seed", "presencePenalty",
               "frequencyPenalty", "thinkingConfig", "responseModalities", "mediaResolution"}  # fmt: skip
_THINKING = {"includeThoughts", "thinkingBudget", "thinkingLevel"}
_DECLARATION = {
    "name",
    "description",
    "parameters",
    "parametersJsonSchema",
    "response",
    "responseJsonSchema",
    "behavior",
}
_SCHEMA = {"type", "format", "title", "description", "nullable", "enum", "items", "minItems", "maxItems",
           "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern",
           "example", "anyOf", "propertyOrdering", "minimum", "maximum"}  # fmt: skip
_TYPES = {"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT"}
_FORMATS = {"STRING": {"enum", "date-time"}, "NUMBER": {"float", "double"}, "INTEGER": {"int32", "int64"}}
_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.:-]{0,63}$")
_TOOL_KEYS = {
    "functionDeclarations",
    "googleSearch",
    "urlContext",
    "codeExecution",
    "google_search",
    "url_context",
}


class Problem(Exception):
    pass


def _unknown(name: str, where: str) -> Problem:
    return Problem(f"Invalid JSON payload received. Unknown name \"{name}\" at '{where}': Cannot find field.")


def _keys(obj: Any, allowed: set[str], where: str) -> None:
    if not isinstance(obj, dict):
        raise Problem(f"Invalid value at '{where}': must be an object")
    for key in obj:
        if key not in allowed:
            raise _unknown(key, where)


def _schema(node: Any, where: str) -> None:
    _keys(node, _SCHEMA, where)
    kind = node.get("type")
    if kind is not None and str(kind).upper() not in _TYPES:
        raise Problem(
            f"Invalid value at '{where}.type' "
            f'(type.googleapis.com/google.ai.generativelanguage.v1beta.Type), "{kind}"'
        )
    fmt = node.get("format")
    if fmt is not None and fmt not in _FORMATS.get(str(kind).upper(), set()):
        raise Problem(
            f"* GenerateContentRequest.{where}.format: "
            "only 'enum' and 'date-time' are supported for STRING type"
        )
    if "enum" in node and not all(isinstance(v, str) for v in node["enum"]):
        raise Problem(f"Invalid value at '{where}.enum[0]' (TYPE_STRING)")
    for name, prop in (node.get("properties") or {}).items():
        _schema(prop, f"{where}.properties[{name}].value")
    if "items" in node:
        _schema(node["items"], f"{where}.items")
    for i, option in enumerate(node.get("anyOf") or []):
        _schema(option, f"{where}.any_of[{i}]")
    for name in node.get("required") or []:
        if name not in (node.get("properties") or {}):
            raise Problem(f"* GenerateContentRequest.{where}.required[0]: property is not defined")


def gemini_request_problem(body: Any, model: str, issued: set[str]) -> str | None:
    """Why the Gemini API would refuse this request with a 400 INVALID_ARGUMENT, or None."""
    try:
        _check(body, model, issued)
    except Problem as exc:
        return str(exc)
    return None


def _check(body: Any, model: str, issued: set[str]) -> None:
    _keys(body, _TOP, "")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise Problem("* GenerateContentRequest.contents: contents is not specified")
    calls_before: list[str] = []
    for i, content in enumerate(contents):
        _keys(content, {"role", "parts"}, f"contents[{i}]")
        if content.get("role") not in ("user", "model"):
            raise Problem(f"Please use a valid role: user, model. (contents[{i}])")
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            raise Problem(f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.")
        for j, part in enumerate(parts):
            _keys(part, _PART, f"contents[{i}].parts[{j}]")
            if sum(1 for k in part if k in _PART_DATA) != 1:
                raise Problem(
                    f"Invalid value at 'contents[{i}].parts[{j}]': exactly one data field is required"
                )
            sig = part.get("thoughtSignature")
            if sig is not None and sig not in issued and sig not in PLACEHOLDERS:
                raise Problem("Corrupted thought signature.")
            if "functionCall" in part:
                _keys(part["functionCall"], {"name", "args", "id"}, f"contents[{i}].parts[{j}].function_call")
            if "functionResponse" in part:
                _keys(
                    part["functionResponse"],
                    {"name", "response", "id", "parts", "willContinue", "scheduling"},
                    f"contents[{i}].parts[{j}].function_response",
                )
        responses = [p["functionResponse"]["name"] for p in parts if "functionResponse" in p]
        if responses and content["role"] == "user" and len(responses) != len(calls_before):
            raise Problem(
                "Please ensure that the number of function response parts is equal to the number of "
                "function call parts of the function call turn."
            )
        calls_before = (
            [p["functionCall"]["name"] for p in parts if "functionCall" in p]
            if content["role"] == "model"
            else []
        )
    _signatures(contents, model)
    for t, tool in enumerate(body.get("tools") or []):
        _keys(tool, _TOOL_KEYS, f"tools[{t}]")
        for d, decl in enumerate(tool.get("functionDeclarations") or []):
            where = f"tools[{t}].function_declarations[{d}]"
            _keys(decl, _DECLARATION, where)
            if not _NAME.match(str(decl.get("name"))):
                raise Problem(f"* GenerateContentRequest.{where}.name: Invalid function name.")
            if "parameters" in decl and "parametersJsonSchema" in decl:
                raise Problem(f"{where}: parameters and parameters_json_schema are mutually exclusive")
            if "parameters" in decl:
                _schema(decl["parameters"], f"{where}.parameters")
    generation = body.get("generationConfig") or {}
    _keys(generation, _GENERATION, "generation_config")
    if len(generation.get("stopSequences") or []) > 5:
        raise Problem(
            "* GenerateContentRequest.generation_config.stop_sequences: must have at most 5 elements"
        )
    thinking = generation.get("thinkingConfig")
    if thinking is not None:
        _keys(thinking, _THINKING, "generation_config.thinking_config")
        if "thinkingBudget" in thinking and "thinkingLevel" in thinking:
            raise Problem("You can only set only one of thinking budget and thinking level.")
    if "responseSchema" in generation:
        _schema(generation["responseSchema"], "generation_config.response_schema")


def _signatures(contents: list[JSON], model: str) -> None:
    """Gemini 3: the first functionCall of every model turn since the last real user message is signed."""
    if not re.search(r"gemini-([3-9]|\d\d)", model):
        return
    start = 0
    for i, content in enumerate(contents):
        if content["role"] == "user" and any("functionResponse" not in p for p in content["parts"]):
            start = i
    for i, content in enumerate(contents[start:], start):
        if content["role"] != "model":
            continue
        first = next((p for p in content["parts"] if "functionCall" in p), None)
        if first is not None and "thoughtSignature" not in first:
            raise Problem(
                "Function call is missing a thought_signature in functionCall parts. This is required for "
                "tools to work correctly, and missing thought_signature may lead to degraded model "
                "performance. Additional data, function call "
                f"`default_api:{first['functionCall']['name']}` , "
                f"position {i + 1}. Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures "
                "for more details."
            )


def signatures_in(payload: Any) -> set[str]:
    """Every thoughtSignature a reply hands out (the server accepts them back)."""
    found: set[str] = set()
    if isinstance(payload, dict):
        for key, value in payload.items():
            if key == "thoughtSignature" and isinstance(value, str):
                found.add(value)
            else:
                found |= signatures_in(value)
    elif isinstance(payload, list):
        for item in payload:
            found |= signatures_in(item)
    return found


class FakeGemini:
    """`with FakeGemini() as fake:`; `fake.url` is the base URL (`https://generativelanguage.googleapis.com`)."""

    def __init__(self, key: str = "gemini-test-key") -> None:
        self.key = key
        self._replies: deque[Reply] = deque()
        self.requests: list[JSON] = []
        self.paths: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.rejections: list[str] = []
        self.issued: set[str] = set()
        self.aborted = 0  # requests whose client closed the connection while their reply was held
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, *replies: Reply) -> None:
        for reply in replies:
            self.issued |= signatures_in(reply.body) | signatures_in(reply.chunks)
        self._replies.extend(replies)

    def reset(self) -> None:
        self._replies.clear()
        self.requests.clear()
        self.paths.clear()
        self.headers.clear()
        self.rejections.clear()
        self.aborted = 0

    def __enter__(self) -> FakeGemini:
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
        app.router.add_post("/v1beta/models/{call}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        model, _, method = request.match_info["call"].partition(":")
        body = await request.json()
        self.requests.append(body)
        self.paths.append(request.path_qs)
        self.headers.append({k.lower(): v for k, v in request.headers.items()})
        if request.headers.get("x-goog-api-key") != self.key:
            return web.json_response(
                error(
                    403,
                    "PERMISSION_DENIED",
                    "Method doesn't allow unregistered callers (callers without established identity). "
                    "Please use API Key or other form of API consumer identity to call this API.",
                ).body,
                status=403,
            )
        if method == "countTokens":
            return self._count(body, model)
        if method not in ("generateContent", "streamGenerateContent"):
            return web.json_response(error(404, "NOT_FOUND", f"Method not found: {method}").body, status=404)
        if (method == "streamGenerateContent") != (request.query.get("alt") == "sse"):
            return web.json_response(
                error(400, "INVALID_ARGUMENT", "streaming needs alt=sse here").body, status=400
            )
        problem = gemini_request_problem(body, model, self.issued)
        if problem is not None:
            self.rejections.append(problem)
            return web.json_response(error(400, "INVALID_ARGUMENT", problem).body, status=400)
        reply = (
            self._replies.popleft()
            if self._replies
            else (text_stream("ok") if method == "streamGenerateContent" else response([{"text": "ok"}]))
        )
        if reply.hold_s:
            held_until = time.monotonic() + reply.hold_s
            while time.monotonic() < held_until:
                await asyncio.sleep(0.02)
                if request.transport is None or request.transport.is_closing():
                    self.aborted += 1  # aiohttp does not cancel a handler when its client leaves
                    return web.Response(status=499)
        if not reply.chunks:
            return web.json_response(reply.body, status=reply.status, headers=reply.headers)
        out = web.StreamResponse(
            status=reply.status, headers={"content-type": "text/event-stream", **reply.headers}
        )
        await out.prepare(request)
        for i, payload in enumerate(reply.chunks):
            if reply.break_after is not None and i >= reply.break_after:
                await asyncio.sleep(0.1)
                request.transport.abort()  # type: ignore[union-attr]
                return out
            data = (
                payload
                if isinstance(payload, bytes)
                else b"data: " + json.dumps(payload).encode() + b"\r\n\r\n"
            )
            await out.write(data)
            if reply.delay_s:
                await asyncio.sleep(reply.delay_s)
        await out.write_eof()
        return out

    def _count(self, body: JSON, model: str) -> web.StreamResponse:
        """countTokens: `{"generateContentRequest": {...}}` in, `{"totalTokens": n}` out (4 bytes a token)."""
        _keys(body, {"contents", "generateContentRequest"}, "")
        inner = body.get("generateContentRequest") or {"contents": body.get("contents")}
        if inner.get("model") not in (None, f"models/{model}"):
            problem = f"generateContentRequest.model {inner.get('model')!r} is not models/{model}"
        else:
            problem = gemini_request_problem(
                {k: v for k, v in inner.items() if k != "model"}, model, self.issued
            )
        if problem is not None:
            self.rejections.append(problem)
            return web.json_response(error(400, "INVALID_ARGUMENT", problem).body, status=400)
        return web.json_response({"totalTokens": len(json.dumps(inner)) // 4})

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.requests) < n and time.monotonic() < deadline:
            time.sleep(0.01)

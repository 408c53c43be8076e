"""A scripted OpenAI Responses API server over real HTTP (aiohttp), for tests: `POST /v1/responses`.

Its replies are in the vendor's wire format: `Response` objects, and streams of
`event: response.<kind>` + `data: {"type": …, "sequence_number": n, …}` frames
(https://platform.openai.com/docs/api-reference/responses-streaming). It refuses what the real API
refuses, with OpenAI's 400 error body: unknown fields (top level, in input items, in tools), a
`function_call_output` whose `call_id` no earlier `function_call` has, a `function_call` without its
output, a stateless reasoning item without its encrypted content, `max_output_tokens` under 16,
sampling parameters on a reasoning model, and a request without a Bearer key (401).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.openai_upstream import FakeOpenAI, Reply, error

CREATED = 1_764_900_000
_FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_REASONING_MODEL = re.compile(r"^(o\d|gpt-5|codex)")
# ResponseCreateParams (openai-python types/responses/response_create_params.py)
CREATE_FIELDS = frozenset(
    {
        "background", "conversation", "include", "input", "instructions", "max_output_tokens",
        "max_tool_calls", "metadata", "model", "parallel_tool_calls", "previous_response_id", "prompt",
        "prompt_cache_key", "prompt_cache_retention", "reasoning", "safety_identifier", "service_tier",
        "store", "stream", "stream_options", "temperature", "text", "tool_choice", "tools", "top_logprobs",
        "top_p", "truncation", "user",
    }
)  # fmt: skip
# InputTokenCountParams (openai-python types/responses/input_token_count_params.py)
COUNT_FIELDS = frozenset(
    {"conversation", "input", "instructions", "model", "parallel_tool_calls", "previous_response_id",
     "reasoning", "text", "tool_choice", "tools", "truncation"}
)  # fmt: skip
_ITEM_FIELDS = {
    "message": {"type", "role", "content", "id", "status", "phase"},
    "function_call": {"type", "call_id", "name", "arguments", "id", "status"},
    "function_call_output": {"type", "call_id", "output", "id", "status"},
    "reasoning": {"type", "id", "summary", "content", "encrypted_content", "status"},
}
_PART_FIELDS = {
    "input_text": {"type", "text"},
    "input_image": {"type", "image_url", "file_id", "detail"},
    "input_file": {"type", "file_data", "file_id", "file_url", "filename"},
    "output_text": {"type", "text", "annotations", "logprobs"},
    "refusal": {"type", "refusal"},
}
_TOOL_FIELDS = {"type", "name", "description", "parameters", "strict"}


def unknown(param: str) -> tuple[str, str, str]:
    return f"Unknown parameter: '{param}'.", param, "unknown_parameter"


def request_problem(body: Any) -> tuple[str, str | None, str | None] | None:
    """(message, param, code) of the 400 the Responses API would answer this body with, or None."""
    if not isinstance(body, dict):
        return "We could not parse the JSON body of your request.", None, None
    for key in body:
        if key not in CREATE_FIELDS:
            return unknown(key)
    if not isinstance(body.get("model"), str):
        return "Missing required parameter: 'model'.", "model", "missing_required_parameter"
    limit = body.get("max_output_tokens")
    if isinstance(limit, int) and limit < 16:
        message = (
            "Invalid 'max_output_tokens': integer below minimum value. "
            f"Expected a value >= 16, but got {limit} instead."
        )
        return message, "max_output_tokens", "integer_below_min_value"
    if _REASONING_MODEL.match(body["model"]):
        for key in ("temperature", "top_p"):
            if key in body:
                return f"Unsupported parameter: '{key}' is not supported with this model.", key, None
    items = body.get("input")
    if not isinstance(items, list | str):
        return "Missing required parameter: 'input'.", "input", "missing_required_parameter"
    problem = _items_problem(items if isinstance(items, list) else [], store=body.get("store", True))
    if problem is not None:
        return problem
    for i, tool in enumerate(body.get("tools") or []):
        extra = sorted(set(tool) - _TOOL_FIELDS) if isinstance(tool, dict) else []
        if extra:
            return unknown(f"tools[{i}].{extra[0]}")
        if not _FUNCTION_NAME.match(str(tool.get("name"))):
            return f"Invalid 'tools[{i}].name': string does not match pattern.", f"tools[{i}].name", None
    return None


def _items_problem(items: list[Any], *, store: object) -> tuple[str, str | None, str | None] | None:
    calls: set[str] = set()
    answered: set[str] = set()
    for i, item in enumerate(items):
        kind = item.get("type", "message") if isinstance(item, dict) else None
        if kind not in _ITEM_FIELDS:
            return f"Invalid value: '{kind}'.", f"input[{i}].type", "invalid_value"
        extra = sorted(set(item) - _ITEM_FIELDS[kind])
        if extra:
            return unknown(f"input[{i}].{extra[0]}")
        content = item.get("content") if kind == "message" else item.get("output")
        for j, part in enumerate(content if isinstance(content, list) else []):
            ptype = part.get("type") if isinstance(part, dict) else None
            if ptype not in _PART_FIELDS or sorted(set(part) - _PART_FIELDS[ptype]):
                return f"Invalid value in input[{i}] content[{j}].", f"input[{i}].content[{j}]", None
        if kind == "function_call":
            calls.add(item.get("call_id"))
        elif kind == "function_call_output":
            if item.get("call_id") not in calls:
                message = f"No tool call found for function call output with call_id {item.get('call_id')}."
                return message, "input", None
            answered.add(item["call_id"])
        elif kind == "reasoning" and store is False and not item.get("encrypted_content"):
            message = (
                f"Item with id '{item.get('id')}' not found. Items are not persisted when `store` is set "
                "to false. Try again with `store` set to true, or remove this item from your input."
            )
            return message, "input", None
    for call_id in sorted(calls - answered):
        return f"No tool output found for function call {call_id}.", "input", None
    return None


# --- replies -----------------------------------------------------------------------------------


def response_object(
    *, model: str = "gpt-5-codex", status: str = "in_progress", output: list[Any] | None = None, **extra: Any
) -> dict[str, Any]:
    """A Response as the API sends it (openai-python types/responses/response.py)."""
    body: dict[str, Any] = {
        "id": "resp_0a1b2c3d4e5f60718293a4b5c6d7e8f9",
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "max_tool_calls": None,
        "model": model,
        "output": output or [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "service_tier": "default",
        "store": False,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_logprobs": 0,
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": None,
        "user": None,
        "metadata": {},
    }
    body.update(extra)
    return body


def usage(
    input_tokens: int, output_tokens: int, *, cached: int = 0, written: int = 0, reasoning: int = 0
) -> dict[str, Any]:
    """ResponseUsage: input_tokens counts all input, cache reads and writes included."""
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": input_tokens + output_tokens,
    }


@dataclass
class Stream:
    """Builds one streamed Response event by event, numbering them as the API does."""

    model: str = "gpt-5-codex"
    events: list[dict[str, Any]] = field(default_factory=list)
    output: list[dict[str, Any]] = field(default_factory=list)

    def emit(self, kind: str, **fields: Any) -> Stream:
        self.events.append({"type": kind, "sequence_number": len(self.events), **fields})
        return self

    def created(self) -> Stream:
        self.emit("response.created", response=response_object(model=self.model))
        return self.emit("response.in_progress", response=response_object(model=self.model))

    def _add(self, item: dict[str, Any]) -> int:
        index = len(self.output)
        self.output.append(item)
        self.emit("response.output_item.added", output_index=index, item=item)
        return index

    def reasoning(self, *summaries: str, encrypted: str | None = "gAAAAABenc0", rid: str = "") -> Stream:
        rid = rid or f"rs_{len(self.output):02d}6806bfca0b2481918a5748308061a26"
        index = self._add({"id": rid, "type": "reasoning", "summary": []})
        for n, text in enumerate(summaries):
            where = {"item_id": rid, "output_index": index, "summary_index": n}
            self.emit(
                "response.reasoning_summary_part.added", **where, part={"type": "summary_text", "text": ""}
            )
            for piece in _pieces(text):
                self.emit("response.reasoning_summary_text.delta", **where, delta=piece)
            self.emit("response.reasoning_summary_text.done", **where, text=text)
            self.emit(
                "response.reasoning_summary_part.done", **where, part={"type": "summary_text", "text": text}
            )
        done: dict[str, Any] = {
            "id": rid,
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": t} for t in summaries],
        }
        if encrypted is not None:
            done["encrypted_content"] = encrypted
        self.output[index] = done
        return self.emit("response.output_item.done", output_index=index, item=done)

    def message(self, *pieces: str, mid: str = "") -> Stream:
        mid = mid or f"msg_{len(self.output):02d}6806bfca0b2481918a5748308061a26"
        item = {"id": mid, "type": "message", "status": "in_progress", "content": [], "role": "assistant"}
        index = self._add(item)
        where = {"item_id": mid, "output_index": index, "content_index": 0}
        part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
        self.emit("response.content_part.added", **where, part=part)
        for piece in pieces:
            self.emit("response.output_text.delta", **where, delta=piece, logprobs=[])
        text = "".join(pieces)
        self.emit("response.output_text.done", **where, text=text, logprobs=[])
        self.emit("response.content_part.done", **where, part={**part, "text": text})
        done = {**item, "status": "completed", "content": [{**part, "text": text}]}
        self.output[index] = done
        return self.emit("response.output_item.done", output_index=index, item=done)

    def call(self, call_id: str, name: str, *fragments: str, fid: str = "") -> Stream:
        fid = fid or f"fc_{len(self.output):02d}6806bfca0b2481918a5748308061a26"
        item = {"id": fid, "type": "function_call", "status": "in_progress", "arguments": ""}
        item |= {"call_id": call_id, "name": name}
        index = self._add(item)
        for piece in fragments:
            self.emit("response.function_call_arguments.delta", item_id=fid, output_index=index, delta=piece)
        arguments = "".join(fragments)
        self.emit(
            "response.function_call_arguments.done", item_id=fid, output_index=index, arguments=arguments
        )
        done = {**item, "status": "completed", "arguments": arguments}
        self.output[index] = done
        return self.emit("response.output_item.done", output_index=index, item=done)

    def final(self, status: str = "completed", **extra: Any) -> dict[str, Any]:
        return response_object(model=self.model, status=status, output=self.output, **extra)

    def completed(self, input_tokens: int = 10, output_tokens: int = 5, **counts: int) -> Stream:
        final = self.final(usage=usage(input_tokens, output_tokens, **counts))
        return self.emit("response.completed", response=final)

    def incomplete(
        self, reason: str = "max_output_tokens", input_tokens: int = 10, output_tokens: int = 16
    ) -> Stream:
        final = self.final(
            "incomplete",
            incomplete_details={"reason": reason},
            usage=usage(input_tokens, output_tokens),
        )
        return self.emit("response.incomplete", response=final)

    def failed(self, code: str, message: str) -> Stream:
        final = self.final("failed", error={"code": code, "message": message})
        return self.emit("response.failed", response=final)

    def error(self, code: str | None, message: str) -> Stream:
        return self.emit("error", code=code, message=message, param=None)

    def sse(self) -> bytes:
        return b"".join(frame(e) for e in self.events)

    def reply(self, **options: Any) -> Reply:
        return Reply(chunks=[frame(e) for e in self.events], **options)


def frame(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n".encode()


def _pieces(text: str, size: int = 12) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def text_stream(*pieces: str, input_tokens: int = 10, output_tokens: int = 5) -> Reply:
    return Stream().created().message(*pieces).completed(input_tokens, output_tokens).reply()


def completed(stream: Stream, input_tokens: int = 10, output_tokens: int = 5, **counts: int) -> Reply:
    """The same output as one non-streamed Response."""
    return Reply(body=stream.final(usage=usage(input_tokens, output_tokens, **counts)))


class FakeResponses(FakeOpenAI):
    """Start with `with FakeResponses() as fake:`; `fake.url` is the base URL (ending in /v1)."""

    paths = ("/v1/responses", "/v1/responses/input_tokens")
    input_tokens = 4321  # what POST /v1/responses/input_tokens answers

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            self.rejections.append("no bearer key")
            message = (
                "You didn't provide an API key. You need to provide your API key in an Authorization "
                "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            )
            return web.json_response(error(401, message).body, status=401)
        body = await request.json()  # aiohttp keeps the bytes: the base handler reads them again
        if request.path.endswith("/input_tokens"):
            return self._count(body)
        found = request_problem(body)
        if found is None:
            return await super()._handle(request)
        message, param, code = found
        self.requests.append(body)
        self.headers.append({k.lower(): v for k, v in request.headers.items()})
        self.rejections.append(message)
        refusal = {"message": message, "type": "invalid_request_error", "param": param, "code": code}
        return web.json_response({"error": refusal}, status=400)

    def _count(self, body: Any) -> web.Response:
        """POST /v1/responses/input_tokens: InputTokenCountParams only, as the API checks it."""
        self.requests.append(body)
        extra = sorted(set(body) - COUNT_FIELDS) if isinstance(body, dict) else ["body"]
        found = unknown(extra[0]) if extra else _items_problem(body.get("input") or [], store=False)
        if found is not None:
            self.rejections.append(found[0])
            refusal = {
                "message": found[0],
                "type": "invalid_request_error",
                "param": found[1],
                "code": found[2],
            }
            return web.json_response({"error": refusal}, status=400)
        return web.json_response({"object": "response.input_tokens", "input_tokens": self.input_tokens})

    def problem(self, body: Any) -> str | None:
        return None  # checked by _handle, which answers with the param and code too

    def default_reply(self, body: dict[str, Any]) -> Reply:
        stream = Stream(model=str(body.get("model"))).created().message("ok").completed()
        return stream.reply() if body.get("stream") else completed(stream)

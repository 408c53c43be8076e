"""Responses API replies -> Anthropic: the non-streamed Response object, errors, and what the stream shares.

A `reasoning` output item becomes a thinking block (its summaries as the text) whose signature carries
the item's id and `encrypted_content`, tagged by reasoning.py, so the next turn sends the item back; with
no summary text it becomes a `redacted_thinking` block carrying the same. `function_call` items become
tool_use blocks with the `call_id` encoded as a `toolu_…` id (ids.py).
Wire format: openai-python `types/responses/response.py`, `response_usage.py`, `response_error.py`.
"""

from __future__ import annotations

import json

import orjson

from .. import ids, reasoning, upstream_errors
from ..base import UpstreamError
from ..openai_chat.wire import parse_tool_input, shape
from ..stops import find_stop_sequence
from ..types import JSONDict, Message, StopReason, Translation, Usage
from .state import responses_state

DIALECT_NAME = "openai_responses"

# ResponseError.code / the `error` event's code -> the HTTP status it amounts to.
_ERROR_CODES: dict[str, int] = {
    "server_error": 500,
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
    "invalid_prompt": 400,
    "context_length_exceeded": 400,
    "invalid_request_error": 400,
    "vector_store_timeout": 504,
}


def json_text(value: JSONDict) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:  # e.g. integers beyond 64 bits, which the stdlib handles
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def wants_thinking(translation: Translation) -> bool:
    return responses_state(translation).reasoning


def replayable(item: JSONDict) -> bool:
    """Whether a reasoning item can go back: with `store: false` only its encrypted content can."""
    encrypted = item.get("encrypted_content")
    return isinstance(item.get("id"), str) and isinstance(encrypted, str) and bool(encrypted)


def reasoning_signature(item: JSONDict, translation: Translation) -> str:
    """The signature carrying a reasoning item back to its maker (non-empty: Anthropic clients need
    one; with no encrypted content it carries nothing the request side can replay)."""
    payload = f"{item['id']}.{item['encrypted_content']}" if replayable(item) else ""
    provider = responses_state(translation).provider
    return reasoning.mint(dialect=DIALECT_NAME, provider=provider, payload=payload)


def reasoning_of_signature(payload: str) -> tuple[str, str] | None:
    """(item id, encrypted content) from a payload reasoning_signature made, or None."""
    item_id, _, encrypted = payload.partition(".")
    return (item_id, encrypted) if item_id and encrypted else None


def summary_text(item: JSONDict) -> str:
    """A reasoning item's summaries, one paragraph each."""
    parts = shape(item.get("summary"), list, "reasoning summary")
    return "\n\n".join(p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str))


def thinking_block(text: str, signature: str, *, replayable: bool) -> JSONDict | None:
    """The Anthropic block for one reasoning item: its summary with the signature, or (no summary, only
    encrypted reasoning) a redacted_thinking block that carries it."""
    if text:
        return {"type": "thinking", "thinking": text, "signature": signature}
    if replayable:
        return {"type": "redacted_thinking", "data": signature}
    return None


def client_tool_id(call_id: object, *, translation: Translation, ordinal: int) -> str:
    if isinstance(call_id, str) and call_id:
        return ids.tool_id_to_client(call_id)
    return ids.synthetic_tool_id(translation.message_id, ordinal)


def usage_of(raw: object) -> Usage:
    """ResponseUsage -> Anthropic usage. OpenAI's input_tokens counts every input token; Anthropic's
    excludes cache reads and writes. output_tokens includes reasoning tokens on both sides."""
    usage: JSONDict = shape(raw, dict, "usage")
    details: JSONDict = shape(usage.get("input_tokens_details"), dict, "usage")
    cached, written = _int(details.get("cached_tokens")), _int(details.get("cache_write_tokens"))
    return {
        "input_tokens": max(_int(usage.get("input_tokens")) - cached - written, 0),
        "output_tokens": _int(usage.get("output_tokens")),
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": written,
    }


def stop_reason_of(response: JSONDict, *, has_tool_calls: bool, refused: bool) -> StopReason:
    """The Anthropic stop reason of a finished Response (status completed or incomplete)."""
    details = response.get("incomplete_details")
    reason = details.get("reason") if isinstance(details, dict) else None
    if response.get("status") == "incomplete" or reason:
        if reason == "content_filter":
            return "refusal"
        return "max_tokens"  # max_output_tokens, or an incomplete reply for a reason not known yet
    if has_tool_calls:
        return "tool_use"
    return "refusal" if refused else "end_turn"


def error_of(error: object, *, where: str) -> UpstreamError:
    """A ResponseError (`response.failed`, a failed Response) or an `error` event -> UpstreamError."""
    message, status = "unknown error", 500
    if isinstance(error, dict):
        code = error.get("code")
        status = _ERROR_CODES.get(str(code), 400 if str(code).startswith(("invalid_", "image_")) else 500)
        message = str(error.get("message") or code or message)
    error_type, client_status = upstream_errors.map_status(status)
    return UpstreamError(
        f"{where}: {message}"[: upstream_errors.MAX_ERROR_MESSAGE],
        error_type=error_type,
        status=client_status,
        upstream_status=status,
    )


def parse_response(body: JSONDict, translation: Translation) -> Message:
    """A non-streamed Response (2xx) -> Anthropic Message."""
    if body.get("status") == "failed" or body.get("error"):
        raise error_of(body.get("error"), where="upstream response failed")
    content: list[JSONDict] = []
    calls = 0
    refused = False
    stops = responses_state(translation).local_stop_sequences
    hit: tuple[int, str] | None = None
    for item in shape(body.get("output"), list, "output"):
        item = shape(item, dict, "output item")
        match item.get("type"):
            case "reasoning":
                signature = reasoning_signature(item, translation)
                block = thinking_block(summary_text(item), signature, replayable=replayable(item))
                if block is not None and wants_thinking(translation):
                    content.append(block)
            case "message":
                text, refusal = _message_text(item)
                refused = refused or bool(refusal)
                text += refusal
                hit = find_stop_sequence(text, stops)
                if hit is not None:  # past a stop sequence the backend never saw: cut, as Anthropic would
                    text = text[: hit[0]]
                if text:
                    content.append({"type": "text", "text": text})
            case "function_call":
                content.append(_tool_use(item, translation=translation, ordinal=calls))
                calls += 1
            case _:  # built-in tool calls we never ask for (web_search, mcp…): nothing to translate
                pass
        if hit is not None:
            break
    if hit is not None:
        stop_reason: StopReason = "stop_sequence"
    else:
        stop_reason = stop_reason_of(body, has_tool_calls=calls > 0, refused=refused)
    return {
        "id": translation.message_id,
        "type": "message",
        "role": "assistant",
        "model": translation.client_model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": hit[1] if hit else None,
        "usage": usage_of(body.get("usage")),
    }


def tool_input(arguments: object, *, name: str, translation: Translation) -> JSONDict | str:
    """A call's arguments as the tool_use input; not JSON is an upstream error, unless the route is
    lenient about tool input (then the raw text goes to the client, which reports it to the model)."""
    return parse_tool_input(arguments, name=name, lenient=translation.lenient_tool_input)


def _tool_use(item: JSONDict, *, translation: Translation, ordinal: int) -> JSONDict:
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise UpstreamError(f"upstream sent a function call without a name: {str(item)[:200]!r}")
    client_name = translation.tool_names.get(name, name)
    return {
        "type": "tool_use",
        "id": client_tool_id(item.get("call_id"), translation=translation, ordinal=ordinal),
        "name": client_name,
        "input": tool_input(item.get("arguments"), name=client_name, translation=translation),
    }


def _message_text(item: JSONDict) -> tuple[str, str]:
    """(output text, refusal text) of an output message."""
    texts, refusals = [], []
    for part in shape(item.get("content"), list, "message content"):
        if not isinstance(part, dict):
            continue
        if part.get("type") == "output_text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif part.get("type") == "refusal" and isinstance(part.get("refusal"), str):
            refusals.append(part["refusal"])
    return "".join(texts), "".join(refusals)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0

"""Reading Chat Completions replies: what a whole reply (response.py) and a stream's chunks (stream.py)
have in common: reasoning fields, finish reasons, usage, tool calls, and the shape checks.

Serves every Chat Completions backend: OpenAI, DeepSeek (`reasoning_content`, `prompt_cache_hit_tokens`),
OpenRouter (`reasoning`), vLLM (`choices[].stop_reason`), SGLang (`choices[].matched_stop`), Ollama, Kimi.
"""

from __future__ import annotations

from typing import Any

import orjson

from .. import ids
from ..base import UpstreamError
from ..types import JSONDict, StopReason, Translation, Usage
from .signatures import LEGACY_PREFIX, REASONING_FIELDS, reasoning_signature

__all__ = ["REASONING_FIELDS", "SIGNATURE_PREFIX"]

# Anthropic clients require a non-empty signature on thinking blocks and send it back unchanged on the
# next turn. Ours is a tagged marker (signatures.py) naming the field the reasoning came from and the
# provider that produced it, so the request side replays it there, and only to that provider.
SIGNATURE_PREFIX = LEGACY_PREFIX  # the untagged marker of sessions recorded before; read, never written

_FINISH_REASONS: dict[str, StopReason] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def thinking_signature(field: str, provider: str = "") -> str:
    """The signature we put on a thinking block made from the backend's `field` (deterministic, non-empty)."""
    return reasoning_signature(field, provider=provider)


def reasoning_of(message: JSONDict) -> tuple[str, str]:
    """(field, text) of the reasoning in a message or delta; ("", "") when there is none."""
    for field in REASONING_FIELDS:
        value = message.get(field)
        if isinstance(value, str) and value:
            return field, value
    return "", ""


def stop_reason_for(
    choice: JSONDict, finish_reason: str | None, *, has_tool_calls: bool, refused: bool = False
) -> tuple[StopReason, str | None]:
    """(stop_reason, stop_sequence) for a finished choice."""
    if not isinstance(finish_reason, str):  # a malformed one says nothing: as if the backend said none
        finish_reason = None
    if finish_reason == "error":
        raise UpstreamError("upstream reported finish_reason 'error'", error_type="api_error", status=500)
    if has_tool_calls and finish_reason in (None, "stop", "tool_calls", "function_call"):
        # Some backends say "stop" even when the turn ends in tool calls.
        return "tool_use", None
    if finish_reason == "stop" or finish_reason is None:
        # vLLM reports the matched stop string as `stop_reason`, SGLang as `matched_stop`
        # (both may also be an int: a stop *token* id, which is not a stop sequence).
        for key in ("stop_reason", "matched_stop"):
            matched = choice.get(key)
            if isinstance(matched, str) and matched:
                return "stop_sequence", matched
    if refused:
        return "refusal", None
    return _FINISH_REASONS.get(finish_reason or "stop", "end_turn"), None


def usage_from_openai(usage: JSONDict | None) -> Usage:
    """OpenAI `usage` -> Anthropic usage; Anthropic's input_tokens excludes cache reads."""
    usage = shape(usage, dict, "usage")
    prompt = _int(usage.get("prompt_tokens"))
    details = shape(usage.get("prompt_tokens_details"), dict, "usage")
    # OpenAI puts cache reads in prompt_tokens_details; DeepSeek also as prompt_cache_hit_tokens;
    # Moonshot (Kimi) as a top-level cached_tokens.
    cached = (
        _int(details.get("cached_tokens"))
        or _int(usage.get("prompt_cache_hit_tokens"))
        or _int(usage.get("cached_tokens"))
    )
    return {
        "input_tokens": max(prompt - cached, 0),
        "output_tokens": _int(usage.get("completion_tokens")),
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
    }


def parse_tool_input(arguments: object, *, name: str, lenient: bool = False) -> JSONDict | str:
    """A tool call's `arguments` -> the tool_use input. Invalid JSON is an upstream error, never {};
    `lenient` (Translation.lenient_tool_input) returns the raw text instead."""
    if isinstance(arguments, dict):  # a few backends send an object instead of a JSON string
        return arguments
    text = arguments if isinstance(arguments, str) else ""
    if not text.strip():
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = None
    if isinstance(value, dict):
        return value
    if lenient:
        return text
    raise UpstreamError(
        f"upstream sent invalid JSON arguments for tool {name!r}: {text[:200]!r}",
        error_type="api_error",
        status=500,
    )


def tool_use_block(*, upstream_id: str | None, name: str, ordinal: int, translation: Translation) -> JSONDict:
    """A tool_use block's start (input {}): client-safe id and the client's original tool name."""
    return {
        "type": "tool_use",
        "id": ids.tool_id_to_client(upstream_id)
        if upstream_id
        else ids.synthetic_tool_id(translation.message_id, ordinal),
        "name": translation.tool_names.get(name, name),
        "input": {},
    }


def shape(value: object, kind: type, what: str) -> Any:
    """`value` when it is a `kind` (None counts as empty); anything else is a malformed upstream reply."""
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise UpstreamError(f"upstream sent a malformed {what}: {str(value)[:200]!r}")
    return value


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0

"""OpenAI Chat Completions -> Anthropic: non-streaming replies, upstream errors, helpers the stream shares.

Serves every Chat Completions backend: OpenAI, DeepSeek (`reasoning_content`, `prompt_cache_hit_tokens`),
OpenRouter (`reasoning`), vLLM (`choices[].stop_reason`), SGLang (`choices[].matched_stop`), Ollama, Kimi.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

import orjson

from .. import ids
from ..base import UpstreamError
from ..types import ErrorType, JSONDict, Message, StopReason, Translation, Usage

# Where backends put the model's reasoning text, in order of preference (DeepSeek, then OpenRouter).
REASONING_FIELDS = ("reasoning_content", "reasoning")

# Anthropic clients require a non-empty signature on thinking blocks and send it back unchanged on the
# next turn. Ours is a plain marker (no cryptography) naming the field the reasoning came from, so the
# request side can recognise our blocks (`startswith(SIGNATURE_PREFIX)`) and replay them in that field.
SIGNATURE_PREFIX = "switchboard.openai."

_FINISH_REASONS: dict[str, StopReason] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

# Upstream HTTP status -> (Anthropic error type, status the client sees).
_STATUS_MAP: dict[int, tuple[ErrorType, int]] = {
    400: ("invalid_request_error", 400),
    422: ("invalid_request_error", 400),
    401: ("authentication_error", 401),
    403: ("permission_error", 403),
    404: ("not_found_error", 404),
    413: ("request_too_large", 413),
    429: ("rate_limit_error", 429),
    500: ("api_error", 500),
    502: ("api_error", 500),
    504: ("api_error", 500),
    503: ("overloaded_error", 529),
    529: ("overloaded_error", 529),
}

# `error.type` / `error.code` strings seen in error objects that carry no HTTP status (mid-stream errors).
_ERROR_KINDS: dict[str, int] = {
    "invalid_request_error": 400,
    "context_length_exceeded": 400,
    "authentication_error": 401,
    "invalid_api_key": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "model_not_found": 404,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
    "overloaded_error": 529,
    "overloaded": 529,
}

_MAX_ERROR_MESSAGE = 500
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_HTML_TAG = re.compile(r"<[^>]+>")
_SPACES = re.compile(r"\s+")


def thinking_signature(field: str) -> str:
    """The signature we put on a thinking block made from the backend's `field` (deterministic, non-empty)."""
    return SIGNATURE_PREFIX + field


def wants_thinking(translation: Translation) -> bool:
    """False when the request side recorded that the client did not ask for reasoning (state["reasoning"])."""
    return bool(translation.state.get("reasoning", True))


def local_stop_sequences(translation: Translation) -> tuple[str, ...]:
    """Stop sequences the backend never saw (over its limit): we match them in the text ourselves."""
    return tuple(s for s in translation.state.get("local_stop_sequences", ()) if s)


def find_stop_sequence(text: str, sequences: Iterable[str]) -> tuple[int, str] | None:
    """(where it starts, which) for the stop sequence a generating model would hit first, or None."""
    best: tuple[int, int, str] | None = None
    for seq in sequences:
        at = text.find(seq) if seq else -1
        # The earliest *end* is where generation would have stopped; ties go to the longer sequence.
        if at >= 0 and (best is None or (at + len(seq), at) < (best[0], best[1])):
            best = (at + len(seq), at, seq)
    return (best[1], best[2]) if best else None


def held_back_length(text: str, sequences: Iterable[str]) -> int:
    """Length of the longest suffix of `text` that could be the start of a stop sequence."""
    longest = 0
    for seq in sequences:
        for n in range(min(len(seq) - 1, len(text)), longest, -1):
            if text.endswith(seq[:n]):
                longest = n
                break
    return longest


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


def parse_tool_input(arguments: object, *, name: str) -> JSONDict:
    """A tool call's `arguments` -> the tool_use input. Invalid JSON is an upstream error, never {}."""
    if isinstance(arguments, dict):  # a few backends send an object instead of a JSON string
        return arguments
    text = arguments if isinstance(arguments, str) else ""
    if not text.strip():
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise UpstreamError(
            f"upstream sent invalid JSON arguments for tool {name!r}: {text[:200]!r}",
            error_type="api_error",
            status=500,
        )
    return value


def lenient_tool_input(arguments: object) -> JSONDict | str:
    """With healing on: the arguments as an object when they parse as one, else their text as sent."""
    if isinstance(arguments, dict):
        return arguments
    text = arguments if isinstance(arguments, str) else ""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    return value if isinstance(value, dict) else text


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


def error_from_object(error: object, *, where: str = "upstream error") -> UpstreamError:
    """An `{"error": ...}` object inside a 200 reply or a stream -> UpstreamError."""
    status = 500
    message = "unknown error"
    if isinstance(error, dict):
        code, kind = error.get("code"), error.get("type")
        if isinstance(code, int) or (isinstance(code, str) and code.isdigit()):
            status = int(code)
        else:
            status = _ERROR_KINDS.get(str(code), _ERROR_KINDS.get(str(kind), 500))
        message = str(error.get("message") or kind or code or message)
    elif isinstance(error, str) and error:
        message = error
    error_type, client_status = _map_status(status)
    return UpstreamError(
        f"{where}: {message}"[:_MAX_ERROR_MESSAGE],
        error_type=error_type,
        status=client_status,
        upstream_status=status,
    )


def parse_response(body: JSONDict, translation: Translation) -> Message:
    """A non-streaming Chat Completions reply (2xx) -> Anthropic Message."""
    if body.get("error"):  # OpenRouter and others may answer 200 with an error object
        raise error_from_object(body["error"])
    choices = shape(body.get("choices"), list, "choices")
    if not choices:
        raise UpstreamError("upstream reply has no choices", error_type="api_error", status=500)
    choice = shape(choices[0], dict, "choice")
    message = shape(choice.get("message"), dict, "message")
    content: list[JSONDict] = []

    field, reasoning = reasoning_of(message)
    if reasoning and wants_thinking(translation):
        content.append({"type": "thinking", "thinking": reasoning, "signature": thinking_signature(field)})

    text = _message_text(message.get("content"))
    refusal = message.get("refusal") if isinstance(message.get("refusal"), str) else ""
    text += refusal
    calls = _tool_calls(message)
    hit = find_stop_sequence(text, local_stop_sequences(translation))
    if hit is not None:
        # The model went past a stop sequence the backend could not enforce: cut there, as Anthropic would.
        text, calls = text[: hit[0]], []
    if text:
        content.append({"type": "text", "text": text})
    for ordinal, call in enumerate(calls):
        function = shape(call.get("function"), dict, "tool call")
        name = str(function.get("name") or "")
        if not name:
            raise UpstreamError(f"upstream sent a tool call without a name: {str(function)[:200]!r}")
        block = tool_use_block(
            upstream_id=call.get("id"), name=name, ordinal=ordinal, translation=translation
        )
        arguments = function.get("arguments")
        if translation.lenient_tool_input:
            block["input"] = lenient_tool_input(arguments)
        else:
            block["input"] = parse_tool_input(arguments, name=name)
        content.append(block)

    stop_reason: StopReason
    stop_sequence: str | None
    if hit is not None:
        stop_reason, stop_sequence = "stop_sequence", hit[1]
    else:
        stop_reason, stop_sequence = stop_reason_for(
            choice, choice.get("finish_reason"), has_tool_calls=bool(calls), refused=bool(refusal)
        )
    return {
        "id": translation.message_id,
        "type": "message",
        "role": "assistant",
        "model": translation.client_model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage_from_openai(body.get("usage")),
    }


def parse_error(status: int, body: bytes, headers: dict[str, str]) -> UpstreamError:
    """A non-2xx upstream reply -> the Anthropic error type and status the client gets."""
    error_type, client_status = _map_status(status)
    message = _error_text(body) or _status_phrase(status)
    retry_after = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    output_limit = output_limit_sizes(message) if 400 <= status < 500 else None
    if output_limit:
        # Anthropic's wording again: on it Claude Code resends with max_tokens at the stated maximum and
        # keeps that cap for the model, where any other wording ends the turn in an error. (Our limits
        # table lowers max_tokens before sending; this covers models it does not know.)
        return UpstreamError(
            f"max_tokens: {output_limit[0]} > {output_limit[1]}, which is the maximum allowed number of "
            "output tokens for this model",
            error_type="invalid_request_error",
            status=400,
            upstream_status=status,
        )
    if 400 <= status < 500 and _CONTEXT_OVERFLOW.search(message):
        # Anthropic words this "prompt is too long: …", and Claude Code reacts to exactly that phrase
        # by compacting the conversation; any other wording leaves the session stuck. With the figures
        # in Anthropic's own form it also knows how far over it is: a compaction that is itself too long
        # then drops just enough of the oldest turns (without them, a fifth of them). The backend's own
        # words follow, so nothing it said is lost (Claude Code reads the first figures only).
        sizes = context_overflow_sizes(message)
        said = f"upstream {status}: {message}"
        text = f"{sizes[0]} tokens > {sizes[1]} maximum ({said})" if sizes else said
        return UpstreamError(
            f"prompt is too long: {text}",
            error_type="invalid_request_error",
            status=400,
            upstream_status=status,
        )
    return UpstreamError(
        f"upstream {status}: {message}",
        error_type=error_type,
        status=client_status,
        retry_after=retry_after,
        upstream_status=status,
    )


# How OpenAI, vLLM, Ollama, llama.cpp, DeepSeek and OpenRouter say the prompt does not fit.
_CONTEXT_OVERFLOW = re.compile(
    r"context[_ ]length[_ ]exceeded|maximum context length|context window|prompt is too long"
    r"|too many tokens|exceeds? the (?:model'?s? |available )?(?:maximum )?context|input is too long",
    re.IGNORECASE,
)


# (actual, limit) in the wordings that carry them. OpenAI, DeepSeek, OpenRouter and older vLLM:
# "maximum context length is 128000 tokens. However, you requested [about] 130000 tokens (…)" or
# "…your messages resulted in 130000 tokens"; newer vLLM: "…context length is 32768 tokens and your
# request has 40000 input tokens"; llama.cpp: "request (40000 tokens) exceeds the available context
# size (32768 tokens)". A total that includes the completion is still the right gap: the conversation
# must shrink by that much for the request, as sent, to fit.
_LIMIT_THEN_ACTUAL = re.compile(
    r"maximum context length is ([\d,]+) tokens.{0,40}?(?:requested(?: about)?|resulted in|has) ([\d,]+)",
    re.IGNORECASE | re.DOTALL,
)
_ACTUAL_THEN_LIMIT = re.compile(r"request \(([\d,]+) tokens\) exceeds the available context size \(([\d,]+)")


# (asked, limit) for max_tokens over the model's output limit. OpenAI: "max_tokens is too large: 64000.
# This model supports at most 16384 completion tokens"; vLLM: "'max_tokens' or 'max_completion_tokens' is
# too large: 64000. This model's maximum context length is 64001 tokens and your request has 24235 input
# tokens" (the room left is context - input); Volcengine: "`max_completion_tokens` … expected a value
# <= 12288, but got 32000".
_OUTPUT_LIMITS = (
    re.compile(r"is too large: (?P<asked>\d+)\. This model supports at most (?P<limit>\d+)", re.IGNORECASE),
    re.compile(
        r"is too large: (?P<asked>\d+)\. This model's maximum context length is (?P<context>\d+) tokens "
        r"and your request has (?P<input>\d+) input tokens",
        re.IGNORECASE,
    ),
    re.compile(
        r"max_(?:completion_)?tokens.{0,120}?expected a value <= ?(?P<limit>\d+), but got (?P<asked>\d+)",
        re.IGNORECASE | re.DOTALL,
    ),
)


def output_limit_sizes(message: str) -> tuple[int, int] | None:
    """(max_tokens asked, the most the backend allows) from a backend's refusal, when it gives both."""
    for pattern in _OUTPUT_LIMITS:
        if match := pattern.search(message):
            found = match.groupdict()
            limit = int(found["limit"]) if found.get("limit") else int(found["context"]) - int(found["input"])
            asked = int(found["asked"])
            return (asked, limit) if asked > limit > 0 else None
    return None


def context_overflow_sizes(message: str) -> tuple[int, int] | None:
    """(prompt tokens, context limit) from a backend's context-overflow message, when it gives both."""
    if match := _LIMIT_THEN_ACTUAL.search(message):
        limit, actual = match.groups()
    elif match := _ACTUAL_THEN_LIMIT.search(message):
        actual, limit = match.groups()
    else:
        return None
    actual_n, limit_n = int(actual.replace(",", "")), int(limit.replace(",", ""))
    return (actual_n, limit_n) if actual_n > limit_n else None


def _map_status(status: int) -> tuple[ErrorType, int]:
    if status in _STATUS_MAP:
        return _STATUS_MAP[status]
    if 400 <= status < 500:
        return "invalid_request_error", 400
    return "api_error", 500


def _status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "no message"


def _error_text(body: bytes) -> str:
    """The human message inside an error body: OpenAI/vLLM/Ollama/FastAPI JSON, plain text or HTML."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, list) and data:  # Gemini's OpenAI endpoint wraps the error in a list
        data = data[0]
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            found = error.get("message") or error.get("type") or error.get("code")
        else:
            found = error or data.get("message") or data.get("detail")
        if found:
            text = found if isinstance(found, str) else orjson.dumps(found).decode()
            return text[:_MAX_ERROR_MESSAGE]
    text = body.decode("utf-8", errors="replace")
    if "<" in text and ">" in text:  # an HTML page from a gateway: its title says enough
        title = _HTML_TITLE.search(text)
        text = title.group(1) if title else _HTML_TAG.sub(" ", text)
    return _SPACES.sub(" ", text).strip()[:_MAX_ERROR_MESSAGE]


def reasoning_of(message: JSONDict) -> tuple[str, str]:
    """(field, text) of the reasoning in a message or delta; ("", "") when there is none."""
    for field in REASONING_FIELDS:
        value = message.get(field)
        if isinstance(value, str) and value:
            return field, value
    return "", ""


def _message_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones
        return "".join(
            p.get("text") or "" for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def _tool_calls(message: JSONDict) -> list[JSONDict]:
    calls = [shape(c, dict, "tool call") for c in shape(message.get("tool_calls"), list, "tool_calls")]
    legacy = message.get("function_call")
    if not calls and isinstance(legacy, dict):  # the deprecated single `function_call` has no id
        calls = [{"function": legacy}]
    return calls


def shape(value: object, kind: type, what: str) -> Any:
    """`value` when it is a `kind` (None counts as empty); anything else is a malformed upstream reply."""
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise UpstreamError(f"upstream sent a malformed {what}: {str(value)[:200]!r}")
    return value


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0

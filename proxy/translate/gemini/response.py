"""Gemini -> Anthropic: non-streaming replies, errors, finish reasons and usage.

Error bodies are Google's: `{"error": {"code", "status", "message", "details": [...]}}`; a 429 names its
wait in a `google.rpc.RetryInfo` detail (`retryDelay: "43s"`), sent on as `retry-after` (Gemini sends no
header). https://ai.google.dev/gemini-api/docs/troubleshooting, googleapis/python-genai `FinishReason`.
"""

from __future__ import annotations

import math
import re
from http import HTTPStatus
from typing import Any

import orjson

from ..accumulate import accumulate
from ..base import UpstreamError
from ..types import ErrorType, JSONDict, Message, SSEEvent, StopReason, Translation, Usage

_MAX_ERROR_MESSAGE = 500

# Finish reasons that mean the content was withheld: Anthropic's `refusal`.
_REFUSALS = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
    }
)

# Google's canonical status names -> (Anthropic error type, client status).
_STATUSES: dict[str, tuple[ErrorType, int]] = {
    "INVALID_ARGUMENT": ("invalid_request_error", 400),
    "FAILED_PRECONDITION": ("invalid_request_error", 400),
    "OUT_OF_RANGE": ("invalid_request_error", 400),
    "UNAUTHENTICATED": ("authentication_error", 401),
    "PERMISSION_DENIED": ("permission_error", 403),
    "NOT_FOUND": ("not_found_error", 404),
    "RESOURCE_EXHAUSTED": ("rate_limit_error", 429),
    "CANCELLED": ("api_error", 500),
    "INTERNAL": ("api_error", 500),
    "UNKNOWN": ("api_error", 500),
    "UNAVAILABLE": ("overloaded_error", 529),
    "DEADLINE_EXCEEDED": ("timeout_error", 504),
}
_HTTP: dict[int, tuple[ErrorType, int]] = {
    400: ("invalid_request_error", 400),
    401: ("authentication_error", 401),
    403: ("permission_error", 403),
    404: ("not_found_error", 404),
    413: ("request_too_large", 413),
    429: ("rate_limit_error", 429),
    503: ("overloaded_error", 529),
    504: ("timeout_error", 504),
}
# "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."
_CONTEXT_OVERFLOW = re.compile(
    r"input token count \(?(\d+)\)? exceeds the maximum number of tokens allowed \(?(\d+)"
)
# "…has a maxOutputTokens value of 64000 but the supported range is from 1 (inclusive) to 8193 (exclusive)"
_OUTPUT_LIMIT = re.compile(
    r"maxOutputTokens value of (\d+) but the supported range is from 1 \(inclusive\) to (\d+)"
)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")  # google.protobuf.Duration in JSON: "43s", "0.5s"


class MalformedFunctionCall(UpstreamError):
    """Gemini ended with finishReason MALFORMED_FUNCTION_CALL (or UNEXPECTED_TOOL_CALL): it tried to call a
    tool and produced something that is not a valid call. Never an empty `end_turn`: this error, marked
    `malformed_tool_call = True` and retryable (the same request usually succeeds), so serving may retry
    or heal it. `finish_message` is Gemini's `finishMessage`, often the broken call's text."""

    malformed_tool_call = True
    retryable = True

    def __init__(self, finish_reason: str, finish_message: str) -> None:
        said = f": {finish_message[:300]}" if finish_message else ""
        super().__init__(
            f"Gemini produced a malformed tool call ({finish_reason}){said}",
            error_type="api_error",
            status=500,
        )
        self.finish_reason = finish_reason
        self.finish_message = finish_message


def stop_reason_for(finish: str, *, has_calls: bool, candidate: JSONDict) -> StopReason:
    """Anthropic's stop reason for a Gemini finishReason (a function call ends with STOP: `tool_use`)."""
    if finish == "MAX_TOKENS":
        return "max_tokens"
    if finish in _REFUSALS:
        return "refusal"
    if finish == "TOO_MANY_TOOL_CALLS":
        raise UpstreamError("Gemini stopped: too many tool calls in a row (TOO_MANY_TOOL_CALLS)")
    return "tool_use" if has_calls else "end_turn"


def usage_from_gemini(meta: JSONDict) -> Usage:
    """usageMetadata -> Anthropic usage: output counts thoughts too; input excludes cache reads."""
    prompt = _int(meta.get("promptTokenCount")) + _int(meta.get("toolUsePromptTokenCount"))
    cached = _int(meta.get("cachedContentTokenCount"))
    return {
        "input_tokens": max(prompt - cached, 0),
        "output_tokens": _int(meta.get("candidatesTokenCount")) + _int(meta.get("thoughtsTokenCount")),
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
    }


def parse_response(body: JSONDict, translation: Translation) -> Message:
    """A generateContent reply: the same shape as one stream chunk, so the stream machine reads it."""
    from .stream import GeminiStreamTranslator  # the machine imports this module's helpers

    machine = GeminiStreamTranslator(translation)
    events = machine.feed(SSEEvent(data=orjson.dumps(body).decode()))
    if not machine.done:
        events += machine.finish()
    return accumulate(events)


def parse_error(status: int, body: bytes, headers: dict[str, str]) -> UpstreamError:
    """A non-2xx reply -> the Anthropic error type and status the client gets."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, list) and data:
        data = data[0]
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return error_from_body(data, where=f"upstream {status}", http_status=status)
    text = body.decode("utf-8", errors="replace").strip()[:_MAX_ERROR_MESSAGE] or _phrase(status)
    error_type, client_status = _HTTP.get(
        status, ("invalid_request_error", 400) if status < 500 else ("api_error", 500)
    )
    retry_after = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    return UpstreamError(
        f"upstream {status}: {text}", error_type=error_type, status=client_status,
        retry_after=retry_after, upstream_status=status,
    )  # fmt: skip


def error_from_body(data: JSONDict, *, where: str, http_status: int | None = None) -> UpstreamError:
    """Google's `{"error": {...}}` (a reply body, or an event mid-stream) -> UpstreamError."""
    error = data.get("error")
    error = error if isinstance(error, dict) else {"message": str(error)}
    raw_code = error.get("code")
    code: int = raw_code if isinstance(raw_code, int) else http_status or 500
    status_name = str(error.get("status") or "")
    message = str(error.get("message") or status_name or _phrase(code))[:_MAX_ERROR_MESSAGE]
    details = [d for d in error.get("details") or [] if isinstance(d, dict)]
    error_type, client_status = _STATUSES.get(status_name) or _HTTP.get(
        code, ("invalid_request_error", 400) if 400 <= code < 500 else ("api_error", 500)
    )
    if any(d.get("reason") == "API_KEY_INVALID" for d in details):  # Google says 400; it is the key
        error_type, client_status = "authentication_error", 401
    if overflow := _CONTEXT_OVERFLOW.search(message):
        # Claude Code compacts on Anthropic's own wording, and reads the figures from it.
        actual, limit = overflow.groups()
        return UpstreamError(
            f"prompt is too long: {actual} tokens > {limit} maximum ({where}: {message})",
            error_type="invalid_request_error", status=400, upstream_status=code,
        )  # fmt: skip
    if (limit := _OUTPUT_LIMIT.search(message)) and int(limit.group(1)) >= int(limit.group(2)):
        # Anthropic's wording: Claude Code then resends with max_tokens at the stated maximum.
        asked, most = int(limit.group(1)), int(limit.group(2)) - 1
        return UpstreamError(
            f"max_tokens: {asked} > {most}, "
            "which is the maximum allowed number of output tokens for this model",
            error_type="invalid_request_error", status=400, upstream_status=code,
        )  # fmt: skip
    return UpstreamError(
        f"{where}: {status_name + ': ' if status_name else ''}{message}"[:_MAX_ERROR_MESSAGE],
        error_type=error_type, status=client_status,
        retry_after=_retry_delay(details), upstream_status=code,
    )  # fmt: skip


def _retry_delay(details: list[JSONDict]) -> str | None:
    """`google.rpc.RetryInfo.retryDelay` ("43s", "0.5s") as whole seconds for a retry-after header."""
    for detail in details:
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = _DURATION.match(str(detail.get("retryDelay", "")))
            if match:
                return str(max(1, math.ceil(float(match.group(1)))))
    return None


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "no message"


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0

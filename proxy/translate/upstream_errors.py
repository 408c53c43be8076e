"""A backend's error, whatever its vendor -> the Anthropic error the client gets.

A dialect's `parse_error` is one call: `from_reply(status, body, headers)`, with `message=` when its
error bodies have a shape `body_text` does not know. Errors inside a 200 reply or a stream (no HTTP
status of their own) go through `from_error_object`.

Claude Code reacts to two of Anthropic's wordings, so backends' refusals are reworded into them: a prompt
over the context ("prompt is too long: …", it compacts) and max_tokens over the model's limit (it resends
with the stated maximum). Anthropic's types and statuses: https://docs.anthropic.com/en/api/errors
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from http import HTTPStatus

import orjson

from .base import UpstreamError
from .types import ErrorType

# Upstream HTTP status -> (Anthropic error type, status the client sees).
STATUS_MAP: dict[int, tuple[ErrorType, int]] = {
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
ERROR_KINDS: dict[str, int] = {
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

MAX_ERROR_MESSAGE = 500
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_HTML_TAG = re.compile(r"<[^>]+>")
_SPACES = re.compile(r"\s+")


def map_status(status: int) -> tuple[ErrorType, int]:
    """(Anthropic error type, status the client sees) for an upstream HTTP status."""
    if status in STATUS_MAP:
        return STATUS_MAP[status]
    if 400 <= status < 500:
        return "invalid_request_error", 400
    return "api_error", 500


def retry_after(headers: Mapping[str, str]) -> str | None:
    """The reply's retry-after header, whatever its case."""
    return next((v for k, v in headers.items() if k.lower() == "retry-after"), None)


def from_reply(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    message: str | None = None,
    retryable: bool | None = None,
) -> UpstreamError:
    """A non-2xx reply -> UpstreamError. `message`: the dialect's own reading of its body (default:
    `body_text`); `retryable`: the dialect's decision (default: by status, see UpstreamError)."""
    text = message or body_text(body) or status_phrase(status)
    error_type, client_status = map_status(status)
    output_limit = output_limit_sizes(text) if 400 <= status < 500 else None
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
            retryable=retryable,
        )
    if 400 <= status < 500 and _CONTEXT_OVERFLOW.search(text):
        # Anthropic words this "prompt is too long: …", and Claude Code reacts to exactly that phrase
        # by compacting the conversation; any other wording leaves the session stuck. With the figures
        # in Anthropic's own form it also knows how far over it is: a compaction that is itself too long
        # then drops just enough of the oldest turns (without them, a fifth of them). The backend's own
        # words follow, so nothing it said is lost (Claude Code reads the first figures only).
        sizes = context_overflow_sizes(text)
        said = f"upstream {status}: {text}"
        detail = f"{sizes[0]} tokens > {sizes[1]} maximum ({said})" if sizes else said
        return UpstreamError(
            f"prompt is too long: {detail}",
            error_type="invalid_request_error",
            status=400,
            upstream_status=status,
            retryable=retryable,
        )
    return UpstreamError(
        f"upstream {status}: {text}",
        error_type=error_type,
        status=client_status,
        retry_after=retry_after(headers),
        upstream_status=status,
        retryable=retryable,
    )


def from_error_object(error: object, *, where: str = "upstream error") -> UpstreamError:
    """An `{"error": ...}` object inside a 200 reply or a stream -> UpstreamError.

    Its `code` is an HTTP status (OpenRouter, Gemini) or a kind string (OpenAI); `type` a kind string.
    """
    status = 500
    message = "unknown error"
    if isinstance(error, dict):
        code, kind = error.get("code"), error.get("type")
        if isinstance(code, int) or (isinstance(code, str) and code.isdigit()):
            status = int(code)
        else:
            status = ERROR_KINDS.get(str(code), ERROR_KINDS.get(str(kind), 500))
        message = str(error.get("message") or kind or code or message)
    elif isinstance(error, str) and error:
        message = error
    error_type, client_status = map_status(status)
    return UpstreamError(
        f"{where}: {message}"[:MAX_ERROR_MESSAGE],
        error_type=error_type,
        status=client_status,
        upstream_status=status,
    )


def body_text(body: bytes) -> str:
    """The human message inside an error body: OpenAI/vLLM/Ollama/FastAPI/Gemini JSON, plain text or HTML."""
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
            return text[:MAX_ERROR_MESSAGE]
    text = body.decode("utf-8", errors="replace")
    if "<" in text and ">" in text:  # an HTML page from a gateway: its title says enough
        title = _HTML_TITLE.search(text)
        text = title.group(1) if title else _HTML_TAG.sub(" ", text)
    return _SPACES.sub(" ", text).strip()[:MAX_ERROR_MESSAGE]


def status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "no message"


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

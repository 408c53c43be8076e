"""The one place Anthropic error bodies, SSE error frames and their HTTP statuses are made."""

from __future__ import annotations

import orjson
from django.http import HttpResponse

from proxy.redact import redact
from proxy.translate.types import ERROR_STATUS, ErrorType


def error_body(error_type: ErrorType | str, message: str) -> dict[str, object]:
    # An upstream's message may echo a key (its own, or the client's): never passed on.
    return {"type": "error", "error": {"type": error_type, "message": redact(message)}}


def error_response(
    error_type: ErrorType | str, message: str, *, status: int | None = None, retry_after: str | None = None
) -> HttpResponse:
    response = HttpResponse(
        orjson.dumps(error_body(error_type, message)),
        status=status or ERROR_STATUS.get(error_type, 500),
        content_type="application/json",
    )
    if retry_after:
        response["retry-after"] = retry_after
    return response


def error_frame(error_type: ErrorType | str, message: str) -> bytes:
    """An error after the stream began: Anthropic's `event: error` frame (never a silent clean end)."""
    return b"event: error\ndata: " + orjson.dumps(error_body(error_type, message)) + b"\n\n"

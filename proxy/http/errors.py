"""The one place Anthropic error bodies, SSE error frames and their HTTP statuses are made."""

from __future__ import annotations

from typing import TypeVar

import orjson
from django.http import HttpResponse
from django.http.response import HttpResponseBase

from proxy.security.redact import redact
from proxy.translate.types import ERROR_STATUS, ErrorType

R = TypeVar("R", bound=HttpResponseBase)


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


def error_frame(error_type: ErrorType | str, message: str, *, request_id: str = "") -> bytes:
    """An error after the stream began: Anthropic's `event: error` frame (never a silent clean end)."""
    body = error_body(error_type, message)
    if request_id:
        body["request_id"] = request_id
    return b"event: error\ndata: " + orjson.dumps(body) + b"\n\n"


def with_request_id(response: R, request_id: str) -> R:
    """As Anthropic answers: a `request-id` header on every response, and beside `error` in every error
    body a top-level `request_id` (`{"type":"error","error":{...},"request_id":"req_..."}`), so the id a
    user quotes finds the exchange. Done here, once, for every error any layer made: only error bodies
    are decoded again (a few microseconds, off the success path)."""
    response["request-id"] = request_id
    if response.status_code >= 400 and isinstance(response, HttpResponse):
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            return response
        if isinstance(body, dict) and body.get("type") == "error" and "request_id" not in body:
            body["request_id"] = request_id
            response.content = orjson.dumps(body)
    return response

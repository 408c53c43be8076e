"""Any vendor's error reply -> an Anthropic error, and whether another target is worth trying."""

from __future__ import annotations

import pytest

from proxy.translate import upstream_errors
from proxy.translate.base import UpstreamError


@pytest.mark.parametrize(
    ("upstream_status", "retryable"),
    [(None, True), (408, True), (429, True), (500, True), (503, True), (529, True),
     (400, False), (401, False), (404, False), (422, False)],
)  # fmt: skip
def test_upstream_error_is_retryable_by_status_unless_its_dialect_says(
    upstream_status: int | None, retryable: bool
) -> None:
    assert UpstreamError("x", upstream_status=upstream_status).retryable is retryable
    assert (
        UpstreamError("x", upstream_status=upstream_status, retryable=not retryable).retryable
        is not retryable
    )


def test_from_reply_maps_status_and_keeps_retry_after_whatever_its_case() -> None:
    error = upstream_errors.from_reply(503, b'{"error": {"message": "busy"}}', {"Retry-After": "2"})
    assert (error.error_type, error.status, error.upstream_status) == ("overloaded_error", 529, 503)
    assert (error.message, error.retry_after, error.retryable) == ("upstream 503: busy", "2", True)


def test_from_reply_uses_the_dialects_own_reading_of_its_body() -> None:
    said = "maximum context length is 8192 tokens. However, you requested 9000 tokens"
    body = b'{"fault": {"text": "' + said.encode() + b'"}}'  # a shape body_text does not know
    error = upstream_errors.from_reply(400, body, {}, message=said)
    assert error.message.startswith("prompt is too long: 9000 tokens > 8192 maximum")
    assert (error.error_type, error.status, error.retryable) == ("invalid_request_error", 400, False)


def test_from_reply_lets_a_dialect_decide_retryable() -> None:
    error = upstream_errors.from_reply(400, b"quota of this key spent", {}, retryable=True)
    assert error.retryable and error.status == 400


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b'[{"error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}}]', "bad"),
        (b'{"detail": "Not Found"}', "Not Found"),
        (b"<html><title>502 Bad Gateway</title><body>nginx</body></html>", "502 Bad Gateway"),
        (b"  plain\n text ", "plain text"),
    ],
)
def test_body_text_reads_json_html_and_plain_bodies(body: bytes, text: str) -> None:
    assert upstream_errors.body_text(body) == text


def test_from_error_object_reads_a_status_code_or_a_kind() -> None:
    by_code = upstream_errors.from_error_object(
        {"code": 429, "message": "slow down"}, where="upstream stream error"
    )
    assert (by_code.error_type, by_code.status, by_code.message) == (
        "rate_limit_error",
        429,
        "upstream stream error: slow down",
    )
    by_kind = upstream_errors.from_error_object({"type": "overloaded", "message": "later"})
    assert (by_kind.error_type, by_kind.status, by_kind.upstream_status) == ("overloaded_error", 529, 529)

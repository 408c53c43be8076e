"""The one interface every backend dialect implements, and the errors the pure core raises.

Serving reads only what is declared here: a dialect's `capabilities` instead of its name, the
`count_tokens` hook, `UpstreamError.retryable`, and the members of `StreamTranslator`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .types import (
    ErrorType,
    JSONDict,
    Message,
    MessagesRequest,
    SSEEvent,
    StreamEvent,
    Target,
    Translation,
    UpstreamRequest,
    Usage,
)

# Upstream statuses after which another target may well succeed (the backend, not the request, failed).
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})


class TranslationError(Exception):
    """The client's request cannot be translated: a 400 invalid_request_error naming the field."""

    def __init__(self, message: str, *, error_type: ErrorType = "invalid_request_error", status: int = 400):
        super().__init__(message)
        self.message = message
        self.error_type = error_type
        self.status = status


class UpstreamError(Exception):
    """The backend answered with an error (before or during the stream), mapped to Anthropic's terms.

    `retryable` says whether the next target should be tried. A dialect's `parse_error` may decide it
    (it knows its backend's codes); by default it is True when the backend never answered with a status
    (connection, timeout) or answered one of RETRYABLE_STATUSES, False when it refused the request itself.
    """

    def __init__(
        self,
        message: str,
        *,
        error_type: ErrorType = "api_error",
        status: int = 500,
        retry_after: str | None = None,
        upstream_status: int | None = None,
        retryable: bool | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.error_type = error_type
        self.status = status
        self.retry_after = retry_after
        self.upstream_status = upstream_status
        if retryable is None:
            retryable = upstream_status is None or upstream_status in RETRYABLE_STATUSES
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What code outside translate/ may know of a dialect, so that it never tests the dialect's name."""

    # A target with model "" sends the client's own model id (passthrough); else a model is required.
    keeps_client_model: bool = False
    # With no key configured on the provider, the client's own credentials go upstream (passthrough).
    forwards_client_credentials: bool = False
    # The backend can count a request's tokens exactly: `build_count_tokens_request` may return a request.
    counts_tokens: bool = False
    # Header names (lower-case) this dialect authenticates with, never recorded, on top of the generic
    # hints in proxy/recording/tape.py (e.g. "x-goog-api-key").
    secret_headers: frozenset[str] = frozenset()
    # Tool calls in its answers are checked and healed (issue #15): a translated answer is ours to check;
    # a passthrough's is the vendor's own, and its tools are the vendor's business.
    heals_tool_calls: bool = True


class StreamTranslator(Protocol):
    """A fresh state machine per request: upstream events in, Anthropic stream events out.

    Serving reads `done` after every chunk (True once message_stop is out: the relay may hang up, e.g.
    after a stop sequence matched locally) and `usage` / `usage_estimated` when the stream ends.
    """

    @property
    def done(self) -> bool: ...

    @property
    def usage(self) -> Usage:
        """The usage so far (the backend's figures, or an estimate when `usage_estimated`)."""
        ...

    @property
    def usage_estimated(self) -> bool:
        """True when `usage` was counted locally because the stream was cut before the backend's report."""
        ...

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        """One upstream SSE event in, zero or more Anthropic events out; UpstreamError on an error event."""
        ...

    def finish(self) -> list[StreamEvent]:
        """The upstream ended. Closes what is open; raises UpstreamError if it ended before finishing."""
        ...


class Dialect(Protocol):
    name: str
    capabilities: Capabilities

    def build_request(
        self, request: MessagesRequest, target: Target, *, message_id: str, client_headers: dict[str, str]
    ) -> Translation:
        """Pure: the upstream HTTP request for `request` on `target`, plus the changes made.

        `client_headers` has lower-case names; passthrough forwards betas/version (and the client's key
        when the target has none). `message_id` is the msg_… id the client will see.
        """
        ...

    def build_count_tokens_request(
        self, request: MessagesRequest, target: Target, *, client_headers: dict[str, str]
    ) -> UpstreamRequest | None:
        """The backend's own token count for a count_tokens body; None = count locally (an estimate)."""
        ...

    def parse_count_tokens(self, body: JSONDict) -> JSONDict:
        """The backend's count_tokens reply (2xx) -> Anthropic's `{"input_tokens": n}`."""
        ...

    def parse_response(self, body: JSONDict, translation: Translation) -> Message:
        """A non-streaming upstream reply (2xx) -> Anthropic Message."""
        ...

    def stream_translator(self, translation: Translation) -> StreamTranslator:
        """A fresh stream state machine for this request."""
        ...

    def parse_error(self, status: int, body: bytes, headers: dict[str, str]) -> UpstreamError:
        """A non-2xx upstream reply -> the error the client gets (Anthropic type and status, retryable)."""
        ...

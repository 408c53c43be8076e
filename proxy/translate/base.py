"""The one interface every backend dialect implements, and the errors the pure core raises."""

from __future__ import annotations

from typing import Protocol

from .types import ErrorType, JSONDict, Message, MessagesRequest, SSEEvent, StreamEvent, Target, Translation


class TranslationError(Exception):
    """The client's request cannot be translated: a 400 invalid_request_error naming the field."""

    def __init__(self, message: str, *, error_type: ErrorType = "invalid_request_error", status: int = 400):
        super().__init__(message)
        self.message = message
        self.error_type = error_type
        self.status = status


class UpstreamError(Exception):
    """The backend answered with an error (before or during the stream), mapped to Anthropic's terms."""

    def __init__(
        self,
        message: str,
        *,
        error_type: ErrorType = "api_error",
        status: int = 500,
        retry_after: str | None = None,
        upstream_status: int | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.error_type = error_type
        self.status = status
        self.retry_after = retry_after
        self.upstream_status = upstream_status


class StreamTranslator(Protocol):
    """A fresh state machine per request: upstream events in, Anthropic stream events out."""

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        """One upstream SSE event in, zero or more Anthropic events out; UpstreamError on an error event."""
        ...

    def finish(self) -> list[StreamEvent]:
        """The upstream ended. Closes what is open; raises UpstreamError if it ended before finishing."""
        ...


class Dialect(Protocol):
    name: str

    def build_request(
        self, request: MessagesRequest, target: Target, *, message_id: str, client_headers: dict[str, str]
    ) -> Translation:
        """Pure: the upstream HTTP request for `request` on `target`, plus the changes made.

        `client_headers` has lower-case names; passthrough forwards betas/version (and the client's key
        when the target has none). `message_id` is the msg_… id the client will see.
        """
        ...

    def parse_response(self, body: JSONDict, translation: Translation) -> Message:
        """A non-streaming upstream reply (2xx) -> Anthropic Message."""
        ...

    def stream_translator(self, translation: Translation) -> StreamTranslator:
        """A fresh stream state machine for this request."""
        ...

    def parse_error(self, status: int, body: bytes, headers: dict[str, str]) -> UpstreamError:
        """A non-2xx upstream reply -> the error the client gets (Anthropic type and status)."""
        ...

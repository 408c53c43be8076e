"""Passthrough dialect: the Anthropic Messages API itself and Anthropic-compatible endpoints.

Serves api.anthropic.com and servers that speak the same wire format (Ollama >= 0.14, OpenRouter, DeepSeek,
Moonshot). Content is not translated; the few edits are the model id, a max_tokens ceiling and, for
non-official servers, dropping Anthropic-only fields and Claude Code's billing line (claude_code.py).
The stream is still decoded event by event so the relay can record it and echo the client's model id.

Wire format: https://docs.anthropic.com/en/api/messages-streaming and https://docs.anthropic.com/en/api/errors
"""

from __future__ import annotations

from typing import cast, get_args
from urllib.parse import urlsplit

import orjson

from . import anthropic_profile, upstream_errors
from .base import Capabilities, UpstreamError
from .claude_code import without_billing_header
from .types import (
    ERROR_STATUS,
    Change,
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

OFFICIAL_HOST = "api.anthropic.com"
DEFAULT_VERSION = "2023-06-01"
USER_AGENT = "switchboard/0.1"
# https://docs.anthropic.com/en/docs/build-with-claude/extended-thinking: budget_tokens >= 1024
MIN_THINKING_BUDGET = 1024

# Top-level request fields only api.anthropic.com understands. Compatible servers reject some of them, and
# `safeguards` carries local paths from the client's machine: it must never leave for a third party.
ANTHROPIC_ONLY_FIELDS = ("safeguards", "context_management", "container", "mcp_servers")

# Client headers forwarded as they are (names are lower-case in client_headers).
FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta", "x-claude-code-session-id")

_KNOWN_ERROR_TYPES: frozenset[str] = frozenset(get_args(ErrorType))
_STATUS_ERROR_TYPE: dict[int, ErrorType] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
_MAX_ERROR_TEXT = 2000


def is_official(target: Target) -> bool:
    """True when the target is Anthropic's own API (not marked as a compatible server), or a gateway
    in front of it marked `anthropic_api` (it checks signatures and counts tokens as Anthropic does)."""
    if "anthropic_compatible" in target.options:
        return False
    if "anthropic_api" in target.options:
        return True
    return (urlsplit(target.base_url).hostname or "").lower() == OFFICIAL_HOST


def messages_url(base_url: str, query: str = "") -> str:
    """base_url + /v1/messages, without doubling a trailing /v1; `query` is the client's raw query string."""
    base = base_url.rstrip("/")
    url = base + "/messages" if base.endswith("/v1") else base + "/v1/messages"
    query = query.lstrip("?")
    return url + "?" + query if query else url


def count_tokens_url(base_url: str, query: str = "") -> str:
    """The count_tokens endpoint next to /v1/messages (official API; most compatible servers lack it)."""
    url, _, rest = messages_url(base_url, query).partition("?")
    return url + "/count_tokens" + ("?" + rest if rest else "")


def output_ceiling(target: Target) -> int | None:
    """The lowest of the model's real output limit and the route's max_tokens override, if any."""
    limits = [target.max_output_tokens, dict(target.overrides).get("max_tokens")]
    known = [int(v) for v in limits if v]
    return min(known) if known else None


def cap_max_tokens(body: JSONDict, ceiling: int | None, changes: list[Change]) -> None:
    """Lower max_tokens to the ceiling in place, and the thinking budget with it (it must stay below)."""
    requested = body.get("max_tokens")
    if ceiling is None or not isinstance(requested, int) or requested <= ceiling:
        return
    body["max_tokens"] = ceiling
    changes.append(Change("max_tokens_lowered", f"{requested} -> {ceiling}"))
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and isinstance(thinking.get("budget_tokens"), int):
        budget = thinking["budget_tokens"]
        if budget < ceiling:
            return
        # Anthropic rejects budget_tokens >= max_tokens, and budgets under its minimum.
        if ceiling - 1 < MIN_THINKING_BUDGET:
            body["thinking"] = {"type": "disabled"}
            changes.append(Change("thinking_disabled", f"max_tokens {ceiling} leaves no room for thinking"))
        else:
            body["thinking"] = {**thinking, "budget_tokens": ceiling - 1}
            changes.append(Change("thinking_budget_lowered", f"{budget} -> {ceiling - 1}"))


def build_headers(target: Target, client_headers: dict[str, str], *, official: bool) -> dict[str, str]:
    """Upstream headers: version/betas/session forwarded, our user-agent, and a key (ours or the client's)."""
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "anthropic-version": DEFAULT_VERSION,
    }
    for name in FORWARDED_HEADERS:
        value = client_headers.get(name)
        if value:
            headers[name] = value
    if target.api_key:
        headers["x-api-key"] = target.api_key
        if not official:
            # Compatible servers differ on which header they read (DeepSeek/Moonshot/OpenRouter document
            # ANTHROPIC_AUTH_TOKEN, i.e. a bearer token): send both.
            headers["authorization"] = "Bearer " + target.api_key
    else:
        # No key configured: forward the client's own credentials, never stored.
        for name in ("x-api-key", "authorization"):
            value = client_headers.get(name)
            if value:
                headers[name] = value
    for name, value in target.extra_headers:
        headers[name.lower()] = value
    return headers


class AnthropicDialect:
    """The passthrough dialect: build_request / parse_response / stream_translator / parse_error."""

    name = "anthropic"
    capabilities = Capabilities(
        keeps_client_model=True,
        forwards_client_credentials=True,
        counts_tokens=True,  # the official API only: build_count_tokens_request says None elsewhere
        secret_headers=frozenset({"x-api-key", "authorization"}),
        heals_tool_calls=False,
    )

    def build_request(
        self, request: MessagesRequest, target: Target, *, message_id: str, client_headers: dict[str, str]
    ) -> Translation:
        """The client's body unchanged except model, max_tokens ceiling and Anthropic-only fields."""
        body: JSONDict = dict(request)
        changes: list[Change] = []
        client_model = str(request.get("model", ""))
        if target.model and target.model != client_model:
            body["model"] = target.model
            changes.append(Change("model_mapped", f"{client_model} -> {target.model}"))
        cap_max_tokens(body, output_ceiling(target), changes)
        official = is_official(target)
        # Other backends' reasoning kept away, this endpoint's known gaps covered (anthropic_profile.py).
        anthropic_profile.adapt_request(body, target=target, official=official, changes=changes)
        if not official:
            for name in ANTHROPIC_ONLY_FIELDS:
                if name in body:
                    del body[name]
                    changes.append(Change("field_dropped", name))
            # Anthropic's billing attribution, useless elsewhere and fatal to a prefix cache.
            if "system" in body:
                body["system"], dropped = without_billing_header(body["system"])
                changes += [Change("billing_header_dropped", header[:200]) for header in dropped]
        upstream = UpstreamRequest(
            method="POST",
            url=messages_url(target.base_url, client_headers.get(":query", "")),
            headers=build_headers(target, client_headers, official=official),
            body=body,
            stream=bool(request.get("stream")),
        )
        return Translation(
            upstream=upstream,
            client_model=client_model,
            message_id=message_id,
            changes=changes,
            provider=target.provider,
            # A compatible server's signatures and tool ids are tagged on the way back (not Anthropic's).
            state=None if official else anthropic_profile.Tagging(provider=target.provider),
        )

    def build_count_tokens_request(
        self, request: MessagesRequest, target: Target, *, client_headers: dict[str, str]
    ) -> UpstreamRequest | None:
        """POST /v1/messages/count_tokens passed through (model mapped) to the official API, which counts
        exactly; None for compatible servers (most lack the endpoint; the capability profile says which
        have one, anthropic_profile.counts_tokens): counted locally."""
        official = is_official(target)
        if not anthropic_profile.counts_tokens(target, official=official):
            return None
        body: JSONDict = dict(request)
        if target.model:
            body["model"] = target.model
        return UpstreamRequest(
            method="POST",
            url=count_tokens_url(target.base_url, client_headers.get(":query", "")),
            headers=build_headers(target, client_headers, official=official),
            body=body,
            stream=False,
        )

    def parse_count_tokens(self, body: JSONDict) -> JSONDict:
        """Already Anthropic's answer."""
        return body

    def parse_response(self, body: JSONDict, translation: Translation) -> Message:
        """The reply is already a Message; only the model id is the client's own."""
        message: Message = {**body, "model": translation.client_model}  # type: ignore[typeddict-item]
        tagging = translation.state
        if isinstance(tagging, anthropic_profile.Tagging) and "content" in body:
            message["content"] = anthropic_profile.tag_content(body["content"], provider=tagging.provider)  # type: ignore[typeddict-item]
        return message

    def stream_translator(self, translation: Translation) -> AnthropicStreamTranslator:
        tagging = translation.state
        tag = tagging.provider if isinstance(tagging, anthropic_profile.Tagging) else None
        return AnthropicStreamTranslator(client_model=translation.client_model, tag_for=tag)

    def parse_error(self, status: int, body: bytes, headers: dict[str, str]) -> UpstreamError:
        """Anthropic error bodies keep their type and status; anything else becomes an api_error."""
        retry_after = upstream_errors.retry_after(headers)
        error_type, message = _error_from_body(status, body)
        return UpstreamError(
            message, error_type=error_type, status=status, retry_after=retry_after, upstream_status=status
        )


class AnthropicStreamTranslator:
    """Relays upstream events one by one, decoded, echoing the client's model id.

    The StreamTranslator members: `usage` (message_start usage merged with message_delta usage, the
    backend's own: never estimated), `done` (True once message_stop arrived); also `stop_reason`,
    `stop_sequence`.
    """

    __slots__ = ("_client_model", "_errored", "_tag_for", "_usage", "done", "stop_reason", "stop_sequence")
    usage_estimated = False  # the backend's own figures, always

    def __init__(self, *, client_model: str, tag_for: str | None = None) -> None:
        self._client_model = client_model
        self._tag_for = tag_for  # a compatible server's provider: its signatures and tool ids are tagged
        self._errored = False
        self.done = False
        self.stop_reason: str | None = None
        self.stop_sequence: str | None = None
        # Every integer the API reports, kept even when newer than our Usage type.
        self._usage: dict[str, int] = {"input_tokens": 0, "output_tokens": 0}

    @property
    def usage(self) -> Usage:
        return cast(Usage, self._usage)

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        data = event.data
        if data == "[DONE]":
            # Not Anthropic's format, but some compatible servers end with it; message_stop already came.
            return []
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(
                f"upstream sent an event that is not JSON: {data[:200]!r}", status=502
            ) from exc
        if not isinstance(parsed, dict):
            raise UpstreamError(f"upstream sent an event that is not an object: {data[:200]!r}", status=502)
        if "type" not in parsed and "error" in parsed:
            # Ollama writes a failure into the stream as a bare {"error": "..."}: Anthropic's event: error.
            self._errored = True
            raise _stream_error({"error": _bare_error(parsed["error"])})
        # Relayed as decoded: Anthropic's own events (a newer kind than StreamEvent's goes through too).
        relayed = cast(StreamEvent, parsed)
        match parsed.get("type", event.event):
            case "message_start":
                return [self._message_start(parsed)]
            case "message_delta":
                self._message_delta(parsed)
            case "message_stop":
                self.done = True
            case "error":
                self._errored = True
                raise _stream_error(parsed)
            case "content_block_start" | "content_block_delta" if self._tag_for is not None:
                return [_tagged_event(parsed, provider=self._tag_for)]
            case "content_block_start" | "content_block_delta" | "content_block_stop" | "ping":
                pass
            case _:
                # Anthropic's versioning policy allows new event types: relay them, the client decides.
                pass
        return [relayed]

    def finish(self) -> list[StreamEvent]:
        """Nothing to close in a passthrough; a stream cut before message_stop is an error."""
        if self.done or self._errored:
            return []
        raise UpstreamError("upstream stream ended before message_stop", status=502)

    def _message_start(self, event: JSONDict) -> StreamEvent:
        message = event.get("message")
        if not isinstance(message, dict):
            return cast(StreamEvent, event)
        self._merge_usage(message.get("usage"))
        if message.get("model") == self._client_model:
            return cast(StreamEvent, event)
        return cast(StreamEvent, {**event, "message": {**message, "model": self._client_model}})

    def _message_delta(self, event: JSONDict) -> None:
        delta = event.get("delta")
        if isinstance(delta, dict) and delta.get("stop_reason") is not None:
            self.stop_reason = delta["stop_reason"]
            self.stop_sequence = delta.get("stop_sequence")
        self._merge_usage(event.get("usage"))

    def _merge_usage(self, usage: object) -> None:
        if not isinstance(usage, dict):
            return
        for key, value in usage.items():
            # message_delta usage is cumulative; nested objects (cache_creation, server_tool_use) are skipped.
            if isinstance(value, int) and not isinstance(value, bool):
                self._usage[key] = value


def _tagged_event(event: JSONDict, *, provider: str) -> StreamEvent:
    """A compatible server's block start or delta with its signature tagged and its tool id client-safe."""
    block = event.get("content_block")
    if isinstance(block, dict):
        tagged = anthropic_profile.tag_content([block], provider=provider)
        return cast(StreamEvent, {**event, "content_block": tagged[0]})  # type: ignore[index]
    delta = event.get("delta")
    if isinstance(delta, dict) and delta.get("type") == "signature_delta":
        signature = anthropic_profile.tag_signature(delta.get("signature"), provider=provider)
        return cast(StreamEvent, {**event, "delta": {**delta, "signature": signature}})
    return cast(StreamEvent, event)


def _bare_error(error: object) -> JSONDict:
    if isinstance(error, dict):
        return error
    return {"type": "api_error", "message": str(error)}


def _error_type(raw: object, status: int) -> ErrorType:
    if isinstance(raw, str) and raw in _KNOWN_ERROR_TYPES:
        return raw  # type: ignore[return-value]
    return _STATUS_ERROR_TYPE.get(status, "api_error")


def _error_from_body(status: int, body: bytes) -> tuple[ErrorType, str]:
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, dict):
            # Anthropic: {"type": "error", "error": {"type": ..., "message": ...}}; OpenAI-style bodies too.
            message = str(error.get("message") or error.get("type") or f"upstream returned {status}")
            return _error_type(error.get("type"), status), message
        if isinstance(error, str):
            # Ollama: {"error": "model 'x' not found"}
            return _error_type(None, status), error
        if isinstance(parsed.get("message"), str):
            return _error_type(parsed.get("type"), status), parsed["message"]
    text = body.decode("utf-8", errors="replace").strip()[:_MAX_ERROR_TEXT]
    return "api_error", text or f"upstream returned {status} with an empty body"


def _stream_error(event: JSONDict) -> UpstreamError:
    """An `event: error` frame -> UpstreamError with the status it would have had without streaming."""
    error = event.get("error")
    raw_type = error.get("type") if isinstance(error, dict) else None
    message = str(error.get("message", "")) if isinstance(error, dict) else ""
    status = ERROR_STATUS.get(raw_type, 500) if isinstance(raw_type, str) else 500
    return UpstreamError(
        message or "upstream stream error", error_type=_error_type(raw_type, status), status=status
    )


DIALECT = AnthropicDialect()

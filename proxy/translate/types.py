"""Wire types (TypedDicts, plain dicts at run time) and our own values (frozen dataclasses).

Pure: stdlib and typing only. Nothing in proxy/translate/ imports Django or httpx.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from .changes import is_loss

JSONDict = dict[str, Any]
JSONList = list[Any]

StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"]

ErrorType = Literal[
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "request_too_large",
    "rate_limit_error",
    "api_error",
    "timeout_error",  # 504: a backend that passed one of its provider's timeouts (proxy/upstream.py)
    "overloaded_error",
]

# Anthropic's error types and their HTTP statuses: https://docs.anthropic.com/en/api/errors#http-errors
# (billing_error is passed through from the API; we never make it ourselves).
ERROR_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


class Usage(TypedDict, total=False):
    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int
    cache_creation_input_tokens: int


class MessagesRequest(TypedDict, total=False):
    """POST /v1/messages body as clients send it (only the fields we read are named)."""

    model: str
    messages: list[JSONDict]
    system: str | list[JSONDict]
    max_tokens: int
    stream: bool
    tools: list[JSONDict]
    tool_choice: JSONDict
    thinking: JSONDict
    output_config: JSONDict
    metadata: JSONDict
    stop_sequences: list[str]
    temperature: float
    top_p: float
    top_k: int


class Message(TypedDict, total=False):
    """An Anthropic Message response."""

    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    model: str
    content: list[JSONDict]
    stop_reason: StopReason | None
    stop_sequence: str | None
    usage: Usage


# --- Anthropic stream events (https://docs.anthropic.com/en/api/messages-streaming), as the anthropic
# SDK's RawMessageStreamEvent: a union told apart by `type`.


class TextDelta(TypedDict):
    type: Literal["text_delta"]
    text: str


class ThinkingDelta(TypedDict):
    type: Literal["thinking_delta"]
    thinking: str


class SignatureDelta(TypedDict):
    type: Literal["signature_delta"]
    signature: str


class InputJSONDelta(TypedDict):
    type: Literal["input_json_delta"]
    partial_json: str


BlockDelta = TextDelta | ThinkingDelta | SignatureDelta | InputJSONDelta


class MessageStartEvent(TypedDict):
    type: Literal["message_start"]
    message: Message


class ContentBlockStartEvent(TypedDict):
    type: Literal["content_block_start"]
    index: int
    content_block: JSONDict  # text / thinking / tool_use with empty content; whole for server blocks


class ContentBlockDeltaEvent(TypedDict):
    type: Literal["content_block_delta"]
    index: int
    delta: BlockDelta


class ContentBlockStopEvent(TypedDict):
    type: Literal["content_block_stop"]
    index: int


class MessageDeltaBody(TypedDict):
    stop_reason: StopReason | None
    stop_sequence: str | None


class MessageDeltaEvent(TypedDict):
    type: Literal["message_delta"]
    delta: MessageDeltaBody
    usage: Usage


class MessageStopEvent(TypedDict):
    type: Literal["message_stop"]


class PingEvent(TypedDict):
    type: Literal["ping"]


# What translators emit. The passthrough relays Anthropic's own events, decoded, under this type too:
# those may carry more (citations_delta, newer event types), which the consumers skip or pass on.
StreamEvent = (
    MessageStartEvent
    | ContentBlockStartEvent
    | ContentBlockDeltaEvent
    | ContentBlockStopEvent
    | MessageDeltaEvent
    | MessageStopEvent
    | PingEvent
)


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One server-sent event as decoded from the wire."""

    data: str
    event: str | None = None


@dataclass(frozen=True, slots=True)
class Target:
    """Where one attempt goes: a provider's endpoint and a model, with what we know of it."""

    provider: str  # provider name, for the record
    dialect: str  # key of translate.DIALECTS
    base_url: str  # e.g. https://api.openai.com/v1 (openai) or https://api.anthropic.com (anthropic)
    model: str  # backend model id; "" for anthropic passthrough = keep the client's model
    api_key: str = ""  # resolved secret; "" = forward the client's own credentials (passthrough)
    extra_headers: tuple[tuple[str, str], ...] = ()
    max_output_tokens: int | None = None  # the model's real output limit; None = unknown, pass through
    # Per-model quirks, as data: "max_completion_tokens", "reasoning", "replay_reasoning",
    # "no_cache_control", "no_top_k", "no_temperature", "max_stop_sequences=4", ...
    options: frozenset[str] = frozenset()
    # Parameter overrides from the route rule (max_tokens ceiling, temperature, reasoning_effort).
    overrides: tuple[tuple[str, Any], ...] = ()
    # Seconds (0 = no limit): the provider's limits on one attempt, kept by upstream.Reply.
    connect_timeout: float = 10.0
    first_byte_timeout: float = 300.0
    idle_timeout: float = 120.0
    total_timeout: float = 0.0
    # $ per million tokens from the provider's settings (input_price, output_price, cache_read_price, ...)
    prices: tuple[tuple[str, float], ...] = ()
    # Tool-call healing (issue #15): check every call against its tool's schema, repair or retry it.
    heal_tool_calls: bool = True
    tool_call_retries: int = 1  # retries per broken call; 0: repairs only

    def option_value(self, prefix: str) -> str | None:
        """Value of a `name=value` option, or None."""
        for opt in self.options:
            if opt.startswith(prefix + "="):
                return opt.split("=", 1)[1]
        return None


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """An HTTP request to a backend, built by a dialect; upstream.py sends it."""

    method: str
    url: str
    headers: dict[str, str]
    body: JSONDict
    stream: bool


@dataclass(frozen=True, slots=True)
class Change:
    """Something the translation changed or dropped: listed on the exchange; losses get the feed's badge."""

    kind: str  # e.g. "max_tokens_lowered", "tool_renamed", "cache_control_stripped", "field_dropped"
    detail: str

    def as_dict(self) -> dict[str, str | bool]:
        # The loss flag is decided once, here, from the kind (proxy/translate/changes.py).
        return {"kind": self.kind, "detail": self.detail, "loss": is_loss(self.kind, self.detail)}


@dataclass(slots=True)
class Translation:
    """One request's translation: the upstream request plus what answering it back needs."""

    upstream: UpstreamRequest
    client_model: str  # echoed in every response: the client derives limits and features from it
    message_id: str  # msg_… for the response
    changes: list[Change] = field(default_factory=list)
    # The target's provider name: the response side tags opaque reasoning with it (reasoning.mint), so
    # the next turn sends it back only to this provider.
    provider: str = ""
    # upstream tool name -> the client's original name (names over the backend's limits)
    tool_names: dict[str, str] = field(default_factory=dict)
    stop_sequences: tuple[str, ...] = ()
    # The request's input tokens estimated from its size: a translated stream's message_start carries it,
    # since the backend's count comes only with its last chunk (message_delta then has the real one).
    input_estimate: int = 0
    # Set by serving when tool calls are healed downstream: tool arguments that are not JSON are passed
    # on as they came (a stream's input_json_delta, a reply's `input` as the raw string) instead of
    # failing the response as an upstream error.
    lenient_tool_input: bool = False
    # Set by serving when a malformed call (Gemini's MALFORMED_FUNCTION_CALL) is retried downstream: the
    # dialect ends the turn with a placeholder tool_use the healing stage retries (healing/stream.py's
    # MALFORMED_CALL), instead of raising.
    heals_malformed_calls: bool = False
    # What a dialect's response side needs from its request side: that dialect's own typed value
    # (e.g. openai_chat.state.ChatState), opaque to everything else.
    state: object = None

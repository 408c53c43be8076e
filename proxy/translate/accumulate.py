"""Anthropic stream events -> the final Message, as the anthropic SDK's accumulator builds it.

Used for the record (the dashboard shows exactly what the client received) and by tests.
`Accumulator` folds events in one at a time, so the relay keeps one growing message per stream instead
of every event it sent (a 100-event stream as dicts is several times the size of its message).
Follows `anthropic.lib.streaming._messages.accumulate_event`, with two deliberate differences:
- tool_use input is parsed once, from the whole concatenated `partial_json`, at the end. When that text
  is not a JSON object (a stream cut off mid-call, or a backend that sent broken arguments) the input is
  the raw text itself, a `str`: nothing is lost, and a str input marks the failed call for the dashboard.
  The SDK raises there instead, which would lose the record.
- a stream cut short (no message_delta / message_stop) still yields what was received, stop_reason None.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Literal, cast

import orjson

from .types import JSONDict, Message, StreamEvent

_USAGE_KEYS: tuple[Literal["input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"], ...] = (
    "input_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)
# Deltas that append to one string field of their block, by the block type they fit.
_APPENDING = {"text_delta": ("text", "text"), "thinking_delta": ("thinking", "thinking")}


def accumulate(events: Iterable[StreamEvent]) -> Message:
    """Rebuild the Message a client assembles from these events. ValueError if message_start is not first."""
    acc = Accumulator()
    for event in events:
        acc.feed(event)
    return acc.message()


class Accumulator:
    """States: before message_start (`_message is None`), then collecting. Text pieces are kept as lists
    and joined once in `message()`: appending to a str per delta is quadratic in the reply's length."""

    __slots__ = ("_chars", "_content", "_message", "_parts")

    def __init__(self) -> None:
        self._message: Message | None = None
        self._content: list[JSONDict] = []
        # index -> (field the pieces join into, pieces): text, thinking, or tool input JSON ("")
        self._parts: dict[int, tuple[str, list[str]]] = {}
        self._chars = 0  # characters appended so far: read once a second for live progress

    def feed(self, event: StreamEvent) -> None:
        # Read defensively, as plain JSON: a passthrough relays the upstream's own events, which may
        # lack fields or carry kinds newer than StreamEvent.
        data = cast(JSONDict, event)
        kind = data.get("type")
        if self._message is None:
            if kind != "message_start":
                raise ValueError("an Anthropic stream starts with message_start")
            message = cast(Message, copy.deepcopy(data.get("message") or {}))
            self._content = message.setdefault("content", [])
            self._message = message
            return
        match kind:
            case "content_block_start":
                self._content.append(copy.deepcopy(data.get("content_block") or {}))
            case "content_block_delta":
                self._apply_delta(data.get("index"), data.get("delta") or {})
            case "message_delta":
                _apply_message_delta(self._message, data)
            case _:
                # content_block_stop / message_stop / ping carry nothing to merge; an error frame ends the
                # stream as it stands; event types newer than this code are skipped, as the SDK does.
                pass

    def generated_chars(self) -> int:
        """Characters of text, thinking and tool arguments received so far (for live progress)."""
        return self._chars

    @property
    def started(self) -> bool:
        return self._message is not None

    def message(self) -> Message:
        """The message so far (pieces joined); the accumulator can go on after it."""
        if self._message is None:
            raise ValueError("an Anthropic stream starts with message_start")
        for index, (key, parts) in self._parts.items():
            block = self._content[index]
            if key:
                block[key] = "".join(parts)
                del parts[1:]
                parts[0] = block[key]
                continue
            text = "".join(parts)
            # No argument text at all: the {} from content_block_start stands (as in the SDK).
            if text.strip() and block.get("type") in ("tool_use", "server_tool_use"):
                block["input"] = _tool_input(text)
        return self._message

    def _apply_delta(self, index: object, delta: JSONDict) -> None:
        if not isinstance(index, int) or not 0 <= index < len(self._content):
            return  # a delta for no block (a malformed upstream stream): the record skips it, never the relay
        block = self._content[index]
        kind = delta.get("type")
        if kind in _APPENDING:
            block_type, key = _APPENDING[kind]
            if block.get("type") == block_type:
                self._pieces(index, key, block).append(delta[key])
                self._chars += len(delta[key])
            # else: a delta that does not fit its block: the SDK skips it the same way
        elif kind == "input_json_delta":
            self._pieces(index, "", block).append(delta["partial_json"])
            self._chars += len(delta["partial_json"])
        elif kind == "signature_delta" and block.get("type") == "thinking":
            block["signature"] = delta["signature"]  # replaced, not appended, as in the SDK
        elif kind == "citations_delta" and block.get("type") == "text":
            block["citations"] = [*(block.get("citations") or []), delta["citation"]]

    def _pieces(self, index: int, key: str, block: JSONDict) -> list[str]:
        entry = self._parts.get(index)
        if entry is None:
            entry = self._parts[index] = (key, [block.get(key, "")] if key else [])
        return entry[1]


def _apply_message_delta(message: Message, event: JSONDict) -> None:
    delta = event.get("delta") or {}
    message["stop_reason"] = delta.get("stop_reason")
    message["stop_sequence"] = delta.get("stop_sequence")
    for key in ("stop_details", "container"):
        if delta.get(key) is not None:
            message[key] = delta[key]  # type: ignore[typeddict-unknown-key]
    usage = event.get("usage") or {}
    merged = message.setdefault("usage", {"input_tokens": 0, "output_tokens": 0})
    merged["output_tokens"] = usage.get("output_tokens", merged.get("output_tokens", 0))
    # Totals on message_delta are cumulative and overwrite; absent ones keep the message_start value.
    for key in _USAGE_KEYS:
        if usage.get(key) is not None:
            merged[key] = usage[key]


def _tool_input(text: str) -> object:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    return value if isinstance(value, dict) else text

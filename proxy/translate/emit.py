"""The Anthropic side of every translated stream: one writer for the grammar, whatever the backend.

A dialect's stream translator reads its vendor's events and calls this writer; the writer alone decides
the Anthropic events: `message_start`, then strictly nested `content_block_start` / `_delta` / `_stop`
indexed 0, 1, 2…, then `message_delta`, then `message_stop`. Opening a block closes the open one, a
thinking block gets its `signature_delta` just before it closes, and nothing is emitted after the stop.
So a new dialect cannot get the grammar wrong: it only says what the model produced.

Every method returns the events it produced (possibly none), to be sent in order.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from .types import (
    BlockDelta,
    ContentBlockDeltaEvent,
    JSONDict,
    Message,
    StopReason,
    StreamEvent,
    Usage,
)

BlockKind = Literal["text", "thinking", "tool_use"]


@dataclass(frozen=True, slots=True)
class OpenBlock:
    """The one content block open downstream."""

    index: int
    kind: BlockKind
    tool_id: str = ""  # tool_use blocks: the id the client sees
    signature: str = ""  # thinking blocks: sent as signature_delta just before the block closes


def zero_usage() -> Usage:
    return {
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
    }


class AnthropicStreamWriter:
    """A fresh writer per response. `started`/`stopped` say where in the grammar it is."""

    def __init__(self, *, message_id: str, model: str, input_estimate: int = 0) -> None:
        self.message_id = message_id
        self.model = model  # the client's model id: clients derive limits and features from it
        self.input_estimate = input_estimate
        self.started = False
        self.stopped = False
        self.block: OpenBlock | None = None
        self.blocks = 0  # blocks opened so far: the next one's index
        self.stop_reason: StopReason | None = None
        self.stop_sequence: str | None = None

    # -- message -------------------------------------------------------------------------------------

    def start(self) -> list[StreamEvent]:
        """message_start, once. Every other method starts the message itself when needed."""
        if self.started:
            return []
        self.started = True
        message: Message = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            # The real API counts the prompt before it answers; translated backends report it only at
            # the end. Clients that read input tokens from message_start alone (many do) get an estimate
            # instead of 0; message_delta carries the backend's figures.
            "usage": {"input_tokens": self.input_estimate, "output_tokens": 0},
        }
        return [{"type": "message_start", "message": message}]

    def stop(
        self, stop_reason: StopReason, *, usage: Usage, stop_sequence: str | None = None
    ) -> list[StreamEvent]:
        """Close what is open, then message_delta and message_stop. Nothing is emitted after this."""
        if self.stopped:
            return []
        events = self.start() + self.close_block()
        self.stopped = True
        self.stop_reason, self.stop_sequence = stop_reason, stop_sequence
        events.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                "usage": usage.copy(),
            }
        )
        events.append({"type": "message_stop"})
        return events

    def ping(self) -> list[StreamEvent]:
        """Keeps an idle stream alive (Claude Code has an idle timeout) without changing its content."""
        if self.stopped:
            return []
        return [*self.start(), {"type": "ping"}]

    # -- content -------------------------------------------------------------------------------------

    def text(self, text: str) -> list[StreamEvent]:
        if not text or self.stopped:
            return []
        block = self.block
        if block is not None and block.kind == "text":  # the common case, once per streamed chunk
            return [
                {
                    "type": "content_block_delta",
                    "index": block.index,
                    "delta": {"type": "text_delta", "text": text},
                }
            ]
        events = self._ensure("text")
        return [*events, self._delta({"type": "text_delta", "text": text})]

    def thinking(self, text: str, *, signature: str = "") -> list[StreamEvent]:
        """Reasoning text; `signature` is what the block's signature_delta will carry when it closes."""
        if not text or self.stopped:
            return []
        events = self._ensure("thinking", signature=signature)
        return [*events, self._delta({"type": "thinking_delta", "thinking": text})]

    def sign_thinking(self, signature: str, *, own_block: bool = False) -> list[StreamEvent]:
        """Set the signature of the open thinking block (a backend may sign reasoning only once the next
        part arrives), or, with no thinking block open or `own_block`, open an empty one that carries it."""
        if self.stopped:
            return []
        block = self.block
        if block is not None and block.kind == "thinking" and not own_block:
            self.block = replace(block, signature=signature)
            return []
        empty: JSONDict = {"type": "thinking", "thinking": "", "signature": ""}
        return self._open("thinking", empty, signature=signature)

    def opaque_thinking(self, signature: str) -> list[StreamEvent]:
        """A thinking block with no text, only a signature: state the client must send back next turn
        (e.g. a thought signature a backend attached to a tool call), opened and closed at once."""
        if self.stopped:
            return []
        empty: JSONDict = {"type": "thinking", "thinking": "", "signature": ""}
        return self._open("thinking", empty, signature=signature) + self.close_block()

    def tool_use(self, *, tool_id: str, name: str, partial_json: str = "") -> list[StreamEvent]:
        """Open a tool_use block (closing the open one) and stream the first arguments, if any."""
        if self.stopped:
            return []
        events = self._open(
            "tool_use", {"type": "tool_use", "id": tool_id, "name": name, "input": {}}, tool_id=tool_id
        )
        return events + self.tool_input(partial_json)

    def tool_input(self, partial_json: str) -> list[StreamEvent]:
        """More arguments of the open tool_use block."""
        if not partial_json or self.stopped:
            return []
        assert self.block is not None and self.block.kind == "tool_use", "tool input outside a tool_use block"
        return [self._delta({"type": "input_json_delta", "partial_json": partial_json})]

    def block_start(self, content_block: JSONDict) -> list[StreamEvent]:
        """A block whose content comes whole in its start event (server tool results, redacted thinking):
        opened and closed at once."""
        if self.stopped:
            return []
        events = self.start() + self.close_block()
        index = self.blocks
        self.blocks += 1
        return [
            *events,
            {"type": "content_block_start", "index": index, "content_block": content_block},
            {"type": "content_block_stop", "index": index},
        ]

    def sign(self, signature: str) -> None:
        """Set the open thinking block's signature, for backends that send it only after the text
        (the Responses API's encrypted reasoning arrives with the item's end)."""
        if self.block is not None and self.block.kind == "thinking":
            self.block = OpenBlock(index=self.block.index, kind="thinking", signature=signature)

    def close_block(self) -> list[StreamEvent]:
        block = self.block
        if block is None:
            return []
        events: list[StreamEvent] = []
        if block.kind == "thinking":
            events.append(self._delta({"type": "signature_delta", "signature": block.signature}))
        events.append({"type": "content_block_stop", "index": block.index})
        self.block = None
        return events

    # -- grammar ---------------------------------------------------------------------------------------

    def _ensure(self, kind: Literal["text", "thinking"], *, signature: str = "") -> list[StreamEvent]:
        if self.block is not None and self.block.kind == kind:
            return []
        empty: JSONDict = (
            {"type": "text", "text": ""}
            if kind == "text"
            else {"type": "thinking", "thinking": "", "signature": ""}
        )
        return self._open(kind, empty, signature=signature)

    def _open(
        self, kind: BlockKind, content_block: JSONDict, *, tool_id: str = "", signature: str = ""
    ) -> list[StreamEvent]:
        events = self.start() + self.close_block()
        self.block = OpenBlock(index=self.blocks, kind=kind, tool_id=tool_id, signature=signature)
        self.blocks += 1
        events.append(
            {"type": "content_block_start", "index": self.block.index, "content_block": content_block}
        )
        return events

    def _delta(self, delta: BlockDelta) -> ContentBlockDeltaEvent:
        assert self.block is not None  # every caller opens a block first
        return {"type": "content_block_delta", "index": self.block.index, "delta": delta}

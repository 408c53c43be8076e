"""OpenAI Chat Completions chunks -> Anthropic stream events: an explicit state machine.

Upstream: `data: {chat.completion.chunk}` events, an optional usage chunk (`"choices": []`), `data: [DONE]`.
Downstream (the Anthropic grammar): message_start, then strictly nested content_block_start / _delta /
_stop indexed 0, 1, 2…, then message_delta, then message_stop.

Chat Completions may interleave parallel tool calls by `index`; Anthropic blocks cannot interleave. The
first call streams live; deltas of other calls are buffered and each becomes its own block once the live
one is done (its arguments form complete JSON, or the choice finished).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal, assert_never

import orjson

from ..base import UpstreamError
from ..tokens import usage_estimate
from ..types import JSONDict, SSEEvent, StopReason, StreamEvent, Translation, Usage
from .response import (
    error_from_object,
    find_stop_sequence,
    held_back_length,
    local_stop_sequences,
    parse_tool_input,
    reasoning_of,
    shape,
    stop_reason_for,
    thinking_signature,
    tool_use_block,
    usage_from_openai,
    wants_thinking,
)

BlockKind = Literal["thinking", "text", "tool_use"]


class Phase(enum.Enum):
    BEFORE_START = "before_start"  # nothing sent yet
    IN_BLOCK = "in_block"  # a content block is open
    BETWEEN_BLOCKS = "between_blocks"  # message_start sent, no block open
    STOPPED = "stopped"  # message_stop sent (or the stream failed): nothing more, ever


@dataclass(frozen=True, slots=True)
class Block:
    """The one content block open downstream."""

    index: int
    kind: BlockKind
    tool_id: str | None = None
    call: int | None = None  # ordinal of the upstream tool call feeding a tool_use block
    signature: str = ""  # thinking blocks: sent as signature_delta just before the block closes


@dataclass(slots=True)
class ToolCall:
    """One upstream tool call as its fragments arrive."""

    ordinal: int  # order of first appearance: block order and synthetic ids
    upstream_id: str | None = None
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    state: Literal["pending", "live", "closed"] = "pending"


_EMPTY_BLOCKS = {
    "text": lambda: {"type": "text", "text": ""},
    "thinking": lambda: {"type": "thinking", "thinking": "", "signature": ""},
}


def _zero_usage() -> Usage:
    return {
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
    }


class OpenAIStreamTranslator:
    """A fresh machine per request. `done` turns True once message_stop is out (the relay may hang up)."""

    def __init__(self, translation: Translation) -> None:
        self.translation = translation
        self.phase = Phase.BEFORE_START
        self.open_block: Block | None = None
        self.usage: Usage = _zero_usage()
        self.stop_reason: StopReason | None = None
        self.stop_sequence: str | None = None
        self._next_index = 0
        self._calls: list[ToolCall] = []
        self._calls_by_index: dict[int, ToolCall] = {}
        self._local_stops = local_stop_sequences(translation)
        self._held = ""  # text that may be the start of a local stop sequence
        # What the model generated, kept only when a local stop may cut the stream before the usage chunk.
        self._generated: list[str] = []
        self.usage_estimated = False
        self._thinking = wants_thinking(translation)
        self._refused = False
        self._finish_reason: str | None = None
        self._finish_choice: JSONDict = {}

    @property
    def done(self) -> bool:
        return self.phase is Phase.STOPPED

    # -- input ---------------------------------------------------------------------------------------

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        """One upstream SSE event in, 0..n Anthropic events out. Raises UpstreamError (then stays stopped)."""
        if self.phase is Phase.STOPPED:
            return []  # after a local stop sequence or [DONE]: the rest of the upstream is ignored
        try:
            return self._feed(event)
        except UpstreamError:
            self.phase = Phase.STOPPED
            raise

    def finish(self) -> list[StreamEvent]:
        """The upstream ended. Complete if a finish_reason was seen, else UpstreamError. Idempotent."""
        if self.phase is Phase.STOPPED:
            return []
        if self._finish_reason is None:
            self.phase = Phase.STOPPED
            raise UpstreamError("upstream stream ended before finishing", error_type="api_error", status=500)
        try:
            return self._end_content() + self._stop()
        except UpstreamError:
            self.phase = Phase.STOPPED
            raise

    def _feed(self, event: SSEEvent) -> list[StreamEvent]:
        kind, chunk = _classify(event)
        match kind:
            case "done":
                return self.finish()
            case "error":
                raise error_from_object(chunk.get("error") or chunk, where="upstream stream error")
            case "chunk":
                return self._on_chunk(chunk)
            case _:
                assert_never(kind)

    def _on_chunk(self, chunk: JSONDict) -> list[StreamEvent]:
        events = self._start_message() if self.phase is Phase.BEFORE_START else []
        if chunk.get("usage"):
            self.usage = usage_from_openai(chunk["usage"])
        choices = [
            c
            for c in (shape(c, dict, "choice") for c in shape(chunk.get("choices"), list, "choices"))
            if c.get("index", 0) == 0
        ]
        if not choices:
            # The usage chunk (`"choices": []`) comes after the finish chunk: the message is complete.
            return events + (self._stop() if self._finish_reason is not None and chunk.get("usage") else [])
        choice = choices[0]  # n > 1 is not something an Anthropic client can ask for
        delta = shape(choice.get("delta"), dict, "delta")
        events += self._on_delta(delta)
        if self.phase is Phase.STOPPED:  # a local stop sequence matched inside this delta
            return events
        if choice.get("finish_reason") == "error":  # OpenRouter: the provider failed mid-generation
            raise UpstreamError("upstream stream ended with finish_reason 'error'")
        if choice.get("finish_reason"):
            self._finish_reason = choice["finish_reason"]
            self._finish_choice = choice
            # Close everything now; message_delta waits for the usage chunk or [DONE].
            events += self._end_content()
        return events

    def _on_delta(self, delta: JSONDict) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        field_name, reasoning = reasoning_of(delta)
        if reasoning and self._thinking:
            events += self._on_thinking(reasoning, field_name)
        content = delta.get("content")
        if isinstance(content, str) and content:
            events += self._on_text(content)
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal and self.phase is not Phase.STOPPED:
            self._refused = True
            events += self._on_text(refusal)
        for fragment in shape(delta.get("tool_calls"), list, "tool_calls"):
            if self.phase is Phase.STOPPED:
                break
            events += self._on_tool_fragment(fragment)
        return events

    # -- content ---------------------------------------------------------------------------------------

    def _on_thinking(self, text: str, field_name: str) -> list[StreamEvent]:
        if self._local_stops:
            self._generated.append(text)
        events: list[StreamEvent] = []
        if self.open_block is None or self.open_block.kind != "thinking":
            events += self._open_block("thinking", signature=thinking_signature(field_name))
        return [*events, self._delta({"type": "thinking_delta", "thinking": text})]

    def _on_text(self, text: str) -> list[StreamEvent]:
        if self.phase is Phase.STOPPED:
            return []
        if not self._local_stops:
            return self._emit_text(text)
        self._generated.append(text)
        buffer = self._held + text
        self._held = ""
        hit = find_stop_sequence(buffer, self._local_stops)
        if hit is not None:
            at, sequence = hit
            # The model got as far as the end of the sequence, no further.
            past = len(buffer) - (at + len(sequence))  # a suffix of `text`: `held` cannot hold it whole
            self._generated[-1] = text[: len(text) - past]
            return self._emit_text(buffer[:at]) + self._end_content() + self._stop(sequence=sequence)
        keep = held_back_length(buffer, self._local_stops)
        self._held = buffer[len(buffer) - keep :] if keep else ""
        return self._emit_text(buffer[: len(buffer) - keep])

    def _emit_text(self, text: str) -> list[StreamEvent]:
        if not text:
            return []
        events: list[StreamEvent] = []
        if self.open_block is None or self.open_block.kind != "text":
            events += self._open_block("text")
        return [*events, self._delta({"type": "text_delta", "text": text})]

    def _on_tool_fragment(self, fragment: JSONDict) -> list[StreamEvent]:
        fragment = shape(fragment, dict, "tool call")
        function = shape(fragment.get("function"), dict, "tool call")
        call = self._call_for(fragment)
        if function.get("name") and not call.name:
            call.name = str(function["name"])
        arguments = function.get("arguments")
        if isinstance(arguments, dict):  # a whole object instead of a JSON string (some local servers)
            arguments = orjson.dumps(arguments).decode()
        if not isinstance(arguments, str) or not arguments:
            return self._advance_tools()
        if call.state == "closed":
            if not arguments.strip():
                return []  # whitespace after a complete object changes nothing
            raise UpstreamError(f"upstream sent arguments for tool {call.name!r} after its call ended")
        call.arguments.append(arguments)
        if self._local_stops:
            self._generated.append(arguments)
        if call.state == "live":
            return [self._delta({"type": "input_json_delta", "partial_json": arguments})]
        return self._advance_tools()

    def _call_for(self, fragment: JSONDict) -> ToolCall:
        """The call a fragment belongs to: by `index`, or a new call when a different `id` shows up."""
        index = fragment.get("index")
        upstream_id = fragment.get("id") or None
        call: ToolCall | None
        if isinstance(index, int):
            call = self._calls_by_index.get(index)
        else:
            call = self._calls[-1] if self._calls else None
        if call is None or (upstream_id and call.upstream_id and upstream_id != call.upstream_id):
            # Some backends reuse index 0 (or omit it) for every parallel call; the id tells them apart.
            call = ToolCall(ordinal=len(self._calls))
            self._calls.append(call)
            if isinstance(index, int):
                self._calls_by_index[index] = call
        if upstream_id and not call.upstream_id:
            call.upstream_id = str(upstream_id)
        return call

    def _advance_tools(self, *, finished: bool = False) -> list[StreamEvent]:
        """Open buffered calls as blocks when nothing else streams (or everything, once finished)."""
        events: list[StreamEvent] = []
        while True:
            waiting = next((c for c in self._calls if c.state == "pending" and (c.name or finished)), None)
            if waiting is None:
                return events
            live = self._live_call()
            if live is not None:
                if not finished and not _is_complete_json("".join(live.arguments)):
                    return events  # the live call is still growing: keep buffering the others
                events += self._close_block()
            events += self._open_tool_block(waiting)

    def _open_tool_block(self, call: ToolCall) -> list[StreamEvent]:
        if not call.name:
            raise UpstreamError(
                f"upstream sent a tool call without a name: {''.join(call.arguments)[:200]!r}"
            )
        start = tool_use_block(
            upstream_id=call.upstream_id, name=call.name, ordinal=call.ordinal, translation=self.translation
        )
        events = self._open_block("tool_use", content_block=start, call=call)
        if call.arguments:  # fragments buffered while another call was streaming
            events.append(self._delta({"type": "input_json_delta", "partial_json": "".join(call.arguments)}))
        return events

    def _live_call(self) -> ToolCall | None:
        block = self.open_block
        return self._calls[block.call] if block is not None and block.call is not None else None

    def _end_content(self) -> list[StreamEvent]:
        """The choice finished: flush held text, close the open block, emit every buffered tool call."""
        events = self._flush_held()
        events += self._advance_tools(finished=True)
        return events + self._close_block()

    def _flush_held(self) -> list[StreamEvent]:
        held, self._held = self._held, ""
        return self._emit_text(held)

    # -- transitions -----------------------------------------------------------------------------------

    def _start_message(self) -> list[StreamEvent]:
        self.phase = Phase.BETWEEN_BLOCKS
        message: JSONDict = {
            "id": self.translation.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.translation.client_model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            # The real API counts the prompt before it answers; a Chat Completions backend reports it
            # only at the end. Clients that read input tokens from message_start alone (many do) get
            # an estimate instead of 0; message_delta carries the backend's figures.
            "usage": {"input_tokens": self.translation.input_estimate, "output_tokens": 0},
        }
        return [{"type": "message_start", "message": message}]

    def _open_block(
        self,
        kind: BlockKind,
        *,
        content_block: JSONDict | None = None,
        call: ToolCall | None = None,
        signature: str = "",
    ) -> list[StreamEvent]:
        # Leaving text: text held back for a possible stop sequence was just text after all.
        events = self._flush_held() if kind != "text" else []
        events += self._close_block()
        if content_block is None:
            content_block = _EMPTY_BLOCKS[kind]()
        if call is not None:
            call.state = "live"
        self.open_block = Block(
            index=self._next_index,
            kind=kind,
            tool_id=content_block.get("id"),
            call=call.ordinal if call is not None else None,
            signature=signature,
        )
        self._next_index += 1
        self.phase = Phase.IN_BLOCK
        start = {
            "type": "content_block_start",
            "index": self.open_block.index,
            "content_block": content_block,
        }
        return [*events, start]

    def _close_block(self) -> list[StreamEvent]:
        block = self.open_block
        if block is None:
            return []
        events: list[StreamEvent] = []
        if block.kind == "thinking":
            events.append(self._delta({"type": "signature_delta", "signature": block.signature}))
        elif block.call is not None:
            call = self._calls[block.call]
            call.state = "closed"
            if not self.translation.lenient_tool_input:  # else healing judges them, downstream
                parse_tool_input("".join(call.arguments), name=call.name)  # raises on arguments not JSON
        events.append({"type": "content_block_stop", "index": block.index})
        self.open_block = None
        self.phase = Phase.BETWEEN_BLOCKS
        return events

    def _stop(self, *, sequence: str | None = None) -> list[StreamEvent]:
        if sequence is not None:
            self.stop_reason, self.stop_sequence = "stop_sequence", sequence
            if not self.usage["input_tokens"] and not self.usage["output_tokens"]:
                self._estimate_usage()
        else:
            self.stop_reason, self.stop_sequence = stop_reason_for(
                self._finish_choice,
                self._finish_reason,
                has_tool_calls=bool(self._calls),
                refused=self._refused,
            )
        self.phase = Phase.STOPPED
        return [
            {
                "type": "message_delta",
                "delta": {"stop_reason": self.stop_reason, "stop_sequence": self.stop_sequence},
                "usage": dict(self.usage),
            },
            {"type": "message_stop"},
        ]

    def _estimate_usage(self) -> None:
        """We hung up at a local stop sequence, before the backend's usage chunk: count locally rather
        than report zero tokens (an estimate, flagged as such on the exchange)."""
        input_tokens, output_tokens = usage_estimate(
            self.translation.state.get("request"), "".join(self._generated)
        )
        self.usage = {**self.usage, "input_tokens": input_tokens, "output_tokens": output_tokens}
        self.usage_estimated = True

    def _delta(self, delta: JSONDict) -> StreamEvent:
        assert self.open_block is not None  # every caller opens a block first
        return {"type": "content_block_delta", "index": self.open_block.index, "delta": delta}


def _classify(event: SSEEvent) -> tuple[Literal["done", "error", "chunk"], JSONDict]:
    """What an upstream SSE event is: the [DONE] sentinel, an error object, or a completion chunk."""
    data = event.data.strip()
    if data == "[DONE]":
        return "done", {}
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamError(f"upstream sent a stream event that is not JSON: {data[:200]!r}") from None
    if not isinstance(chunk, dict):
        raise UpstreamError(f"upstream sent an unexpected stream event: {data[:200]!r}")
    # OpenRouter and others put `{"error": {...}}` in a data line; a few name the event `error`.
    if event.event == "error" or chunk.get("error"):
        return "error", chunk
    return "chunk", chunk


def _is_complete_json(text: str) -> bool:
    if not text.strip():
        return False
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True

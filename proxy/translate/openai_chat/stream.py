"""OpenAI Chat Completions chunks -> Anthropic stream events: an explicit state machine.

Upstream: `data: {chat.completion.chunk}` events, an optional usage chunk (`"choices": []`), `data: [DONE]`.
Downstream, the Anthropic grammar is written by `emit.AnthropicStreamWriter`; local stop sequences are a
`stops.StopFilter`; tool calls wait in a `tool_calls.ToolCallBuffer`. This machine only reads chunks and
says what the model produced.

Chat Completions may interleave parallel tool calls by `index`; Anthropic blocks cannot interleave. The
first call streams live; deltas of other calls are buffered and each becomes its own block once the live
one is done (its arguments form complete JSON, or the choice finished).
"""

from __future__ import annotations

import enum
from typing import Literal, assert_never

import orjson

from ..base import UpstreamError
from ..emit import AnthropicStreamWriter, zero_usage
from ..stops import StopFilter
from ..tokens import usage_estimate
from ..types import JSONDict, SSEEvent, StopReason, StreamEvent, Translation, Usage
from ..upstream_errors import from_error_object
from .signatures import thought_signature_block, tool_call_thought_signature
from .state import chat_state
from .tool_calls import ToolCall, ToolCallBuffer
from .wire import (
    parse_tool_input,
    reasoning_of,
    shape,
    stop_reason_for,
    thinking_signature,
    tool_use_block,
    usage_from_openai,
)


class Phase(enum.Enum):
    BEFORE_START = "before_start"  # nothing sent yet
    IN_BLOCK = "in_block"  # a content block is open
    BETWEEN_BLOCKS = "between_blocks"  # message_start sent, no block open
    STOPPED = "stopped"  # message_stop sent (or the stream failed): nothing more, ever


class OpenAIStreamTranslator:
    """A fresh machine per request. `done` turns True once message_stop is out (the relay may hang up)."""

    def __init__(self, translation: Translation) -> None:
        self.translation = translation
        self.state = state = chat_state(translation)
        self.writer = AnthropicStreamWriter(
            message_id=translation.message_id,
            model=translation.client_model,
            input_estimate=translation.input_estimate,
        )
        self.usage: Usage = zero_usage()
        self.usage_estimated = False
        self._stops = StopFilter(state.local_stop_sequences)
        self._matching = bool(self._stops)  # read per text delta: most requests have no local stops
        self._calls = ToolCallBuffer()
        self._live: ToolCall | None = None  # the call whose tool_use block is open
        self._thinking = state.reasoning
        self._refused = False
        self._failed = False
        self._finish_reason: str | None = None
        self._finish_choice: JSONDict = {}

    @property
    def phase(self) -> Phase:
        if self.done:
            return Phase.STOPPED
        if not self.writer.started:
            return Phase.BEFORE_START
        return Phase.IN_BLOCK if self.writer.block is not None else Phase.BETWEEN_BLOCKS

    @property
    def done(self) -> bool:
        return self._failed or self.writer.stopped

    @property
    def stop_reason(self) -> StopReason | None:
        return self.writer.stop_reason

    @property
    def stop_sequence(self) -> str | None:
        return self.writer.stop_sequence

    # -- input ---------------------------------------------------------------------------------------

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        """One upstream SSE event in, 0..n Anthropic events out. Raises UpstreamError (then stays stopped)."""
        if self._failed or self.writer.stopped:
            return []  # after a local stop sequence or [DONE]: the rest of the upstream is ignored
        try:
            return self._feed(event)
        except UpstreamError:
            self._failed = True
            raise

    def finish(self) -> list[StreamEvent]:
        """The upstream ended. Complete if a finish_reason was seen, else UpstreamError. Idempotent."""
        if self.done:
            return []
        if self._finish_reason is None:
            self._failed = True
            raise UpstreamError("upstream stream ended before finishing", error_type="api_error", status=500)
        try:
            return self._stop()
        except UpstreamError:
            self._failed = True
            raise

    def _feed(self, event: SSEEvent) -> list[StreamEvent]:
        kind, chunk = _classify(event)
        match kind:
            case "done":
                return self.finish()
            case "error":
                raise from_error_object(chunk.get("error") or chunk, where="upstream stream error")
            case "chunk":
                return self._on_chunk(chunk)
            case _:
                assert_never(kind)

    def _on_chunk(self, chunk: JSONDict) -> list[StreamEvent]:
        events = [] if self.writer.started else self.writer.start()
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
        if self.done:  # a local stop sequence matched inside this delta
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
        if isinstance(refusal, str) and refusal and not self.done:
            self._refused = True
            events += self._on_text(refusal)
        for fragment in shape(delta.get("tool_calls"), list, "tool_calls"):
            if self.done:
                break
            events += self._on_tool_fragment(fragment)
        return events

    # -- content ---------------------------------------------------------------------------------------

    def _on_thinking(self, text: str, field_name: str) -> list[StreamEvent]:
        self._stops.note(text)
        block = self.writer.block
        # Leaving text: text held back for a possible stop sequence was just text after all.
        events = (
            [] if block is not None and block.kind == "thinking" else self._flush_held() + self._leave_tool()
        )
        signature = thinking_signature(field_name, self.translation.provider)
        return events + self.writer.thinking(text, signature=signature)

    def _on_text(self, text: str) -> list[StreamEvent]:
        if self.done:
            return []
        if not self._matching:
            return self._emit_text(text)
        send, matched = self._stops.feed(text)
        events = self._emit_text(send)
        if matched is not None:
            events += self._stop(sequence=matched)
        return events

    def _emit_text(self, text: str) -> list[StreamEvent]:
        if not text:
            return []
        if self._live is None:
            return self.writer.text(text)
        return self._close_block() + self.writer.text(text)

    def _flush_held(self) -> list[StreamEvent]:
        return self._emit_text(self._stops.flush())

    def _on_tool_fragment(self, fragment: JSONDict) -> list[StreamEvent]:
        fragment = shape(fragment, dict, "tool call")
        function = shape(fragment.get("function"), dict, "tool call")
        call = self._calls.call_for(fragment)
        if function.get("name") and not call.name:
            call.name = str(function["name"])
        call.thought_signature = call.thought_signature or tool_call_thought_signature(fragment)
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
        self._stops.note(arguments)
        if call.state == "live":
            return self.writer.tool_input(arguments)
        return self._advance_tools()

    def _advance_tools(self, *, finished: bool = False) -> list[StreamEvent]:
        """Open buffered calls as blocks when nothing else streams (or everything, once finished)."""
        events: list[StreamEvent] = []
        while (waiting := self._calls.next_waiting(finished=finished)) is not None:
            if self._live is not None:
                if not finished and not _is_complete_json(self._live.text):
                    break  # the live call is still growing: keep buffering the others
                events += self._close_block()
            events += self._open_tool_block(waiting)
        return events

    def _open_tool_block(self, call: ToolCall) -> list[StreamEvent]:
        if not call.name:
            raise UpstreamError(f"upstream sent a tool call without a name: {call.text[:200]!r}")
        events = self._flush_held() + self._leave_tool()
        start = tool_use_block(
            upstream_id=call.upstream_id, name=call.name, ordinal=call.ordinal, translation=self.translation
        )
        if call.thought_signature:  # Gemini's, carried to the next turn in a thinking block before the call
            signed = thought_signature_block(
                start["id"], call.thought_signature, provider=self.translation.provider
            )
            events += self.writer.block_start(signed)
        call.state, self._live = "live", call
        # The fragments buffered while another call was streaming go out at once.
        return events + self.writer.tool_use(tool_id=start["id"], name=start["name"], partial_json=call.text)

    def _leave_tool(self) -> list[StreamEvent]:
        """Close the live tool_use block, if one is open, before any other content."""
        return self._close_block() if self._live is not None else []

    def _end_content(self) -> list[StreamEvent]:
        """The choice finished: flush held text, close the open block, emit every buffered tool call."""
        events = self._flush_held()
        events += self._advance_tools(finished=True)
        return events + self._close_block()

    # -- transitions -----------------------------------------------------------------------------------

    def _close_block(self) -> list[StreamEvent]:
        call, self._live = self._live, None
        if call is not None:
            call.state = "closed"
            # The one check of a call's arguments. Lenient: the healer downstream mends what is not JSON.
            if not self.translation.lenient_tool_input:
                parse_tool_input(call.text, name=call.name)  # raises on arguments that are not JSON
        return self.writer.close_block()

    def _stop(self, *, sequence: str | None = None) -> list[StreamEvent]:
        """Everything open is closed (a no-op when the finish chunk closed it), then message_delta/stop."""
        events = self._end_content()
        stop_reason: StopReason
        if sequence is not None:
            stop_reason = "stop_sequence"
            if not self.usage.get("input_tokens") and not self.usage.get("output_tokens"):
                self._estimate_usage()
        else:
            stop_reason, sequence = stop_reason_for(
                self._finish_choice,
                self._finish_reason,
                has_tool_calls=bool(self._calls),
                refused=self._refused,
            )
        return events + self.writer.stop(stop_reason, usage=self.usage, stop_sequence=sequence)

    def _estimate_usage(self) -> None:
        """We hung up at a local stop sequence, before the backend's usage chunk: count locally rather
        than report zero tokens (an estimate, flagged as such on the exchange)."""
        input_tokens, output_tokens = usage_estimate(self.state.request, "".join(self._stops.generated))
        self.usage = {**self.usage, "input_tokens": input_tokens, "output_tokens": output_tokens}
        self.usage_estimated = True


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

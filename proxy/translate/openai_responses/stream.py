"""Responses API stream events -> Anthropic stream events: an explicit state machine.

Upstream: `event: response.<kind>` + `data: {"type": …, "sequence_number": n, …}` frames. Output items
arrive in order (`output_index`): a reasoning item streams its summary, a message its text, a
function_call its arguments; `response.completed` / `response.incomplete` carry usage and the end,
`response.failed` and `error` the failures. The Anthropic grammar is written by emit.py's writer alone;
stop sequences are matched locally (stops.py), since the Responses API has no stop parameter.
Wire format: openai-python `types/responses/response_stream_event.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import orjson

from ..base import UpstreamError
from ..emit import AnthropicStreamWriter, zero_usage
from ..stops import StopFilter
from ..tokens import usage_estimate
from ..types import JSONDict, SSEEvent, StreamEvent, Translation, Usage
from .response import (
    client_tool_id,
    error_of,
    reasoning_signature,
    replayable,
    stop_reason_of,
    thinking_block,
    tool_input,
    usage_of,
    wants_thinking,
)
from .state import responses_state

Phase = Literal["before_start", "streaming", "stopped"]
ItemKind = Literal["reasoning", "message", "function_call", "other"]


@dataclass(slots=True)
class Item:
    """One upstream output item as its events arrive."""

    kind: ItemKind
    name: str = ""  # function_call: the client's tool name
    tool_id: str = ""  # function_call: the toolu_… id the client sees
    arguments: list[str] = field(default_factory=list)
    state: Literal["pending", "live", "closed"] = "pending"  # function_call: streamed to the client yet?
    thought: bool = False  # reasoning: some summary text went out


class ResponsesStreamTranslator:
    """A fresh machine per request. `done` turns True once message_stop is out (the relay may hang up)."""

    def __init__(self, translation: Translation) -> None:
        self.translation = translation
        self.phase: Phase = "before_start"
        self.writer = AnthropicStreamWriter(
            message_id=translation.message_id,
            model=translation.client_model,
            input_estimate=translation.input_estimate,
        )
        self.stops = StopFilter(responses_state(translation).local_stop_sequences)
        self.usage: Usage = zero_usage()
        self.usage_estimated = False
        self._thinking = wants_thinking(translation)
        self._items: dict[int, Item] = {}
        self._live: int | None = None  # output_index of the function_call streaming to the client
        self._calls = 0
        self._refused = False

    @property
    def done(self) -> bool:
        return self.phase == "stopped"

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        """One upstream SSE event in, 0..n Anthropic events out. Raises UpstreamError (then stays stopped)."""
        if self.phase == "stopped":
            return []
        try:
            data = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            self.phase = "stopped"
            raise UpstreamError(f"upstream sent an event that is not JSON: {event.data[:200]!r}") from None
        if not isinstance(data, dict):
            return []
        try:
            return self._feed(data)
        except UpstreamError:
            self.phase = "stopped"
            raise

    def finish(self) -> list[StreamEvent]:
        """The upstream ended: complete only after response.completed / .incomplete. Idempotent."""
        if self.phase == "stopped":
            return []
        self.phase = "stopped"
        raise UpstreamError("upstream stream ended before response.completed", error_type="api_error")

    # -- events ----------------------------------------------------------------------------------------

    def _feed(self, event: JSONDict) -> list[StreamEvent]:
        index = event.get("output_index")
        item = self._items.get(index) if isinstance(index, int) else None
        match event.get("type"):
            case "response.created" | "response.in_progress" | "response.queued":
                self.phase = "streaming"
                return self.writer.start()
            case "response.output_item.added":
                return self._added(index, event.get("item"))
            case "response.output_text.delta":
                return self._text(event.get("delta"))
            case "response.refusal.delta":
                self._refused = True
                return self._text(event.get("delta"))
            case "response.reasoning_summary_text.delta" | "response.reasoning_text.delta":
                # reasoning_text: the raw reasoning servers of open models (vLLM, Ollama) stream
                return self._thought(item, event.get("delta"))
            case "response.reasoning_summary_part.added" if item is not None and item.thought:
                return self._thought(item, "\n\n")  # a new summary paragraph in the same block
            case "response.function_call_arguments.delta":
                return self._arguments(item, event.get("delta"))
            case "response.function_call_arguments.done":
                return self._arguments_done(item, event.get("arguments"))
            case "response.output_item.done":
                return self._item_done(index, item, event.get("item"))
            case "response.completed" | "response.incomplete":
                return self._completed(event.get("response"))
            case "response.failed":
                response = event.get("response")
                error = response.get("error") if isinstance(response, dict) else None
                raise error_of(error, where="upstream response failed")
            case "error":
                raise error_of(event, where="upstream stream error")
            case _:
                # content_part.*, *.done echoes of text already streamed, annotations, built-in tool
                # progress: nothing the Anthropic stream needs (and new event kinds must not break it).
                return []

    def _added(self, index: object, raw: object) -> list[StreamEvent]:
        if not isinstance(index, int) or not isinstance(raw, dict):
            return []
        events = self.writer.start()
        kind = raw.get("type")
        if kind not in ("reasoning", "message", "function_call"):
            self._items[index] = Item("other")
            return events
        item = Item(kind)
        self._items[index] = item
        if kind == "function_call":
            name = str(raw.get("name") or "")
            if not name:
                raise UpstreamError(f"upstream sent a function call without a name: {str(raw)[:200]!r}")
            item.name = self.translation.tool_names.get(name, name)
            item.tool_id = client_tool_id(
                raw.get("call_id"), translation=self.translation, ordinal=self._calls
            )
            self._calls += 1
            if self._live is None:
                self._live = index
                item.state = "live"
                events += self._flush_text() + self.writer.tool_use(tool_id=item.tool_id, name=item.name)
            if isinstance(raw.get("arguments"), str) and raw["arguments"]:
                events += self._arguments(item, raw["arguments"])
        return events

    def _text(self, delta: object) -> list[StreamEvent]:
        if not isinstance(delta, str) or not delta:
            return []
        safe, matched = self.stops.feed(delta)
        events = self.writer.text(safe)
        if matched is not None:
            events += self._stop_locally(matched)
        return events

    def _flush_text(self) -> list[StreamEvent]:
        return self.writer.text(self.stops.flush())

    def _thought(self, item: Item | None, delta: object) -> list[StreamEvent]:
        if item is None or not isinstance(delta, str) or not delta:
            return []
        self.stops.note(delta)
        if not self._thinking:
            return []
        item.thought = True
        return self._flush_text() + self.writer.thinking(delta)

    def _arguments(self, item: Item | None, delta: object) -> list[StreamEvent]:
        if item is None or item.kind != "function_call" or not isinstance(delta, str) or not delta:
            return []
        item.arguments.append(delta)
        self.stops.note(delta)
        return self.writer.tool_input(delta) if item.state == "live" else []

    def _arguments_done(self, item: Item | None, arguments: object) -> list[StreamEvent]:
        if item is None or item.kind != "function_call" or not isinstance(arguments, str):
            return []
        if item.arguments:
            return []  # streamed already
        return self._arguments(item, arguments)  # a server that sends the arguments whole

    def _item_done(self, index: object, item: Item | None, raw: object) -> list[StreamEvent]:
        if item is None or not isinstance(raw, dict):
            return []
        match item.kind:
            case "reasoning":
                return self._reasoning_done(item, raw)
            case "message":
                return self._flush_text()
            case "function_call":
                if not item.arguments and isinstance(raw.get("arguments"), str):
                    item.arguments.append(raw["arguments"])
                # Not JSON is the backend's failure (unless lenient): raised before the block closes.
                tool_input("".join(item.arguments), name=item.name, translation=self.translation)
                if item.state == "pending":
                    return []  # goes out once the live call is done
                item.state = "closed"
                self._live = None
                return self.writer.close_block() + self._pending_calls()
            case "other":
                return []

    def _pending_calls(self) -> list[StreamEvent]:
        """Calls whose events came while another streamed (never seen from OpenAI): one block each."""
        events: list[StreamEvent] = []
        for item in self._items.values():
            if item.kind == "function_call" and item.state == "pending":
                item.state = "closed"
                events += self.writer.tool_use(
                    tool_id=item.tool_id, name=item.name, partial_json="".join(item.arguments)
                )
                events += self.writer.close_block()
        return events

    def _reasoning_done(self, item: Item, raw: JSONDict) -> list[StreamEvent]:
        if not self._thinking:
            return []
        signature = reasoning_signature(raw, self.translation)
        if item.thought and self.writer.block is not None and self.writer.block.kind == "thinking":
            self.writer.sign(signature)
            return self.writer.close_block()
        block = thinking_block("", signature, replayable=replayable(raw))
        return self._flush_text() + self.writer.block_start(block) if block else []

    def _completed(self, response: object) -> list[StreamEvent]:
        response = response if isinstance(response, dict) else {}
        self.usage = usage_of(response.get("usage"))
        events = self._flush_text() + self._pending_calls()
        reason = stop_reason_of(response, has_tool_calls=self._calls > 0, refused=self._refused)
        self.phase = "stopped"
        return events + self.writer.stop(reason, usage=self.usage)

    def _stop_locally(self, sequence: str) -> list[StreamEvent]:
        """A stop sequence matched in the text: end here; the backend's usage will never come."""
        request = responses_state(self.translation).request
        input_tokens, output_tokens = usage_estimate(request, "".join(self.stops.generated))
        self.usage = {**zero_usage(), "input_tokens": input_tokens, "output_tokens": output_tokens}
        self.usage_estimated = True
        self.phase = "stopped"
        return self.writer.stop("stop_sequence", usage=self.usage, stop_sequence=sequence)

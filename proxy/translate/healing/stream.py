"""The healing stage over a translated Anthropic stream: between a dialect's stream translator and the
client, for any dialect.

Text and thinking stream as they arrive. A tool_use block is held from its content_block_start until
its content_block_stop, judged (decide.py), and sent whole: its start, one input_json_delta with the
final JSON, its stop, at its original index. Whatever comes after a held block waits behind it, so the
client sees the translator's order exactly. A call whose arguments need the turn's stop reason (closing
brackets may be added only when the backend finished on its own) is judged again at message_delta; a
call that still needs a retry is `pending` once the upstream ended, and `resolve` takes the retry's
outcome. The stage never raises on a call: what cannot be healed goes out as the original call.
The one exception is a malformed call (a dialect's placeholder, marked MALFORMED_CALL: the backend said
it failed to write a call and gave none): there is no original to send, so without a valid retry it is
the UpstreamError the backend's finish would have been.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import orjson

from ..base import UpstreamError
from ..types import JSONDict, StreamEvent
from .decide import ToolSet, Verdict, decide

# A tool_use block's key marking a dialect's placeholder for a call the backend failed to write
# (Gemini's MALFORMED_FUNCTION_CALL); its value: the backend's finish reason. Its arguments: what the
# backend said about the call (Gemini's finishMessage), if anything. Never sent to the client.
MALFORMED_CALL = "switchboard_malformed_call"

USAGE_KEYS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


@dataclass(slots=True)
class HeldCall:
    """One tool_use block held back until it is judged."""

    index: int
    block: JSONDict  # its content_block_start's block
    fragments: list[str] = field(default_factory=list)
    closed: bool = False
    verdict: Verdict | None = None  # None: not judged yet (or waiting for the stop reason)
    final: str | None = None  # the input JSON to send; None until decided
    name: str = ""
    retries: int = 0  # retries spent on it
    malformed: str = ""  # a placeholder for a call the backend failed to write: its finish reason

    @property
    def raw(self) -> str:
        return "".join(self.fragments)

    @property
    def id(self) -> str:
        return str(self.block.get("id") or "")


class ToolCallHealer:
    """A fresh stage per request. `retries`: how many retries a call may have (0: none)."""

    def __init__(self, tools: ToolSet, *, retries: int) -> None:
        self.tools = tools
        self.retries = retries
        self.changes: list[JSONDict] = []  # recorded on the exchange
        self.extra_usage: dict[str, int] = {}  # the retries' tokens, added to what the client is told
        self.healed_by_retry = 0
        self._queue: list[StreamEvent | HeldCall] = []
        self._open: HeldCall | None = None
        self._stop_reason: str | None = None
        self._ended = False

    # -- input ---------------------------------------------------------------------------------------

    def feed(self, typed: StreamEvent) -> list[StreamEvent]:
        """One translated event in; the events the client may have now out."""
        # Read as a plain dict: the stage passes every kind on, and looks into three of them.
        event = cast(JSONDict, typed)
        kind = event.get("type")
        block = event.get("content_block")
        if kind == "content_block_start" and isinstance(block, dict) and block.get("type") == "tool_use":
            held = HeldCall(
                index=int(event.get("index") or 0), block=dict(block), name=str(block.get("name"))
            )
            held.malformed = str(held.block.pop(MALFORMED_CALL, "") or "")
            self._open = held
            self._queue.append(held)
            return self._flush()
        call = self._open
        if call is not None and event.get("index") == call.index:
            if kind == "content_block_delta":
                delta = event.get("delta") or {}
                if delta.get("type") == "input_json_delta":
                    call.fragments.append(str(delta.get("partial_json") or ""))
                return []
            if kind == "content_block_stop":
                call.closed, self._open = True, None
                self._judge(call, finished=False)
                return self._flush()
        if kind == "message_delta":
            delta = event.get("delta") or {}
            self._stop_reason = delta.get("stop_reason")
            finished = self._stop_reason != "max_tokens"
            for held in self._calls():
                if held.closed and held.final is None and not held.malformed:
                    self._judge(held, finished=finished, last=True)
        self._queue.append(typed)
        return self._flush()

    def finish(self) -> list[StreamEvent]:
        """The upstream is done and every retry resolved: send the rest (a call never judged goes as sent)."""
        self._ended = True
        for call in self._calls():
            if call.final is None:
                self._give_up(call, call.verdict.error if call.verdict else "the stream ended first")
        return self._flush()

    @property
    def pending(self) -> HeldCall | None:
        """The first call waiting for a retry (only once the upstream's message_delta has been seen)."""
        if self._stop_reason is None and not self._ended:
            return None
        for call in self._calls():
            if call.final is None and call.verdict is not None and call.verdict.outcome == "needs_retry":
                return call
        return None

    def resolve(
        self, call: HeldCall, retried: Verdict | None, *, usage: Mapping[str, Any] | None
    ) -> list[StreamEvent]:
        """A retry for `call` ended: `retried` is the retry's call judged (None: it brought no usable call).
        Another retry is asked for (the call stays pending) while the budget lasts."""
        call.retries += 1
        for key in USAGE_KEYS:
            if usage and isinstance(usage.get(key), int):
                self.extra_usage[key] = self.extra_usage.get(key, 0) + usage[key]
        if retried is not None and retried.input is not None:
            after = orjson.dumps(retried.input).decode()
            if call.malformed:  # it had no name of its own: the change is on the tool it became
                call.name = retried.name
            self._record("tool_call_retried", call, f"{retried.name}: healed by a retry", after)
            call.final, call.name = after, retried.name
            self.healed_by_retry += 1
        elif call.retries >= self.retries:
            self._give_up(call, call.verdict.error if call.verdict else "")
        return self._flush()

    # -- judging -------------------------------------------------------------------------------------

    def _judge(self, call: HeldCall, *, finished: bool, last: bool = False) -> None:
        if call.malformed:
            call.verdict = _malformed_verdict(call, self.tools)
            if self.retries <= 0:
                self._give_up(call, call.verdict.error)
            return
        verdict = decide(call.name, call.raw, self.tools, finished=finished)
        call.verdict = verdict
        if verdict.outcome == "valid":
            call.final = call.raw  # untouched, byte for byte
        elif verdict.outcome == "repaired":
            assert verdict.input is not None
            call.final = orjson.dumps(verdict.input).decode()
            kinds = ", ".join(dict.fromkeys(e.repair for e in verdict.edits))
            self._record("tool_call_repaired", call, f"{verdict.name}: {kinds}", call.final, verdict)
            call.name = verdict.name
        elif last and self.retries <= 0:
            self._give_up(call, verdict.error)

    def _give_up(self, call: HeldCall, error: str) -> None:
        """No valid call came: the original goes out, as an object the tool's schema rejects if it is not
        one (never `{}`: that would run the tool with no arguments). A malformed call has no original."""
        if call.malformed:  # recorded (the exchange shows what Gemini said), then the error it was
            detail = f"{call.name or '?'}: the backend's call was malformed, no retry brought a valid one"
            self._record("tool_call_unrepairable", call, detail, "")
            raise UpstreamError(
                f"the backend produced a malformed tool call ({call.malformed}) and no retry brought "
                f"a valid one: {error[:300]}",
                error_type="api_error",
                status=500,
            )
        try:
            value = orjson.loads(call.raw)
        except orjson.JSONDecodeError:
            value = None
        call.final = (
            call.raw if isinstance(value, dict) else orjson.dumps({"raw_arguments": call.raw}).decode()
        )
        detail = f"{call.name}: still invalid, sent as the backend wrote it ({error[:300]})"
        self._record("tool_call_unrepairable", call, detail, call.final)

    def _record(
        self, kind: str, call: HeldCall, detail: str, after: str, verdict: Verdict | None = None
    ) -> None:
        change: JSONDict = {
            "kind": kind,
            "loss": False,
            "detail": detail,
            "tool": call.name if verdict is None else verdict.name,
            "tool_use_id": call.id,
            "raw_arguments": call.raw,
        }
        if verdict is not None:
            change["edits"] = [e.as_dict() for e in verdict.edits]
        else:
            change["edits"] = [
                {"repair": kind.removeprefix("tool_call_"), "path": "", "before": call.raw, "after": after}
            ]
            if call.verdict is not None and call.verdict.error:
                change["error"] = call.verdict.error
        self.changes.append(change)

    # -- output --------------------------------------------------------------------------------------

    def _calls(self) -> list[HeldCall]:
        return [item for item in self._queue if isinstance(item, HeldCall)]

    def _flush(self) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        while self._queue:
            item = self._queue[0]
            if isinstance(item, HeldCall):
                if item.final is None:
                    break
                out += _call_events(item)
            else:
                out.append(self._patched(item))
            self._queue.pop(0)
        return out

    def _patched(self, typed: StreamEvent) -> StreamEvent:
        """message_delta with the retries' tokens added (what was billed), and a tool_use stop when a
        retry completed a turn the backend had cut at its token limit."""
        event = cast(JSONDict, typed)
        if event.get("type") != "message_delta" or not (self.extra_usage or self.healed_by_retry):
            return typed
        usage = dict(event.get("usage") or {})
        for key, value in self.extra_usage.items():
            usage[key] = int(usage.get(key) or 0) + int(value)
        delta = dict(event.get("delta") or {})
        if self.healed_by_retry and delta.get("stop_reason") == "max_tokens":
            delta["stop_reason"] = "tool_use"
        return cast(StreamEvent, {**event, "delta": delta, "usage": usage})


_NAMED = re.compile(r"default_api[.:]([A-Za-z0-9_\-]+)")  # how Gemini's finishMessage quotes the call


def _malformed_verdict(call: HeldCall, tools: ToolSet) -> Verdict:
    """A malformed call needs a retry; the tool it meant, when what the backend said names exactly one."""
    named = {found for n in _NAMED.findall(call.raw) if (found := tools.match_name(n)) is not None}
    intended = named.pop() if len(named) == 1 else ""
    said = f" The backend reported: {call.raw[:2000]}" if call.raw.strip() else ""
    error = f"the tool call was malformed ({call.malformed}), so it could not be read at all.{said}"
    call.name = intended
    return Verdict("needs_retry", intended, None, error=error, intended=intended)


def _call_events(call: HeldCall) -> list[StreamEvent]:
    assert call.final is not None
    block = {**call.block, "name": call.name, "input": {}}
    events: list[JSONDict] = [
        {"type": "content_block_start", "index": call.index, "content_block": block},
        {
            "type": "content_block_delta",
            "index": call.index,
            "delta": {"type": "input_json_delta", "partial_json": call.final},
        },
        {"type": "content_block_stop", "index": call.index},
    ]
    return cast(list[StreamEvent], events)

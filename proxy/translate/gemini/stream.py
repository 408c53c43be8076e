"""Gemini `streamGenerateContent?alt=sse` chunks -> Anthropic stream events: an explicit state machine.

Upstream: `data: {GenerateContentResponse}` events, each a candidate with some parts (text, thought text,
a whole functionCall) and the usage so far; the last one has `finishReason`. No `[DONE]` sentinel: the
body just ends. An error mid-stream is a `data: {"error": {...}}` event. The Anthropic side is written by
`AnthropicStreamWriter`; thought signatures ride in thinking-block signatures (signatures.py).
A non-streaming reply has the same shape, so `response.parse_response` runs it through this machine too.
"""

from __future__ import annotations

import enum
from typing import Any

import orjson

from ..base import UpstreamError
from ..emit import AnthropicStreamWriter, zero_usage
from ..healing.stream import MALFORMED_CALL
from ..ids import synthetic_tool_id, tool_id_to_client
from ..stops import StopFilter
from ..tokens import usage_estimate
from ..types import JSONDict, SSEEvent, StopReason, StreamEvent, Translation, Usage
from .response import MalformedFunctionCall, error_from_body, stop_reason_for, usage_from_gemini
from .signatures import carry
from .state import gemini_state


class Phase(enum.Enum):
    STREAMING = "streaming"  # chunks are being translated
    STOPPED = "stopped"  # message_stop sent (or the stream failed): nothing more, ever


class GeminiStreamTranslator:
    """A fresh machine per request. `done` turns True once message_stop is out (the relay may hang up)."""

    def __init__(self, translation: Translation) -> None:
        self.translation = translation
        self.writer = AnthropicStreamWriter(
            message_id=translation.message_id,
            model=translation.client_model,
            input_estimate=translation.input_estimate,
        )
        self.phase = Phase.STREAMING
        self.usage: Usage = zero_usage()
        self.usage_estimated = False
        self.stop_reason: StopReason | None = None
        state = gemini_state(translation)
        self._request = state.request
        self._provider = state.provider
        self._thinking = state.reasoning
        self._stops = StopFilter(state.local_stop_sequences)
        self._calls = 0
        self._finish: str | None = None
        self._text_signature: str | None = None  # the open text's signature: sent once the text ends
        self._thinking_signed = False  # the open thinking block carries a Gemini signature already
        self._grounding: JSONDict | None = None
        self._lenient = translation.lenient_tool_input  # tool-call healing downstream takes what comes

    @property
    def done(self) -> bool:
        return self.phase is Phase.STOPPED

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        """One upstream SSE event in, 0..n Anthropic events out. Raises UpstreamError (then stays stopped)."""
        if self.phase is Phase.STOPPED:
            return []
        try:
            return self._on_chunk(_decode(event))
        except UpstreamError:
            self.phase = Phase.STOPPED
            raise

    def finish(self) -> list[StreamEvent]:
        """The upstream ended. Complete if a finishReason was seen, else UpstreamError. Idempotent."""
        if self.phase is Phase.STOPPED:
            return []
        self.phase = Phase.STOPPED
        raise UpstreamError(
            "upstream stream ended before its finishReason", error_type="api_error", status=500
        )

    # -- chunks --------------------------------------------------------------------------------------

    def _on_chunk(self, chunk: JSONDict) -> list[StreamEvent]:
        if "error" in chunk:
            raise error_from_body(chunk, where="upstream stream error")
        events = self.writer.start()
        if isinstance(chunk.get("usageMetadata"), dict):  # cumulative: the last one is the total
            self.usage = usage_from_gemini(chunk["usageMetadata"])
        candidates = chunk.get("candidates")
        if not isinstance(candidates, list) or not candidates:
            feedback = chunk.get("promptFeedback")
            if isinstance(feedback, dict) and feedback.get("blockReason"):
                # The prompt itself was blocked: no candidate at all. Anthropic calls that a refusal.
                return events + self._stop("refusal")
            return events
        candidate = candidates[0] if isinstance(candidates[0], dict) else {}
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else []:
            if isinstance(part, dict):
                events += self._on_part(part)
            if self.phase is Phase.STOPPED:  # a local stop sequence matched
                return events
        if isinstance(candidate.get("groundingMetadata"), dict):  # search grounding: the last one is whole
            self._grounding = candidate["groundingMetadata"]
        finish = candidate.get("finishReason")
        if isinstance(finish, str) and finish:
            self._finish = finish
            events += self._end(finish, candidate)
        return events

    def _on_part(self, part: JSONDict) -> list[StreamEvent]:
        signature = part.get("thoughtSignature")
        signature = signature if isinstance(signature, str) and signature else None
        if "functionCall" in part:
            return self._on_call(part["functionCall"], signature)
        text = part.get("text")
        if part.get("thought") is True:
            return self._on_thought(text if isinstance(text, str) else "", signature)
        if isinstance(text, str):
            return self._on_text(text, signature)
        return []  # executableCode, inlineData output…: nothing an Anthropic client reads as a reply

    def _on_thought(self, text: str, signature: str | None) -> list[StreamEvent]:
        events = self._end_text()
        if text and self._thinking:
            self._stops.note(text)
            if self.writer.block is None or self.writer.block.kind != "thinking":
                self._thinking_signed = False
            # Unsigned reasoning is still tagged as ours ("x"), so no other backend is sent it.
            events += self.writer.thinking(
                text, signature=carry(provider=self._provider, where="x", signature="-")
            )
        if signature is not None:
            events += self._sign("t" if text and self._thinking else "n", signature)
        return events

    def _on_text(self, text: str, signature: str | None) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        if text:
            if self.writer.block is None or self.writer.block.kind != "text":
                events += self._end_text()
            sendable, matched = self._stops.feed(text) if self._stops else (text, None)
            events += self.writer.text(sendable)
            if matched is not None:
                return events + self._stop("stop_sequence", sequence=matched)
        if signature is not None:
            # A text's signature (or one on an empty last part: it belongs to what came before) is carried
            # once more content follows; see _end_text.
            self._text_signature = signature
        return events

    def _on_call(self, call: Any, signature: str | None) -> list[StreamEvent]:
        if not isinstance(call, dict) or not isinstance(call.get("name"), str) or not call["name"]:
            raise UpstreamError(f"upstream sent a function call without a name: {str(call)[:200]!r}")
        events = self._end_text()
        if signature is not None:
            events += self._sign("n", signature)
        args = call.get("args")
        if args is None:
            args = {}
        if not isinstance(args, dict) and not self._lenient:
            raise UpstreamError(
                f"upstream sent arguments for {call['name']!r} that are not an object: {args!r}"[:300]
            )
        upstream_id = call.get("id")
        tool_id = (
            tool_id_to_client(upstream_id)
            if isinstance(upstream_id, str) and upstream_id
            else synthetic_tool_id(self.translation.message_id, self._calls)
        )
        self._calls += 1
        name = str(self.translation.tool_names.get(call["name"], call["name"]))
        arguments = orjson.dumps(args).decode() if isinstance(args, dict) else str(args)
        self._stops.note(arguments)
        self._thinking_signed = False
        return events + self.writer.tool_use(tool_id=tool_id, name=name, partial_json=arguments)

    # -- signatures ----------------------------------------------------------------------------------

    def _sign(self, where: str, signature: str, *, own_block: bool = False) -> list[StreamEvent]:
        """Carry a Gemini signature in a thinking block: the open one, unless it carries one already."""
        block = self.writer.block
        own = own_block or self._thinking_signed or block is None or block.kind != "thinking"
        carried = carry(provider=self._provider, where=where, signature=signature)  # type: ignore[arg-type]
        events = self.writer.sign_thinking(carried, own_block=own)
        self._thinking_signed = True
        return events

    def _end_text(self, *, last: bool = False) -> list[StreamEvent]:
        """The open text ended: text held for a stop sequence goes out, then the text's signature.

        At the end of the turn the signature is dropped: a thinking block after the last text would
        be the message's last block, which Claude Code takes for the answer (`-p` prints it, empty),
        and Gemini checks signatures on function calls only (on a final text it is a recommendation)."""
        events = self.writer.text(self._stops.flush()) if self._stops else []
        if last:
            self._text_signature = None
        if self._text_signature is not None:
            signature, self._text_signature = self._text_signature, None
            events += self._sign("p", signature, own_block=True)
        return events

    # -- the end -------------------------------------------------------------------------------------

    def _end(self, finish: str, candidate: JSONDict) -> list[StreamEvent]:
        if finish in ("MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL"):
            said = str(candidate.get("finishMessage") or "")  # Gemini's words on the bad call, if any
            if not self.translation.heals_malformed_calls:
                raise MalformedFunctionCall(finish, said)
            return self._malformed(finish, said)
        events = self._end_text(last=True) + self._search_results()
        reason = stop_reason_for(finish, has_calls=self._calls > 0, candidate=candidate)
        return events + self._stop(reason)

    def _malformed(self, finish: str, said: str) -> list[StreamEvent]:
        """The turn ends with a placeholder call the healing stage retries (never sent as it is): what
        Gemini said as its arguments, marked with the finish reason."""
        events = self._end_text(last=True)
        tool_id = synthetic_tool_id(self.translation.message_id, self._calls)
        self._calls += 1
        for event in self.writer.tool_use(tool_id=tool_id, name="", partial_json=said):
            if event["type"] == "content_block_start":
                event["content_block"][MALFORMED_CALL] = finish
            events.append(event)
        return events + self._stop("tool_use")

    def _search_results(self) -> list[StreamEvent]:
        """Gemini's search grounding as Anthropic's web search blocks, so a client lists the sources (as
        Claude Code's WebSearch tool does). Gemini reports it once the answer is written: they come last."""
        meta = self._grounding
        chunks = meta.get("groundingChunks") if meta else None
        if not meta or not isinstance(chunks, list) or not chunks:
            return []
        queries = [q for q in meta.get("webSearchQueries") or [] if isinstance(q, str)]
        tool_id = "srvtoolu_" + synthetic_tool_id(self.translation.message_id, 10_000).removeprefix("toolu_")
        results = [
            {"type": "web_search_result", "url": str(web.get("uri", "")), "title": str(web.get("title", "")),
             "encrypted_content": "", "page_age": None}
            for web in (c.get("web") for c in chunks if isinstance(c, dict))
            if isinstance(web, dict) and web.get("uri")
        ]  # fmt: skip
        use = {
            "type": "server_tool_use",
            "id": tool_id,
            "name": "web_search",
            "input": {"query": " | ".join(queries)},
        }
        found = {"type": "web_search_tool_result", "tool_use_id": tool_id, "content": results}
        return self.writer.block_start(use) + self.writer.block_start(found)

    def _stop(self, reason: StopReason, *, sequence: str | None = None) -> list[StreamEvent]:
        if sequence is not None and not self.usage["output_tokens"]:
            self._estimate_usage()
        self.stop_reason = reason
        self.phase = Phase.STOPPED
        return self.writer.stop(reason, usage=self.usage, stop_sequence=sequence)

    def _estimate_usage(self) -> None:
        """A local stop sequence cut the stream before Gemini's usage: count locally (flagged)."""
        input_tokens, output_tokens = usage_estimate(self._request, "".join(self._stops.generated))
        self.usage = {**self.usage, "input_tokens": input_tokens, "output_tokens": output_tokens}
        self.usage_estimated = True


def _decode(event: SSEEvent) -> JSONDict:
    try:
        chunk = orjson.loads(event.data)
    except orjson.JSONDecodeError:
        raise UpstreamError(f"upstream sent a stream event that is not JSON: {event.data[:200]!r}") from None
    if isinstance(chunk, list) and chunk and isinstance(chunk[0], dict):  # a JSON-array error body
        chunk = chunk[0]
    if not isinstance(chunk, dict):
        raise UpstreamError(f"upstream sent an unexpected stream event: {event.data[:200]!r}")
    return chunk

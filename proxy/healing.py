"""Tool-call healing on the serving side (issue #15): when it applies, and the retry, which is IO.

The judging and repairing is pure (proxy/translate/healing/); this module decides whether a request is
healed, sends a broken call's retry to the same target within what is left of the original attempt's
total timeout, records it as an attempt (a cancelled one too: the client left), and heals a plain
(non-streamed) reply with the stream's own stage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from proxy import upstream
from proxy.recording.tape import Tape
from proxy.translate.accumulate import accumulate
from proxy.translate.base import TranslationError, UpstreamError
from proxy.translate.dialects import DIALECTS
from proxy.translate.healing.decide import ToolSet, Verdict
from proxy.translate.healing.feedback import (
    feedback_of,
    malformed_retry_request,
    message_events,
    retried_call,
    retry_request,
)
from proxy.translate.healing.stream import HeldCall, ToolCallHealer
from proxy.translate.types import Message, MessagesRequest, StreamEvent, Target

logger = logging.getLogger(__name__)

PING_INTERVAL_S = 5.0  # a ping this often while a retry runs: Claude Code gives up on a silent stream


def wants_healing(request: MessagesRequest | None, targets: tuple[Target, ...]) -> bool:
    """Whether any target may heal this request (so serving keeps the parsed request for a retry)."""
    return bool(request and request.get("tools")) and any(_heals(t) for t in targets)


def _heals(target: Target) -> bool:
    dialect = DIALECTS.get(target.dialect)  # passthrough is not healed: its capabilities say so
    return target.heal_tool_calls and dialect is not None and dialect.capabilities.heals_tool_calls


@dataclass(slots=True)
class Healing:
    """What healing one attempt's answer needs: the request (for a retry), its tools, where it went."""

    request: MessagesRequest
    tools: ToolSet
    target: Target
    message_id: str
    headers: dict[str, str]
    started: float = 0.0  # perf_counter when the original attempt was sent: its total timeout counts from it

    @classmethod
    def of(
        cls, request: MessagesRequest | None, target: Target, *, message_id: str, headers: dict[str, str]
    ) -> Healing | None:
        if request is None or not _heals(target):
            return None
        tools = ToolSet(request.get("tools") or [])
        if not tools:
            return None
        return cls(request=request, tools=tools, target=target, message_id=message_id, headers=headers)

    def healer(self) -> ToolCallHealer:
        return ToolCallHealer(self.tools, retries=max(0, self.target.tool_call_retries))

    async def retry(self, call: HeldCall, tape: Tape) -> tuple[Verdict | None, dict[str, Any] | None]:
        """One retry of `call` on the same target: (its call judged, or None; the retry's usage)."""
        verdict = call.verdict
        assert verdict is not None
        if call.malformed:  # no call to show the model: what the backend said about it, as text
            body = malformed_retry_request(self.request, error=verdict.error, intended=verdict.intended)
        else:
            body = retry_request(
                self.request,
                call_id=call.id,
                name=call.name,
                raw_arguments=call.raw,
                error=verdict.error,
                intended=verdict.intended,
            )
        dialect = DIALECTS[self.target.dialect]
        started = time.perf_counter()
        status: int | None = None
        error = ""
        message: Message | None = None

        def note(status: int, error: str) -> None:
            tape.attempts.append(
                {
                    "attempt": len(tape.attempts) + 1,
                    "purpose": "tool_call_retry",
                    "provider": self.target.provider,
                    "model": self.target.model,
                    "ms": round((time.perf_counter() - started) * 1000, 1),
                    "status": status,
                    "error": error,
                    "tool": call.name,
                    "tool_use_id": call.id,
                    "feedback": feedback_of(body),
                    "response": message,
                }
            )

        # The original attempt's total timeout covers its retries (the per-read limits stay per read).
        timeouts = upstream.Timeouts.of(self.target).after(started - (self.started or started))
        try:
            if timeouts.total < 0:
                raise UpstreamError(
                    f"no time left for a retry within the provider's total timeout "
                    f"({self.target.total_timeout:g} s)",
                    error_type="timeout_error",
                    status=504,
                )
            translation = dialect.build_request(
                body, self.target, message_id=self.message_id, client_headers=self.headers
            )
            translation.lenient_tool_input = True
            reply = await upstream.open_request(translation.upstream, timeouts=timeouts)
            try:
                raw = await reply.read()
            finally:
                await reply.aclose()
            status = reply.status_code
            if status >= 400:
                raise dialect.parse_error(status, raw, dict(reply.headers))
            message = dialect.parse_response(orjson.loads(raw), translation)
        except (UpstreamError, TranslationError) as exc:
            error = exc.message
            status = status or getattr(exc, "status", None)
        except orjson.JSONDecodeError:
            error = "the retry's answer is not JSON"
        except asyncio.CancelledError:  # the client left (or the server stops): its request is closed
            note(499, "cancelled: the client disconnected during the retry")
            raise
        found = retried_call(message, intended=verdict.intended, tools=self.tools) if message else None
        if message is not None and found is None:
            error = "the retry brought no valid call"
        note(status or 502, error)
        usage = dict(message.get("usage") or {}) if message else None
        return found, usage


async def heal_stream(healing: Healing, healer: ToolCallHealer, tape: Tape) -> AsyncIterator[StreamEvent]:
    """Once the upstream ended: run each pending call's retries (pings meanwhile), then the rest of the
    held events. Cancelled with the stream when the client leaves (the retry's request with it)."""
    while (call := healer.pending) is not None:
        task = asyncio.create_task(healing.retry(call, tape))
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=PING_INTERVAL_S)
                if not task.done():
                    yield {"type": "ping"}
        finally:
            if not task.done():  # the client left: the retry's request is closed before the tape ends
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        try:
            verdict, usage = task.result()
        except Exception:  # our own bug in a retry: the call goes out as it came, never a stream error
            logger.exception("tool-call retry failed for %s", tape.request_id)
            verdict, usage = None, None
        for event in healer.resolve(call, verdict, usage=usage):
            yield event
    for event in healer.finish():
        yield event


async def heal_message(healing: Healing, message: Message, tape: Tape) -> Message:
    """A plain reply healed with the stream's stage: its blocks as events through it, accumulated back."""
    healer = healing.healer()
    events: list[StreamEvent] = []
    for event in message_events(message):
        events += healer.feed(event)
    try:
        events += [e async for e in heal_stream(healing, healer, tape) if e["type"] != "ping"]
    finally:
        tape.changes.extend(healer.changes)  # a malformed call's failed retry raises: its record stays
    return accumulate(events)  # its usage has the retries' tokens (the stage adds them to message_delta)


def note_stream(tape: Tape, healer: ToolCallHealer) -> None:
    """What the stage did to a stream, on the record: its changes, and the retries' tokens in the usage."""
    tape.changes.extend(healer.changes)
    for key, value in healer.extra_usage.items():
        tape.usage[key] = int(tape.usage.get(key) or 0) + int(value)

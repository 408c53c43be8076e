"""Serving one Messages request: try each routed target in turn, then answer or relay the stream.

The only loop that touches the client's socket, and the one owner of a tape's end: a plain answer (or a
refusal) is recorded in `_ended`'s `finally:`, a stream in the relay's, so a client hang-up (Django
cancels the generator) or an upstream failure is still recorded, with its duration.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Literal, cast

import orjson
from django.http import HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase

from proxy import healing, upstream
from proxy.http.errors import error_frame, error_response
from proxy.http.request_ids import new_message_id
from proxy.ops import shutdown
from proxy.recording.progress import progress
from proxy.recording.tape import Failure, Outcome, Tape, is_secret_header, safe_headers
from proxy.recording.writer import recorder
from proxy.routing.snapshot import Decision
from proxy.translate import tokens
from proxy.translate.accumulate import Accumulator
from proxy.translate.base import StreamTranslator, TranslationError, UpstreamError
from proxy.translate.dialects import DIALECTS
from proxy.translate.healing.stream import ToolCallHealer
from proxy.translate.sse import SSEDecoder, encode_event
from proxy.translate.types import JSONDict, MessagesRequest, StreamEvent, Target, Translation

logger = logging.getLogger(__name__)

_MAX_RETRY_AFTER_S = 5.0  # honour retry-after between fallbacks, but never stall a client longer


@dataclass(slots=True)
class Routed:
    """A routed request, handed over to serve_messages, which takes the decision out of it."""

    tape: Tape
    decision: Decision | None
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class _Result:
    """A response and how the exchange went; `streams`: the relay ends the tape, not `_ended`."""

    response: HttpResponseBase
    error: Failure | None = None
    streams: bool = False


async def serve_messages(routed: Routed, *, message_id: str) -> HttpResponseBase:
    """Try the decision's targets in order; fall back only before the client got a byte."""
    return await _ended(routed.tape, _serve_messages(routed, message_id=message_id), doing="serving")


async def _ended(tape: Tape, serving: Awaitable[_Result], *, doing: str) -> HttpResponseBase:
    """Await `serving` and end the tape with its outcome, whatever happens (a stream's relay ends it)."""
    status: Outcome = "cancelled"  # the client hung up (or the server is stopping) before the response
    error: Failure | None = Failure("", "client disconnected before the response began")
    result: _Result | None = None
    try:
        result = await serving
        status, error = ("ok", None) if result.error is None else ("error", result.error)
        return result.response
    except Exception as exc:  # our own bug: a 500 still, recorded with why
        logger.exception("%s %s failed", doing, tape.request_id)
        status, error = (
            "error",
            Failure("api_error", f"internal error in the proxy while {doing}: {exc!r}", 500),
        )
        return error_response(error.error_type, error.message, status=500)
    finally:
        if result is None or not result.streams:
            tape.end(status, error)


async def _serve_messages(routed: Routed, *, message_id: str) -> _Result:
    tape, headers, decision = routed.tape, routed.headers, routed.decision
    assert decision is not None, "a Routed request is served once"
    targets = decision.targets
    request_body: MessagesRequest | None = decision.body
    # From here only this frame holds the parsed request, and only until the last target's translation:
    # a request waiting for its upstream (or streaming for minutes) then keeps just the bytes it sent
    # and received, not a parsed copy of a 100 KB prompt (~2x its size; peak memory at c=200). A request
    # with tools that may be healed keeps it: a broken call's retry is that request plus the error.
    keep_request = healing.wants_healing(request_body, targets)
    routed.decision = decision = None
    if shutdown.draining():  # a request on a connection opened before the server began to stop
        return _refuse("api_error", shutdown.STOPPING_MESSAGE, 503)
    last_error: UpstreamError | None = None
    for attempt, target in enumerate(targets):
        if last_error is not None and shutdown.draining():
            break  # no fallback while stopping: the client is told to send it again
        if last_error is not None and last_error.retry_after:
            await asyncio.sleep(min(_retry_after_seconds(last_error.retry_after), _MAX_RETRY_AFTER_S))
        dialect = DIALECTS[target.dialect]
        assert request_body is not None
        build = functools.partial(
            dialect.build_request, request_body, target, message_id=message_id, client_headers=headers
        )
        try:
            # Reading a PDF's text takes up to seconds for a long one: off the event loop, so the
            # streams in flight go on meanwhile. Every other request translates inline (~100 us).
            translation = await asyncio.to_thread(build) if tape.documents else build()
        except TranslationError as exc:
            return _refuse(exc.error_type, exc.message, exc.status)
        heal = healing.Healing.of(
            request_body if keep_request else None, target, message_id=message_id, headers=headers
        )
        translation.lenient_tool_input = heal is not None
        # A malformed call (Gemini's MALFORMED_FUNCTION_CALL) becomes a healing retry, not an error.
        translation.heals_malformed_calls = heal is not None and target.tool_call_retries > 0
        if attempt == len(targets) - 1 and heal is None:
            request_body = None
        payload = upstream.encode_body(translation.upstream)
        _note_target(tape, target, translation, payload)
        # The bytes are sent and recorded; the response side never reads the translated dict again.
        translation.upstream = dataclasses.replace(translation.upstream, body={})
        tape.upstream_chunks = []  # the record keeps the last attempt's reply; earlier ones are in attempts
        started = time.perf_counter()
        if heal is not None:
            heal.started = started  # a retry's time counts against this attempt's total timeout
        try:
            reply, first = await _attempt(tape=tape, target=target, translation=translation, payload=payload)
        except UpstreamError as exc:
            last_error = exc
            _note_attempt(tape, attempt, target, started, error=last_error)
            if not exc.retryable:
                break  # the backend refused the request itself (400, 401...): another would too
            continue
        _note_attempt(tape, attempt, target, started, error=None)
        tape.http_status = 200
        if translation.upstream.stream:
            if isinstance(tape.client_request, orjson.Fragment):  # its bytes: a copy, ~1 us for 80 KB
                translation.input_estimate = tokens.estimate_from_size(len(orjson.dumps(tape.client_request)))
            translator = dialect.stream_translator(translation)
            stream = relay(reply=reply, first=first, translator=translator, tape=tape, heal=heal)
            return _Result(_sse_response(stream), streams=True)
        await reply.aclose()
        return await _answer(
            body=first, dialect_name=target.dialect, translation=translation, tape=tape, heal=heal
        )
    assert last_error is not None, "routing returned no target"
    return _refuse(last_error.error_type, last_error.message, last_error.status, last_error.retry_after)


async def _attempt(
    *, tape: Tape, target: Target, translation: Translation, payload: bytes
) -> tuple[upstream.Reply, bytes]:
    """Send one attempt and read until the client can be answered: a stream's first chunk, or the whole
    of a plain reply. Until then a failure can still fall back: UpstreamError (the backend's own error
    reply parsed, with its status as `upstream_status`)."""
    reply = await upstream.open_request(
        translation.upstream, timeouts=upstream.Timeouts.of(target), body=payload
    )
    try:
        tape.first_byte_at = time.perf_counter()
        if reply.status_code >= 400:
            body = await reply.read()
            tape.upstream_chunks = [body]
            raise DIALECTS[target.dialect].parse_error(reply.status_code, body, dict(reply.headers))
        first = await reply.next_chunk() if translation.upstream.stream else await reply.read()
        if first is None:
            raise UpstreamError(
                f"backend {reply.backend} closed the connection before its answer", status=502
            )
    except BaseException:  # a failure, or the client hung up: else aiohttp keeps the connection busy
        await reply.aclose()
        raise
    return reply, first


async def serve_count_tokens(*, decision: Decision, headers: dict[str, str], tape: Tape) -> HttpResponseBase:
    """A backend that counts exactly (its dialect builds the request) is asked; else counted locally."""
    counting = _count_tokens(decision=decision, headers=headers, tape=tape)
    return await _ended(tape, counting, doing="counting tokens")


async def _count_tokens(*, decision: Decision, headers: dict[str, str], tape: Tape) -> _Result:
    target = decision.targets[0]
    tape.provider, tape.dialect = target.provider, target.dialect
    tape.backend_model = target.model or tape.client_model
    dialect = DIALECTS[target.dialect]
    outbound = dialect.build_count_tokens_request(decision.body, target, client_headers=headers)
    if outbound is not None:
        reply: upstream.Reply | None = None
        try:
            reply = await upstream.open_request(outbound, timeouts=upstream.Timeouts.of(target))
            body = await reply.read()
        except UpstreamError as exc:
            return _refuse(exc.error_type, exc.message, exc.status)
        finally:
            if reply is not None:
                await reply.aclose()
        tape.first_byte_at = time.perf_counter()
        tape.upstream_chunks = [body]
        if reply.status_code >= 400:
            err = dialect.parse_error(reply.status_code, body, dict(reply.headers))
            return _refuse(err.error_type, err.message, err.status, err.retry_after)
        counted = dialect.parse_count_tokens(orjson.loads(body))
    else:
        # ~10 ms for a 110 KB body: off the event loop, so streams in flight don't stall.
        counted = {"input_tokens": await asyncio.to_thread(tokens.count_tokens, decision.body)}
    tape.usage = {"input_tokens": int(counted.get("input_tokens") or 0)}
    tape.client_message = None
    tape.http_status = 200
    return _Result(HttpResponse(orjson.dumps(counted), content_type="application/json"))


@dataclass(frozen=True, slots=True)
class Served:
    """A stored request answered again: the response, and the new exchange's record to find it by."""

    response: HttpResponse  # not streamed
    request_id: str  # the new exchange's (its row: Exchange.request_id)
    backend_model: str
    ms: float  # how long it took, as its record says


async def serve_stored(
    body: JSONDict,
    *,
    targets: tuple[Target, ...],
    rule: str,
    reason: str,
    origin: Literal["replay", "test"],
    headers: dict[str, str] | None = None,
    agent: str = "",
) -> Served:
    """Answer a request the proxy did not receive from a client (a replay of a stored one, the routes
    editor's test) through `targets`, not streamed, on the same serving path: recorded as an exchange of
    its own, marked with `origin`."""
    headers = headers or {}
    body = {**body, "stream": False}
    tape = Tape(endpoint="messages", client_request=body, client_headers=safe_headers(headers), origin=origin)
    tape.client_model, tape.rule, tape.route_reason, tape.agent = str(body["model"]), rule, reason, agent
    recorder.start(tape)
    decision = Decision(targets, rule, reason, "", agent, cast(MessagesRequest, body))
    response = await serve_messages(Routed(tape, decision, headers), message_id=new_message_id())
    assert isinstance(response, HttpResponse), "a stored request is answered whole"
    return Served(response, tape.request_id, tape.backend_model, tape.ms(tape.done_at) or 0.0)


async def _answer(
    *, body: bytes, dialect_name: str, translation: Translation, tape: Tape, heal: healing.Healing | None
) -> _Result:
    tape.upstream_chunks = [body]
    try:
        message = DIALECTS[dialect_name].parse_response(orjson.loads(body), translation)
    except UpstreamError as exc:
        return _refuse(exc.error_type, exc.message, exc.status)
    except orjson.JSONDecodeError:
        return _refuse("api_error", f"upstream returned a body that is not JSON: {body[:200]!r}", 500)
    if heal is not None:  # the same stage as a stream's, over the reply's blocks (retries included)
        try:
            message = await healing.heal_message(heal, message, tape)
        except UpstreamError as exc:  # a malformed call no retry healed: the backend's error, as before
            return _refuse(exc.error_type, exc.message, exc.status)
    tape.client_message = message
    tape.usage = dict(message.get("usage") or {})
    return _Result(HttpResponse(orjson.dumps(message), content_type="application/json"))


async def relay(
    *,
    reply: upstream.Reply,
    first: bytes,
    translator: StreamTranslator,
    tape: Tape,
    heal: healing.Healing | None = None,
) -> AsyncIterator[bytes]:
    """Upstream SSE bytes (the first chunk read already) -> translated Anthropic SSE frames, one by one.
    With `heal`, the events pass the healing stage: tool calls are judged before the client sees them."""
    decoder = SSEDecoder()
    healer = heal.healer() if heal is not None else None
    chunks = tape.upstream_chunks
    sent = Accumulator()  # what the client got, folded in as it goes: the events themselves are not kept
    progress.watch(tape, sent)  # read once a second by the progress ticker, never written here
    chunk: bytes | None = first
    status: Outcome = "cancelled"
    error: Failure | None = Failure("", "client disconnected mid-stream")
    try:
        try:
            while chunk is not None:
                chunks.append(chunk)
                out = []
                for received in decoder.feed(chunk):
                    out.extend(translator.feed(received))
                if healer is not None:
                    out = _through(healer, out)
                if out:
                    if tape.first_token_at is None and any(e["type"] == "content_block_delta" for e in out):
                        tape.first_token_at = time.perf_counter()
                    for event in out:
                        sent.feed(event)
                    yield b"".join([encode_event(e) for e in out])
                if translator.done:
                    break  # e.g. a stop sequence matched locally: stop paying for tokens nobody reads
                chunk = await reply.next_chunk()
            out = []
            for received in decoder.flush():
                out.extend(translator.feed(received))
            out.extend(translator.finish())
            if healer is not None:
                out = _through(healer, out)
            if out:
                for event in out:
                    sent.feed(event)
                yield b"".join([encode_event(e) for e in out])
            if healer is not None and heal is not None:
                # Broken calls' retries (pings while they run), then what waited behind them.
                async for late in healing.heal_stream(heal, healer, tape):
                    sent.feed(late)
                    yield encode_event(late)
            if translator.usage_estimated:
                tape.changes.append(
                    {
                        "kind": "usage_estimated",
                        "loss": False,
                        "detail": "stopped at a local stop sequence before the "
                        "backend reported usage: tokens estimated locally",
                    }
                )
            status, error = "ok", None
        except UpstreamError as exc:
            status, error = "error", Failure(exc.error_type, exc.message)
            yield error_frame(exc.error_type, exc.message, request_id=tape.request_id)
        except Exception as exc:  # our own bug: still an error event for the client, and recorded
            logger.exception("relay failed")
            message = f"the proxy failed while translating the stream: {exc!r}"
            status, error = "error", Failure("api_error", message)
            yield error_frame("api_error", message, request_id=tape.request_id)
    finally:  # also on a hang-up (CancelledError, GeneratorExit): `status` says cancelled then
        tape.usage = dict(translator.usage)
        if healer is not None:
            healing.note_stream(tape, healer)
        if sent.started:
            tape.client_message = sent.message()
        progress.forget(tape)
        tape.end(status, error)
        await reply.aclose()


def _through(healer: ToolCallHealer, events: list[StreamEvent]) -> list[StreamEvent]:
    out: list[StreamEvent] = []
    for event in events:
        out.extend(healer.feed(event))
    return out


def _sse_response(stream: AsyncIterator[bytes]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(stream, content_type="text/event-stream")
    response["cache-control"] = "no-cache"
    response["x-accel-buffering"] = "no"
    return response


def _refuse(error_type: str, message: str, status: int, retry_after: str | None = None) -> _Result:
    response = error_response(error_type, message, status=status, retry_after=retry_after)
    return _Result(response, Failure(error_type, message, status))


def _note_target(tape: Tape, target: Target, translation: Translation, payload: bytes) -> None:
    tape.provider = target.provider
    tape.dialect = target.dialect
    tape.prices = dict(target.prices)
    tape.backend_model = str(translation.upstream.body.get("model") or target.model or tape.client_model)
    tape.upstream_request = {
        "method": translation.upstream.method,
        "url": translation.upstream.url,
        "headers": {k: v for k, v in translation.upstream.headers.items() if not is_secret_header(k.lower())},
        "body": orjson.Fragment(payload),  # the bytes sent, recorded without encoding them again
    }
    tape.changes = [c.as_dict() for c in translation.changes]


def _note_attempt(
    tape: Tape, attempt: int, target: Target, started: float, *, error: UpstreamError | None
) -> None:
    tape.attempts.append(
        {
            "attempt": attempt + 1,
            "provider": target.provider,
            "model": target.model,
            "ms": round((time.perf_counter() - started) * 1000, 1),
            "status": error.upstream_status or error.status if error else 200,
            "error": error.message if error else "",
        }
    )


def _retry_after_seconds(value: str) -> float:
    try:
        return max(0.0, float(value))
    except ValueError:
        return 1.0

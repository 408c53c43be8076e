"""Serving one Messages request: try each routed target in turn, then answer or relay the stream.

The only loop that touches the client's socket. Recording goes in `finally:` so a client hang-up
(Django cancels the generator) or an upstream failure is still recorded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson
from django.http import HttpResponse, StreamingHttpResponse

from proxy import upstream
from proxy.http.errors import error_frame, error_response
from proxy.ops import shutdown
from proxy.recording.progress import progress
from proxy.recording.tape import Tape, is_secret_header
from proxy.recording.writer import recorder
from proxy.routing.snapshot import Decision
from proxy.translate import tokens
from proxy.translate.accumulate import Accumulator
from proxy.translate.base import StreamTranslator, TranslationError, UpstreamError
from proxy.translate.dialects import DIALECTS
from proxy.translate.sse import SSEDecoder, encode_event
from proxy.translate.types import Target, Translation

logger = logging.getLogger(__name__)

_MAX_RETRY_AFTER_S = 5.0  # honour retry-after between fallbacks, but never stall a client longer


@dataclass(slots=True)
class Routed:
    """A routed request, handed over to serve_messages, which takes the decision out of it."""

    tape: Tape
    decision: Decision | None
    headers: dict[str, str]


async def serve_messages(routed: Routed, *, message_id: str) -> HttpResponse:
    """Try the decision's targets in order; fall back only before the client got a byte."""
    tape = routed.tape
    try:
        return await _serve_messages(routed, message_id=message_id)
    except asyncio.CancelledError:
        # The client hung up (or the server is stopping) before the response began: still recorded.
        if not tape.finished:
            tape.status = "cancelled"
            tape.error_message = "client disconnected before the response began"
            tape.done_at = time.perf_counter()
            recorder.finish(tape)
        raise
    except Exception as exc:  # our own bug: the client gets a 500 from the handler, the record says why
        if not tape.finished:
            tape.fail("api_error", f"the proxy failed before the response began: {exc!r}", 500)
            tape.done_at = time.perf_counter()
            recorder.finish(tape)
        raise


async def _serve_messages(routed: Routed, *, message_id: str) -> HttpResponse:
    tape, headers, decision = routed.tape, routed.headers, routed.decision
    assert decision is not None, "a Routed request is served once"
    targets, request_body = decision.targets, decision.body
    # From here only this frame holds the parsed request, and only until the last target's translation:
    # a request waiting for its upstream (or streaming for minutes) then keeps just the bytes it sent
    # and received, not a parsed copy of a 100 KB prompt (~2x its size; peak memory at c=200).
    routed.decision = decision = None
    if shutdown.draining():  # a request on a connection opened before the server began to stop
        return _refuse(tape, "api_error", shutdown.STOPPING_MESSAGE, 503)
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
            return _refuse(tape, exc.error_type, exc.message, exc.status)
        if attempt == len(targets) - 1:
            request_body = None
        payload = upstream.encode_body(translation.upstream)
        _note_target(tape, target, translation, payload)
        # The bytes are sent and recorded; the response side never reads the translated dict again.
        translation.upstream = dataclasses.replace(translation.upstream, body={})
        tape.upstream_chunks = []  # the record keeps the last attempt's reply; earlier ones are in attempts
        started = time.perf_counter()
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
            return _sse_response(relay(reply=reply, first=first, translator=translator, tape=tape))
        await reply.aclose()
        return _answer(body=first, dialect_name=target.dialect, translation=translation, tape=tape)
    assert last_error is not None, "routing returned no target"
    return _refuse(tape, last_error.error_type, last_error.message, last_error.status, last_error.retry_after)


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


async def serve_count_tokens(*, decision: Decision, headers: dict[str, str], tape: Tape) -> HttpResponse:
    """A backend that counts exactly (its dialect builds the request) is asked; else counted locally."""
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
            return _refuse(tape, exc.error_type, exc.message, exc.status)
        finally:
            if reply is not None:
                await reply.aclose()
        tape.first_byte_at = time.perf_counter()
        tape.upstream_chunks = [body]
        if reply.status_code >= 400:
            err = dialect.parse_error(reply.status_code, body, dict(reply.headers))
            return _refuse(tape, err.error_type, err.message, err.status, err.retry_after)
        counted = dialect.parse_count_tokens(orjson.loads(body))
    else:
        # ~10 ms for a 110 KB body: off the event loop, so streams in flight don't stall.
        counted = {"input_tokens": await asyncio.to_thread(tokens.count_tokens, decision.body)}
    tape.usage = {"input_tokens": int(counted.get("input_tokens") or 0)}
    tape.client_message = None
    tape.status, tape.http_status, tape.done_at = "ok", 200, time.perf_counter()
    recorder.finish(tape)
    return HttpResponse(orjson.dumps(counted), content_type="application/json")


def _answer(*, body: bytes, dialect_name: str, translation: Translation, tape: Tape) -> HttpResponse:
    tape.upstream_chunks = [body]
    try:
        message = DIALECTS[dialect_name].parse_response(orjson.loads(body), translation)
    except UpstreamError as exc:
        return _refuse(tape, exc.error_type, exc.message, exc.status)
    except orjson.JSONDecodeError:
        return _refuse(tape, "api_error", f"upstream returned a body that is not JSON: {body[:200]!r}", 500)
    tape.client_message = message
    tape.usage = dict(message.get("usage") or {})
    tape.status = "ok"
    tape.done_at = time.perf_counter()
    recorder.finish(tape)
    return HttpResponse(orjson.dumps(message), content_type="application/json")


async def relay(
    *, reply: upstream.Reply, first: bytes, translator: StreamTranslator, tape: Tape
) -> AsyncIterator[bytes]:
    """Upstream SSE bytes (the first chunk read already) -> translated Anthropic SSE frames, one by one."""
    decoder = SSEDecoder()
    chunks = tape.upstream_chunks
    sent = Accumulator()  # what the client got, folded in as it goes: the events themselves are not kept
    progress.watch(tape, sent)  # read once a second by the progress ticker, never written here
    chunk: bytes | None = first
    try:
        try:
            while chunk is not None:
                chunks.append(chunk)
                out = []
                for event in decoder.feed(chunk):
                    out.extend(translator.feed(event))
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
            for event in decoder.flush():
                out.extend(translator.feed(event))
            out.extend(translator.finish())
            if out:
                for event in out:
                    sent.feed(event)
                yield b"".join([encode_event(e) for e in out])
            if translator.usage_estimated:
                tape.changes.append(
                    {
                        "kind": "usage_estimated",
                        "loss": False,
                        "detail": "stopped at a local stop sequence before the "
                        "backend reported usage: tokens estimated locally",
                    }
                )
            tape.status = "ok"
        except UpstreamError as exc:
            tape.fail(exc.error_type, exc.message)
            yield error_frame(exc.error_type, exc.message, request_id=tape.request_id)
        except Exception as exc:  # our own bug: still an error event for the client, and recorded
            logger.exception("relay failed")
            message = f"the proxy failed while translating the stream: {exc!r}"
            tape.fail("api_error", message)
            yield error_frame("api_error", message, request_id=tape.request_id)
    except (asyncio.CancelledError, GeneratorExit):
        tape.status = "cancelled"
        tape.error_message = "client disconnected mid-stream"
        raise
    finally:
        tape.usage = dict(translator.usage)
        if sent.started:
            tape.client_message = sent.message()
        tape.done_at = time.perf_counter()
        progress.forget(tape)
        await reply.aclose()
        recorder.finish(tape)


def _sse_response(stream: AsyncIterator[bytes]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(stream, content_type="text/event-stream")
    response["cache-control"] = "no-cache"
    response["x-accel-buffering"] = "no"
    return response


def _refuse(
    tape: Tape, error_type: str, message: str, status: int, retry_after: str | None = None
) -> HttpResponse:
    tape.fail(error_type, message, status)
    tape.done_at = time.perf_counter()
    recorder.finish(tape)
    return error_response(error_type, message, status=status, retry_after=retry_after)


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

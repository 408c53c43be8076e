"""The only outbound IO: one HTTP client per process, shared by every request.

httpx keeps the API; the aiohttp transport carries the bytes, because httpx's own connection layer
(httpcore + h11) was the largest CPU cost per streamed chunk (see docs/benchmarks.md).

Every way a backend can fail on the wire ends here as one `UpstreamError` worded by us, naming the
backend: `describe_transport_error` is the one place library exceptions become sentences.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import ssl
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, replace
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
import httpx
import orjson
from httpx_aiohttp import AiohttpTransport

from proxy.translate.base import UpstreamError
from proxy.translate.types import Target, UpstreamRequest

logger = logging.getLogger(__name__)
T = TypeVar("T")

_transport: AiohttpTransport | None = None
_open_replies: set[Reply] = set()  # answers being read, for abort_all() at shutdown


def transport() -> AiohttpTransport:
    """The process's transport (created inside the running loop on first use: aiohttp needs a loop)."""
    global _transport
    if _transport is None:
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200, keepalive_expiry=30)
        _transport = AiohttpTransport(limits=limits, trust_env=False)
    return _transport


@dataclass(frozen=True, slots=True)
class Timeouts:
    """A provider's limits on one attempt, in seconds; 0 = no limit (connect always has one)."""

    connect: float = 10.0
    first_byte: float = 300.0  # request sent -> the backend's first byte (a stream's first chunk)
    idle: float = 120.0  # between two chunks of the answer
    total: float = 0.0  # request sent -> last byte

    @classmethod
    def of(cls, target: Target) -> Timeouts:
        t = target
        return cls(t.connect_timeout, t.first_byte_timeout, t.idle_timeout, t.total_timeout)

    def after(self, spent: float) -> Timeouts:
        """What is left of these limits `spent` seconds into the attempt (a retry within it shares its
        total budget; the per-read limits are per read). `total` <= 0 then: nothing left."""
        if not self.total:
            return self  # no limit stays no limit
        return replace(self, total=self.total - spent if self.total > spent else -1.0)


def encode_body(request: UpstreamRequest) -> bytes:
    # orjson's result keeps a much larger allocation than its length (~260 KB for a 40 KB body, seen
    # with tracemalloc); this one lives as long as the exchange (it is recorded), so copy it to size.
    return bytes(memoryview(orjson.dumps(request.body)))


def backend_of(url: str) -> str:
    """`host:port` of a URL, as the error messages name a backend."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or "?"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Reply:
    """A backend's answer being read, under the attempt's timeouts.

    One watchdog timer per reply, not one per chunk: a read only notes when it started (a float), and
    the timer, when it fires, re-arms itself at the current deadline unless that has passed. It cancels
    the task only while it waits for the backend, never while the chunk is being written to the client
    (a slow client is not a stalled backend), and the cancellation becomes an UpstreamError here.
    """

    __slots__ = (
        "_chunks", "_expired", "_first", "_loop", "_reading_since", "_task", "_timeouts", "_timer",
        "_total_at", "backend", "received", "response",
    )  # fmt: skip

    def __init__(self, *, backend: str, timeouts: Timeouts) -> None:
        self.response: httpx.Response | None = None
        self.backend = backend
        self.received = 0  # body bytes so far
        self._chunks: AsyncIterator[bytes] | None = None
        self._timeouts = timeouts
        self._loop = asyncio.get_running_loop()
        self._task: asyncio.Task[object] | None = None  # the one reading: noted at each read
        now = self._loop.time()
        self._total_at = now + timeouts.total if timeouts.total else math.inf
        self._reading_since: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._expired: UpstreamError | None = None  # why the read was cancelled (a timeout, or abort())
        self._first = True  # nothing received yet: the first-byte limit applies, counted from the send

    @property
    def status_code(self) -> int:
        assert self.response is not None
        return self.response.status_code

    @property
    def headers(self) -> httpx.Headers:
        assert self.response is not None
        return self.response.headers

    def _deadline(self) -> float:
        assert self._reading_since is not None
        t = self._timeouts
        if self._first:
            limit = (self._reading_since + t.first_byte) if t.first_byte else math.inf
        else:
            limit = (self._reading_since + t.idle) if t.idle else math.inf
        return min(limit, self._total_at)

    def _start_read(self) -> None:
        self._task = asyncio.current_task()
        self._reading_since = self._loop.time()
        if self._timer is None:
            deadline = self._deadline()
            if deadline != math.inf:
                self._timer = self._loop.call_at(deadline, self._check)

    def _check(self) -> None:
        self._timer = None
        if self._reading_since is None:
            return  # between reads: the next read arms it again
        deadline = self._deadline()
        if self._loop.time() < deadline:
            self._timer = self._loop.call_at(deadline, self._check)
            return
        self._expire(UpstreamError(self._timeout_message(), error_type="timeout_error", status=504))

    def abort(self, message: str) -> None:
        """End the read now (or the next one) with an error: the server is stopping."""
        self._expire(UpstreamError(message, error_type="api_error", status=503))

    def _expire(self, error: UpstreamError) -> None:
        self._expired = error
        if self._reading_since is not None and self._task is not None:
            self._task.cancel()  # else the next read raises it

    def _timeout_message(self) -> str:
        t = self._timeouts
        if self._total_at <= self._loop.time():
            return (
                f"backend {self.backend} did not finish within {t.total:g} s (the provider's total timeout)"
            )
        if self._first:
            return (
                f"backend {self.backend} sent nothing within {t.first_byte:g} s "
                "(the provider's first-byte timeout)"
            )
        return (
            f"backend {self.backend} sent nothing for {t.idle:g} s after {self.received} bytes "
            "(the provider's idle timeout)"
        )

    async def _guarded(self, awaitable: Coroutine[Any, Any, T]) -> T:
        """Await one read from the backend under the current deadline; failures as UpstreamError."""
        if self._expired is not None:  # aborted between two reads
            awaitable.close()
            raise self._expired
        self._start_read()
        try:
            return await awaitable
        except asyncio.CancelledError:
            if self._expired is None:
                raise
            raise self._expiry() from None
        except httpx.TransportError as exc:
            if self._expired is not None:  # our cancel, turned into a ClientError (aiohttp's TLS setup)
                raise self._expiry() from exc
            raise UpstreamError(self.describe(exc), status=502) from exc
        finally:
            self._reading_since = None

    def _expiry(self) -> UpstreamError:
        """The cancellation was ours (a timeout, an abort): the task goes on, with this error."""
        assert self._task is not None and self._expired is not None
        self._task.uncancel()
        return self._expired

    async def open(self, request: httpx.Request) -> None:
        """Send the request; return once the response headers are in."""
        response = await self._guarded(transport().handle_async_request(request))
        self.response = response
        self._chunks = response.aiter_bytes()

    async def next_chunk(self) -> bytes | None:
        """The next piece of the body, None at its end."""
        # _guarded's steps inline: this runs once per chunk, and a coroutine less costs ~1 us each time.
        assert self._chunks is not None
        if self._expired is not None:
            raise self._expired
        self._start_read()
        try:
            chunk = await anext(self._chunks, None)
        except asyncio.CancelledError:
            if self._expired is None:
                raise
            raise self._expiry() from None
        except httpx.TransportError as exc:
            if self._expired is not None:
                raise self._expiry() from exc
            raise UpstreamError(self.describe(exc), status=502) from exc
        finally:
            self._reading_since = None
        if chunk is not None:
            self.received += len(chunk)
            self._first = False
        return chunk

    async def read(self) -> bytes:
        """The whole body (an error body, or a reply that is not a stream)."""
        chunks = []
        while (chunk := await self.next_chunk()) is not None:
            chunks.append(chunk)
        return b"".join(chunks)

    def describe(self, exc: BaseException) -> str:
        expected = self.response.headers.get("content-length") if self.response is not None else None
        return describe_transport_error(
            exc,
            backend=self.backend,
            received=self.received if self.response is not None else None,
            expected=int(expected) if expected and expected.isdigit() else None,
            connect_timeout=self._timeouts.connect,
        )

    async def aclose(self) -> None:
        _open_replies.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.response is not None:
            # A broken connection is closed already: nothing left to release.
            with contextlib.suppress(httpx.TransportError):
                await self.response.aclose()


async def open_request(request: UpstreamRequest, *, timeouts: Timeouts, body: bytes | None = None) -> Reply:
    """Send `request` (body pre-encoded as `body` if given); return once the response headers are in.

    An httpx.Request handed straight to the transport: AsyncClient.send's auth, redirect, cookie and
    URL-merging layers did nothing for us and cost ~20% of the proxy's CPU per request (measured).
    UpstreamError (worded by us) when the backend cannot be reached or does not answer in time.
    """
    if body is None:
        body = encode_body(request)
    headers = dict(request.headers)
    headers["content-length"] = str(len(body))
    headers.setdefault("accept-encoding", "identity")
    # No read timeout in aiohttp: the Reply's watchdog keeps the first-byte, idle and total limits,
    # and aiohttp then stops re-arming a timer of its own on every packet received.
    timeout = {"connect": timeouts.connect, "read": None, "write": None, "pool": timeouts.connect}
    outbound = httpx.Request(
        request.method, request.url, headers=headers, content=body, extensions={"timeout": timeout}
    )
    logger.debug("upstream %s %s", request.method, request.url)
    reply = Reply(backend=backend_of(request.url), timeouts=timeouts)
    _open_replies.add(reply)
    try:
        await reply.open(outbound)
    except BaseException:
        await reply.aclose()
        raise
    return reply


def abort_all(message: str) -> int:
    """End every answer being read with `message` (shutdown); how many there were."""
    replies = list(_open_replies)
    for reply in replies:
        reply.abort(message)
    return len(replies)


def describe_transport_error(
    exc: BaseException,
    *,
    backend: str,
    received: int | None = None,
    expected: int | None = None,
    connect_timeout: float | None = None,
) -> str:
    """One short sentence, naming the backend, for a failure on the wire (not a library's repr).

    `received` is None before the response headers arrived, else the body bytes read so far;
    `expected` the response's Content-Length, when it had one.
    """
    cause = _root(exc)
    when = "" if received is None else f" after {received} bytes of its answer"
    if isinstance(cause, aiohttp.ClientConnectorCertificateError):
        return f"backend {backend}: its TLS certificate was refused ({cause.certificate_error})"
    if isinstance(cause, aiohttp.ClientConnectorSSLError | ssl.SSLError):
        return f"backend {backend}: the TLS handshake failed ({getattr(cause, 'reason', None) or cause})"
    if isinstance(cause, aiohttp.ClientConnectorDNSError | socket.gaierror):
        return f"backend {backend}: its host name could not be resolved"
    if isinstance(cause, aiohttp.ClientConnectorError):
        os_error = cause.os_error
        if isinstance(os_error, ConnectionRefusedError):
            return f"backend {backend} refused the connection"
        if isinstance(os_error, TimeoutError):
            return f"backend {backend} did not accept the connection within {connect_timeout or 0:g} s"
        return f"backend {backend} could not be reached: {os_error.strerror or os_error}"
    if isinstance(cause, aiohttp.ConnectionTimeoutError):
        return f"backend {backend} did not accept the connection within {connect_timeout or 0:g} s"
    if isinstance(cause, aiohttp.ServerDisconnectedError):
        if received is None:
            return f"backend {backend} closed the connection before answering"
        return f"backend {backend} closed the connection{when}"
    if isinstance(cause, aiohttp.ClientPayloadError | aiohttp.http_exceptions.PayloadEncodingError):
        if expected is not None and received is not None:
            return f"backend {backend} closed the connection after {received} of {expected} bytes"
        return f"backend {backend} closed the connection in the middle of its answer{when}"
    if isinstance(cause, ConnectionResetError):
        return f"backend {backend} reset the connection{when}"
    if isinstance(cause, aiohttp.InvalidURL | httpx.UnsupportedProtocol):
        return f"backend {backend}: the provider's base URL cannot be used ({cause})"
    if isinstance(cause, aiohttp.ClientResponseError):  # a reply that is not HTTP/1.1
        return f"backend {backend} answered with something that is not HTTP ({cause.message})"
    return f"backend {backend} failed{when}: {type(cause).__name__}: {cause}"


def _root(exc: BaseException) -> BaseException:
    """The most specific exception: httpx_aiohttp wraps aiohttp's (`raise ... from`), and aiohttp wraps
    the parser's (ClientPayloadError from ContentLengthError)."""
    seen = 0
    while exc.__cause__ is not None and seen < 5:
        if isinstance(exc, aiohttp.ClientConnectorError):
            break  # its os_error says the rest
        exc = exc.__cause__
        seen += 1
    return exc

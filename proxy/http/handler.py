"""The /v1/ fast path: Django's request and response objects without Django's per-request thread hops.

Under ASGI, Django's handler spends most of its fixed cost per request hopping to threads: a new
thread-sensitive executor per request, the request_started/request_finished signal receivers and
`response.close()`, and each sync-only middleware (WhiteNoise, and every MiddlewareMixin hook). None of
it does anything for the API: it is CSRF-exempt JSON and SSE, runs no ORM on the event loop, and needs
no browser headers. Measured: those hops cost more CPU per request than the translation itself (see
docs/benchmarks.md). The dashboard keeps the full stack.
"""

from __future__ import annotations

import asyncio
import io
import logging
from typing import IO, Any

import orjson
from django.conf import settings
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve, set_script_prefix

from proxy.http.errors import error_body, error_response, with_request_id
from proxy.http.request_ids import new_request_id
from proxy.ops import shutdown
from proxy.security import access

logger = logging.getLogger(__name__)

API_PREFIX = "/v1/"


class BoundedBody:
    """A request body as the server stores it while it arrives, kept up to `keep` bytes and counted past
    that (`keep` 0: a body refused by its Content-Length, kept not at all). The file-like interface is
    what Twisted and daphne use (serve.py puts it in place)."""

    def __init__(self, inner: IO[bytes] | None, keep: int) -> None:
        self._inner: IO[bytes] = inner if inner is not None else io.BytesIO()
        self._room = keep
        self.received = 0

    def write(self, data: bytes) -> None:
        self.received += len(data)
        if self._room > 0:
            self._inner.write(data[: self._room])
            self._room -= len(data)

    def read(self, size: int = -1) -> bytes:
        return self._inner.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._inner.seek(offset, whence)

    def tell(self) -> int:
        return self._inner.tell()

    def close(self) -> None:
        self._inner.close()

    @property
    def closed(self) -> bool:
        return bool(self._inner.closed)


def refuse_unsent_body(*, path: str, headers: dict[str, str], length: int) -> bytes:
    """The whole HTTP 413 for a request that announced a body over the limit and waits for `100 Continue`
    before sending it (curl does, past 1 MB): it is answered at once, the body never sent, and recorded."""
    from proxy.http.views import too_large
    from proxy.recording.tape import Failure, Tape, safe_headers

    refusal = too_large(length)
    endpoint = "count_tokens" if path.rstrip("/").endswith("count_tokens") else "messages"
    tape = Tape(endpoint=endpoint, client_request=None, client_headers=safe_headers(headers))
    tape.user_agent = headers.get("user-agent", "")
    tape.end("error", Failure(refusal.error_type, refusal.message, 413))
    body = orjson.dumps(error_body(refusal.error_type, refusal.message))
    head = (
        "HTTP/1.1 413 Content Too Large\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


def declared_length(scope: dict[str, Any]) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def _read_body(receive: Any, scope: dict[str, Any]) -> tuple[bytes, int]:
    """The whole body and its length. Django's own reader spools into a temporary file and copies it out
    again; the API needs the bytes once. A body whose Content-Length is over MAX_REQUEST_BYTES is refused
    from that header before any of it is kept (the view answers request_too_large); one that comes
    without a length is counted past the limit, not kept."""
    chunks: list[bytes] = []
    received = 0
    declared = declared_length(scope)
    keep = declared is None or declared <= settings.MAX_REQUEST_BYTES
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RequestAborted()
        chunk = message.get("body", b"")
        received += len(chunk)
        if chunk and keep and received <= settings.MAX_REQUEST_BYTES:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return (chunks[0] if len(chunks) == 1 else b"".join(chunks)), received


def _refusal(headers: list[tuple[bytes, bytes]], path: str) -> HttpResponse | None:
    """The security edge on the path that skips Django's middleware (a few microseconds: one pass over
    the headers, one dict lookup for a Host seen before). A foreign Host (DNS rebinding) gets 400; a
    browser page from another origin gets 403, so no web page can spend the user's backends. Refusals are
    logged, not recorded: a page could otherwise fill the database with requests that never reached the
    API."""
    host = origin = None
    for name, value in headers:
        if name == b"host":
            host = value
        elif name == b"origin":
            origin = value
    if host is not None and not access.host_allowed(host):
        text = host.decode("latin-1")
        access.log_refused_host(text, path)
        return error_response("invalid_request_error", access.refused_host_message(text), status=400)
    if origin is not None and not access.origin_allowed(
        origin.decode("latin-1"), (host or b"").decode("latin-1")
    ):
        logger.warning(
            "refused a cross-site request to %s from Origin %r", path[:200], origin[:200].decode("latin-1")
        )
        return error_response(
            "permission_error",
            "cross-site browser requests are refused: call the API from a client, not from a web page "
            "(add the page's origin to SWITCHBOARD_CSRF_TRUSTED_ORIGINS to allow one)",
            status=403,
        )
    return None


class ApiHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        """No middleware: see the module docstring."""
        self._middleware_chain = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        refusal = _refusal(scope["headers"], scope.get("path", ""))
        if refusal is not None:
            await self.send_response(refusal, send)
            return
        shutdown.in_flight += 1  # a shutdown waits for these (proxy/ops/shutdown.py)
        try:
            await self._serve(scope, receive, send)
        finally:
            shutdown.in_flight -= 1

    async def _serve(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            body, received = await _read_body(receive, scope)
        except RequestAborted:  # the client left before sending its whole body
            return
        if received > len(body) and declared_length(scope) is None:
            # Over the limit without saying so up front (chunked): the view refuses it by its length.
            scope = {**scope, "headers": [*scope["headers"], (b"content-length", str(received).encode())]}
        set_script_prefix(get_script_prefix(scope))
        # BytesIO over the bytes: request.body is then that same object, not a copy.
        request, bad_request = self.create_request(scope, io.BytesIO(body))
        del body
        request_id = new_request_id()
        if request is None:
            assert bad_request is not None  # Django's contract: one or the other
            await self.send_response(with_request_id(bad_request, request_id), send)
            return
        request.request_id = request_id  # type: ignore[attr-defined]  # the view records it on the exchange
        respond = asyncio.create_task(self._respond(request, send))
        disconnect = asyncio.create_task(self.listen_for_disconnect(receive))
        # The request (and its body) lives as long as the response task, not until this frame gets its
        # loop turns after the last byte (under saturation that was ~100 extra requests alive at c=200).
        del request
        stopping: asyncio.CancelledError | None = None
        try:
            await asyncio.wait([respond, disconnect], return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError as exc:  # the server is stopping
            stopping = exc
        # A response still running means the client hung up or the server is stopping: cancelling it
        # lets the relay record the exchange as cancelled. (Cancelling a finished task does nothing.)
        respond.cancel()
        disconnect.cancel()
        for task in (respond, disconnect):
            try:
                await task
            except (asyncio.CancelledError, RequestAborted):
                pass
            except Exception:
                logger.exception("error while answering %s", scope.get("path"))
        if stopping is not None:
            raise stopping

    async def _respond(self, request: HttpRequest, send: Any) -> None:
        response = await self._dispatch(request)
        # A stream is sent from here for as long as it lasts: the request, its body included, is not
        # needed for that (the exchange's tape keeps what the record needs).
        del request
        # No response.close(): the API's responses hold nothing to close (a stream's generator is closed
        # by send_response), and close() would only send request_finished, whose receivers (database
        # connections, URLconf reset) have nothing to do on this path: ~2% of CPU per request measured.
        await self.send_response(response, send)

    async def _dispatch(self, request: HttpRequest) -> HttpResponse:
        # request_id: set on this request in _serve (HttpRequest does not declare it)
        return with_request_id(await self._answer(request), request.request_id)  # type: ignore[attr-defined]

    async def _answer(self, request: HttpRequest) -> HttpResponse:
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return error_response(
                "not_found_error", f"{request.method} {request.path_info}: no such endpoint"
            )
        try:
            return await match.func(request, *match.args, **match.kwargs)
        except Exception:
            logger.exception("unhandled error serving %s", request.path_info)
            return error_response("api_error", "internal error in the proxy; see the server log")

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
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve, set_script_prefix

from proxy.errors import error_response, with_request_id
from proxy.request_ids import new_request_id

logger = logging.getLogger(__name__)

API_PREFIX = "/v1/"


async def _read_body(receive: Any) -> tuple[bytes, int]:
    """The whole body and its length. Django's own reader spools into a temporary file and copies it out
    again; the API needs the bytes once. Past MAX_REQUEST_BYTES the rest is counted, not kept: the view
    answers request_too_large from the length."""
    chunks: list[bytes] = []
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RequestAborted()
        chunk = message.get("body", b"")
        received += len(chunk)
        if chunk and received <= settings.MAX_REQUEST_BYTES:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return (chunks[0] if len(chunks) == 1 else b"".join(chunks)), received


class ApiHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        """No middleware: see the module docstring."""
        self._middleware_chain = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            body, received = await _read_body(receive)
        except RequestAborted:  # the client left before sending its whole body
            return
        if received > len(body) and not any(name == b"content-length" for name, _ in scope["headers"]):
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

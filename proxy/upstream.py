"""The only outbound IO: one HTTP client per process, shared by every request.

httpx keeps the API; the aiohttp transport carries the bytes, because httpx's own connection layer
(httpcore + h11) was the largest CPU cost per streamed chunk (see docs/benchmarks.md).
"""

from __future__ import annotations

import logging

import httpx
import orjson
from httpx_aiohttp import AiohttpTransport

from proxy.translate.types import UpstreamRequest

logger = logging.getLogger(__name__)

_client: httpx.AsyncClient | None = None

# Errors that mean "this backend did not answer": worth trying the next target in a fallback chain.
CONNECT_ERRORS: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpx.TransportError,)


def client() -> httpx.AsyncClient:
    """The process's client, created inside the running loop on first use (aiohttp needs a loop)."""
    global _client
    if _client is None:
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200, keepalive_expiry=30)
        _client = httpx.AsyncClient(
            transport=AiohttpTransport(limits=limits, trust_env=False),
            timeout=httpx.Timeout(600.0, connect=10.0),
        )
    return _client


async def open_request(
    request: UpstreamRequest, *, connect_timeout: float, read_timeout: float
) -> httpx.Response:
    """Send `request` and return once the response headers are in; the body is read by the caller."""
    body = orjson.dumps(request.body)
    headers = dict(request.headers)
    headers["content-length"] = str(len(body))
    headers.setdefault("accept-encoding", "identity")
    built = client().build_request(
        request.method,
        request.url,
        headers=headers,
        content=body,
        timeout=httpx.Timeout(read_timeout, connect=connect_timeout, pool=connect_timeout),
    )
    logger.debug("upstream %s %s", request.method, request.url)
    return await client().send(built, stream=True)

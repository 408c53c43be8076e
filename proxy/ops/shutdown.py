"""Stopping gracefully (SIGTERM, as systemd and `docker stop` send it, or Ctrl-C).

New connections are refused at once (serve.py stops listening), a request arriving on a connection
already open is answered 503, and requests in flight get SHUTDOWN_GRACE seconds to finish. A stream
still running then is ended with Anthropic's `event: error` (a request still waiting for its backend
gets a 503) and recorded as failed; only then does daphne cancel what is left and the recorder write
everything out. A second SIGTERM or Ctrl-C ends the grace at once.
"""

from __future__ import annotations

import asyncio
import logging
import time

from proxy import upstream

logger = logging.getLogger(__name__)

STOPPING_MESSAGE = "the server is shutting down; send the request again"
_AFTER_ABORT_S = 3.0  # for aborted requests to send their error and be recorded

_draining = False
_hurry = False  # a second signal: no more grace
in_flight = 0  # API requests being answered (proxy/http/handler.py counts them)


def draining() -> bool:
    return _draining


def hurry() -> None:
    """End the grace period now (a second SIGTERM or Ctrl-C while stopping)."""
    global _hurry
    _hurry = True


async def drain(grace: float) -> None:
    """Let requests in flight finish within `grace` seconds, then end the rest with an error."""
    global _draining
    _draining = True
    started = time.monotonic()
    logger.warning("shutting down: %d requests in flight get %g s to finish", in_flight, grace)
    await _wait_for_requests(started + grace)
    if in_flight:
        if _hurry:
            logger.warning("shutting down: asked again, the grace period ends now")
        aborted = upstream.abort_all(STOPPING_MESSAGE)
        logger.warning("shutting down: %d requests still running after %g s get an error", aborted, grace)
        await _wait_for_requests(time.monotonic() + _AFTER_ABORT_S)
    if in_flight:
        logger.error("shutting down: %d requests did not end; they are cancelled", in_flight)


async def _wait_for_requests(deadline: float) -> None:
    while in_flight and time.monotonic() < deadline and not _hurry:
        await asyncio.sleep(0.05)

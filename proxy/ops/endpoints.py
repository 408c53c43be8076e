"""Operations endpoints: /healthz, /readyz, /metrics, and the session summary the status line reads.

None of them is recorded (only /v1/ is). /healthz and /readyz need no login (probes carry no
credentials) but still pass the Host check; /metrics needs a client key once keys are configured
(proxy/security/access.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from django.db import connection
from django.db.models import Count, Sum
from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from proxy.ops import metrics
from proxy.recording.writer import recorder

# Not ready while more exchanges than this wait for the writer: the database is not keeping up.
READY_MAX_BACKLOG = 1000
READY_TIMEOUT_S = 2.0
SUMMARY_SETTLE_S = 0.3
# One thread (one database connection) for the readiness probe: a hung database stalls the probe,
# which then answers 503 after READY_TIMEOUT_S, not the dashboard's shared thread.
_probe = ThreadPoolExecutor(max_workers=1, thread_name_prefix="readyz")


def _json(data: dict[str, Any], status: int = 200) -> HttpResponse:
    response = HttpResponse(orjson.dumps(data), content_type="application/json", status=status)
    response["Cache-Control"] = "no-store"
    return response


async def healthz(request: HttpRequest) -> HttpResponse:
    """GET /healthz: the process is up and serving (no database involved)."""
    return _json({"status": "ok", "service": "switchboard", "pid": os.getpid()})


def _database_problem() -> str | None:
    try:
        connection.close_if_unusable_or_obsolete()
        with connection.cursor() as cursor:  # reads the file (SQLite) / a round trip (PostgreSQL)
            cursor.execute("SELECT 1 FROM django_migrations LIMIT 1")
            cursor.fetchone()
    except Exception as exc:
        connection.close()  # reconnect on the next probe
        return f"database unreachable: {type(exc).__name__}: {str(exc)[:300]}"
    return None


async def readyz(request: HttpRequest) -> HttpResponse:
    """GET /readyz: the database answers and the recorder's writer keeps up (else 503, with why)."""
    problems = []
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            problem = await asyncio.get_running_loop().run_in_executor(_probe, _database_problem)
    except TimeoutError:
        problem = f"database did not answer within {READY_TIMEOUT_S:g} s"
    if problem:
        problems.append(problem)
    backlog = recorder.backlog()
    if backlog > READY_MAX_BACKLOG:
        problems.append(f"recorder behind: {backlog} exchanges wait for the database writer")
    if not recorder.writer_alive():
        problems.append("recorder writer stopped with exchanges waiting")
    body = {"status": "unavailable" if problems else "ok", "recorder_backlog": backlog, "problems": problems}
    return _json(body, status=503 if problems else 200)


async def prometheus(request: HttpRequest) -> HttpResponse:
    """GET /metrics in the Prometheus text format."""
    return HttpResponse(generate_latest(metrics.registry()), content_type=CONTENT_TYPE_LATEST)


async def session_summary(request: HttpRequest, session_id: str) -> HttpResponse:
    """GET /api/sessions/<id>/summary: what the status line shows (two indexed queries on session_id)."""
    from proxy.models import Exchange

    # Claude Code asks right after an answer, whose row the writer may not have written yet (it gathers
    # for 50 ms): wait for what is queued, briefly, so the line shows the turn that just ended.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(SUMMARY_SETTLE_S):
            await recorder.drain()
    rows = Exchange.objects.filter(session_id=session_id, endpoint="messages")
    totals = await rows.aaggregate(
        exchanges=Count("id"), cost_usd=Sum("cost_usd"), claude_cost_usd=Sum("claude_cost_usd")
    )
    # A session Claude Code just opened has none yet: 200 with zeros (its status line asks every turn, and
    # a 404 would be logged as a warning each time).
    last = await (
        rows.exclude(backend_model="")
        .order_by("-id")
        .values("backend_model", "rule", "provider", "client_model", "status")
        .afirst()
    )
    return _json({"session_id": session_id, **totals, "last": last})

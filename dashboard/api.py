"""The dashboard's JSON endpoints for scripts and tests (not part of the Anthropic API): the recorded
exchanges and a routing explanation. Under /api/, so the login middleware lets a client key through
(proxy/security/access.py)."""

from __future__ import annotations

import asyncio
from typing import cast

import orjson
from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from proxy.http.errors import error_response
from proxy.http.views import client_headers, read_json
from proxy.models import Exchange
from proxy.recording.writer import recorder
from proxy.routing import snapshot
from proxy.routing.order import order_warnings
from proxy.translate.base import TranslationError
from proxy.translate.types import MessagesRequest

_EXCHANGE_FIELDS = (
    "id",
    "request_id",
    "created_at",
    "finished_at",
    "endpoint",
    "status",
    "http_status",
    "error_type",
    "error_message",
    "stream",
    "session_id",
    "agent",
    "user_agent",
    "client_model",
    "backend_model",
    "provider",
    "dialect",
    "rule",
    "client_key",
    "route_reason",
    "task",
    "client_request",
    "upstream_request",
    "upstream_response",
    "client_response",
    "changes",
    "attempts",
    "upstream_first_byte_ms",
    "first_token_ms",
    "duration_ms",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
    "claude_cost_usd",
    "tool_calls",
    "tool_call_errors",
    "tool_result_errors",
    "origin",
)


async def exchanges(request: HttpRequest) -> HttpResponse:
    """GET /api/exchanges?limit=N[&session=…][&request_id=req_…][&settle=1]: the newest recorded
    exchanges as JSON (scripts, tests), and `recorder`: what waits for the database and what could not be
    recorded. With settle=1 it answers once everything this process finished so far is written: a script
    that just got its last reply sees that exchange without polling (rows are written in batches)."""
    try:
        limit = max(1, min(int(request.GET.get("limit", "50")), 500))
    except ValueError:
        return error_response("invalid_request_error", "limit: must be an integer")
    if request.GET.get("settle") in ("1", "true"):
        try:
            async with asyncio.timeout(10):
                await recorder.drain()
        except TimeoutError:
            return error_response("api_error", "the recorder did not catch up within 10 s; try again")
    rows = Exchange.objects.order_by("-id")
    if session := request.GET.get("session", "").replace("\x00", ""):  # PostgreSQL refuses NUL
        rows = rows.filter(session_id=session)
    if request_id := request.GET.get("request_id", "").replace("\x00", ""):
        rows = rows.filter(request_id=request_id)
    data = [row async for row in rows.values(*_EXCHANGE_FIELDS)[:limit]]
    # What this process's recorder holds and could not keep: `dropped` and `lost` are never silent.
    body = {"data": data, "recorder": recorder.status()}
    return HttpResponse(orjson.dumps(body), content_type="application/json")


@csrf_exempt
async def explain(request: HttpRequest) -> HttpResponse:
    """POST /api/route/explain with a Messages body: the routing decision, without calling any backend."""
    if request.method != "POST":
        return error_response("not_found_error", "use POST /api/route/explain", status=405)
    try:
        body = read_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            raise TranslationError("request body: expected a Messages request object with a model")
        decision = await snapshot.decide(cast(MessagesRequest, body), client_headers(request))
    except TranslationError as exc:
        return error_response(exc.error_type, exc.message, status=exc.status)
    _, rules = await sync_to_async(snapshot.load_specs)()
    return JsonResponse(
        {
            "rule": decision.rule,
            "position": snapshot.rule_position(rules, decision.rule),  # 1 = tried first, as listed
            # a rule that takes everything (so the rules below it never match) says so here too
            "warnings": [w.message for w in order_warnings(rules) if w.rule == decision.rule],
            "reason": decision.reason,
            "task": decision.task,
            "agent": decision.agent,
            "targets": [
                # model "" = the client's model is kept (passthrough): show what would be sent
                {"provider": t.provider, "model": t.model or body["model"], "dialect": t.dialect}
                for t in decision.targets
            ],
        }
    )

"""The Anthropic-compatible API: glue only. Parsing, routing and translation live elsewhere."""

from __future__ import annotations

import asyncio
import logging
import time

import orjson
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from proxy import routing
from proxy.errors import error_response
from proxy.record import failed_tool_results
from proxy.recorder import recorder
from proxy.request_ids import new_message_id, new_request_id
from proxy.streaming import Routed, serve_count_tokens, serve_messages
from proxy.tape import Tape, safe_headers
from proxy.translate.base import TranslationError
from proxy.validation import NestedTooDeep, validate_request

logger = logging.getLogger(__name__)


@csrf_exempt
async def messages(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return error_response("not_found_error", f"{request.method} /v1/messages: use POST", status=405)
    routed = await _route(request, endpoint="messages")
    if isinstance(routed, HttpResponse):
        return routed
    recorder.start(routed.tape)
    return await serve_messages(routed, message_id=new_message_id())


@csrf_exempt
async def count_tokens(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return error_response("not_found_error", "use POST /v1/messages/count_tokens", status=405)
    routed = await _route(request, endpoint="count_tokens")
    if isinstance(routed, HttpResponse):
        return routed
    assert routed.decision is not None
    try:
        return await serve_count_tokens(decision=routed.decision, headers=routed.headers, tape=routed.tape)
    except Exception as exc:  # our own bug: a 500 still, but recorded with why (as serve_messages does)
        if routed.tape.finished:
            raise
        logger.exception("counting tokens for %s failed", routed.tape.request_id)
        message = f"internal error in the proxy while counting tokens: {exc!r}"
        return _refuse_request(routed.tape, request, "api_error", message, 500)


async def _route(request: HttpRequest, *, endpoint: str) -> Routed | HttpResponse:
    """Read, validate and route a request, noting all of it on a new tape; a refusal is recorded too."""
    headers = client_headers(request)
    tape = Tape(
        endpoint=endpoint,
        client_request=None,
        client_headers=safe_headers(headers),
        request_id=getattr(request, "request_id", "") or new_request_id(),
    )
    tape.user_agent = headers.get("user-agent", "")
    try:
        parsed = read_json(request)
        tape.client_request = orjson.Fragment(request.body)  # recorded as sent, without re-encoding
        validated = validate_request(parsed, needs_max_tokens=endpoint == "messages")
        body, tape.documents = validated.body, validated.documents
        tape.stream = bool(body.get("stream"))
        tape.client_model = body["model"]
        tape.session_id = session_id(body, headers)
        if endpoint == "messages":
            tape.failed_results = failed_tool_results(body)
        decision = await routing.decide(body, headers)
    except TranslationError as exc:
        if isinstance(exc, NestedTooDeep):
            tape.client_request = None  # recorded as text: JSON this deep cannot be encoded again
        return _refuse_request(tape, request, exc.error_type, exc.message, exc.status)
    except Exception as exc:  # our own bug on input we did not foresee: still a 500, but recorded with why
        logger.exception("reading request %s failed", tape.request_id)
        message = f"internal error in the proxy while reading the request: {exc!r}"
        return _refuse_request(tape, request, "api_error", message, 500)
    tape.rule, tape.route_reason, tape.task, tape.agent = (
        decision.rule,
        decision.reason,
        decision.task,
        decision.agent,
    )
    return Routed(tape, decision, headers)


# What of a body that is not JSON is kept on its record (a client bug is easier to see in its own bytes).
_RAW_BODY_KEPT = 64 * 1024


def _refuse_request(
    tape: Tape, request: HttpRequest, error_type: str, message: str, status: int
) -> HttpResponse:
    """Refuse a request before routing, and record it: what it sent, and why it was refused."""
    if tape.client_request is None:
        try:
            raw = request.body[:_RAW_BODY_KEPT]
        except RequestDataTooBig:
            raw = b""
        if raw:  # as text: the record's field holds JSON, and this body is not JSON
            tape.client_request = raw.decode("utf-8", errors="replace")
    tape.fail(error_type, message, status)
    tape.done_at = time.perf_counter()
    recorder.finish(tape)
    return error_response(error_type, message, status=status)


async def models(request: HttpRequest) -> HttpResponse:
    ids = await routing.model_ids()
    data = [
        {"type": "model", "id": model_id, "display_name": model_id, "created_at": "2025-01-01T00:00:00Z"}
        for model_id in ids
    ]
    return JsonResponse(
        {
            "data": data,
            "has_more": False,
            "first_id": ids[0] if ids else None,
            "last_id": ids[-1] if ids else None,
        }
    )


def read_json(request: HttpRequest) -> object:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > settings.MAX_REQUEST_BYTES:
        raise TranslationError(
            f"request body: {length} bytes is over the {settings.MAX_REQUEST_BYTES} byte limit",
            error_type="request_too_large",
            status=413,
        )
    # As Anthropic: a JSON API. No content type at all is taken as JSON (minimal clients send none).
    content_type = request.content_type or "application/json"
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise TranslationError(
            f"content-type: {content_type[:100]} is not supported; send the body as application/json"
        )
    try:
        raw = request.body
    except RequestDataTooBig as exc:
        raise TranslationError("request body: too large", error_type="request_too_large", status=413) from exc
    if not raw:
        raise TranslationError("request body: empty; expected a JSON object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise TranslationError(f"request body: not valid JSON ({exc})") from exc


def client_headers(request: HttpRequest) -> dict[str, str]:
    """Lower-case header names, plus ':query' carrying the raw query string (Claude Code sends ?beta=true)."""
    headers = {k.lower(): v for k, v in request.headers.items()}
    query = request.META.get("QUERY_STRING", "")
    if query:
        headers[":query"] = query
    return headers


def session_id(body: dict[str, object], headers: dict[str, str]) -> str:
    """Claude Code's session: its header, else the session_id inside metadata.user_id (a JSON string)."""
    if headers.get("x-claude-code-session-id"):
        return headers["x-claude-code-session-id"][:100]
    metadata = body.get("metadata")
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    if isinstance(user_id, str) and user_id.startswith("{"):
        try:
            parsed = orjson.loads(user_id)
        except orjson.JSONDecodeError:
            return ""
        if isinstance(parsed, dict) and isinstance(parsed.get("session_id"), str):
            return parsed["session_id"][:100]
    return ""


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
)


async def exchanges(request: HttpRequest) -> HttpResponse:
    """GET /api/exchanges?limit=N[&session=…][&request_id=req_…][&settle=1]: the newest recorded
    exchanges as JSON (scripts, tests). With settle=1 it answers once everything this process finished
    so far is written: a script that just got its last reply sees that exchange without polling (rows
    are written in batches)."""
    from proxy.models import Exchange

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
    if request.GET.get("session"):
        rows = rows.filter(session_id=request.GET["session"])
    if request.GET.get("request_id"):
        rows = rows.filter(request_id=request.GET["request_id"])
    data = [row async for row in rows.values(*_EXCHANGE_FIELDS)[:limit]]
    return HttpResponse(orjson.dumps({"data": data}), content_type="application/json")

"""The Anthropic-compatible API: glue only. Parsing, routing and translation live elsewhere."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from proxy.http.errors import error_response
from proxy.http.request_ids import new_message_id, new_request_id
from proxy.http.validation import NestedTooDeep, validate_request
from proxy.recording.progress import progress
from proxy.recording.rows import failed_tool_results
from proxy.recording.tape import Failure, Tape, safe_headers
from proxy.recording.writer import recorder
from proxy.routing import snapshot
from proxy.security import clientkeys
from proxy.serving import Routed, serve_count_tokens, serve_messages
from proxy.translate.base import TranslationError
from proxy.translate.claude_code import session_id

logger = logging.getLogger(__name__)


@csrf_exempt
async def messages(request: HttpRequest) -> HttpResponseBase:
    if request.method != "POST":
        return error_response("not_found_error", f"{request.method} /v1/messages: use POST", status=405)
    routed = await _route(request, endpoint="messages")
    if isinstance(routed, HttpResponse):
        return routed
    recorder.start(routed.tape)
    progress.watch(routed.tape)  # elapsed time in the live feed while it waits for the backend
    try:
        return await serve_messages(routed, message_id=new_message_id())
    finally:  # a stream's relay watches it again, with what it sends, until it ends
        progress.forget(routed.tape)


@csrf_exempt
async def count_tokens(request: HttpRequest) -> HttpResponseBase:
    if request.method != "POST":
        return error_response("not_found_error", "use POST /v1/messages/count_tokens", status=405)
    routed = await _route(request, endpoint="count_tokens")
    if isinstance(routed, HttpResponse):
        return routed
    assert routed.decision is not None
    return await serve_count_tokens(decision=routed.decision, headers=routed.headers, tape=routed.tape)


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
        # The version check refreshes the client keys too; the key is checked before anything is read.
        snap = await _snapshot_or_problem()
        tape.admission, headers = clientkeys.admit(headers, peer=request.META.get("REMOTE_ADDR") or "")
        tape.client_key = tape.admission.label if tape.admission else ""
        if isinstance(snap, TranslationError):
            raise snap
        parsed = read_json(request)
        tape.client_request = orjson.Fragment(request.body)  # recorded as sent, without re-encoding
        note_request(tape, parsed, headers)  # before validation: a refused request still names its model
        validated = validate_request(parsed, needs_max_tokens=endpoint == "messages")
        body, tape.documents = validated.body, validated.documents
        if endpoint == "messages":
            tape.failed_results, tape.error_results = failed_tool_results(body)
        decision = await snapshot.decide(body, headers, snap=snap)
    except TranslationError as exc:
        retry_after, extra = None, {}
        if isinstance(exc, clientkeys.KeyRefused):  # over a limit: the key was valid, its label is known
            retry_after, tape.client_key, extra = exc.retry_after, exc.label, exc.headers
        if isinstance(exc, NestedTooDeep):
            tape.client_request = None  # recorded as text: JSON this deep cannot be encoded again
        # A refused key's request is recorded without its body: nobody vouched for what it holds.
        keep_body = not isinstance(exc, clientkeys.KeyRefused)
        response = _refuse_request(
            tape, request, exc.error_type, exc.message, exc.status, retry_after, keep_body=keep_body
        )
        for name, value in extra.items():
            response[name] = value
        return response
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


# Anthropic's ModelInfo needs a release date; "may be set to an epoch value if the release date is
# unknown" (API reference): these ids are routes, so one fixed date says nothing false about a model.
MODEL_CREATED_AT = "2025-01-01T00:00:00Z"


def _model_info(model_id: str, name: str) -> dict[str, str]:
    return {"type": "model", "id": model_id, "display_name": name, "created_at": MODEL_CREATED_AT}


async def _snapshot_or_problem() -> snapshot.Snapshot | TranslationError:
    """The routing snapshot (its version check refreshes the client keys), or why there is none: a bad
    configuration is reported only to a client whose key was checked."""
    try:
        return await snapshot.checked_snapshot()
    except TranslationError as exc:
        return exc


async def _admit_listing(request: HttpRequest) -> HttpResponse | None:
    """The client-key check of the model endpoints, or None when admitted."""
    snap = await _snapshot_or_problem()
    try:
        admission, _ = clientkeys.admit(client_headers(request), peer=request.META.get("REMOTE_ADDR") or "")
    except clientkeys.KeyRefused as exc:
        return error_response(exc.error_type, exc.message, status=exc.status, retry_after=exc.retry_after)
    if admission is not None:
        admission.release()  # a listing holds no slot; it still counts against the key's rate
    if isinstance(snap, TranslationError):
        return error_response(snap.error_type, snap.message, status=snap.status)
    return None


def note_request(tape: Tape, parsed: object, headers: dict[str, str]) -> None:
    """Note the model, session and stream flag the body names, whether or not it is valid."""
    body = parsed if isinstance(parsed, dict) else {}
    model = body.get("model")
    tape.client_model = model if isinstance(model, str) else ""  # the record cuts it to its column
    tape.stream = body.get("stream") is True
    tape.session_id = session_id(body, headers)


# What of a body that is not JSON is kept on its record (a client bug is easier to see in its own bytes).
_RAW_BODY_KEPT = 64 * 1024


def _refuse_request(
    tape: Tape,
    request: HttpRequest,
    error_type: str,
    message: str,
    status: int,
    retry_after: str | None = None,
    *,
    keep_body: bool = True,
) -> HttpResponse:
    """Refuse a request before routing, and record it: what it sent, and why it was refused."""
    if tape.client_request is None and keep_body:
        try:
            raw = request.body[:_RAW_BODY_KEPT]
        except RequestDataTooBig:
            raw = b""
        if raw:  # as text: the record's field holds JSON, and this body is not JSON
            tape.client_request = raw.decode("utf-8", errors="replace")
    tape.end("error", Failure(error_type, message, status))
    return error_response(error_type, message, status=status, retry_after=retry_after)


async def models(request: HttpRequest) -> HttpResponse:
    """GET /v1/models, paged as Anthropic's is: limit (1-1000, default 20), after_id or before_id."""
    if request.method != "GET":
        return error_response("not_found_error", f"{request.method} /v1/models: use GET", status=405)
    if (refused := await _admit_listing(request)) is not None:
        return refused
    listed = await snapshot.models()
    try:
        page, has_more = model_page(listed, request.GET)
    except TranslationError as exc:
        return error_response(exc.error_type, exc.message, status=exc.status)
    return JsonResponse(
        {
            "data": [_model_info(model_id, name) for model_id, name in page],
            "has_more": has_more,
            "first_id": page[0][0] if page else None,
            "last_id": page[-1][0] if page else None,
        }
    )


def model_page(listed: list[tuple[str, str]], query: Any) -> tuple[list[tuple[str, str]], bool]:
    """One page of the list and whether more lie beyond it (past before_id: more before it)."""
    raw_limit = query.get("limit", "20")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 1000:
        raise TranslationError(f"limit: must be an integer from 1 to 1000, got '{raw_limit}'")
    limit = int(raw_limit)
    after, before = query.get("after_id"), query.get("before_id")
    if after and before:
        raise TranslationError("after_id and before_id: give one cursor, not both")
    ids = [model_id for model_id, _ in listed]
    cursor = after or before
    if cursor and cursor not in ids:
        raise TranslationError(f"{'after_id' if after else 'before_id'}: no model '{cursor}' in this list")
    if before:
        end = ids.index(before)
        return listed[max(0, end - limit) : end], end - limit > 0
    start = ids.index(after) + 1 if after else 0
    return listed[start : start + limit], start + limit < len(listed)


async def model(request: HttpRequest, model_id: str) -> HttpResponse:
    """GET /v1/models/{model_id}: every listed id (the SDK's models.retrieve); others are not found."""
    if request.method != "GET":
        return error_response(
            "not_found_error", f"{request.method} /v1/models/{model_id}: use GET", status=405
        )
    if (refused := await _admit_listing(request)) is not None:
        return refused
    name = dict(await snapshot.models()).get(model_id)
    if name is None:
        return error_response("not_found_error", f"model: {model_id}")
    return JsonResponse(_model_info(model_id, name))


def too_large(length: int | str) -> TranslationError:
    return TranslationError(
        f"request body: {length} bytes is over the {settings.MAX_REQUEST_BYTES} byte limit",
        error_type="request_too_large",
        status=413,
    )


def read_json(request: HttpRequest) -> object:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > settings.MAX_REQUEST_BYTES:
        raise too_large(length)
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

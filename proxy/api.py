"""JSON endpoints for the dashboard and scripts (not part of the Anthropic API)."""

from __future__ import annotations

from typing import cast

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from proxy.http.errors import error_response
from proxy.routing import snapshot
from proxy.routing.order import order_warnings
from proxy.translate.base import TranslationError
from proxy.translate.types import MessagesRequest


@csrf_exempt
async def explain(request: HttpRequest) -> HttpResponse:
    """POST /api/route/explain with a Messages body: the routing decision, without calling any backend."""
    if request.method != "POST":
        return error_response("not_found_error", "use POST /api/route/explain", status=405)
    from proxy.http.views import client_headers, read_json  # the same parsing as /v1/messages

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

"""Replay: send a stored request again through another rule's targets, and compare the two answers.

The replay goes through the proxy's own serving path (translation, fallbacks, recording), so it is
recorded as an exchange of its own, marked as a replay, outside the original session.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson

from proxy import routing
from proxy.models import Exchange
from proxy.recorder import recorder
from proxy.rules import Decision
from proxy.streaming import serve_messages
from proxy.tape import Tape, safe_headers
from proxy.views import new_message_id

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class ReplayResult:
    rule: str
    message: dict[str, Any] | None
    error: str
    exchange_id: int | None
    backend_model: str = ""


async def rule_names() -> list[str]:
    snap = await routing.snapshot()
    return [r.name for r in (*snap.rules, snap.default) if r is not None]


async def replay(original: Exchange, rule_name: str) -> ReplayResult:
    """Answer the original's request again with `rule_name`'s targets (not streamed)."""
    snap = await routing.snapshot()
    rule = next((r for r in (*snap.rules, snap.default) if r is not None and r.name == rule_name), None)
    if rule is None or not isinstance(original.client_request, dict):
        return ReplayResult(rule_name, None, "no such enabled rule, or no stored request", None)
    body = {**original.client_request, "stream": False}
    headers = {k: v for k, v in (original.client_headers or {}).items() if k != "x-claude-code-session-id"}
    reason = f"replay of exchange {original.pk} through rule '{rule.name}'"
    tape = Tape(endpoint="messages", client_request=body, client_headers=safe_headers(headers))
    tape.client_model, tape.rule, tape.route_reason, tape.agent = (
        body["model"],
        rule.name,
        reason,
        original.agent,
    )
    recorder.start(tape)
    decision = Decision(rule.targets, rule.name, reason, "", original.agent, body)  # type: ignore[arg-type]
    response = await serve_messages(
        decision=decision, headers=headers, tape=tape, message_id=new_message_id()
    )
    try:
        payload = orjson.loads(response.content)
    except (orjson.JSONDecodeError, AttributeError):
        payload = {}
    await recorder.drain()  # so the replay's own row can be linked
    row = (
        await Exchange.objects.filter(route_reason=reason)
        .order_by("-id")
        .values_list("id", flat=True)
        .afirst()
    )
    if response.status_code != 200:
        error = (payload.get("error") or {}).get("message") or f"HTTP {response.status_code}"
        return ReplayResult(rule.name, None, error, row, tape.backend_model)
    return ReplayResult(rule.name, payload, "", row, tape.backend_model)

"""Replay: send a stored request again through another rule's targets, and compare the two answers.

The replay goes through the proxy's own serving path (translation, fallbacks, recording), so it is
recorded as an exchange of its own, marked as a replay, outside the original session.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson
from django.http import HttpResponse

from proxy import serving
from proxy.models import Exchange
from proxy.recording.writer import recorder
from proxy.routing import snapshot

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class ReplayResult:
    rule: str
    message: dict[str, Any] | None
    error: str
    exchange_id: int | None
    backend_model: str = ""


async def rule_names() -> list[str]:
    snap = await snapshot.snapshot()
    return [r.name for r in (*snap.rules, snap.default) if r is not None]


async def replay(original: Exchange, rule_name: str) -> ReplayResult:
    """Answer the original's request again with `rule_name`'s targets (not streamed)."""
    snap = await snapshot.snapshot()
    rule = next((r for r in (*snap.rules, snap.default) if r is not None and r.name == rule_name), None)
    if rule is None or not isinstance(original.client_request, dict):
        return ReplayResult(rule_name, None, "no such enabled rule, or no stored request", None)
    headers = {k: v for k, v in (original.client_headers or {}).items() if k != "x-claude-code-session-id"}
    served = await serving.serve_stored(
        original.client_request,
        targets=rule.targets,
        rule=rule.name,
        reason=f"replay of exchange {original.pk} through rule '{rule.name}'",
        origin="replay",
        headers=headers,
        agent=original.agent,
    )
    payload = _json(served.response)
    await recorder.drain()  # so the replay's own row can be linked
    row = await Exchange.objects.filter(request_id=served.request_id).values_list("id", flat=True).afirst()
    if served.response.status_code != 200:
        error = (payload.get("error") or {}).get("message") or f"HTTP {served.response.status_code}"
        return ReplayResult(rule.name, None, error, row, served.backend_model)
    return ReplayResult(rule.name, payload, "", row, served.backend_model)


def _json(response: HttpResponse) -> dict[str, Any]:
    try:
        payload = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return {}
    return payload if isinstance(payload, dict) else {}


@dataclass(slots=True)
class TargetCheck:
    ok: bool
    detail: str
    ms: float


async def test_rule_target(rule_name: str) -> TargetCheck:
    """A one-token request to the rule's primary target, through the normal serving path (recorded)."""
    snap = await snapshot.snapshot()
    rule = next((r for r in (*snap.rules, snap.default) if r is not None and r.name == rule_name), None)
    if rule is None or not rule.targets:
        return TargetCheck(False, "no such enabled rule", 0.0)
    target = rule.targets[0]
    model = target.model or "claude-haiku-4-5"  # passthrough keeps the client's model: ask the cheapest
    body = {
        "model": model,
        "max_tokens": 1,
        "messages": [{"role": "user", "content": "Reply with one word."}],
    }
    reason = f"test of rule '{rule.name}' target {target.provider}/{target.model or model}"
    served = await serving.serve_stored(body, targets=(target,), rule=rule.name, reason=reason, origin="test")
    ms = round(served.ms)
    payload = _json(served.response)
    if served.response.status_code != 200:
        error = (payload.get("error") or {}).get("message") or f"HTTP {served.response.status_code}"
        return TargetCheck(False, f"{target.provider}/{target.model or model}: {error}", ms)
    return TargetCheck(True, f"{target.provider}/{target.model or model} answered", ms)

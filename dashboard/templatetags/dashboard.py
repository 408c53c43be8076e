"""Formatting filters for the dashboard: tokens, money, durations, JSON. Formatting only, no queries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from django import template

from proxy.translate import changes as translate_changes

register = template.Library()


@register.filter
def tokens(value: int | None) -> str:
    """12345 -> 12.3k; small numbers unchanged."""
    if value is None or value == "":
        return "-"
    n = int(value)
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 10_000:
        return f"{n / 1000:.0f}k"
    if n >= 1000:
        return f"{n / 1000:.1f}k"
    return str(n)


@register.filter
def usd(value: float | None) -> str:
    if value is None or value == "":
        return "-"
    v = float(value)
    if v == 0:
        return "$0"
    if v < 0.01:
        return f"${v:.4f}"
    if v < 100:
        return f"${v:.3f}"
    return f"${v:,.0f}"


@register.filter
def ms(value: float | None) -> str:
    """Milliseconds, readable: 850 ms, 2.4 s, 3m 05s."""
    if value is None or value == "":
        return "-"
    v = float(value)
    if v < 1000:
        return f"{v:.0f} ms"
    if v < 60_000:
        return f"{v / 1000:.1f} s"
    minutes, seconds = divmod(int(v / 1000), 60)
    return f"{minutes}m {seconds:02d}s"


@register.filter
def hms(value: datetime | None) -> str:
    return value.strftime("%H:%M:%S") if value else ""


@register.filter
def pretty_json(value: Any) -> str:
    """Indented JSON for <pre> blocks (autoescaped by the template like any other text)."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode()


@register.filter
def short(value: str | None, length: int = 8) -> str:
    return (value or "")[: int(length)]


@register.filter
def pct(value: float | None) -> str:
    return "-" if value is None or value == "" else f"{float(value) * 100:.0f}%"


@register.filter
def lines(value: str | None) -> int:
    return (value or "").count("\n") + 1


@register.filter
def compact_json(value: Any) -> str:
    return orjson.dumps(value, default=str).decode().replace('":', '": ').replace(',"', ', "')


@register.filter
def losses(changes: Any) -> list[dict[str, Any]]:
    """The recorded changes that lost content (the feed's badge); routine adaptations are left out."""
    return translate_changes.losses(changes if isinstance(changes, list) else None)


@register.filter
def is_loss(change: Any) -> bool:
    return translate_changes.change_is_loss(change)


@register.filter
def fallbacks(attempts: Any) -> list[dict[str, Any]]:
    """The attempts that tried a target (the first, then fallbacks): a tool call's retry is not one."""
    return (
        [a for a in attempts if isinstance(a, dict) and a.get("purpose") != "tool_call_retry"]
        if isinstance(attempts, list)
        else []
    )


HEALING_KINDS = {
    "tool_call_repaired": "repaired",
    "tool_call_retried": "retried",
    "tool_call_unrepairable": "failed",
}


@register.filter
def healing(changes: Any) -> list[dict[str, Any]]:
    """The tool calls healing touched (issue #15), each with `how`: repaired, retried or failed."""
    return (
        [
            {**c, "how": HEALING_KINDS[c["kind"]]}
            for c in changes
            if isinstance(c, dict) and c.get("kind") in HEALING_KINDS
        ]
        if isinstance(changes, list)
        else []
    )


@register.filter
def healed_summary(changes: Any) -> str:
    """One line for the feed's tool cell: `2 healed` (repaired or retried); failed ones are counted apart."""
    calls = healing(changes)
    healed = sum(1 for c in calls if c["how"] != "failed")
    return f"{healed} healed" if healed else ""


@register.filter
def attempts_summary(attempts: Any) -> str:
    """The upstream attempts of an exchange on one line each: what failed before the answer came."""
    out = []
    for a in attempts if isinstance(attempts, list) else ():
        if isinstance(a, dict):
            outcome = f"{a.get('status')} {a.get('error') or 'answered'}".strip()
            out.append(f"attempt {a.get('attempt')}: {a.get('provider')}/{a.get('model') or '-'}: {outcome}")
    return "\n".join(out)

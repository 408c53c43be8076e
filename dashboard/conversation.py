"""Turn a stored Exchange into what the detail page shows: readable conversation, timeline, curl.

Everything here returns plain data; templates escape it. Recorded content is hostile and is never
marked safe.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import orjson

from proxy.models import Exchange

logger = logging.getLogger(__name__)

LONG_CHARS = 1500
LONG_LINES = 25
IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}


@dataclass(slots=True)
class Block:
    """One content block, flattened for the template."""

    kind: str  # text | thinking | tool_use | tool_result | image | other
    text: str = ""
    name: str = ""
    tool_id: str = ""
    is_error: bool = False
    invalid: str = ""  # why a tool_use input is not usable (shown in red)
    image_src: str = ""
    children: list[Block] = field(default_factory=list)

    @property
    def long(self) -> bool:
        return len(self.text) > LONG_CHARS or self.text.count("\n") > LONG_LINES

    @property
    def preview(self) -> str:
        first = self.text.strip().split("\n", 1)[0]
        return first[:160]


@dataclass(slots=True)
class Turn:
    role: str
    blocks: list[Block]


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode()


def to_blocks(content: Any) -> list[Block]:
    """Anthropic content (a string or a list of blocks) -> Blocks."""
    if content is None:
        return []
    if isinstance(content, str):
        return [Block(kind="text", text=content)]
    if not isinstance(content, list):
        return [Block(kind="other", text=_dumps(content))]
    return [_block(b) for b in content if isinstance(b, dict)]


def _block(b: dict[str, Any]) -> Block:
    kind = b.get("type", "")
    match kind:
        case "text":
            return Block(kind="text", text=str(b.get("text", "")))
        case "thinking" | "redacted_thinking":
            return Block(kind="thinking", text=str(b.get("thinking") or b.get("data") or ""))
        case "tool_use" | "server_tool_use":
            raw = b.get("input")
            invalid = ""
            if isinstance(raw, str):
                try:
                    raw = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    invalid = "arguments are not valid JSON"
            if not invalid and not isinstance(raw, dict):
                invalid = "arguments are not a JSON object"
            text = raw if isinstance(raw, str) else _dumps(raw)
            return Block(kind="tool_use", text=text, name=str(b.get("name", "")),
                         tool_id=str(b.get("id", "")), invalid=invalid)  # fmt: skip
        case "tool_result":
            inner = b.get("content")
            children = to_blocks(inner)
            text = "\n".join(c.text for c in children if c.kind == "text")
            others = [c for c in children if c.kind != "text"]
            return Block(kind="tool_result", text=text, tool_id=str(b.get("tool_use_id", "")),
                         is_error=bool(b.get("is_error")), children=others)  # fmt: skip
        case "image":
            return Block(kind="image", image_src=_image_src(b.get("source") or {}), text=_image_label(b))
        case _:
            return Block(kind="other", name=str(kind), text=_dumps(b))


def _image_src(source: dict[str, Any]) -> str:
    # Only base64 raster images become a data: URL; anything else (urls, svg) is shown as text.
    if source.get("type") == "base64" and source.get("media_type") in IMAGE_TYPES:
        data = str(source.get("data", ""))
        if all(c.isalnum() or c in "+/=" for c in data[:2000]):
            return f"data:{source['media_type']};base64,{data}"
    return ""


def _image_label(b: dict[str, Any]) -> str:
    source = b.get("source") or {}
    return f"image ({source.get('type', '?')}, {source.get('media_type') or source.get('url') or ''})"


def system_blocks(request: dict[str, Any]) -> list[Block]:
    return to_blocks(request.get("system"))


def turns(messages: list[dict[str, Any]]) -> list[Turn]:
    return [Turn(role=str(m.get("role", "?")), blocks=to_blocks(m.get("content"))) for m in messages]


def timeline(e: Exchange) -> list[dict[str, Any]]:
    """A waterfall: one bar per milestone (upstream first byte, first token, done) from `received`.

    Widths are in SVG units of 0-100 (CSP forbids inline styles; SVG attributes are fine).
    """
    points = [("upstream first byte", e.upstream_first_byte_ms), ("first token", e.first_token_ms),
              ("done", e.duration_ms)]  # fmt: skip
    total = max([v for _, v in points if v is not None] + [1.0])
    return [
        {"label": label, "ms": value, "w": None if value is None else max(round(100 * value / total, 2), 0.3)}
        for label, value in points
    ]


def curl_command(e: Exchange, *, host: str, scheme: str) -> str:
    """A shell command that replays the client request against this proxy (key from the environment)."""
    body = orjson.dumps(e.client_request or {}).decode()
    path = "/v1/messages/count_tokens" if e.endpoint == "count_tokens" else "/v1/messages"
    version = (e.client_headers or {}).get("anthropic-version", "2023-06-01")
    lines = [
        f"curl -sS {scheme}://{host}{path}",
        "  -H 'content-type: application/json'",
        f"  -H 'anthropic-version: {_shell_safe(version)}'",
    ]
    beta = (e.client_headers or {}).get("anthropic-beta")
    if beta:
        lines.append(f"  -H 'anthropic-beta: {_shell_safe(beta)}'")
    lines.append('  -H "x-api-key: $ANTHROPIC_API_KEY"')
    # A quoted heredoc passes the body through untouched: no shell quoting of recorded text.
    lines.append("  --data-binary @- <<'SWITCHBOARD_JSON'")
    return " \\\n".join(lines) + "\n" + body + "\nSWITCHBOARD_JSON\n"


def _shell_safe(value: str) -> str:
    return "".join(c for c in str(value) if c.isalnum() or c in "-_.,:=/ ")


def context_breakdown(request: dict[str, Any] | None) -> list[tuple[str, int]]:
    """Estimated tokens per part of the prompt (system, tools, messages, tool results), if available."""
    if not request:
        return []
    try:
        from proxy.translate.tokens import count_breakdown
    except ImportError:
        return []
    try:
        parts = count_breakdown(request)
    except Exception:  # an estimate must never break the page
        logger.exception("context breakdown failed")
        return []
    return [(k, int(v)) for k, v in parts.items()]


def detail_context(e: Exchange, *, host: str, scheme: str) -> dict[str, Any]:
    request = e.client_request if isinstance(e.client_request, dict) else {}
    response = e.client_response if isinstance(e.client_response, dict) else {}
    breakdown = context_breakdown(request)
    total = sum(v for _, v in breakdown) or 1
    return {
        "e": e,
        "system": system_blocks(request),
        "turns": turns(request.get("messages") or []),
        "answer": _with_outcomes(to_blocks(response.get("content")), e),
        "tools_offered": [t.get("name", "") for t in request.get("tools") or [] if isinstance(t, dict)],
        "timeline": timeline(e),
        "breakdown": _bars(breakdown, total),
        "curl": curl_command(e, host=host, scheme=scheme),
        "client_request_json": _dumps(e.client_request) if e.client_request is not None else "",
        "upstream_request_json": _dumps(e.upstream_request) if e.upstream_request is not None else "",
        "client_response_json": _dumps(e.client_response) if e.client_response is not None else "",
        "upstream_response_text": _pretty_transcript(e.upstream_response),
    }


def _with_outcomes(blocks: list[Block], e: Exchange) -> list[Block]:
    """Mark the answer's tool calls that failed (bad arguments, or the client refusing them next turn)."""
    from dashboard.toolcalls import answer_outcomes

    outcomes = answer_outcomes(e) if any(b.kind == "tool_use" for b in blocks) else {}
    for b in blocks:
        if b.tool_id in outcomes and not b.invalid:
            b.invalid = outcomes[b.tool_id][0]
    return blocks


def _bars(parts: list[tuple[str, int]], total: int) -> list[dict[str, Any]]:
    """Stacked-bar geometry in SVG units (0-100): CSP forbids inline styles, SVG attributes are fine."""
    bars, x = [], 0.0
    for i, (name, tokens) in enumerate(parts):
        w = 100 * tokens / total
        bars.append({"name": name, "tokens": tokens, "pct": round(w), "x": round(x, 2), "w": round(w, 2),
                     "i": i % 6})  # fmt: skip
        x += w
    return bars


def _pretty_transcript(raw: str) -> str:
    """A JSON body is indented; an SSE transcript is kept as the wire had it."""
    text = raw or ""
    if text.lstrip().startswith("{"):
        try:
            return _dumps(orjson.loads(text))
        except orjson.JSONDecodeError:
            return text
    return text

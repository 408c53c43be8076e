"""Turn a stored Exchange into what the detail page shows: readable conversation, timeline, curl.

Everything here returns plain data; templates escape it. Recorded content is hostile and is never
marked safe.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, cast

import orjson

from dashboard import shapes
from proxy.models import Exchange
from proxy.translate.tokens import count_breakdown
from proxy.translate.types import MessagesRequest

logger = logging.getLogger(__name__)

LONG_CHARS = 1500
LONG_LINES = 25
IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}

# Issue #12: a 20 MB request once made an 84 MB page. Recorded text reaches the page only in slices,
# within these budgets (in bytes of HTML, escaping counted), and the rest is one link away (the raw
# endpoint): the whole page stays under ~2 MB whatever was recorded.
CONVERSATION_BUDGET = 900_000  # the readable conversation, all blocks together
BLOCK_SLICE = 60_000  # one block's text
SIDE_SLICE = 150_000  # each of the four raw sides shown inline
NOTE_SLICE = 20_000  # error message, attempts, route reason
CURL_INLINE = 100_000  # bodies up to this size are inlined in the curl command
MAX_BLOCKS = 600  # markup per block adds up too
HEAD_MESSAGES = 10  # with too many messages: the first few and the newest ones


def html_size(text: str) -> int:
    """Bytes the text takes in the page once escaped (UTF-8, &lt; &gt; &amp; &quot; &#x27;)."""
    return (
        len(text.encode("utf-8", "surrogatepass"))
        + 3 * (text.count("<") + text.count(">")) + 4 * (text.count("&") + text.count("'"))
        + 5 * text.count('"')
    )  # fmt: skip


def cut_to(text: str, limit: int) -> str:
    """The longest start of `text` whose escaped size is within `limit` (to within a few percent)."""
    if len(text) <= limit // 6:  # fits even if every character were a quote
        return text
    head = text[:limit]  # never measure more than what could fit
    size = html_size(head)
    while size > limit:
        head = head[: int(len(head) * limit / size * 0.98)]
        size = html_size(head)
    return head


@dataclass(slots=True)
class Budget:
    """What is left of the page's allowance for recorded text (bytes of HTML) and blocks."""

    remaining: int = CONVERSATION_BUDGET
    blocks: int = MAX_BLOCKS

    def take(self, text: str, limit: int = BLOCK_SLICE) -> str:
        shown = cut_to(text, min(limit, max(self.remaining, 0)))
        self.remaining -= html_size(shown)
        return shown


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
    size: int = 0  # characters of the whole text; `text` may be only its start
    cut: int = 0  # characters of it not in the page

    @property
    def long(self) -> bool:
        return self.size > LONG_CHARS or self.text.count("\n") > LONG_LINES

    @property
    def preview(self) -> str:
        first = self.text.strip().split("\n", 1)[0]
        return first[:160]


@dataclass(slots=True)
class Turn:
    role: str
    blocks: list[Block]
    skipped: int = 0  # a gap: this many messages are not shown


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode()


def _sliced(kind: str, text: str, budget: Budget | None, **fields: Any) -> Block:
    shown = budget.take(text) if budget is not None else text
    return Block(kind=kind, text=shown, size=len(text), cut=len(text) - len(shown), **fields)


def to_blocks(content: Any, budget: Budget | None = None) -> list[Block]:
    """Anthropic content (a string or a list of blocks) -> Blocks, within the page's budget if given."""
    if content is None:
        return []
    out = []
    for b in shapes.blocks(content):
        if budget is not None:
            if budget.blocks <= 0:
                break
            budget.blocks -= 1
        out.append(_block(b, budget))
    return out


def _block(b: dict[str, Any], budget: Budget | None) -> Block:
    kind = shapes.text(b.get("type"))
    match kind:
        case "text":
            return _sliced("text", shapes.text(b.get("text")), budget)
        case "thinking" | "redacted_thinking":
            return _sliced("thinking", shapes.text(b.get("thinking") or b.get("data")), budget)
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
            return _sliced("tool_use", text, budget, name=shapes.text(b.get("name")),
                           tool_id=shapes.text(b.get("id")), invalid=invalid)  # fmt: skip
        case "tool_result":
            children = to_blocks(b.get("content"), budget)
            text = "\n".join(c.text for c in children if c.kind == "text")
            others = [c for c in children if c.kind != "text"]
            return Block(kind="tool_result", text=text, tool_id=shapes.text(b.get("tool_use_id")),
                         is_error=bool(b.get("is_error")), children=others,
                         size=sum(c.size for c in children if c.kind == "text"),
                         cut=sum(c.cut for c in children if c.kind == "text"))  # fmt: skip
        case "image":
            return _image_block(shapes.obj(b.get("source")), budget)
        case _:
            return _sliced("other", _dumps(b.get("value") if kind == shapes.UNEXPECTED else b), budget,
                           name=kind)  # fmt: skip


def _image_block(source: dict[str, Any], budget: Budget | None) -> Block:
    where = shapes.text(source.get("media_type") or source.get("url"))[:200]
    label = f"image ({shapes.text(source.get('type', '?'))}, {where})"
    src = _image_src(source)
    if src and budget is not None:
        if len(src) > min(budget.remaining, BLOCK_SLICE * 10):
            return Block(kind="image", text=f"{label}: {len(src) // 1024} KB, too large to show here", cut=1)
        budget.remaining -= len(src)
    return Block(kind="image", image_src=src, text=label)


def _image_src(source: dict[str, Any]) -> str:
    # Only base64 raster images become a data: URL; anything else (urls, svg) is shown as text.
    if source.get("type") == "base64" and source.get("media_type") in IMAGE_TYPES:
        data = shapes.text(source.get("data"))
        if all(c.isalnum() or c in "+/=" for c in data[:2000]):
            return f"data:{source['media_type']};base64,{data}"
    return ""


def system_blocks(request: dict[str, Any], budget: Budget | None = None) -> list[Block]:
    return to_blocks(request.get("system"), budget)


def turns(messages: list[dict[str, Any]], budget: Budget | None = None) -> list[Turn]:
    """The turns to show: all of them, or with very many the first few and the newest, and gaps.

    Built newest first, so that when the budget runs out it is the old turns that show only their
    start or nothing, not the ones the exchange is about."""
    indexed = list(enumerate(messages))
    limit = max(budget.blocks // 2, HEAD_MESSAGES * 2) if budget is not None else len(messages)
    if len(messages) > limit:
        indexed = indexed[:HEAD_MESSAGES] + indexed[len(messages) - (limit - HEAD_MESSAGES) :]
    shown: list[tuple[int, Turn]] = []
    for i, m in reversed(indexed):
        blocks = to_blocks(m["content"], budget)
        if blocks or budget is None or budget.blocks > 0:  # out of blocks: left to a gap
            shown.append((i, Turn(role=m["role"], blocks=blocks)))
    out: list[Turn] = []
    expected = 0
    for i, turn in reversed(shown):
        if i > expected:
            out.append(Turn(role="gap", blocks=[], skipped=i - expected))
        out.append(turn)
        expected = i + 1
    if expected < len(messages):
        out.append(Turn(role="gap", blocks=[], skipped=len(messages) - expected))
    return out


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


def curl_command(e: Exchange, *, host: str, scheme: str, body: bytes | None = None) -> str:
    """A shell command that replays the client request against this proxy (key from the environment).

    A body over CURL_INLINE is not inlined (it would be most of the page): the command reads it from
    the file the page's download link saves."""
    body = orjson.dumps(e.client_request or {}) if body is None else body
    path = "/v1/messages/count_tokens" if e.endpoint == "count_tokens" else "/v1/messages"
    headers = shapes.obj(e.client_headers)
    version = shapes.text(headers.get("anthropic-version") or "2023-06-01")
    lines = [
        f"curl -sS {scheme}://{host}{path}",
        "  -H 'content-type: application/json'",
        f"  -H 'anthropic-version: {_shell_safe(version)}'",
    ]
    beta = headers.get("anthropic-beta")
    if beta:
        lines.append(f"  -H 'anthropic-beta: {_shell_safe(beta)}'")
    lines.append('  -H "x-api-key: $ANTHROPIC_API_KEY"')
    if len(body) > CURL_INLINE:
        lines.append(f"  --data-binary @{raw_filename(e, 'client-request')}")
        return " \\\n".join(lines) + "\n"
    # A quoted heredoc passes the body through untouched: no shell quoting of recorded text.
    lines.append("  --data-binary @- <<'SWITCHBOARD_JSON'")
    return " \\\n".join(lines) + "\n" + body.decode() + "\nSWITCHBOARD_JSON\n"


def _shell_safe(value: Any) -> str:
    return "".join(c for c in str(value) if c.isalnum() or c in "-_.,:=/ ")


def context_breakdown(request: dict[str, Any] | None) -> list[tuple[str, int]]:
    """Estimated tokens per part of the prompt (system, tools, messages, tool results), if available."""
    if not request:
        return []
    try:
        parts = count_breakdown(cast(MessagesRequest, request))  # a recorded body: any shape, hence the guard
    except Exception:  # an estimate must never break the page
        logger.exception("context breakdown failed")
        return []
    return [(k, int(v)) for k, v in parts.items()]


# The four sides of an exchange, in the page's order: (slug in URLs and DOM ids, title, model field).
SIDES = (
    ("client-request", "client request", "client_request"),
    ("upstream-request", "upstream request", "upstream_request"),
    ("upstream-response", "upstream response", "upstream_response"),
    ("client-response", "client response", "client_response"),
)
SIDE_FIELDS = {slug: name for slug, _, name in SIDES}


def raw_filename(e: Exchange, slug: str) -> str:
    ext = "txt" if slug == "upstream-response" and not _is_json_text(e.upstream_response) else "json"
    return f"exchange-{e.pk}-{slug}.{ext}"


def _is_json_text(raw: Any) -> bool:
    return isinstance(raw, str) and raw.lstrip().startswith(("{", "["))


def raw_side(e: Exchange, slug: str) -> tuple[bytes, str] | None:
    """One side as recorded, for download: (body, content type), or None if there is none."""
    value = getattr(e, SIDE_FIELDS[slug])
    if slug == "upstream-response":
        if not value:
            return None
        kind = "application/json" if _is_json_text(value) else "text/plain; charset=utf-8"
        return shapes.text(value).encode("utf-8", "surrogatepass"), kind
    if value is None:
        return None
    return orjson.dumps(value, default=str), "application/json"


def _side(e: Exchange, slug: str, title: str, name: str) -> dict[str, Any]:
    value = getattr(e, name)
    if name == "upstream_response":
        text = _pretty_transcript(value)
        title += " (SSE transcript)" if e.stream and text and not _is_json_text(value) else ""
    else:
        text = _dumps(value) if value is not None else ""
    shown = cut_to(text, SIDE_SLICE)
    return {"slug": slug, "title": title, "text": shown, "lines": text.count("\n") + 1 if text else 0,
            "size": len(text), "cut": len(text) - len(shown)}  # fmt: skip


def _changes(value: Any) -> list[dict[str, Any]]:
    out = []
    for c in shapes.items(value)[:500]:
        c = shapes.obj(c) or {"kind": "?", "detail": c}
        change: dict[str, Any] = {
            "kind": shapes.text(c.get("kind"))[:200], "detail": shapes.text(c.get("detail"))[:2000]
        }  # fmt: skip
        if change["kind"].startswith("tool_call_"):
            change.update(_healing(c))
        out.append(change)
    return out


def _healing(c: dict[str, Any]) -> dict[str, Any]:
    """A healed call's record (issue #15) in known shapes: raw arguments, error, each edit as text."""
    edits: list[dict[str, Any]] = []
    for d in shapes.items(c.get("edits"))[:50]:
        d = shapes.obj(d) or {}
        # A value at a path as JSON ("120" -> 120 must show its quotes); the whole input as its text.
        whole = not shapes.text(d.get("path"))
        before, after = (cut_to(_compact(d.get(k), text=whole), 2000) for k in ("before", "after"))
        repair, where = shapes.text(d.get("repair"))[:100], shapes.text(d.get("path"))[:500]
        edit: dict[str, Any] = {"repair": repair, "path": where, "before": before, "after": after}
        # Several syntax repairs of one text share its before and after: shown once.
        edit["same"] = bool(edits) and all(edits[-1][k] == edit[k] for k in ("path", "before", "after"))
        edits.append(edit)
    return {
        "tool": shapes.text(c.get("tool"))[:200],
        "tool_use_id": shapes.text(c.get("tool_use_id"))[:200],
        "raw_arguments": cut_to(shapes.text(c.get("raw_arguments")), NOTE_SLICE),
        "error": shapes.text(c.get("error"))[:2000],
        "edits": edits,
    }


def _compact(value: Any, *, text: bool) -> str:
    return value if text and isinstance(value, str) else orjson.dumps(value, default=str).decode()


def detail_context(e: Exchange, *, host: str, scheme: str) -> dict[str, Any]:
    request = shapes.request(e.client_request)
    budget = Budget()
    # The answer first, then the newest turns, the system prompt last: if the budget runs out, it runs
    # out on what matters least.
    answer = _with_outcomes(to_blocks(shapes.answer_blocks(e.client_response), budget), e)
    conversation = turns(request.get("messages") or [], budget)
    system = system_blocks(request, budget)
    breakdown = context_breakdown(request)
    total = sum(v for _, v in breakdown) or 1
    body = orjson.dumps(e.client_request or {}, default=str)
    attempts = _dumps(e.attempts) if e.attempts else ""
    return {
        "e": e,
        "system": system,
        "turns": conversation,
        "answer": answer,
        "tools_offered": [shapes.text(t.get("name"))[:200] for t in request.get("tools") or []][:500],
        "timeline": timeline(e),
        "breakdown": _bars(breakdown, total),
        "curl": curl_command(e, host=host, scheme=scheme, body=body),
        "curl_file": len(body) > CURL_INLINE,
        "sides": [_side(e, slug, title, name) for slug, title, name in SIDES],
        "raw_request": f"/exchanges/{e.pk}/raw/client-request",
        "raw_response": f"/exchanges/{e.pk}/raw/client-response",
        "changes": _changes(e.changes),
        "attempts_json": cut_to(attempts, NOTE_SLICE),
        "attempts_cut": len(attempts) > NOTE_SLICE,
        "error_message": cut_to(shapes.text(e.error_message), NOTE_SLICE),
        "route_reason": cut_to(shapes.text(e.route_reason), NOTE_SLICE // 10),
        "odd_request": _odd_kind(e.client_request),
        "odd_response": _odd_kind(e.client_response),
    }


def _odd_kind(value: Any) -> str:
    """What a recorded body is when it is not a JSON object (shown as a note), else ""."""
    if value is None or isinstance(value, dict):
        return ""
    return {list: "a list", str: "a string", bool: "a boolean"}.get(type(value), "a number")


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


def _pretty_transcript(raw: Any) -> str:
    """A JSON body is indented; an SSE transcript is kept as the wire had it."""
    text = shapes.text(raw)
    if text.lstrip().startswith("{"):
        try:
            return _dumps(orjson.loads(text))
        except orjson.JSONDecodeError:
            return text
    return text

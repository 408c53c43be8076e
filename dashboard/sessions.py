"""One Claude Code run as a tree of threads: the main thread's turns, subagents nested under the turn
whose Agent/Task tool call started them, background calls (titles, summaries) beside them.

Everything is recognised from the traffic itself:
- a thread is the requests that share their first message (each new request resends the history);
  Claude Code's `x-claude-code-agent-id` header, when present, names a subagent's thread directly;
- a subagent thread is linked to its parent by the Agent/Task tool_use whose `prompt` is the
  subagent's first user text; a request without tools is a background call.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.db import connection
from django.db.models import Count, Max, Min, Q, Sum, TextField
from django.db.models.functions import Cast

from dashboard import shapes
from dashboard.costs import UNPRICED
from proxy.models import Exchange, SessionUsage
from proxy.recording import blobs
from proxy.recording.rows import invalid_tool_input
from proxy.translate.claude_code import is_call_failure

AGENT_TOOLS = {"Agent", "Task"}
# A session view beyond this is unreadable anyway (the feed filter still has them all), and at ~1.5 KB
# a turn the page stays under ~2 MB (issue #12).
MAX_EXCHANGES = 1000


@dataclass(slots=True)
class NewItem:
    kind: str  # prompt | text | tool_result | system
    text: str
    is_error: bool = False
    tool_id: str = ""
    call_failed: bool = False  # an is_error result that is the client refusing the call (the model's failure)


@dataclass(slots=True)
class Turn:
    e: Exchange
    new: list[NewItem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # cache break, rewritten history, ...
    cache_broke: bool = False
    failures: int = 0  # invalid tool calls in its answer + the client refusing its calls in the next turn
    tool_errors: int = 0  # its calls whose tools ran and reported an error (results, not failures)
    children: list[Thread] = field(default_factory=list)


@dataclass(slots=True)
class Thread:
    key: str
    kind: str  # main | subagent | background
    label: str
    turns: list[Turn] = field(default_factory=list)
    parent_tool_id: str = ""

    @property
    def first_at(self) -> Any:
        return self.turns[0].e.created_at

    def totals(self) -> dict[str, float]:
        return _sum_turns(self.all_turns())

    def all_turns(self) -> list[Turn]:
        out = list(self.turns)
        for t in self.turns:
            for child in t.children:
                out += child.all_turns()
        return out


def _sum_turns(turns: list[Turn]) -> dict[str, float]:
    return {
        "requests": len(turns),
        "input": sum(t.e.input_tokens + t.e.cache_read_tokens + t.e.cache_write_tokens for t in turns),
        "output": sum(t.e.output_tokens for t in turns),
        "cost": sum(t.e.cost_usd or 0 for t in turns),
        # Turns that used tokens on a model with no known price: left out of "cost", and said so.
        "unpriced": sum(
            1
            for t in turns
            if t.e.cost_usd is None and (t.e.input_tokens or t.e.output_tokens or t.e.cache_read_tokens)
        ),
        "claude_cost": sum(t.e.claude_cost_usd or 0 for t in turns),
        "failures": sum(t.failures for t in turns),
        "tool_errors": sum(t.tool_errors for t in turns),
        "errors": sum(1 for t in turns if t.e.status == "error"),
    }


def _canon(value: Any) -> bytes:
    """JSON without cache_control: Claude Code moves cache breakpoints between turns."""
    if isinstance(value, dict):
        return orjson.dumps({k: orjson.loads(_canon(v)) for k, v in value.items() if k != "cache_control"},
                            option=orjson.OPT_SORT_KEYS)  # fmt: skip
    if isinstance(value, list):
        return b"[" + b",".join(_canon(v) for v in value) + b"]"
    return orjson.dumps(value)


def _digest(value: Any) -> str:
    return hashlib.sha1(_canon(value)).hexdigest()[:16]


def _texts(content: Any) -> list[str]:
    return [shapes.text(b.get("text")) for b in shapes.blocks(content) if b.get("type") == "text"]


def _request(e: Exchange) -> dict[str, Any]:
    """The client request, shaped once per exchange (recorded bodies can hold anything)."""
    shaped = getattr(e, "_shaped_request", None)
    if shaped is None:
        # A memo on this instance only (the model does not declare it), for the pages that read it again.
        shaped = e._shaped_request = shapes.request(e.client_request)  # type: ignore[attr-defined]
    return shaped


def _headers(e: Exchange) -> dict[str, Any]:
    return shapes.obj(e.client_headers)


def _system_text(req: dict[str, Any]) -> str:
    return "\n".join(_texts(req.get("system")))


def _thread_key(e: Exchange) -> str:
    agent_id = shapes.text(_headers(e).get("x-claude-code-agent-id"))
    if agent_id:
        return f"agent:{agent_id}"
    messages = _request(e).get("messages") or []
    return "t:" + _digest(messages[:1])


def _kind(e: Exchange) -> str:
    req = _request(e)
    if _headers(e).get("x-claude-code-agent-id") or "cc_is_subagent=true" in _system_text(req):
        return "subagent"
    return "main" if req.get("tools") else "background"


def _agent_calls(e: Exchange) -> list[dict[str, Any]]:
    """Agent/Task tool calls in this exchange's answer."""
    return [
        b for b in shapes.answer_blocks(e.client_response)
        if b.get("type") == "tool_use" and b.get("name") in AGENT_TOOLS
    ]  # fmt: skip


def _first_prompt(e: Exchange) -> str:
    return _first_prompt_of(_request(e))


def _first_prompt_of(req: dict[str, Any]) -> str:
    first_user = next((m for m in shapes.messages(req) if m.get("role") == "user"), None)
    texts = [
        t for t in _texts((first_user or {}).get("content")) if not t.lstrip().startswith("<system-reminder>")
    ]
    return texts[-1].strip() if texts else ""


def _new_items(messages: list[dict[str, Any]]) -> list[NewItem]:
    items: list[NewItem] = []
    for m in messages:
        role = m.get("role")
        content = m.get("content")
        if role == "system":
            items.append(NewItem(kind="system", text=" ".join(_texts(content))[:300]))
        if role != "user":
            continue
        for b in shapes.blocks(content):
            if b.get("type") == "text":
                text = shapes.text(b.get("text"))
                kind = "system" if text.lstrip().startswith("<system-reminder>") else "text"
                items.append(NewItem(kind=kind, text=text[:300]))
            elif b.get("type") == "tool_result":
                inner = " ".join(_texts(b.get("content")))
                is_error = bool(b.get("is_error"))
                items.append(NewItem(kind="tool_result", text=inner[:300], is_error=is_error,
                                     tool_id=shapes.text(b.get("tool_use_id")),
                                     call_failed=is_error and is_call_failure(inner)))  # fmt: skip
    return items


def _fill_turn_diffs(thread: Thread) -> None:
    """What each request added since the previous request of the same thread, and cache breaks."""
    prev: Exchange | None = None
    prev_digests: list[str] = []
    for turn in thread.turns:
        req = _request(turn.e)
        messages = req.get("messages") or []
        digests = [_digest(m) for m in messages]
        if prev is None:
            turn.new = _new_items(messages)
        else:
            common = 0
            while common < min(len(prev_digests), len(digests)) and prev_digests[common] == digests[common]:
                common += 1
            if common < len(prev_digests):
                turn.notes.append(f"history rewritten from message {common + 1} (compaction or edit)")
            turn.new = _new_items(messages[common:])
            prev_req = _request(prev)
            if _digest(prev_req.get("system")) != _digest(req.get("system")):
                turn.notes.append("system prompt changed")
            if _digest(prev_req.get("tools")) != _digest(req.get("tools")):
                turn.notes.append("tool definitions changed")
            if prev.cache_read_tokens > 0 and turn.e.cache_read_tokens < prev.cache_read_tokens // 2:
                turn.cache_broke = True
                turn.notes.append(
                    f"cache reads dropped {prev.cache_read_tokens} → {turn.e.cache_read_tokens}"
                )
        prev, prev_digests = turn.e, digests


def _count_failures(thread: Thread) -> None:
    """A turn's failures: its invalid tool calls, plus the client refusing its calls in the next turn;
    and apart from them, its calls whose tools reported an error.

    The recorder adds those results to the row's counts as they arrive; rows recorded before it did
    have only the invalid calls, so the join is made here too and the larger of the two is kept."""
    for i, turn in enumerate(thread.turns):
        blocks = shapes.answer_blocks(turn.e.client_response)
        joined = sum(1 for b in blocks if b.get("type") == "tool_use" and invalid_tool_input(b))
        errors = 0
        if i + 1 < len(thread.turns):
            later = [item for item in thread.turns[i + 1].new if item.kind == "tool_result" and item.is_error]
            refused = sum(1 for item in later if item.call_failed)
            joined += refused
            errors = len(later) - refused
        turn.failures = max(turn.e.tool_call_errors, joined)
        turn.tool_errors = max(turn.e.tool_result_errors, errors)


def _load(session_id: str) -> list[Exchange]:
    """The session's exchanges without the upstream side; bodies parsed with orjson from raw text."""
    big = ("client_request", "client_response", "upstream_request", "upstream_response")
    qs = Exchange.objects.filter(session_id=session_id, endpoint="messages").order_by("id")
    exchanges = list(qs.defer(*big)[:MAX_EXCHANGES])
    texts = qs.annotate(req=Cast("client_request", TextField()), resp=Cast("client_response", TextField()))
    bodies = {pk: (req, resp) for pk, req, resp in texts.values_list("id", "req", "resp")[:MAX_EXCHANGES]}
    for e in exchanges:
        req, resp = bodies.get(e.pk, (None, None))
        e.client_request = blobs.loads(req)  # its system blocks and tools may be stored once, in blobs
        e.client_response = orjson.loads(resp) if resp else None
    return exchanges


def build_tree(session_id: str) -> tuple[list[Thread], list[Exchange]]:
    """Root threads in time order (main threads with subagents nested; background calls beside)."""
    exchanges = _load(session_id)
    threads: dict[str, Thread] = {}
    for e in exchanges:
        key = _thread_key(e)
        thread = threads.get(key)
        if thread is None:
            kind = _kind(e)
            label = e.agent or {"main": "main", "subagent": "subagent", "background": "background"}[kind]
            thread = threads[key] = Thread(key=key, kind=kind, label=label)
        thread.turns.append(Turn(e=e))
    for thread in threads.values():
        _fill_turn_diffs(thread)
        _count_failures(thread)

    # Link subagent threads to the turn whose Agent/Task call carried their prompt.
    calls: dict[str, tuple[Turn, dict[str, Any]]] = {}
    for thread in threads.values():
        for turn in thread.turns:
            for call in _agent_calls(turn.e):
                prompt = shapes.text(shapes.obj(call.get("input")).get("prompt")).strip()
                if prompt:
                    calls.setdefault(prompt, (turn, call))
    roots: list[Thread] = []
    for thread in threads.values():
        parent = calls.get(_first_prompt(thread.turns[0].e))
        if parent is not None and parent[0].e.pk != thread.turns[0].e.pk:
            thread.kind = "subagent"
            input_ = shapes.obj(parent[1].get("input"))
            thread.label = thread.turns[0].e.agent or str(input_.get("subagent_type") or "subagent")
            thread.parent_tool_id = str(parent[1].get("id", ""))
            parent[0].children.append(thread)
        else:
            roots.append(thread)
    roots.sort(key=lambda t: t.first_at)
    return roots, exchanges


def session_totals(roots: list[Thread]) -> dict[str, float]:
    turns: list[Turn] = []
    for r in roots:
        turns += r.all_turns()
    return _sum_turns(turns)


def recent_sessions(limit: int = 100) -> list[dict[str, Any]]:
    """Sessions by most recent activity, with what tells runs apart (first prompt, project directory,
    CLI version, title, models) beside request counts, tokens, cost and failures."""
    if connection.vendor in ("sqlite", "postgresql"):
        rows = _rolled_up_sessions(limit)
    else:  # no rollups there: every row grouped
        rows = sessions_from_rows(limit)
    return _describe(rows)


def _rolled_up_sessions(limit: int) -> list[dict[str, Any]]:
    """The newest sessions' sums from SessionUsage (a row per session and endpoint, added up here)."""
    newest = SessionUsage.objects.order_by("-last_at", "-last_id").values_list("session_id", flat=True)
    ids = list(dict.fromkeys(newest[: limit * 3]))[:limit]  # a session has a row per endpoint it used
    grouped = (
        SessionUsage.objects.filter(session_id__in=ids)
        .values("session_id")
        .annotate(
            first=Min("first_at"),
            last=Max("last_at"),
            requests=Sum("requests"),
            input=Sum("input_tokens"),
            cache_read=Sum("cache_read_tokens"),
            output=Sum("output_tokens"),
            cost_sum=Sum("cost_usd"),
            priced=Sum("priced"),
            claude_sum=Sum("claude_cost_usd"),
            claude_priced=Sum("claude_priced"),
            unpriced=Sum("unpriced"),
            tool_failures=Sum("tool_call_errors"),
            tool_errors=Sum("tool_result_errors"),
            errors=Sum("errors"),
            user_agent=Max("user_agent"),
            first_id=Min("first_id"),
        )
        .order_by("-last")
    )
    rows: list[dict[str, Any]] = [dict(r) for r in grouped]
    for r in rows:  # unknown is not $0: None when no exchange of the session has a price
        cost, priced, claude_cost, claude_priced = (
            r.pop(k) for k in ("cost_sum", "priced", "claude_sum", "claude_priced")
        )
        r["cost"] = cost if priced else None
        r["claude_cost"] = claude_cost if claude_priced else None
    return rows


def sessions_from_rows(limit: int = 100) -> list[dict[str, Any]]:
    """The sessions list's sums from every row: the reference the rollups are tested against."""
    return [
        dict(row)  # plain dicts: the page's own fields are added in _describe
        for row in Exchange.objects.exclude(session_id="")
        .values("session_id")
        .annotate(
            first=Min("created_at"),
            last=Max("created_at"),
            requests=Count("id"),
            input=Sum("input_tokens"),
            cache_read=Sum("cache_read_tokens"),
            output=Sum("output_tokens"),
            cost=Sum("cost_usd"),
            claude_cost=Sum("claude_cost_usd"),
            unpriced=Count("id", filter=UNPRICED),
            tool_failures=Sum("tool_call_errors"),
            tool_errors=Sum("tool_result_errors"),
            errors=Count("id", filter=Q(status="error")),
            user_agent=Max("user_agent"),
            first_id=Min("id"),
        )
        .order_by("-last")[:limit]
    ]


def _describe(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ids = [r["session_id"] for r in rows]
    models: dict[str, list[str]] = {}
    pairs = Exchange.objects.filter(session_id__in=ids).exclude(backend_model="")
    for sid, model in pairs.values_list("session_id", "backend_model").distinct().order_by("backend_model"):
        models.setdefault(sid, []).append(model)
    facts = _run_facts({r["session_id"]: r["first_id"] for r in rows})
    titles = _titles(ids)
    for r in rows:
        sid = r["session_id"]
        version = _CLI_VERSION.search(r["user_agent"] or "")
        r.update(
            models=models.get(sid, []),
            cli_version=version[1] if version else "",
            title=titles.get(sid, ""),
            **facts.get(sid, {"prompt": "", "project": ""}),
        )
    return rows


_CLI_VERSION = re.compile(r"claude-cli/([\w.\-]+)")
# Claude Code names the directory it runs in: "Primary working directory: …" (main thread),
# "Working directory: …" (subagents, older builds).
_PROJECT = re.compile(r"(?:Primary working directory|Working directory): *([^\n]+)")
_FIRST_LOOKED_AT = 3  # a run's first requests: a title or a subagent may come before the main thread
# (session id, its first row) -> first prompt and project: read once per process, a run's first
# request never changes.
_FACTS: dict[tuple[str, int], dict[str, str]] = {}


def _run_facts(first_ids: dict[str, int]) -> dict[str, dict[str, str]]:
    """First prompt and project directory of each run, from its first main-thread request."""
    for sid, first in first_ids.items():
        if (sid, first) in _FACTS:
            continue
        texts = list(
            Exchange.objects.filter(session_id=sid, endpoint="messages", agent="", id__gte=first)
            .annotate(req=Cast("client_request", TextField()))
            .order_by("id")
            .values_list("req", flat=True)[:_FIRST_LOOKED_AT]
        )
        if len(texts) == _FIRST_LOOKED_AT:  # its first requests are all there: what they say stays so
            _FACTS[(sid, first)] = {"prompt": "", "project": ""}
        for text in texts:
            try:
                req = blobs.loads(text)  # earlier turns may be stored once, in blobs
            except orjson.JSONDecodeError:
                continue
            if isinstance(req, dict) and req.get("tools"):  # not a title or other background call
                project = _PROJECT.search(_system_text(req))
                _FACTS[(sid, first)] = {
                    "prompt": _first_prompt_of(req)[:300],
                    "project": project[1].strip() if project else "",
                }
                break
    return {sid: _FACTS[(sid, first)] for sid, first in first_ids.items() if (sid, first) in _FACTS}


def _titles(session_ids: list[str]) -> dict[str, str]:
    """The title Claude Code had a background call write for each run (a JSON {"title": …} answer)."""
    qs = (
        Exchange.objects.filter(endpoint="messages", status="ok", tool_calls=0)
        .filter(output_tokens__lt=_TITLE_MAX_TOKENS)
        .annotate(resp=Cast("client_response", TextField()))
        .order_by("-id")
        .values_list("session_id", "resp")
    )
    titles: dict[str, str] = {}
    # A session at a time, by its index: the newest 20 background answers of each. One query for all
    # of them walked the table from its newest row until it had 20 per session (0.6 s at 1,000,000 rows).
    answers = (row for sid in session_ids for row in qs.filter(session_id=sid)[:20])
    for sid, text in answers:
        if sid in titles or not text or "title" not in text:
            continue
        try:
            content = orjson.loads(text).get("content") or []
            parsed = orjson.loads(content[0]["text"]) if content else None
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, IndexError):
            continue
        if isinstance(parsed, dict) and isinstance(parsed.get("title"), str):
            titles[sid] = parsed["title"][:200]
    return titles


_TITLE_MAX_TOKENS = 200

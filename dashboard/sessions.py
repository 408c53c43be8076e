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
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.db.models import Count, Max, Min, Q, Sum, TextField
from django.db.models.functions import Cast

from proxy import blobs
from proxy.models import Exchange
from proxy.record import invalid_tool_input

AGENT_TOOLS = {"Agent", "Task"}
MAX_EXCHANGES = 2000  # a session view beyond this is unreadable anyway; the feed filter still has them all


@dataclass(slots=True)
class NewItem:
    kind: str  # prompt | text | tool_result | system
    text: str
    is_error: bool = False
    tool_id: str = ""


@dataclass(slots=True)
class Turn:
    e: Exchange
    new: list[NewItem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # cache break, rewritten history, ...
    cache_broke: bool = False
    failures: int = 0  # invalid tool calls in its answer + is_error results of its calls in the next turn
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
        "claude_cost": sum(t.e.claude_cost_usd or 0 for t in turns),
        "failures": sum(t.failures for t in turns),
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
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text"]
    return []


def _request(e: Exchange) -> dict[str, Any]:
    return e.client_request if isinstance(e.client_request, dict) else {}


def _system_text(req: dict[str, Any]) -> str:
    return "\n".join(_texts(req.get("system")))


def _thread_key(e: Exchange) -> str:
    agent_id = (e.client_headers or {}).get("x-claude-code-agent-id")
    if agent_id:
        return f"agent:{agent_id}"
    messages = _request(e).get("messages") or []
    return "t:" + _digest(messages[:1])


def _kind(e: Exchange) -> str:
    req = _request(e)
    if (e.client_headers or {}).get("x-claude-code-agent-id") or "cc_is_subagent=true" in _system_text(req):
        return "subagent"
    return "main" if req.get("tools") else "background"


def _agent_calls(e: Exchange) -> list[dict[str, Any]]:
    """Agent/Task tool calls in this exchange's answer."""
    content = (e.client_response or {}).get("content") if isinstance(e.client_response, dict) else None
    return [b for b in content or [] if b.get("type") == "tool_use" and b.get("name") in AGENT_TOOLS]


def _first_prompt(e: Exchange) -> str:
    messages = _request(e).get("messages") or []
    first_user = next((m for m in messages if m.get("role") == "user"), None)
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
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        for b in blocks:
            if b.get("type") == "text":
                text = str(b.get("text", ""))
                kind = "system" if text.lstrip().startswith("<system-reminder>") else "text"
                items.append(NewItem(kind=kind, text=text[:300]))
            elif b.get("type") == "tool_result":
                inner = " ".join(_texts(b.get("content")))
                items.append(NewItem(kind="tool_result", text=inner[:300], is_error=bool(b.get("is_error")),
                                     tool_id=str(b.get("tool_use_id", ""))))  # fmt: skip
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
    """A turn's failures: its invalid tool calls, plus is_error results to its calls in the next turn.

    The recorder adds those results to the row's count as they arrive; rows recorded before it did
    have only the invalid calls, so the join is made here too and the larger of the two is kept."""
    for i, turn in enumerate(thread.turns):
        answer = turn.e.client_response if isinstance(turn.e.client_response, dict) else {}
        blocks = [b for b in answer.get("content") or [] if isinstance(b, dict)]
        joined = sum(1 for b in blocks if b.get("type") == "tool_use" and invalid_tool_input(b))
        if i + 1 < len(thread.turns):
            later = thread.turns[i + 1].new
            joined += sum(1 for item in later if item.kind == "tool_result" and item.is_error)
        turn.failures = max(turn.e.tool_call_errors, joined)


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
                prompt = str((call.get("input") or {}).get("prompt", "")).strip()
                if prompt:
                    calls.setdefault(prompt, (turn, call))
    roots: list[Thread] = []
    for thread in threads.values():
        parent = calls.get(_first_prompt(thread.turns[0].e))
        if parent is not None and parent[0].e.pk != thread.turns[0].e.pk:
            thread.kind = "subagent"
            input_ = parent[1].get("input") or {}
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
    """Sessions by most recent activity, with request counts, tokens, cost and failures."""
    return list(
        Exchange.objects.exclude(session_id="")
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
            tool_failures=Sum("tool_call_errors"),
            errors=Count("id", filter=Q(status="error")),
        )
        .order_by("-last")[:limit]
    )

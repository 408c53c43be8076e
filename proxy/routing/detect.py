"""What routing looks at in a request: its task, the agent that sent it, its client and session.

Pure: no Django, no IO. The agent marker `<switchboard-agent>name</switchboard-agent>` is stripped here.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from proxy.translate.types import JSONDict, MessagesRequest

TokenCounter = Callable[[MessagesRequest], int]

AGENT_HEADER = "x-switchboard-agent"
CLIENT_HEADER = "x-switchboard-client"
# One greedy run up to the next "<", stripped in Python: `\s*([^<]*?)\s*` backtracked cubically, so a
# long run of spaces after an unclosed marker held the event loop for minutes (4,000 spaces: 55 s).
_MARKER = re.compile(r"<switchboard-agent>([^<]*)</switchboard-agent>[ \t]*\n?")
# Claude Code's built-in subagents, recognised by how their own system prompt begins (captured on 2.1.197;
# Plan and statusline-setup from the published prompts). Newer CLIs also say `cc_is_subagent=true`.
_CLAUDE_CODE_AGENTS = (
    ("You are an agent for Claude Code", "general-purpose"),
    ("You are a file search specialist for Claude Code", "Explore"),
    ("You are a software architect and planning specialist for Claude Code", "Plan"),
    ("You are a status line setup agent for Claude Code", "statusline-setup"),
)
_PLAN_MODE = "Plan mode is active."


def _dict(value: object) -> JSONDict:
    """`value` if it is an object, else {}: inspection reads what it can and never fails on odd input
    (validation runs first; tools such as the route explainer and the dry run call this on any body)."""
    return value if isinstance(value, dict) else {}


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _system_texts(body: MessagesRequest) -> list[str]:
    system = body.get("system")
    if isinstance(system, str):
        return [system]
    if isinstance(system, list):
        return [_str(b.get("text")) for b in system if isinstance(b, dict) and b.get("type") == "text"]
    return []


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [_str(b.get("text")) for b in content if isinstance(b, dict) and b.get("type") == "text"]
    return []


def _latest_user(body: MessagesRequest) -> JSONDict | None:
    messages = body.get("messages")
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            return message
    return None


def _first_user_index(body: MessagesRequest) -> int | None:
    messages = body.get("messages")
    for i, message in enumerate(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            return i
    return None


def is_background(body: MessagesRequest) -> bool:
    """A haiku-class model, or Claude Code's title/topic call (no tools, JSON schema with a title)."""
    if "haiku" in str(body.get("model", "")).lower():
        return True
    if body.get("tools"):
        return False
    fmt = _dict(_dict(body.get("output_config")).get("format"))
    properties = _dict(_dict(fmt.get("schema")).get("properties"))
    thinking = _dict(body.get("thinking")).get("type", "disabled")
    return fmt.get("type") == "json_schema" and "title" in properties and thinking == "disabled"


EFFORTS = ("low", "medium", "high", "xhigh", "max")
# The effort Claude Code sends for each model unless the user picks another (/effort, --effort), from
# the model table inside the 2.1.332 binary; 2.1.197 sent the same `high` for claude-opus-4-8. Only an
# effort above this is one the user asked for. Models not listed: above `high`.
_DEFAULT_EFFORT = {
    "claude-haiku-5-5": "medium",
    "claude-sonnet-5": "high",
    "claude-sonnet-5-5": "medium",
    "claude-opus-4-7": "xhigh",
    "claude-opus-4-8": "high",
    "claude-opus-5": "high",
    "claude-opus-5-5": "medium",
    "claude-fable-5": "high",
    "claude-fable-5-1": "high",
    "claude-fable-5-2": "medium",
    "claude-mythos-5-1": "high",
    "claude-mythos-5-2": "medium",
}
_UNLISTED_DEFAULT_EFFORT = "high"


@functools.lru_cache(maxsize=256)  # per request on the hot path; a client uses a handful of ids
def default_effort(model: str) -> str:
    """Claude Code's default effort for a model id (dated ids too: the longest listed id it starts with)."""
    model = model.lower()
    best = ""
    for listed in _DEFAULT_EFFORT:
        if (model == listed or model.startswith(listed + "-")) and len(listed) > len(best):
            best = listed
    return _DEFAULT_EFFORT[best] if best else _UNLISTED_DEFAULT_EFFORT


def is_think(body: MessagesRequest) -> bool:
    """Thinking the user asked for: `enabled` with a budget, an effort above the default, or plan mode.

    `adaptive` alone is not enough: both captured CLIs (2.1.197, 2.1.332) send it on every main turn, so
    it would send all main traffic to the think rule. claude-code-router's `think` dates from CLIs that
    sent `thinking` only when the user asked for it (Tab, "think hard", MAX_THINKING_TOKENS).
    """
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        return True
    config = body.get("output_config")
    effort = config.get("effort") if isinstance(config, dict) else None
    if effort in EFFORTS and EFFORTS.index(effort) > EFFORTS.index(
        default_effort(str(body.get("model", "")))
    ):
        return True
    latest = _latest_user(body)
    return latest is not None and any(_PLAN_MODE in t for t in _texts(latest.get("content")))


def has_web_search(body: MessagesRequest) -> bool:
    """Anthropic server tools for the web (web_search_20250305, web_fetch_20250910, ...)."""
    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else []:
        kind = str(tool.get("type", "")) if isinstance(tool, dict) else ""
        if kind.startswith(("web_search_", "web_fetch_")):
            return True
    return False


def has_image(body: MessagesRequest) -> bool:
    """An image in the latest user turn, directly or inside a tool result."""
    latest = _latest_user(body)
    content = latest.get("content") if latest else None
    if not isinstance(content, list):
        return False
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "image":
            return True
        inner = block.get("content")
        if (
            block.get("type") == "tool_result"
            and isinstance(inner, list)
            and any(isinstance(b, dict) and b.get("type") == "image" for b in inner)
        ):
            return True
    return False


def detect_tasks(body: MessagesRequest) -> frozenset[str]:
    """Every cheap task the request shows (long_context needs counting: see choose_target)."""
    found = set()
    if is_background(body):
        found.add("background")
    if is_think(body):
        found.add("think")
    if has_web_search(body):
        found.add("web_search")
    if has_image(body):
        found.add("image")
    return frozenset(found)


def claude_code_agent(body: MessagesRequest) -> str:
    """The Claude Code subagent that sent this request, "subagent" if marked but unknown, else ""."""
    texts = _system_texts(body)
    for text in texts:
        stripped = text.lstrip()
        for prefix, name in _CLAUDE_CODE_AGENTS:
            if stripped.startswith(prefix):
                return name
    if texts and texts[0].startswith("x-anthropic-billing-header:") and "cc_is_subagent=true" in texts[0]:
        return "subagent"
    return ""


def _strip_blocks(blocks: list[Any]) -> tuple[list[Any], str]:
    found, out = "", []
    for block in blocks:
        text = block.get("text") if isinstance(block, dict) and block.get("type") == "text" else None
        if isinstance(text, str) and "<switchboard-agent>" in text:
            match = _MARKER.search(block["text"])
            if match:
                found = found or match.group(1).strip()
                text = _MARKER.sub("", block["text"])
                if not text.strip():
                    continue  # Anthropic refuses empty text blocks
                block = {**block, "text": text}
        out.append(block)
    return out, found


def strip_agent_marker(body: MessagesRequest) -> tuple[MessagesRequest, str]:
    """Remove `<switchboard-agent>name</switchboard-agent>` from the system and the first user message.

    Returns the body (a shallow copy when something was removed, else the same dict) and the name.
    """
    name = ""
    new: MessagesRequest | None = None
    system = body.get("system")
    if isinstance(system, str) and "<switchboard-agent>" in system:
        match = _MARKER.search(system)
        if match:
            name = match.group(1).strip()
            new = {**body}
            rest = _MARKER.sub("", system)
            if rest.strip():
                new["system"] = rest
            else:
                del new["system"]
    elif isinstance(system, list):
        blocks, found = _strip_blocks(system)
        if found:
            name, new = found, {**body}
            new["system"] = blocks
    index = _first_user_index(body)
    if index is not None:
        message = body["messages"][index]
        content = message.get("content")
        found = ""
        if isinstance(content, str) and "<switchboard-agent>" in content:
            match = _MARKER.search(content)
            if match:
                found, content = match.group(1).strip(), _MARKER.sub("", content)
        elif isinstance(content, list):
            content, found = _strip_blocks(content)
        if found:
            name = name or found
            new = new or {**body}
            messages = list(body["messages"])
            messages[index] = {**message, "content": content}
            new["messages"] = messages
    return (new if new is not None else body), name


def session_of(body: MessagesRequest, headers: Mapping[str, str]) -> str:
    session = headers.get("x-claude-code-session-id", "")
    if session:
        return session
    user_id = _dict(body.get("metadata")).get("user_id")
    if isinstance(user_id, str) and user_id.startswith("{"):
        try:
            return _str(_dict(orjson.loads(user_id)).get("session_id"))
        except orjson.JSONDecodeError:
            return ""
    return ""


@dataclass(slots=True)
class Facts:
    """What the conditions look at. The token count is computed on first use only."""

    model: str
    tasks: frozenset[str]
    agent: str
    clients: tuple[str, ...]
    session: str
    body: MessagesRequest
    count_tokens: TokenCounter | None = None
    _tokens: int | None = None
    # Lower-cased copies, made once: conditions compare case-insensitively.
    model_lc: str = ""
    agent_lc: tuple[str, ...] = ()
    clients_lc: tuple[str, ...] = ()
    session_lc: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.model_lc = self.model.lower()
        self.agent_lc = (self.agent.lower(),) if self.agent else ()
        self.clients_lc = tuple(c.lower() for c in self.clients)
        self.session_lc = (self.session.lower(),) if self.session else ()

    @property
    def counted_tokens(self) -> int | None:
        return self._tokens

    def tokens(self) -> int:
        if self._tokens is None:
            self._tokens = self.count_tokens(self.body) if self.count_tokens else 0
        return self._tokens


def request_facts(
    body: MessagesRequest, headers: Mapping[str, str], *, count_tokens: TokenCounter | None = None
) -> Facts:
    """Agent: header, then an explicit marker (stripped), then Claude Code's own subagent prompts."""
    stripped, marker = strip_agent_marker(body)
    agent = headers.get(AGENT_HEADER, "").strip() or marker or claude_code_agent(body)
    clients = tuple(c for c in (headers.get(CLIENT_HEADER, ""), headers.get("user-agent", "")) if c)
    return Facts(
        model=str(body.get("model", "")),
        tasks=detect_tasks(body),
        agent=agent,
        clients=clients,
        session=session_of(body, headers),
        body=stripped,
        count_tokens=count_tokens,
    )

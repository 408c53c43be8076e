"""Recorded bodies, coerced to the shapes the pages read: whatever was recorded, a page shows it.

The record keeps what the client and the backend actually sent, and that can be anything JSON can
hold (a list where an object belongs, a number for content, a string for tool input). The pages read
these bodies through the helpers here, so an odd shape becomes something visible (an `unexpected`
block) instead of an exception. The raw sides of the exchange still show the bytes as recorded.
"""

from __future__ import annotations

from typing import Any

UNEXPECTED = "unexpected"  # the block type an odd value is shown as


def obj(value: Any) -> dict[str, Any]:
    """The value if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def content(value: Any) -> str | list[dict[str, Any]]:
    """Message content: a string, or a list of block objects (odd items become `unexpected` blocks)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        return [{"type": UNEXPECTED, "value": value}]
    return [b if isinstance(b, dict) else {"type": UNEXPECTED, "value": b} for b in value]


def blocks(value: Any) -> list[dict[str, Any]]:
    """Content as a list of blocks (a string is one text block; none or an empty string, no block)."""
    shaped = content(value)
    if isinstance(shaped, str):
        return [{"type": "text", "text": shaped}] if shaped else []
    return shaped


def messages(request: Any) -> list[dict[str, Any]]:
    """A request's messages, each a {"role": str, "content": str | [block]} object."""
    out = []
    for m in items(obj(request).get("messages")):
        if isinstance(m, dict):
            out.append({**m, "role": str(m.get("role", "?")), "content": content(m.get("content"))})
        else:
            out.append({"role": "?", "content": content([m])})
    return out


def request(value: Any) -> dict[str, Any]:
    """A Messages request with list-shaped messages and tools (other fields as recorded)."""
    req = obj(value)
    if not req:
        return {}
    tools = [t for t in items(req.get("tools")) if isinstance(t, dict)]
    return {**req, "messages": messages(req), "tools": tools}


def answer_blocks(response: Any) -> list[dict[str, Any]]:
    """The content blocks of a recorded Message (the client response)."""
    return blocks(obj(response).get("content"))


def text(value: Any) -> str:
    """A field meant to be text: None is empty, anything else its str()."""
    return "" if value is None else value if isinstance(value, str) else str(value)

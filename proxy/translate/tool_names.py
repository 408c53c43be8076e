"""Tool names over a backend's limits: a deterministic short name upstream, the original name back.

OpenAI-style backends accept `^[a-zA-Z0-9_-]{1,64}$`; MCP tools (`mcp__server__tool_name…`) often
exceed 64 characters or contain dots. The short name is a readable prefix plus a hash of the full
name, so the same tool gets the same upstream name on every turn (prompt caching keeps working).
"""

from __future__ import annotations

import hashlib
import re

OPENAI_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_UNSAFE_CHARS = re.compile(r"[^a-zA-Z0-9_-]")


def shorten(name: str, *, limit: int = 64, pattern: re.Pattern[str] = OPENAI_NAME) -> str:
    """The upstream name for `name`: itself when acceptable, else `<prefix>_<8 hex of sha256>`."""
    if pattern.fullmatch(name) and len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    prefix = _UNSAFE_CHARS.sub("_", name)[: limit - len(digest) - 1]
    return f"{prefix}_{digest}"


class ToolNameMap:
    """Per-request two-way map between the client's tool names and the names sent upstream."""

    __slots__ = ("_limit", "_pattern", "_to_client", "_to_upstream")

    def __init__(self, *, limit: int = 64, pattern: re.Pattern[str] = OPENAI_NAME) -> None:
        self._to_upstream: dict[str, str] = {}
        self._to_client: dict[str, str] = {}
        self._limit = limit
        self._pattern = pattern

    def upstream(self, name: str) -> str:
        """Register `name` (idempotent) and return the name the backend sees."""
        short = self._to_upstream.get(name)
        if short is None:
            short = shorten(name, limit=self._limit, pattern=self._pattern)
            self._to_upstream[name] = short
            self._to_client[short] = name
        return short

    def client(self, upstream_name: str) -> str:
        """The client's name for a name the backend used (unknown names pass unchanged)."""
        return self._to_client.get(upstream_name, upstream_name)

    def renamed(self) -> dict[str, str]:
        """upstream name -> original, only for the names that changed (for Translation.tool_names)."""
        return {short: name for short, name in self._to_client.items() if short != name}

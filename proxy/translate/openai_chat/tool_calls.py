"""Chat Completions' tool calls as their fragments arrive: the one buffer the stream keeps them in.

Parallel calls may interleave by `index`; Anthropic blocks cannot. The stream opens one call as a live
block and leaves the others here until the live one is done.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..types import JSONDict


@dataclass(slots=True)
class ToolCall:
    """One upstream tool call as its fragments arrive."""

    ordinal: int  # order of first appearance: block order and synthetic ids
    upstream_id: str | None = None
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    state: Literal["pending", "live", "closed"] = "pending"
    thought_signature: str = ""  # Gemini's, on the call's first fragment (signatures.py)

    @property
    def text(self) -> str:
        return "".join(self.arguments)


class ToolCallBuffer:
    """Every call of one response, in order of first appearance."""

    __slots__ = ("_by_index", "calls")

    def __init__(self) -> None:
        self.calls: list[ToolCall] = []
        self._by_index: dict[int, ToolCall] = {}

    def __bool__(self) -> bool:
        return bool(self.calls)

    def call_for(self, fragment: JSONDict) -> ToolCall:
        """The call a fragment belongs to: by `index`, or a new call when a different `id` shows up."""
        index = fragment.get("index")
        upstream_id = fragment.get("id") or None
        call: ToolCall | None = (
            self._by_index.get(index) if isinstance(index, int) else (self.calls[-1] if self.calls else None)
        )
        if call is None or (upstream_id and call.upstream_id and upstream_id != call.upstream_id):
            # Some backends reuse index 0 (or omit it) for every parallel call; the id tells them apart.
            call = ToolCall(ordinal=len(self.calls))
            self.calls.append(call)
            if isinstance(index, int):
                self._by_index[index] = call
        if upstream_id and not call.upstream_id:
            call.upstream_id = str(upstream_id)
        return call

    def next_waiting(self, *, finished: bool) -> ToolCall | None:
        """The first call not yet opened that can be: it has a name (any, once the choice finished)."""
        return next((c for c in self.calls if c.state == "pending" and (c.name or finished)), None)

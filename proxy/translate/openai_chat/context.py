"""What one request's translation accumulates while it walks the request: changes, tool names, counts."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..tool_names import ToolNameMap
from ..types import Change, JSONDict, Target
from .quirks import Quirks, quirks_of


@dataclass(slots=True)
class Context:
    """What one translation accumulates while it walks the request."""

    target: Target
    quirks: Quirks
    names: ToolNameMap = field(default_factory=ToolNameMap)
    changes: list[Change] = field(default_factory=list)
    cache_controls: int = 0
    reasoning_dropped: int = 0
    # Thinking another backend minted (Anthropic, another provider or dialect): who -> blocks dropped.
    foreign_reasoning: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, target: Target) -> Context:
        return cls(target=target, quirks=quirks_of(target))

    def see(self, block: JSONDict) -> None:
        """Note a block's cache_control: it is never copied, only counted."""
        if "cache_control" in block:
            self.cache_controls += 1

    def drop(self, detail: str) -> None:
        self.changes.append(Change("field_dropped", detail))

    def drop_content(self, detail: str) -> None:
        """A block Anthropic knows that has no counterpart here: a real loss of what the model sees."""
        self.changes.append(Change("content_dropped", detail))

"""The registry: one entry per wire dialect. A new backend dialect adds one line here."""

from __future__ import annotations

from . import anthropic, openai_chat
from .base import Dialect

DIALECTS: dict[str, Dialect] = {
    "openai": openai_chat.DIALECT,
    "anthropic": anthropic.DIALECT,
}


def dialect_names() -> tuple[str, ...]:
    """The registered dialects' names, read when called (so everything outside translate/ sees one added)."""
    return tuple(DIALECTS)

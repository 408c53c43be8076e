"""The registry: one entry per wire dialect. A new backend dialect adds one line here."""

from __future__ import annotations

from . import anthropic, gemini, openai_chat, openai_responses
from .base import Dialect

DIALECTS: dict[str, Dialect] = {
    "openai": openai_chat.DIALECT,
    "anthropic": anthropic.DIALECT,
    "gemini": gemini.DIALECT,
    "openai_responses": openai_responses.DIALECT,
}


def dialect_names() -> tuple[str, ...]:
    """The registered dialects' names, read when called (so everything outside translate/ sees one added)."""
    return tuple(DIALECTS)

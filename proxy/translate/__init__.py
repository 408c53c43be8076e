"""The pure translation core: Anthropic Messages <-> each backend's wire dialect.

Imports only the stdlib, typing, orjson (fast JSON) and bpe-openai (offline token counts):
no Django, no httpx, no clock, no randomness. Ids and keys are passed in.
"""

from __future__ import annotations

from . import anthropic, openai_chat
from .base import Dialect

DIALECTS: dict[str, Dialect] = {
    "openai": openai_chat.DIALECT,
    "anthropic": anthropic.DIALECT,
}


def get_dialect(name: str) -> Dialect:
    return DIALECTS[name]

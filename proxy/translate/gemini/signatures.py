"""Thought signatures carried through the client inside thinking blocks' signatures.

Gemini attaches an opaque `thoughtSignature` to a part of its reply (a function call, a text, a thought)
and wants it back on exactly that part. An Anthropic client keeps only a thinking block's `signature`,
and a tool_use block has none, so every Gemini signature rides in a thinking block next to the part it
belongs to, minted with `reasoning.mint` (dialect and provider), the payload saying which part:

    n.<signature>   the next part after this block (a function call, or a text)
    p.<signature>   the text part just before this block (a text's signature arrives after its text)
    t.<signature>   this thought part itself (the block's text is the thought's text)
    x.-             reasoning Gemini did not sign: ours, so never sent to another backend; not sent back

Claude Code echoes its assistant turns with thinking blocks as they came, so the request side puts each
signature back where it came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .. import reasoning

DIALECT = "gemini"
Where = Literal["n", "p", "t", "x"]
# Google's documented stand-in for a function call Gemini did not make (another model's, or one whose
# signature was lost): https://ai.google.dev/gemini-api/docs/thought-signatures#faqs. This one is
# accepted by both the Gemini API and Vertex AI.
PLACEHOLDER = "skip_thought_signature_validator"


@dataclass(frozen=True, slots=True)
class Carried:
    where: Where
    signature: str


def carry(*, provider: str, where: Where, signature: str) -> str:
    """The thinking-block signature that carries `signature` for this provider."""
    return reasoning.mint(dialect=DIALECT, provider=provider, payload=f"{where}.{signature}")


def carried(block_signature: object, *, provider: str) -> Carried | None:
    """The Gemini signature a thinking block carries, when this provider's Gemini dialect minted it."""
    payload = reasoning.minted_by(block_signature, dialect=DIALECT, provider=provider)
    if payload is None:
        return None
    where, _, signature = payload.partition(".")
    if where not in ("n", "p", "t", "x") or not signature:
        return None
    return Carried(where=where, signature=signature)  # type: ignore[arg-type]

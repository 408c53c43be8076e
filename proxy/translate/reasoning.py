"""Opaque reasoning tagged with who minted it, so it goes back only to a backend that can read it.

Backends hand out reasoning the client must send back untouched on the next turn: Anthropic signs
thinking blocks, Gemini attaches thought signatures, the Responses API returns encrypted reasoning items,
DeepSeek wants its `reasoning_content` replayed. An Anthropic client keeps only a thinking block's
`signature`, so everything a translated dialect needs back rides there, tagged:

    sb1.<dialect>.<provider, base64url>.<payload>

A request side replays a block only when the tag names its own dialect and provider; anything else
(another backend's, or Anthropic's own, untagged) is stripped or converted by the receiving dialect, and
that is recorded as a change. Sessions that switch backend mid-way (`/model`, fallbacks, subagents on
another route) then never send one vendor's opaque bytes to another.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from .types import Change

TAG = "sb1"


@dataclass(frozen=True, slots=True)
class Minted:
    dialect: str
    provider: str
    payload: str


def mint(*, dialect: str, provider: str, payload: str) -> str:
    """The signature to put on a thinking block that carries `payload` for (dialect, provider)."""
    name = base64.urlsafe_b64encode(provider.encode()).decode().rstrip("=")
    return f"{TAG}.{dialect}.{name}.{payload}"


def read(signature: object) -> Minted | None:
    """Who minted a signature we tagged; None for anything else (Anthropic's own, a client's, garbage)."""
    if not isinstance(signature, str) or not signature.startswith(TAG + "."):
        return None
    parts = signature.split(".", 3)
    if len(parts) != 4 or not parts[1]:
        return None
    try:
        padded = parts[2] + "=" * (-len(parts[2]) % 4)
        provider = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return Minted(dialect=parts[1], provider=provider, payload=parts[3])


def minted_by(signature: object, *, dialect: str, provider: str) -> str | None:
    """The payload when (dialect, provider) minted this signature, else None."""
    minted = read(signature)
    if minted is None or minted.dialect != dialect or minted.provider != provider:
        return None
    return minted.payload


# What every dialect records when it leaves out reasoning another backend minted (one kind, one wording,
# so the exchange view reads the same whichever backend a session switched to).
FOREIGN_DROPPED = "foreign_reasoning_dropped"
# The openai dialect's marks from before these tags (no provider named in them).
LEGACY_OPENAI_PREFIX = "switchboard.openai."


def minter(signature: object) -> str:
    """Who minted a thinking block's signature, in words: "<dialect> provider '<name>'", or Anthropic."""
    found = read(signature)
    if found is not None:
        return f"{found.dialect} provider '{found.provider}'"
    if isinstance(signature, str) and signature.startswith(LEGACY_OPENAI_PREFIX):
        return "the openai dialect (before tagged signatures)"
    return "Anthropic" if signature else "a client (no signature)"


def foreign_dropped(counts: dict[str, int]) -> list[Change]:
    """The recorded changes for foreign reasoning left out: {minter(...): blocks} -> one change each."""
    return [Change(FOREIGN_DROPPED, f"{n} thinking block(s) minted by {who}") for who, n in counts.items()]

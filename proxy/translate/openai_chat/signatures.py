"""The opaque reasoning a Chat Completions backend needs back, carried in thinking blocks' signatures.

Two kinds ride in a thinking block's signature, tagged by `reasoning.mint` with this dialect and the
provider that produced them, so they go back only to that provider:

- the field a reasoning text came from (`reasoning_content`, DeepSeek's and Kimi's, or `reasoning`,
  OpenRouter's): the request side replays the text there when the target wants it (`replay_reasoning`);
- a tool call's Gemini thought signature (`extra_content.google.thought_signature`, Gemini's
  OpenAI-compatible endpoint): an empty thinking block before the tool_use carries it, and the next turn
  puts it back on that call. https://ai.google.dev/gemini-api/docs/thought-signatures

Anything else (Anthropic's own signatures, another provider's or dialect's tags) is foreign: dropped by
the request side and recorded. Pure.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson

from .. import reasoning
from ..types import JSONDict, Target

DIALECT = "openai"

# Where backends put the model's reasoning text, in order of preference (DeepSeek, then OpenRouter).
REASONING_FIELDS = ("reasoning_content", "reasoning")

# Sessions recorded before tagged signatures marked our thinking blocks `switchboard.openai.<field>`, with
# no provider named: those are still read as ours (replayed as before) so an ongoing session keeps working.
LEGACY_PREFIX = reasoning.LEGACY_OPENAI_PREFIX

_THOUGHT = "ts."  # payload prefix of a tool call's thought signature: ts.<b64url of {"id", "sig"}>
# Google's documented value for a function call another model made (no signature of Gemini's own):
# https://ai.google.dev/gemini-api/docs/thought-signatures#faqs
THOUGHT_PLACEHOLDER = "skip_thought_signature_validator"
_GEMINI_HOSTS = ("generativelanguage.googleapis.com", "aiplatform.googleapis.com")


@dataclass(frozen=True, slots=True)
class Own:
    """A thinking block this provider minted: the reasoning field, or one tool call's thought signature."""

    field: str = ""
    call_id: str = ""  # the client's id of the tool_use the thought signature belongs to
    thought_signature: str = ""


def reasoning_signature(field: str, *, provider: str) -> str:
    """The signature of a thinking block made from the backend's `field`."""
    return reasoning.mint(dialect=DIALECT, provider=provider, payload=field)


def thought_signature_block(call_id: str, thought_signature: str, *, provider: str) -> JSONDict:
    """An empty thinking block carrying a tool call's thought signature to the next turn."""
    packed = orjson.dumps({"id": call_id, "sig": thought_signature})
    payload = _THOUGHT + base64.urlsafe_b64encode(packed).decode().rstrip("=")
    signature = reasoning.mint(dialect=DIALECT, provider=provider, payload=payload)
    return {"type": "thinking", "thinking": "", "signature": signature}


def read_own(signature: object, *, provider: str) -> Own | None:
    """What a thinking block's signature carries for `provider`; None when someone else minted it."""
    if isinstance(signature, str) and signature.startswith(LEGACY_PREFIX):
        named = signature[len(LEGACY_PREFIX) :]
        return Own(field=named if named in REASONING_FIELDS else REASONING_FIELDS[0])
    payload = reasoning.minted_by(signature, dialect=DIALECT, provider=provider)
    if payload is None:
        return None
    if payload.startswith(_THOUGHT):
        try:
            raw = payload[len(_THOUGHT) :]
            found = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        except (binascii.Error, ValueError):
            return None
        if not isinstance(found, dict) or not all(isinstance(found.get(k), str) for k in ("id", "sig")):
            return None
        return Own(call_id=found["id"], thought_signature=found["sig"])
    return Own(field=payload if payload in REASONING_FIELDS else REASONING_FIELDS[0])


def tool_call_thought_signature(call: JSONDict) -> str:
    """Gemini's thought signature on a Chat Completions tool call (or one of its stream fragments)."""
    extra = call.get("extra_content")
    google = extra.get("google") if isinstance(extra, dict) else None
    value = google.get("thought_signature") if isinstance(google, dict) else None
    return value if isinstance(value, str) and value else ""


def with_thought_signature(call: JSONDict, thought_signature: str) -> JSONDict:
    """A request's tool call carrying its thought signature where Gemini's endpoint reads it."""
    return {**call, "extra_content": {"google": {"thought_signature": thought_signature}}}


def wants_thought_signatures(target: Target) -> bool:
    """Gemini's OpenAI-compatible endpoint (or a target marked `thought_signatures`) checks them."""
    if "thought_signatures" in target.options:
        return True
    host = (urlsplit(target.base_url).hostname or "").lower()
    return host.endswith(_GEMINI_HOSTS)

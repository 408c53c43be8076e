"""Ids the client sees: msg_… and toolu_…, and the exact round trip of backends' tool-call ids.

A backend's tool-call id may not be a valid Anthropic id (Kimi sends `functions.Bash:0`). The id we
give the client encodes the original reversibly, so the next turn restores it with no stored state.
"""

from __future__ import annotations

import base64
import hashlib
import re

_SAFE = re.compile(r"[A-Za-z0-9_-]+")
_ENCODED = "toolu_sb64_"  # original id was not id-safe: base64url of its UTF-8 follows
_PREFIXED = "toolu_sb_"  # original id was id-safe but did not start with toolu_


def tool_id_to_client(upstream_id: str) -> str:
    """A backend's tool-call id -> a valid `toolu_…` id that maps back exactly."""
    if upstream_id.startswith("toolu_") and _SAFE.fullmatch(upstream_id):
        return upstream_id
    if _SAFE.fullmatch(upstream_id):
        return _PREFIXED + upstream_id
    encoded = base64.urlsafe_b64encode(upstream_id.encode()).decode().rstrip("=")
    return _ENCODED + encoded


def tool_id_to_upstream(client_id: str) -> str:
    """Inverse of tool_id_to_client; ids we did not make (real Anthropic ids) pass unchanged."""
    if client_id.startswith(_ENCODED):
        encoded = client_id[len(_ENCODED) :]
        try:
            return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        except (ValueError, UnicodeDecodeError):
            return client_id
    if client_id.startswith(_PREFIXED):
        return client_id[len(_PREFIXED) :]
    return client_id


def synthetic_tool_id(message_id: str, index: int) -> str:
    """A deterministic `toolu_…` id for a tool call the backend sent without one."""
    digest = hashlib.sha256(f"{message_id}:{index}".encode()).hexdigest()[:24]
    return f"toolu_{digest}"

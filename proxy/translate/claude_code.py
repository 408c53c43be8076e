"""What Claude Code puts in a request that only Anthropic's own API uses.

Claude Code opens its system prompt with an attribution line for Anthropic's billing,
`x-anthropic-billing-header: cc_version=<v>.<hash>; cc_entrypoint=…;` (newer builds add `cch=<hash>;`).
The hash differs between conversations, and in newer builds with every request. At the head of the
prompt it makes every request unique from its first token, so a backend that caches by prefix (OpenAI,
DeepSeek, vLLM, Ollama, most Anthropic-compatible hosts) never reuses the ~10k-token system prompt and
tools; to any model but Anthropic's it means nothing. Pure: no Django.
"""

from __future__ import annotations

from typing import Any

import orjson

BILLING_HEADER = "x-anthropic-billing-header:"


def without_billing_header(system: Any) -> tuple[Any, list[str]]:
    """The system prompt (a string or a list of blocks) without the billing line, and the lines dropped.

    Only a text block, or a string's first line, that starts with the header counts: a prompt that
    merely mentions it is left alone. Anything else is returned as it is, for the caller to validate."""
    if isinstance(system, str):
        if not system.startswith(BILLING_HEADER):
            return system, []
        header, _, rest = system.partition("\n")
        return rest, [header.strip()]
    if not isinstance(system, list):
        return system, []
    kept: list[Any] = []
    dropped: list[str] = []
    for block in system:
        text = block.get("text") if isinstance(block, dict) and block.get("type") == "text" else None
        if isinstance(text, str) and text.startswith(BILLING_HEADER):
            dropped.append(text.strip())
        else:
            kept.append(block)
    return (kept, dropped) if dropped else (system, [])


# How Claude Code words a tool call it refused to run because of the call itself (its binaries,
# 2.1.197-2.1.332: `<tool_use_error>InputValidationError: …` for arguments that break the schema or are
# not JSON, `<tool_use_error>Error: No such tool available: X` for a tool it does not have). Any other
# `is_error` result is the tool's own outcome (a missing file, a failing command, a denied permission).
_CALL_FAILURE_PREFIXES = ("InputValidationError", "Error: No such tool available")
_ERROR_TAG = "<tool_use_error>"


def is_call_failure(result_text: str) -> bool:
    """True when an `is_error` tool_result's text is the client rejecting the model's call (bad
    arguments, unknown tool), False when it is what the tool itself reported."""
    text = result_text.lstrip()
    # Only inside Claude Code's own tag: a tool's output may start with anything.
    return text.startswith(_ERROR_TAG) and text[len(_ERROR_TAG) :].lstrip().startswith(_CALL_FAILURE_PREFIXES)


def tool_result_head(content: Any) -> str:
    """Where a tool_result's text starts (a string, or its first text block): enough for
    is_call_failure, without joining a long output on the hot path."""
    if isinstance(content, str):
        return content
    for block in content if isinstance(content, list) else ():
        if isinstance(block, dict) and block.get("type") == "text":
            return str(block.get("text", ""))
    return ""


def session_id(body: Any, headers: dict[str, str]) -> str:
    """Claude Code's session: its header, else the session_id inside metadata.user_id (a JSON string).

    `headers` has lower-case names."""
    if headers.get("x-claude-code-session-id"):
        return headers["x-claude-code-session-id"][:100]
    metadata = body.get("metadata") if isinstance(body, dict) else None
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    if isinstance(user_id, str) and user_id.startswith("{"):
        try:
            parsed = orjson.loads(user_id)
        except orjson.JSONDecodeError:
            return ""
        found = parsed.get("session_id") if isinstance(parsed, dict) else None
        if isinstance(found, str):
            return found[:100]
    return ""

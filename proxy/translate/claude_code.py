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

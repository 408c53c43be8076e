"""Which translation changes lose something, in one place.

Every exchange Claude Code sends through a translated route carries routine adaptations (its billing
line, `cache_control`, `context_management`): listed on the exchange, but not worth a badge. A loss is
content the backend never saw (a dropped block, image or server tool, an output format it cannot
take): that is what the feed's badge counts. Rows recorded before the `loss` flag existed are
classified here by kind (and, for the old catch-all `field_dropped`, by what its detail names). Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# Adaptations that keep every piece of content the client sent (or that only Anthropic reads).
ROUTINE_KINDS = frozenset(
    {
        "billing_header_dropped",  # Anthropic's billing attribution: meaningless to any other backend
        "cache_control_stripped",  # Anthropic's cache breakpoints; other backends cache by prefix
        "model_mapped",
        "max_tokens_lowered",  # to the model's real output limit
        "max_tokens_raised",  # to a backend's minimum (the Responses API refuses under 16)
        "thinking_budget_lowered",
        "thinking_disabled",  # max_tokens left no room for it: a setting, not content
        "thinking_mapped",  # thinking -> reasoning_effort
        "thinking_dropped",  # the model has no reasoning option: a setting, not content
        # Earlier turns' thinking: Anthropic itself does not give those to the model outside a tool loop.
        "reasoning_dropped",
        # Another backend's opaque reasoning (reasoning.py): only its maker can read it back.
        "foreign_reasoning_dropped",
        "tool_choice_emulated",  # a server without (full) tool_choice: by name or as an instruction
        "tool_renamed",  # renamed back in the answer
        "tool_result_image_moved",  # moved to a user message, still sent
        "tool_reference_converted",  # sent as text
        "document_converted",  # a PDF/document sent as its text
        "tool_result_file_moved",  # a file a tool read goes in the next user message (still sent)
        "defer_loading_ignored",  # the tool is sent up front instead
        "response_format",  # output_config.format mapped to response_format
        "stop_sequences_local",  # matched by the proxy instead
        "param_dropped",  # a sampling parameter the model refuses (temperature, top_k)
        "usage_estimated",  # a note on the record, not a change to the request
        # Tool-call healing (issue #15): the backend's own call, repaired or retried before the client saw
        # it (its raw arguments are on the change); an unrepairable one goes out as it was written.
        "tool_call_repaired",
        "tool_call_retried",
        "tool_call_unrepairable",
        "reasoning_placeholder",  # a tool call Gemini did not make sent with Google's placeholder signature
        "schema_adapted",  # a tool schema rewritten into the form the backend reads, meaning kept
        "system_message_converted",  # a mid-conversation system message sent as a user turn
        "server_tool_mapped",  # web search/fetch run by the backend's own grounding tool
    }
)
# Content the backend never saw.
LOSS_KINDS = frozenset({"content_dropped"})
# `field_dropped` names a field: the request-level ones (context_management, metadata.*, tool_choice
# without tools, a tool's extra keys) are routine; these detail markers name content.
_LOST_CONTENT_MARKERS = (": type ", ": image source", ": server tool")


def is_loss(kind: str, detail: str = "") -> bool:
    """True when the change dropped content: a kind in LOSS_KINDS, or a `field_dropped` naming content.

    A kind in neither set (one added later without classifying it) counts as a loss: a badge too many
    is noticed and fixed, a loss hidden among routine changes is not."""
    if kind in LOSS_KINDS:
        return True
    if kind == "field_dropped":
        return any(marker in detail for marker in _LOST_CONTENT_MARKERS)
    return kind not in ROUTINE_KINDS


def change_is_loss(change: Any) -> bool:
    """A recorded change dict: its `loss` flag, or (rows from before the flag) classified by kind."""
    if not isinstance(change, dict):
        return False
    flag = change.get("loss")
    if isinstance(flag, bool):
        return flag
    return is_loss(str(change.get("kind", "")), str(change.get("detail", "")))


def losses(changes: Iterable[Any] | None) -> list[dict[str, Any]]:
    """The changes in a recorded list that lost content."""
    return [c for c in changes or () if change_is_loss(c)]

"""Display names for GET /v1/models: which Claude model an id is, and where this proxy sends it.

Pure: no Django, no IO. Claude Code's `/model` picker shows `display_name`, so it says the route:
"Sonnet 5 -> deepseek-chat" (Anthropic's own list says "Claude Sonnet 5").
"""

from __future__ import annotations

import re

from proxy.translate.types import Target

# claude-<family>-<major>[-<minor>][-<date>] (current ids) and claude-<major>[-<minor>]-<family>[-<date>]
# (the 3.x ids); anything else (an alias a user made, "claude-fast") is shown as it is.
_CURRENT = re.compile(r"^claude-([a-z]+)-(\d+)(?:-(\d{1,2}))?(?:-\d{8})?$")
_OLD = re.compile(r"^claude-(\d+)(?:-(\d{1,2}))?-([a-z]+)(?:-\d{8})?$")


def claude_name(model_id: str) -> str:
    """'claude-sonnet-5' -> 'Sonnet 5', 'claude-haiku-4-5-20251001' -> 'Haiku 4.5'; other ids unchanged."""
    if match := _CURRENT.match(model_id):
        family, major, minor = match.groups()
    elif match := _OLD.match(model_id):
        major, minor, family = match.groups()
    else:
        return model_id
    return f"{family.capitalize()} {major}{'.' + minor if minor else ''}"


def display_name(model_id: str, target: Target | None) -> str:
    """'Sonnet 5 -> deepseek-chat'; a passthrough that keeps the model names its provider instead."""
    if target is None:
        return claude_name(model_id)
    return f"{claude_name(model_id)} -> {target.model or target.provider}"

"""Reading an Anthropic Messages request the same way in every translated dialect.

The checks and small readers that do not depend on the backend: the request's required fields, which
top-level and tool keys a translation maps, system text, content blocks, numbers, client tools and
image sources. Each dialect decides what to build from them. Pure.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from .base import TranslationError
from .types import Change, JSONDict, MessagesRequest, Target

# Top-level fields the translated dialects map; anything else (context_management, safeguards,
# container, mcp_servers, service_tier, …) is Anthropic-only or unknown: dropped and listed, never sent.
KNOWN_FIELDS = frozenset(
    {
        "model", "messages", "system", "max_tokens", "stream", "tools", "tool_choice", "thinking",
        "output_config", "metadata", "stop_sequences", "temperature", "top_p", "top_k", "cache_control",
    }
)  # fmt: skip
TOOL_KEYS = frozenset(
    {"name", "description", "input_schema", "cache_control", "type", "defer_loading", "strict"}
)


class Notes(Protocol):
    """What a dialect's translation context notes while reading (cache_control seen, fields dropped)."""

    def see(self, block: JSONDict) -> None: ...

    def drop(self, detail: str) -> None: ...


def required(request: MessagesRequest) -> tuple[str, list[Any]]:
    """(model, messages) of a request, or the 400 naming what is missing."""
    if not isinstance(request, dict):
        raise TranslationError("body: must be a JSON object")
    model = request.get("model")
    if not isinstance(model, str) or not model:
        raise TranslationError("model: required")
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        raise TranslationError("messages: must be a non-empty list")
    return model, messages


def text(block: JSONDict, path: str) -> str:
    found = block.get("text")
    if not isinstance(found, str):
        raise TranslationError(f"{path}.text: must be a string")
    return found


def text_of(content: Any, *, path: str, notes: Notes) -> str:
    """A system prompt (string or text blocks) as one string: the form every backend accepts."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise TranslationError(f"{path}: must be a string or a list of text blocks")
    texts: list[str] = []
    for i, block in enumerate(content):
        if not isinstance(block, dict):
            raise TranslationError(f"{path}.{i}: must be an object")
        notes.see(block)
        if block.get("type") != "text":
            notes.drop(f"{path}.{i}: type {block.get('type')}")
            continue
        texts.append(text(block, f"{path}.{i}"))
    return "\n\n".join(t for t in texts if t)


def blocks(content: Any, path: str) -> list[JSONDict]:
    """Message content as a list of blocks (a string is one text block)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise TranslationError(f"{path}.content: must be a string or a list of blocks")
    for i, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise TranslationError(f"{path}.content.{i}: must be an object with a type")
    return content


def number(request: MessagesRequest, key: str) -> float | None:
    value = request.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TranslationError(f"{key}: must be a number")
    return value


@dataclass(frozen=True, slots=True)
class ToolDefinition:
    """A tool the client runs itself: the ones a backend's function calling can offer."""

    path: str  # tools.N
    tool: JSONDict
    name: str
    schema: JSONDict


def client_tools(tools: Any, notes: Notes) -> Iterator[ToolDefinition]:
    """The request's client tools, validated; server tools (web_search_…, code_execution…) are run by
    Anthropic and their results come in Anthropic's own blocks, which no other backend makes: dropped."""
    if tools is None:
        return
    if not isinstance(tools, list):
        raise TranslationError("tools: must be a list")
    for i, tool in enumerate(tools):
        path = f"tools.{i}"
        if not isinstance(tool, dict):
            raise TranslationError(f"{path}: must be an object")
        notes.see(tool)
        if "input_schema" not in tool and tool.get("type") not in (None, "custom"):
            notes.drop(f"{path}: server tool {tool.get('type')} ({tool.get('name')})")
            continue
        name, schema = tool.get("name"), tool.get("input_schema")
        if not isinstance(name, str) or not name:
            raise TranslationError(f"{path}.name: required")
        if not isinstance(schema, dict):
            raise TranslationError(f"{path}.input_schema: must be an object")
        for key in tool:
            if key not in TOOL_KEYS:
                notes.drop(f"{path}.{key}")
        yield ToolDefinition(path=path, tool=tool, name=name, schema=schema)


def image_url(block: JSONDict, *, path: str) -> tuple[str | None, str]:
    """(URL or data: URL of an image block, its source type); None for a source no URL can carry
    (an Anthropic Files API id), for the caller to drop and record."""
    source = block.get("source")
    if not isinstance(source, dict):
        raise TranslationError(f"{path}.source: required")
    kind = str(source.get("type"))
    match kind:
        case "base64":
            media_type, data = source.get("media_type"), source.get("data")
            if not isinstance(media_type, str) or not isinstance(data, str):
                raise TranslationError(f"{path}.source: media_type and data required")
            return f"data:{media_type};base64,{data}", kind
        case "url":
            url = source.get("url")
            if not isinstance(url, str):
                raise TranslationError(f"{path}.source.url: must be a string")
            return url, kind
        case _:
            return None, kind


def max_tokens(value: Any, *, target: Target, overrides: JSONDict, changes: list[Change]) -> int:
    """The request's max_tokens, lowered to the model's known output limit or the route's ceiling (listed).

    Only a known limit lowers it: the client derives its own budget from the model it thinks it talks to."""
    if value is None:
        raise TranslationError("max_tokens: required")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TranslationError("max_tokens: must be a positive integer")
    limits: list[tuple[int, str]] = []
    if target.max_output_tokens is not None:
        limits.append((target.max_output_tokens, "model output limit"))
    ceiling = overrides.get("max_tokens")
    if isinstance(ceiling, int) and not isinstance(ceiling, bool) and ceiling > 0:
        limits.append((ceiling, "route override"))
    if limits:
        limit, reason = min(limits)
        if limit < value:
            changes.append(Change("max_tokens_lowered", f"{value} -> {limit} ({reason})"))
            return limit
    return value

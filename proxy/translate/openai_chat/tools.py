"""Anthropic tools and tool_choice -> Chat Completions functions."""

from __future__ import annotations

from typing import Any

from ..base import TranslationError
from ..types import Change, JSONDict
from .context import Context

_TOOL_KEYS = frozenset(
    {"name", "description", "input_schema", "cache_control", "type", "defer_loading", "strict"}
)


def tool_definitions(tools: Any, ctx: Context) -> list[JSONDict]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise TranslationError("tools: must be a list")
    out: list[JSONDict] = []
    for i, tool in enumerate(tools):
        path = f"tools.{i}"
        if not isinstance(tool, dict):
            raise TranslationError(f"{path}: must be an object")
        ctx.see(tool)
        if "input_schema" not in tool and tool.get("type") not in (None, "custom"):
            # A server tool (web_search_20250305, code_execution…): Anthropic runs it, no backend here can.
            ctx.drop(f"{path}: server tool {tool.get('type')} ({tool.get('name')})")
            continue
        name, schema = tool.get("name"), tool.get("input_schema")
        if not isinstance(name, str) or not name:
            raise TranslationError(f"{path}.name: required")
        if not isinstance(schema, dict):
            raise TranslationError(f"{path}.input_schema: must be an object")
        function: JSONDict = {"name": ctx.names.upstream(name)}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        function["parameters"] = schema  # unchanged: $schema and additionalProperties included
        if isinstance(tool.get("strict"), bool):  # structured outputs: the backend holds to the schema
            function["strict"] = tool["strict"]
        out.append({"type": "function", "function": function})
        if tool.get("defer_loading"):
            # Tool search has no Chat Completions equivalent: the tool is simply sent up front.
            ctx.changes.append(Change("defer_loading_ignored", name))
        for key in tool:
            if key not in _TOOL_KEYS:
                ctx.drop(f"{path}.{key}")
    return out


def tool_choice(choice: Any, *, has_tools: bool, ctx: Context) -> JSONDict:
    if choice is None:
        return {}
    if not isinstance(choice, dict):
        raise TranslationError("tool_choice: must be an object")
    if not has_tools:  # servers reject tool_choice without tools
        ctx.drop("tool_choice: no tools sent")
        return {}
    out: JSONDict = {}
    match choice.get("type"):
        case "auto":
            out["tool_choice"] = "auto"
        case "any":
            out["tool_choice"] = "required"
        case "tool":
            name = choice.get("name")
            if not isinstance(name, str) or not name:
                raise TranslationError("tool_choice.name: required")
            out["tool_choice"] = {"type": "function", "function": {"name": ctx.names.upstream(name)}}
        case "none":
            return {"tool_choice": "none"}
        case other:
            raise TranslationError(f"tool_choice.type: unknown {other!r}")
    if choice.get("disable_parallel_tool_use") is True:
        out["parallel_tool_calls"] = False
    return out

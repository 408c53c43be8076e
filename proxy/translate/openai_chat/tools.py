"""Anthropic tools and tool_choice -> Chat Completions functions."""

from __future__ import annotations

from typing import Any

from .. import messages_request as read
from ..base import TranslationError
from ..types import Change, JSONDict
from .context import Context


def tool_definitions(tools: Any, ctx: Context) -> list[JSONDict]:
    out: list[JSONDict] = []
    for found in read.client_tools(tools, ctx):
        function: JSONDict = {"name": ctx.names.upstream(found.name)}
        if isinstance(found.tool.get("description"), str):
            function["description"] = found.tool["description"]
        function["parameters"] = found.schema  # unchanged: $schema and additionalProperties included
        if isinstance(found.tool.get("strict"), bool):  # structured outputs: the backend holds to the schema
            function["strict"] = found.tool["strict"]
        out.append({"type": "function", "function": function})
        if found.tool.get("defer_loading"):
            # Tool search has no Chat Completions equivalent: the tool is simply sent up front.
            ctx.changes.append(Change("defer_loading_ignored", found.name))
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

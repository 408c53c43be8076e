"""Anthropic messages -> Gemini `contents` (role user / model, each a list of parts).

Tool calls become `functionCall` parts and tool results `functionResponse` parts, matched by name and in
the calls' order (Gemini pairs them that way; the call's id goes along when Gemini gave one). Thinking
blocks that carry a Gemini thought signature put it back on its part (signatures.py); a function call
Gemini did not make gets Google's placeholder where a Gemini 3 model checks for one.
Wire format: https://ai.google.dev/api/caching#Content (googleapis/python-genai `types.Part`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .. import messages_request as read
from ..base import TranslationError
from ..ids import tool_id_to_upstream
from ..reasoning import minter
from ..tool_names import ToolNameMap
from ..types import Change, JSONDict, Target
from . import models
from .signatures import PLACEHOLDER, carried

# Gemini's function names: a letter or underscore first, then letters, digits, _ . - up to 64.
GEMINI_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_.-]{0,63}")


@dataclass(slots=True)
class Context:
    """What one translation accumulates while it walks the request."""

    target: Target
    model: str
    names: ToolNameMap = field(default_factory=lambda: ToolNameMap(pattern=GEMINI_NAME))
    changes: list[Change] = field(default_factory=list)
    cache_controls: int = 0
    # Thinking another backend minted: reasoning.minter(...) -> blocks dropped (reasoning.foreign_dropped).
    foreign_reasoning: dict[str, int] = field(default_factory=dict)
    placeholders: int = 0

    def see(self, block: JSONDict) -> None:
        if "cache_control" in block:
            self.cache_controls += 1

    def drop(self, detail: str) -> None:
        self.changes.append(Change("field_dropped", detail))

    def drop_content(self, detail: str) -> None:
        self.changes.append(Change("content_dropped", detail))


@dataclass(slots=True)
class _Call:
    name: str  # the upstream name
    upstream_id: str | None  # Gemini's own id, when it gave one


def build_contents(messages: list[Any], ctx: Context) -> list[JSONDict]:
    contents: list[JSONDict] = []
    calls: dict[str, _Call] = {}  # the last model turn's calls awaiting results, by client id
    order: list[str] = []
    for i, message in enumerate(messages):
        path = f"messages.{i}"
        if not isinstance(message, dict):
            raise TranslationError(f"{path}: must be an object")
        role = message.get("role")
        if role == "system":  # mid-conversation system message: the model reads it as the user's
            text = read.text_of(message.get("content"), path=f"{path}.content", notes=ctx)
            if text:
                contents.append({"role": "user", "parts": [{"text": text}]})
                ctx.changes.append(Change("system_message_converted", f"{path}: as a user turn"))
            continue
        blocks = read.blocks(message.get("content"), path)
        if role == "user":
            parts = _user_parts(blocks, path=path, calls=calls, order=order, ctx=ctx)
            calls, order = {}, []
        elif role == "assistant":
            _unanswered(calls)
            parts, calls, order = _model_parts(blocks, path=path, ctx=ctx)
        else:
            raise TranslationError(f"{path}.role: must be 'user', 'assistant' or 'system'")
        if parts:
            contents.append({"role": "user" if role == "user" else "model", "parts": parts})
    _unanswered(calls)
    return contents


def _unanswered(calls: dict[str, _Call]) -> None:
    if calls:
        client_id = next(iter(calls))
        raise TranslationError(f"tool_use {client_id} has no tool_result in the next user message")


# --- the model's turns ------------------------------------------------------------------------------


def _model_parts(
    blocks: list[JSONDict], *, path: str, ctx: Context
) -> tuple[list[JSONDict], dict[str, _Call], list[str]]:
    parts: list[JSONDict] = []
    calls: dict[str, _Call] = {}
    order: list[str] = []
    pending: str | None = None  # a signature for the next part
    provider = ctx.target.provider
    for j, block in enumerate(blocks):
        bpath = f"{path}.content.{j}"
        ctx.see(block)
        part: JSONDict | None = None
        match block["type"]:
            case "thinking" | "redacted_thinking":
                found = carried(block.get("signature"), provider=provider)
                if found is None:  # Anthropic's, another backend's, or unsigned: Gemini cannot read it
                    who = minter(block.get("signature"))  # the one wording every dialect records
                    ctx.foreign_reasoning[who] = ctx.foreign_reasoning.get(who, 0) + 1
                elif found.where == "x":
                    pass  # reasoning Gemini did not sign: nothing to give back
                elif found.where == "n":
                    pending = found.signature
                elif found.where == "p":
                    if parts and "thoughtSignature" not in parts[-1]:
                        parts[-1]["thoughtSignature"] = found.signature
                elif isinstance(block.get("thinking"), str):
                    parts.append(
                        {"text": block["thinking"], "thought": True, "thoughtSignature": found.signature}
                    )
            case "text":
                if text := read.text(block, bpath):
                    part = {"text": text}
            case "tool_use":
                part, call = _function_call(block, path=bpath, ctx=ctx)
                calls[block["id"]] = call
                order.append(block["id"])
            case other:  # server tool calls and their results: Anthropic ran them, Gemini cannot replay them
                ctx.drop_content(f"{bpath}: {other} block")
        if part is not None:
            if pending is not None:
                part["thoughtSignature"], pending = pending, None
            parts.append(part)
    if pending is not None and parts and "thoughtSignature" not in parts[-1]:
        parts[-1]["thoughtSignature"] = pending
    if models.checks_thought_signatures(ctx.target, ctx.model):
        _placeholder(parts, ctx)
    return parts, calls, order


def _placeholder(parts: list[JSONDict], ctx: Context) -> None:
    """Gemini 3 checks the first function call of each model turn for its signature: one it did not
    make (another model's, or one whose signature did not come back) gets Google's placeholder."""
    first = next((p for p in parts if "functionCall" in p), None)
    if first is not None and "thoughtSignature" not in first:
        first["thoughtSignature"] = PLACEHOLDER
        ctx.placeholders += 1


def _function_call(block: JSONDict, *, path: str, ctx: Context) -> tuple[JSONDict, _Call]:
    client_id, name, arguments = block.get("id"), block.get("name"), block.get("input")
    if not isinstance(client_id, str) or not client_id:
        raise TranslationError(f"{path}.id: required")
    if not isinstance(name, str) or not name:
        raise TranslationError(f"{path}.name: required")
    if not isinstance(arguments, dict):
        raise TranslationError(f"{path}.input: must be an object")
    upstream_name = ctx.names.upstream(name)
    upstream_id = tool_id_to_upstream(client_id)
    call: JSONDict = {"name": upstream_name, "args": arguments}
    # An id the client got from Gemini goes back; ours (synthetic) or another backend's does not.
    has_id = upstream_id != client_id
    if has_id:
        call["id"] = upstream_id
    return {"functionCall": call}, _Call(name=upstream_name, upstream_id=upstream_id if has_id else None)


# --- the user's turns -------------------------------------------------------------------------------


def _user_parts(
    blocks: list[JSONDict], *, path: str, calls: dict[str, _Call], order: list[str], ctx: Context
) -> list[JSONDict]:
    """Function responses first, in the order of their calls; then everything else the user sent."""
    responses: dict[str, JSONDict] = {}
    moved: list[JSONDict] = []  # images of tool results, for models that read none inside a response
    parts: list[JSONDict] = []
    for j, block in enumerate(blocks):
        bpath = f"{path}.content.{j}"
        ctx.see(block)
        match block["type"]:
            case "tool_result":
                client_id = block.get("tool_use_id")
                call = calls.get(client_id) if isinstance(client_id, str) else None
                if call is None or client_id in responses:
                    raise TranslationError(f"{bpath}: unknown tool_use_id")
                assert isinstance(client_id, str)
                responses[client_id] = _function_response(block, call=call, path=bpath, moved=moved, ctx=ctx)
            case "text":
                if text := read.text(block, bpath):
                    parts.append({"text": text})
            case "image" | "document":
                parts.extend(media_parts(block, path=bpath, ctx=ctx))
            case "search_result":
                parts.append({"text": _search_result_text(block)})
                ctx.changes.append(Change("document_converted", f"{bpath}: search result -> text"))
            case other:
                ctx.drop_content(f"{bpath}: {other} block")
    missing = [cid for cid in order if cid not in responses]
    if missing and responses:
        raise TranslationError(f"{path}: tool_use {missing[0]} has no tool_result in this message")
    if missing:
        raise TranslationError(f"{path}: tool_use {missing[0]} has no tool_result in the next user message")
    return [responses[cid] for cid in order] + moved + parts


def _function_response(
    block: JSONDict, *, call: _Call, path: str, moved: list[JSONDict], ctx: Context
) -> JSONDict:
    texts: list[str] = []
    media: list[JSONDict] = []
    content = block.get("content")
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for k, item in enumerate(content):
            ipath = f"{path}.content.{k}"
            if not isinstance(item, dict):
                raise TranslationError(f"{ipath}: must be an object")
            match item.get("type"):
                case "text":
                    texts.append(read.text(item, ipath))
                case "image" | "document":
                    for part in media_parts(item, path=ipath, ctx=ctx):
                        (texts.append(part["text"]) if "text" in part else media.append(part))
                case "tool_reference":
                    texts.append(f"Tool loaded: {item.get('tool_name')}")
                    ctx.changes.append(
                        Change("tool_reference_converted", f"{ipath}: {item.get('tool_name')}")
                    )
                case "search_result":
                    texts.append(_search_result_text(item))
                case other:
                    ctx.drop_content(f"{ipath}: {other} block")
    elif content is not None:
        raise TranslationError(f"{path}.content: must be a string or a list of blocks")
    text = "\n".join(texts)
    # Gemini reads `output` as the function's result and `error` as its failure.
    response: JSONDict = {"error": text} if block.get("is_error") is True else {"output": text}
    function_response: JSONDict = {"name": call.name, "response": response}
    if call.upstream_id:
        function_response["id"] = call.upstream_id
    if media and models.takes_media_in_function_responses(ctx.model):
        function_response["parts"] = media
    elif media:
        moved.extend(media)
        ctx.changes.append(Change("tool_result_image_moved", f"{path}: {len(media)} part(s) -> user turn"))
    return {"functionResponse": function_response}


def media_parts(block: JSONDict, *, path: str, ctx: Context) -> list[JSONDict]:
    """An image or document block -> inlineData (Gemini reads images and PDFs), or text."""
    source = block.get("source")
    if not isinstance(source, dict):
        raise TranslationError(f"{path}.source: required")
    match source.get("type"):
        case "base64":
            media_type, data = source.get("media_type"), source.get("data")
            if not isinstance(media_type, str) or not isinstance(data, str):
                raise TranslationError(f"{path}.source: media_type and data required")
            return [{"inlineData": {"mimeType": media_type, "data": data}}]
        case "text":
            data = source.get("data")
            if not isinstance(data, str):
                raise TranslationError(f"{path}.source.data: must be a string")
            title = block.get("title")
            return [{"text": f"{title}\n\n{data}" if isinstance(title, str) and title else data}]
        case "content" if isinstance(source.get("content"), list):
            texts = [
                c.get("text", "")
                for c in source["content"]
                if isinstance(c, dict) and c.get("type") == "text"
            ]
            return [{"text": "\n".join(texts)}]
        case other:  # a URL or a Files API id: Gemini fetches neither as inline content
            ctx.drop_content(f"{path}: {block.get('type')} with a {other} source")
            return []


def _search_result_text(block: JSONDict) -> str:
    texts = [c.get("text", "") for c in block.get("content") or [] if isinstance(c, dict)]
    head = " ".join(str(block.get(k)) for k in ("title", "source") if block.get(k))
    return "\n".join([head, *texts]).strip()

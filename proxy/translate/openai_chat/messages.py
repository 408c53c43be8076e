"""Anthropic system prompt and messages -> Chat Completions messages (content, tool calls, tool results).

Chat Completions wants each tool result as a `tool` message right after its assistant turn, and cannot
carry images or files in one: they move to the user message that follows, and that is recorded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import orjson

from .. import messages_request as read
from ..base import TranslationError
from ..claude_code import without_billing_header
from ..ids import tool_id_to_upstream
from ..reasoning import minter
from ..types import Change, JSONDict
from .context import Context
from .documents import document_parts, search_result_part
from .signatures import (
    THOUGHT_PLACEHOLDER,
    Own,
    read_own,
    wants_thought_signatures,
    with_thought_signature,
)


def system_messages(system: Any, ctx: Context) -> list[JSONDict]:
    if system is None:
        return []
    system, dropped = without_billing_header(system)  # it would defeat the backend's prefix cache
    for header in dropped:
        ctx.changes.append(Change("billing_header_dropped", header[:200]))
    text = read.text_of(system, path="system", notes=ctx)
    return [{"role": "system", "content": text}] if text else []


@dataclass(slots=True)
class _Pending:
    """tool_use ids of the last assistant turn still waiting for their tool_result."""

    ids: dict[str, str] = field(default_factory=dict)  # client id -> path of its tool_use block
    deferred: list[JSONDict] = field(default_factory=list)  # system messages that arrived in between


def chat_messages(messages: list[Any], ctx: Context) -> list[JSONDict]:
    out: list[JSONDict] = []
    pending = _Pending()
    for i, message in enumerate(messages):
        path = f"messages.{i}"
        if not isinstance(message, dict):
            raise TranslationError(f"{path}: must be an object")
        role = message.get("role")
        if role == "system":  # mid-conversation system message (Claude Code beta): keep it in place
            text = read.text_of(message.get("content"), path=f"{path}.content", notes=ctx)
            if text:
                # Chat Completions wants tool messages right after their assistant turn: hold it until then.
                (pending.deferred if pending.ids else out).append({"role": "system", "content": text})
            continue
        blocks = read.blocks(message.get("content"), path)
        if role == "user":
            out.extend(_user_message(blocks, path=path, pending=pending, ctx=ctx))
        elif role == "assistant":
            _unanswered(pending)
            out.extend(_assistant_message(blocks, path=path, pending=pending, ctx=ctx))
        else:
            raise TranslationError(f"{path}.role: must be 'user', 'assistant' or 'system'")
    _unanswered(pending)
    return out


def _unanswered(pending: _Pending) -> None:
    if pending.ids:
        client_id, path = next(iter(pending.ids.items()))
        raise TranslationError(f"{path}: tool_use {client_id} has no tool_result in the next user message")


def _image_part(block: JSONDict, *, path: str, ctx: Context) -> JSONDict | None:
    url, kind = read.image_url(block, path=path)
    if url is None:  # e.g. Files API ids: nothing a Chat Completions server can fetch
        ctx.drop_content(f"{path}: image with a {kind} source")
        return None
    return {"type": "image_url", "image_url": {"url": url}}


def _user_message(blocks: list[JSONDict], *, path: str, pending: _Pending, ctx: Context) -> list[JSONDict]:
    """Tool results first (one `tool` message each), then one user message with the rest."""
    tool_messages: list[JSONDict] = []
    moved: list[JSONDict] = []  # images and files from tool results: tool messages cannot carry them
    parts: list[JSONDict] = []
    for j, block in enumerate(blocks):
        bpath = f"{path}.content.{j}"
        ctx.see(block)
        match block["type"]:
            case "tool_result":
                client_id = block.get("tool_use_id")
                if not isinstance(client_id, str) or pending.ids.pop(client_id, None) is None:
                    raise TranslationError(f"{bpath}: unknown tool_use_id")
                text, attached = _tool_result_content(block, path=bpath, ctx=ctx)
                upstream_id = tool_id_to_upstream(client_id)
                tool_messages.append({"role": "tool", "tool_call_id": upstream_id, "content": text})
                if attached:
                    moved.extend(
                        _moved_from_tool_result(attached, upstream_id=upstream_id, path=bpath, ctx=ctx)
                    )
            case "text":
                if text := read.text(block, bpath):
                    parts.append({"type": "text", "text": text})
            case "image":
                if image := _image_part(block, path=bpath, ctx=ctx):
                    parts.append(image)
            case "document":
                parts.extend(_document(block, path=bpath, ctx=ctx))
            case "search_result":
                parts.append(search_result_part(block))
                ctx.changes.append(Change("document_converted", f"{bpath}: search result -> text"))
            case other:
                ctx.drop_content(f"{bpath}: {other} block")
    _unanswered(pending)
    out = tool_messages + pending.deferred
    pending.deferred = []
    if moved or parts:
        out.append({"role": "user", "content": _user_content(moved + parts)})
    return out


def _document(block: JSONDict, *, path: str, ctx: Context) -> list[JSONDict]:
    parts, change = document_parts(block, path=path, target=ctx.target)
    if change is not None:
        ctx.changes.append(change)
    return parts


def _moved_from_tool_result(
    attached: list[JSONDict], *, upstream_id: str, path: str, ctx: Context
) -> list[JSONDict]:
    """Images and files of a tool result, for the user message after it, named by the id the model
    itself gave the call."""
    images = sum(1 for p in attached if p["type"] == "image_url")
    files = len(attached) - images
    if images:
        ctx.changes.append(Change("tool_result_image_moved", f"{path}: {images} image(s) -> user message"))
    if files:
        ctx.changes.append(Change("tool_result_file_moved", f"{path}: {files} file(s) -> user message"))
    what = "Image" if not files else "Document" if not images else "Attachments"
    return [{"type": "text", "text": f"{what} from tool result {upstream_id}:"}, *attached]


def _user_content(parts: list[JSONDict]) -> str | list[JSONDict]:
    # Text-only content goes as a plain string: some servers (DeepSeek, older vLLM templates) reject lists.
    if all(part["type"] == "text" for part in parts):
        return "\n\n".join(part["text"] for part in parts)
    return parts


def _tool_result_content(block: JSONDict, *, path: str, ctx: Context) -> tuple[str, list[JSONDict]]:
    """A tool_result's content as text for the `tool` message, plus the images and files it held."""
    content = block.get("content")
    texts: list[str] = []
    images: list[JSONDict] = []  # and files: what a tool message cannot carry
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for k, item in enumerate(content):
            ipath = f"{path}.content.{k}"
            if not isinstance(item, dict):
                raise TranslationError(f"{ipath}: must be an object")
            ctx.see(item)
            match item.get("type"):
                case "text":
                    texts.append(read.text(item, ipath))
                case "image":
                    if image := _image_part(item, path=ipath, ctx=ctx):
                        images.append(image)
                case "tool_reference":  # tool search (CLI 2.1.332): the tool's definition was loaded
                    name = item.get("tool_name")
                    if not isinstance(name, str) or not name:
                        raise TranslationError(f"{ipath}.tool_name: required")
                    texts.append(f"Tool loaded: {name}")
                    ctx.changes.append(Change("tool_reference_converted", f"{ipath}: {name}"))
                case "document":  # e.g. Claude Code's Read on a PDF
                    for part in _document(item, path=ipath, ctx=ctx):
                        (texts.append(part["text"]) if part["type"] == "text" else images.append(part))
                case "search_result":
                    texts.append(search_result_part(item)["text"])
                    ctx.changes.append(Change("document_converted", f"{ipath}: search result -> text"))
                case other:
                    ctx.drop_content(f"{ipath}: {other} block")
    elif content is not None:
        raise TranslationError(f"{path}.content: must be a string or a list of blocks")
    text = "\n".join(texts)
    if block.get("is_error") is True:
        # Chat Completions has no error flag on tool messages: say it in the text so the model sees it.
        text = f"Error: {text}"
    return text, images


def _assistant_message(
    blocks: list[JSONDict], *, path: str, pending: _Pending, ctx: Context
) -> list[JSONDict]:
    texts: list[str] = []
    tool_calls: list[JSONDict] = []
    thinking: list[str] = []
    reasoning_field = "reasoning_content"  # DeepSeek's name; vLLM and others accept it too
    thought_signatures: dict[str, str] = {}  # the client's tool_use id -> Gemini's thought signature
    for j, block in enumerate(blocks):
        bpath = f"{path}.content.{j}"
        ctx.see(block)
        match block["type"]:
            case "text":
                if text := read.text(block, bpath):
                    texts.append(text)
            case "tool_use":
                tool_calls.append(_tool_call(block, path=bpath, ctx=ctx))
                pending.ids[block["id"]] = bpath
            case "thinking" | "redacted_thinking":  # redacted: encrypted for Anthropic only
                own = _own_reasoning(block, ctx)
                if own is not None and own.thought_signature:
                    thought_signatures[own.call_id] = own.thought_signature
                elif (
                    own is not None and ctx.quirks.replay_reasoning and isinstance(block.get("thinking"), str)
                ):
                    thinking.append(block["thinking"])
                    reasoning_field = own.field
                elif own is not None:
                    ctx.reasoning_dropped += 1
            case other:  # server tool calls and their results: Anthropic ran them, no backend here can
                ctx.drop_content(f"{bpath}: {other} block")
    if not texts and not tool_calls:
        return []  # nothing a Chat Completions server could use (e.g. only thinking)
    message: JSONDict = {"role": "assistant", "content": "\n\n".join(texts) if texts else None}
    if tool_calls:
        message["tool_calls"] = _signed_calls(tool_calls, blocks, thought_signatures, path=path, ctx=ctx)
    if ctx.quirks.replay_reasoning and (thinking or tool_calls):
        # DeepSeek returns 400 when a tool-call turn lacks reasoning_content, even an empty one.
        message[reasoning_field] = "\n\n".join(thinking)
    return [message]


def _own_reasoning(block: JSONDict, ctx: Context) -> Own | None:
    """What a thinking block carries for this provider; None (counted as foreign) when another minted it.

    Only the provider that produced reasoning can read it back: Anthropic's signatures, another
    provider's reasoning text or thought signatures would be rejected or mislead the model."""
    signature = block.get("signature")
    redacted = block["type"] == "redacted_thinking"
    own = None if redacted else read_own(signature, provider=ctx.target.provider)
    if own is None:
        who = minter(signature or block.get("data"))
        ctx.foreign_reasoning[who] = ctx.foreign_reasoning.get(who, 0) + 1
    return own


def _signed_calls(
    calls: list[JSONDict], blocks: list[JSONDict], signatures: dict[str, str], *, path: str, ctx: Context
) -> list[JSONDict]:
    """Each call with the thought signature Gemini gave it; Gemini's endpoint rejects a turn whose first
    call has none, so a call another model made gets Google's documented placeholder there."""
    if not signatures and not wants_thought_signatures(ctx.target):
        return calls
    client_ids = [b["id"] for b in blocks if b["type"] == "tool_use"]
    out = []
    for i, (call, client_id) in enumerate(zip(calls, client_ids, strict=True)):
        if client_id in signatures:
            call = with_thought_signature(call, signatures[client_id])
        elif i == 0 and wants_thought_signatures(ctx.target):
            call = with_thought_signature(call, THOUGHT_PLACEHOLDER)
            ctx.changes.append(Change("reasoning_placeholder", f"{path}: {client_id}"))
        out.append(call)
    return out


def _tool_call(block: JSONDict, *, path: str, ctx: Context) -> JSONDict:
    client_id, name, arguments = block.get("id"), block.get("name"), block.get("input")
    if not isinstance(client_id, str) or not client_id:
        raise TranslationError(f"{path}.id: required")
    if not isinstance(name, str) or not name:
        raise TranslationError(f"{path}.name: required")
    if not isinstance(arguments, dict):
        raise TranslationError(f"{path}.input: must be an object")
    return {
        "id": tool_id_to_upstream(client_id),
        "type": "function",
        "function": {"name": ctx.names.upstream(name), "arguments": _json(arguments)},
    }


def _json(value: JSONDict) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:  # e.g. integers beyond 64 bits, which the stdlib handles
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

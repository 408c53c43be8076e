"""Anthropic messages -> Responses API input items.

User turns become `message` items (input_text / input_image / input_file parts) after one
`function_call_output` item per tool_result; assistant turns become, in block order, `reasoning` items
(only the ones this dialect and provider minted), assistant `message` items and `function_call` items.
The `call_id` the backend chose is restored exactly from the `toolu_…` id the client saw (ids.py).
Wire format: openai-python `types/responses/response_input_param.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import messages_request as read
from .. import reasoning
from ..base import TranslationError
from ..claude_code import without_billing_header
from ..ids import tool_id_to_upstream
from ..openai_chat.documents import document_parts, search_result_part
from ..tool_names import ToolNameMap
from ..types import Change, JSONDict, Target
from .response import DIALECT_NAME, json_text, reasoning_of_signature


@dataclass(slots=True)
class Context:
    """What one translation accumulates while it walks the request."""

    target: Target
    replay_reasoning: bool = True  # the target model reasons: it takes reasoning items back
    names: ToolNameMap = field(default_factory=ToolNameMap)
    changes: list[Change] = field(default_factory=list)
    cache_controls: int = 0
    reasoning_dropped: int = 0
    # Thinking another backend minted: reasoning.minter(...) -> blocks dropped (reasoning.foreign_dropped).
    foreign_reasoning: dict[str, int] = field(default_factory=dict)

    def see(self, block: JSONDict) -> None:
        """Note a block's cache_control: it is never copied, only counted."""
        if "cache_control" in block:
            self.cache_controls += 1

    def drop(self, detail: str) -> None:
        self.changes.append(Change("field_dropped", detail))

    def drop_content(self, detail: str) -> None:
        self.changes.append(Change("content_dropped", detail))


def instructions(system: Any, ctx: Context) -> str:
    """The system prompt as `instructions`, without Claude Code's billing line (it defeats caching)."""
    if system is None:
        return ""
    system, dropped = without_billing_header(system)
    for header in dropped:
        ctx.changes.append(Change("billing_header_dropped", header[:200]))
    return read.text_of(system, path="system", notes=ctx)


def input_items(messages: list[Any], ctx: Context) -> list[JSONDict]:
    """Every message as input items, tool calls and their outputs paired by call_id."""
    out: list[JSONDict] = []
    pending: dict[str, str] = {}  # tool_use ids of the last assistant turn -> the path of their block
    for i, message in enumerate(messages):
        path = f"messages.{i}"
        if not isinstance(message, dict):
            raise TranslationError(f"{path}: must be an object")
        role = message.get("role")
        if role == "system":  # mid-conversation system message (Claude Code beta): kept in place
            if text := read.text_of(message.get("content"), path=f"{path}.content", notes=ctx):
                out.append({"type": "message", "role": "system", "content": text})
            continue
        blocks = read.blocks(message.get("content"), path)
        if role == "user":
            out.extend(_user(blocks, path=path, pending=pending, ctx=ctx))
            _unanswered(pending)
        elif role == "assistant":
            _unanswered(pending)
            out.extend(_assistant(blocks, path=path, pending=pending, ctx=ctx))
        else:
            raise TranslationError(f"{path}.role: must be 'user', 'assistant' or 'system'")
    _unanswered(pending)
    return out


def _unanswered(pending: dict[str, str]) -> None:
    # The API refuses a function_call without its output ("No tool output found for function call").
    if pending:
        client_id, path = next(iter(pending.items()))
        raise TranslationError(f"{path}: tool_use {client_id} has no tool_result in the next user message")


def _image(block: JSONDict, *, path: str, ctx: Context) -> JSONDict | None:
    url, kind = read.image_url(block, path=path)
    if url is None:  # an Anthropic Files API id: nothing OpenAI can fetch
        ctx.drop_content(f"{path}: image with a {kind} source")
        return None
    return {"type": "input_image", "image_url": url, "detail": "auto"}


def _document(block: JSONDict, *, path: str, ctx: Context) -> list[JSONDict]:
    """A document as input parts: PDFs as `input_file` where the backend takes files, else text."""
    if not isinstance(block.get("source"), dict):
        raise TranslationError(f"{path}.source: required")
    parts, change = document_parts(block, path=path, target=ctx.target)
    if change is not None:
        ctx.changes.append(change)
    out: list[JSONDict] = []
    for part in parts:  # Chat Completions parts, as documents.py makes them
        match part["type"]:
            case "text":
                out.append({"type": "input_text", "text": part["text"]})
            case "file":
                out.append({"type": "input_file", **part["file"]})
            case "image_url":
                out.append({"type": "input_image", "image_url": part["image_url"]["url"], "detail": "auto"})
    return out


def _parts(block: JSONDict, *, path: str, ctx: Context) -> list[JSONDict]:
    """One user (or tool result) content block as input parts."""
    match block.get("type"):
        case "text":
            text = read.text(block, path)
            return [{"type": "input_text", "text": text}] if text else []
        case "image":
            image = _image(block, path=path, ctx=ctx)
            return [image] if image else []
        case "document":
            return _document(block, path=path, ctx=ctx)
        case "search_result":
            ctx.changes.append(Change("document_converted", f"{path}: search result -> text"))
            return [{"type": "input_text", "text": search_result_part(block)["text"]}]
        case "tool_reference":  # tool search (CLI 2.1.332): the tool's definition was loaded
            name = block.get("tool_name")
            if not isinstance(name, str) or not name:
                raise TranslationError(f"{path}.tool_name: required")
            ctx.changes.append(Change("tool_reference_converted", f"{path}: {name}"))
            return [{"type": "input_text", "text": f"Tool loaded: {name}"}]
        case other:
            ctx.drop_content(f"{path}: {other} block")
            return []


def _user(blocks: list[JSONDict], *, path: str, pending: dict[str, str], ctx: Context) -> list[JSONDict]:
    """One function_call_output per tool_result (they must follow their calls), then the rest."""
    outputs: list[JSONDict] = []
    parts: list[JSONDict] = []
    for j, block in enumerate(blocks):
        bpath = f"{path}.content.{j}"
        ctx.see(block)
        if block["type"] != "tool_result":
            parts.extend(_parts(block, path=bpath, ctx=ctx))
            continue
        client_id = block.get("tool_use_id")
        if not isinstance(client_id, str) or pending.pop(client_id, None) is None:
            raise TranslationError(f"{bpath}: unknown tool_use_id")
        outputs.append(
            {
                "type": "function_call_output",
                "call_id": tool_id_to_upstream(client_id),
                "output": _tool_output(block, path=bpath, ctx=ctx),
            }
        )
    if parts:
        outputs.append({"type": "message", "role": "user", "content": parts})
    return outputs


def _tool_output(block: JSONDict, *, path: str, ctx: Context) -> str | list[JSONDict]:
    """A tool_result's content: a string, or input parts when it holds images or files (the Responses
    API takes them in the output itself, so nothing is moved)."""
    content = block.get("content")
    parts: list[JSONDict] = []
    if isinstance(content, str):
        parts.append({"type": "input_text", "text": content})
    elif isinstance(content, list):
        for k, item in enumerate(content):
            ipath = f"{path}.content.{k}"
            if not isinstance(item, dict):
                raise TranslationError(f"{ipath}: must be an object")
            ctx.see(item)
            parts.extend(_parts(item, path=ipath, ctx=ctx))
    elif content is not None:
        raise TranslationError(f"{path}.content: must be a string or a list of blocks")
    if block.get("is_error") is True:
        # function_call_output has no error flag: say it in the text so the model sees it.
        parts.insert(0, {"type": "input_text", "text": "Error:"})
    if all(part["type"] == "input_text" for part in parts):
        return "\n".join(part["text"] for part in parts)
    return parts


def _assistant(blocks: list[JSONDict], *, path: str, pending: dict[str, str], ctx: Context) -> list[JSONDict]:
    items: list[JSONDict] = []
    texts: list[str] = []

    def flush() -> None:
        if texts:
            items.append({"type": "message", "role": "assistant", "content": "\n\n".join(texts)})
            texts.clear()

    for j, block in enumerate(blocks):
        bpath = f"{path}.content.{j}"
        ctx.see(block)
        match block["type"]:
            case "text":
                if text := read.text(block, bpath):
                    texts.append(text)
            case "tool_use":
                flush()
                items.append(_function_call(block, path=bpath, ctx=ctx))
                pending[block["id"]] = bpath
            case "thinking" | "redacted_thinking":
                flush()
                if item := _reasoning_item(block, ctx):
                    items.append(item)
            case other:  # server tool calls and their results: Anthropic ran them, OpenAI cannot
                ctx.drop_content(f"{bpath}: {other} block")
    flush()
    return items


def _reasoning_item(block: JSONDict, ctx: Context) -> JSONDict | None:
    """The encrypted reasoning item a thinking block carries back, when this backend minted it and the
    model reasons (a session moved to a model that does not gets none).

    Another backend's (or Anthropic's own) signature means nothing here: dropped, and recorded."""
    signature = block.get("signature") if block["type"] == "thinking" else block.get("data")
    payload = reasoning.minted_by(signature, dialect=DIALECT_NAME, provider=ctx.target.provider)
    if payload is None:  # recorded in the one wording every dialect uses for foreign reasoning
        who = reasoning.minter(signature)
        ctx.foreign_reasoning[who] = ctx.foreign_reasoning.get(who, 0) + 1
        return None
    found = reasoning_of_signature(payload)
    if found is None or not ctx.replay_reasoning:
        ctx.reasoning_dropped += 1
        return None
    item_id, encrypted = found
    thinking = block.get("thinking")
    summary = [{"type": "summary_text", "text": thinking}] if isinstance(thinking, str) and thinking else []
    return {"type": "reasoning", "id": item_id, "summary": summary, "encrypted_content": encrypted}


def _function_call(block: JSONDict, *, path: str, ctx: Context) -> JSONDict:
    client_id, name, arguments = block.get("id"), block.get("name"), block.get("input")
    if not isinstance(client_id, str) or not client_id:
        raise TranslationError(f"{path}.id: required")
    if not isinstance(name, str) or not name:
        raise TranslationError(f"{path}.name: required")
    if isinstance(arguments, str):  # a call whose arguments never parsed (lenient tool input): as sent
        text = arguments
    elif isinstance(arguments, dict):
        text = json_text(arguments)
    else:
        raise TranslationError(f"{path}.input: must be an object")
    return {
        "type": "function_call",
        "call_id": tool_id_to_upstream(client_id),
        "name": ctx.names.upstream(name),
        "arguments": text,
    }

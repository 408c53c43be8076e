"""Reject malformed Messages requests with a message naming the field, as Anthropic's API does.

It runs before anything else reads the request (routing's inspection, the recorder, the translators), so
those can rely on the shapes checked here: every block an object with a string `type` Anthropic knows,
and the fields each kind is read by. What a known block holds beyond that is the dialect's business.
Anthropic's own wording where it is known: `messages.0.content.0: Input tag 'x' found using 'type' does
not match any of the expected tags: ...`, `model: Field required`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import orjson

from proxy.translate.base import TranslationError
from proxy.translate.types import JSONDict, MessagesRequest

_ROLES = ("user", "assistant", "system")  # system: Claude Code's mid-conversation system messages

# Every content block type the Messages API accepts in a message (the anthropic SDK's ContentBlockParam
# and BetaContentBlockParam unions, SDK 2.16), and inside a tool_result's content.
MESSAGE_BLOCK_TYPES = frozenset(
    {
        "text", "image", "document", "search_result", "thinking", "redacted_thinking", "tool_use",
        "tool_result", "server_tool_use", "web_search_tool_result", "web_fetch_tool_result",
        "advisor_tool_result", "code_execution_tool_result", "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result", "tool_search_tool_result", "mcp_tool_use",
        "mcp_tool_result", "container_upload", "compaction", "tool_addition", "tool_removal",
        "mcp_tool_listing", "fallback",
    }
)  # fmt: skip
TOOL_RESULT_BLOCK_TYPES = frozenset(
    {"text", "image", "search_result", "document", "tool_reference", "browser_state"}
)
_CONTENT_SOURCE_TYPES = frozenset({"text", "image"})
# A document's source kinds and the string field each is read by (content: checked on its own).
_DOCUMENT_SOURCES = {"base64": "data", "text": "data", "content": "", "url": "url", "file": "file_id"}


def _fail(path: str, message: str) -> TranslationError:
    return TranslationError(f"{path}: {message}")


def _string(block: JSONDict, key: str, path: str) -> None:
    value = block.get(key)
    if not isinstance(value, str):
        raise _fail(f"{path}.{key}", "Field required" if value is None else "Input should be a valid string")


def _object(value: object, path: str) -> JSONDict:
    if not isinstance(value, dict):
        raise _fail(path, "Field required" if value is None else "Input should be an object")
    return value


def _tag(block: object, path: str, allowed: frozenset[str]) -> str:
    if not isinstance(block, dict):
        raise _fail(path, "Input should be an object")
    kind = block.get("type")
    if not isinstance(kind, str):
        raise _fail(f"{path}.type", "Field required")
    if kind not in allowed:
        expected = ", ".join(f"'{t}'" for t in sorted(allowed))
        raise _fail(
            path,
            f"Input tag '{kind[:100]}' found using 'type' does not match any of the expected tags: "
            + expected,
        )
    return kind


def _text_blocks(value: object, path: str) -> None:
    if not isinstance(value, list):
        raise _fail(path, "Input should be a valid list")
    for i, block in enumerate(value):
        _tag(block, f"{path}.{i}", frozenset({"text"}))
        _string(block, "text", f"{path}.{i}")


def _block(block: JSONDict, kind: str, path: str) -> bool:
    """The fields of a known block that the inspection and the translators read; True for a document
    (or a tool result holding one)."""
    match kind:
        case "text":
            _string(block, "text", path)
        case "image":
            _string(_object(block.get("source"), f"{path}.source"), "type", f"{path}.source")
        case "document":
            _document_source(_object(block.get("source"), f"{path}.source"), f"{path}.source")
            for key in ("title", "context"):
                if block.get(key) is not None:
                    _string(block, key, path)
            return True
        case "search_result":
            _string(block, "source", path)
            _string(block, "title", path)
            _text_blocks(block.get("content"), f"{path}.content")
        case "tool_use" | "server_tool_use" | "mcp_tool_use":
            _string(block, "id", path)
            _string(block, "name", path)
            _object(block.get("input"), f"{path}.input")
        case "tool_result":
            _string(block, "tool_use_id", path)
            if "is_error" in block and not isinstance(block["is_error"], bool):
                raise _fail(f"{path}.is_error", "Input should be a valid boolean")
            content = block.get("content")
            if isinstance(content, list):
                documents = False
                for k, item in enumerate(content):
                    ipath = f"{path}.content.{k}"
                    documents |= _block(item, _tag(item, ipath, TOOL_RESULT_BLOCK_TYPES), ipath)
                return documents
            elif content is not None and not isinstance(content, str):
                raise _fail(f"{path}.content", "Input should be a valid string or a list of content blocks")
        case "thinking":
            _string(block, "thinking", path)
        case "redacted_thinking":
            _string(block, "data", path)
        case "tool_reference":
            _string(block, "tool_name", path)
        case _:
            pass  # server-side results and beta blocks: passed through or dropped by the dialect as a whole
    return False


def _document_source(source: JSONDict, path: str) -> None:
    kind = source.get("type")
    if not isinstance(kind, str) or kind not in _DOCUMENT_SOURCES:
        raise _fail(f"{path}.type", f"Input should be one of {', '.join(map(repr, _DOCUMENT_SOURCES))}")
    if field := _DOCUMENT_SOURCES[kind]:
        _string(source, field, path)
        return
    content = source.get("content")  # a content source: a string, or text and image blocks
    if isinstance(content, list):
        for i, item in enumerate(content):
            _block(item, _tag(item, f"{path}.content.{i}", _CONTENT_SOURCE_TYPES), f"{path}.content.{i}")
    elif not isinstance(content, str):
        raise _fail(f"{path}.content", "Input should be a valid string or a list of content blocks")


def _messages(messages: object) -> bool:
    if not isinstance(messages, list):
        raise _fail("messages", "Field required" if messages is None else "Input should be a valid list")
    documents = False
    for i, message in enumerate(messages):
        path = f"messages.{i}"
        if not isinstance(message, dict):
            raise _fail(path, "Input should be an object")
        if message.get("role") not in _ROLES:
            raise _fail(f"{path}.role", "Input should be 'user' or 'assistant'")
        content = message.get("content")
        if isinstance(content, str):
            continue
        if not isinstance(content, list):
            raise _fail(f"{path}.content", "Input should be a valid string or a list of content blocks")
        for j, block in enumerate(content):
            bpath = f"{path}.content.{j}"
            documents |= _block(block, _tag(block, bpath, MESSAGE_BLOCK_TYPES), bpath)
    return documents


def _tools(tools: object) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise _fail("tools", "Input should be a valid list")
    for i, tool in enumerate(tools):
        path = f"tools.{i}"
        tool = _object(tool, path)
        _string(tool, "name", path)
        if tool.get("type") in (None, "custom"):  # a client tool: server tools carry no schema
            _object(tool.get("input_schema"), f"{path}.input_schema")
        if "strict" in tool and not isinstance(tool["strict"], bool):
            raise _fail(f"{path}.strict", "Input should be a valid boolean")


def _optional(body: JSONDict, key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = body.get(key)
    # bool is an int to Python, not to JSON: true is no number, 1 no boolean.
    if value is not None and (isinstance(value, bool) != (kind is bool) or not isinstance(value, kind)):
        raise _fail(key, f"Input should be {what}")
    return value


@dataclass(frozen=True, slots=True)
class Validated:
    body: MessagesRequest  # the request, unchanged
    documents: bool  # it holds document blocks (their translation may read a PDF: off the event loop)


def validate_messages_request(body: object, *, needs_max_tokens: bool = True) -> MessagesRequest:
    """`body` itself when it is a Messages request Anthropic would accept the shape of; else the 400."""
    return validate_request(body, needs_max_tokens=needs_max_tokens).body


def validate_request(body: object, *, needs_max_tokens: bool = True) -> Validated:
    """validate_messages_request, and what the walk saw on the way."""
    if not isinstance(body, dict):
        raise TranslationError("request body: must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _fail("model", "Field required" if model is None else "must be a non-empty string")
    if needs_max_tokens:
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            raise _fail("max_tokens", "Field required")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise _fail("max_tokens", "must be a positive integer")
    documents = _messages(body.get("messages"))
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        _text_blocks(system, "system")
    _tools(body.get("tools"))
    _optional(body, "stream", bool, "a valid boolean")
    for key in ("metadata", "thinking", "tool_choice", "output_config"):
        value = _optional(body, key, dict, "an object")
        if value is not None and key in ("thinking", "tool_choice"):
            _string(value, "type", key)
    metadata = body.get("metadata")
    if metadata is not None and metadata.get("user_id") is not None:
        _string(metadata, "user_id", "metadata")
    output_format = (body.get("output_config") or {}).get("format")
    if output_format is not None:
        _object(output_format, "output_config.format")
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)):
        raise _fail("stop_sequences", "Input should be a valid list of strings")
    for key in ("temperature", "top_p"):
        _optional(body, key, (int, float), "a valid number")
    _optional(body, "top_k", int, "a valid integer")
    _encodable(body)
    return Validated(cast(MessagesRequest, body), documents)  # its shape is checked above


# Translation nests a request's values a few levels deeper than they came (tools.N.input_schema becomes
# tools.N.function.parameters): checked with this much room to spare.
_NESTING_MARGIN = 8
MAX_NESTING = 255 - _NESTING_MARGIN


class NestedTooDeep(TranslationError):
    """A body nested deeper than MAX_NESTING: its record keeps it as text (it cannot be encoded as JSON)."""


def _encodable(body: JSONDict) -> None:
    """Every body forwarded or recorded is encoded by orjson, which stops at 255 levels of nesting
    (parsing allows 1024): refused here, named, rather than failing after routing. ~15 us for 80 KB."""
    wrapped: object = body
    for _ in range(_NESTING_MARGIN):
        wrapped = (wrapped,)  # a tuple is encoded as an array: one level each
    try:
        orjson.dumps(wrapped)
    except orjson.JSONEncodeError as exc:
        raise NestedTooDeep(f"request body: nested deeper than {MAX_NESTING} levels ({exc})") from exc

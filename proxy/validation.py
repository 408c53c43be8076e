"""Reject malformed Messages requests with a message naming the field, as Anthropic's API does."""

from __future__ import annotations

from proxy.translate.base import TranslationError
from proxy.translate.types import JSONDict

_ROLES = ("user", "assistant", "system")


def validate_messages_request(body: object, *, needs_max_tokens: bool = True) -> JSONDict:
    if not isinstance(body, dict):
        raise TranslationError("request body: must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise TranslationError(
            "model: Field required" if model is None else "model: must be a non-empty string"
        )
    if needs_max_tokens:
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            raise TranslationError("max_tokens: Field required")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise TranslationError("max_tokens: must be a positive integer")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise TranslationError("messages: Field required" if messages is None else "messages: must be a list")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise TranslationError(f"messages.{i}: must be an object")
        if message.get("role") not in _ROLES:
            raise TranslationError(f"messages.{i}.role: must be one of 'user', 'assistant'")
        content = message.get("content")
        if not isinstance(content, (str, list)):
            raise TranslationError(f"messages.{i}.content: must be a string or a list of content blocks")
        if isinstance(content, list):
            for j, block in enumerate(content):
                if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                    raise TranslationError(f"messages.{i}.content.{j}: must be an object with a 'type'")
    system = body.get("system")
    if system is not None and not isinstance(system, (str, list)):
        raise TranslationError("system: must be a string or a list of text blocks")
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise TranslationError("tools: must be a list")
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                raise TranslationError(f"tools.{i}.name: Field required")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise TranslationError("stream: must be a boolean")
    return body

"""proxy.http.validation: the shapes every later step relies on, refused as Anthropic refuses them."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from proxy.http.validation import MAX_NESTING, validate_messages_request
from proxy.translate.base import TranslationError
from tests.fuzzing import claude_code_requests


def body_with(*blocks: Any, **extra: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "max_tokens": 10,
            "messages": [{"role": "user", "content": list(blocks)}], **extra}  # fmt: skip


def refusal(body: object) -> str:
    with pytest.raises(TranslationError) as info:
        validate_messages_request(body)
    assert (info.value.status, info.value.error_type) == (400, "invalid_request_error")
    return info.value.message


@pytest.mark.parametrize("raw", claude_code_requests(), ids=lambda raw: str(len(raw)))
def test_every_captured_claude_code_request_passes_unchanged(raw: bytes) -> None:
    body = orjson.loads(raw)
    counting = "max_tokens" not in body  # the count_tokens captures
    assert validate_messages_request(copy.deepcopy(body), needs_max_tokens=not counting) == body


def test_a_block_type_anthropic_does_not_know_is_refused_in_anthropics_words() -> None:
    message = refusal(body_with({"type": "text", "text": "hi"}, {"type": "hologram", "data": "x"}))
    assert message.startswith(
        "messages.0.content.1: Input tag 'hologram' found using 'type' does not match any of the expected "
        "tags: 'advisor_tool_result', 'bash_code_execution_tool_result',"
    )
    assert "'document'" in message and "'search_result'" in message


def test_a_block_type_inside_a_tool_result_is_checked_against_what_tool_results_hold() -> None:
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "tool_use"}]}
    message = refusal(body_with(result))
    assert message.startswith("messages.0.content.0.content.0: Input tag 'tool_use' found using 'type'")


@pytest.mark.parametrize(
    ("block", "field"),
    [
        # Issue #17: inspection read these before anything checked them (KeyError: 'text').
        ({"type": "text"}, "messages.0.content.0.text: Field required"),
        ({"type": "text", "text": 5}, "messages.0.content.0.text: Input should be a valid string"),
        ({"type": "image"}, "messages.0.content.0.source: Field required"),
        ({"type": "document", "source": {"type": "ftp"}}, "messages.0.content.0.source.type:"),
        ({"type": "document", "source": {"type": ["base64"]}}, "messages.0.content.0.source.type:"),  # fuzz
        ({"type": "document", "source": {"type": "text"}}, "messages.0.content.0.source.data: Field"),
        ({"type": "document", "source": {"type": "content", "content": 5}},
         "messages.0.content.0.source.content"),
        ({"type": "document", "source": {"type": "content", "content": [{"type": "document"}]}},
         "messages.0.content.0.source.content.0: Input tag 'document'"),
        ({"type": "search_result", "source": "s", "title": "t", "content": "x"},
         "messages.0.content.0.content: Input should be a valid list"),
        ({"type": "tool_use", "id": "t", "name": "n", "input": []}, "messages.0.content.0.input:"),
        ({"type": "tool_result", "tool_use_id": 3}, "messages.0.content.0.tool_use_id:"),
        ({"type": "tool_result", "tool_use_id": "t", "is_error": "yes"}, "messages.0.content.0.is_error:"),
        ({"type": "thinking"}, "messages.0.content.0.thinking: Field required"),
        (7, "messages.0.content.0: Input should be an object"),
    ],
)  # fmt: skip
def test_a_known_block_missing_what_it_needs_is_refused_naming_the_field(block: Any, field: str) -> None:
    assert refusal(body_with(block)).startswith(field)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        # Issue #17: `TypeError: argument of type 'int' is not iterable` from the title-call detection.
        ({"output_config": 5}, "output_config: Input should be an object"),
        ({"output_config": {"format": "json"}}, "output_config.format: Input should be an object"),
        ({"thinking": "on"}, "thinking: Input should be an object"),
        ({"thinking": {}}, "thinking.type: Field required"),
        ({"metadata": {"user_id": 5}}, "metadata.user_id: Input should be a valid string"),
        ({"system": [{"type": "image"}]}, "system.0: Input tag 'image'"),
        ({"tools": [{"name": "Read"}]}, "tools.0.input_schema: Field required"),
        ({"tools": [{"name": "Read", "input_schema": {}, "strict": "yes"}]}, "tools.0.strict:"),
        ({"stream": 1}, "stream: Input should be a valid boolean"),
        ({"temperature": True}, "temperature: Input should be a valid number"),
        ({"top_k": 1.5}, "top_k: Input should be a valid integer"),
        ({"stop_sequences": ["a", 1]}, "stop_sequences:"),
    ],
)
def test_a_top_level_field_of_the_wrong_shape_is_refused_naming_it(extra: dict, field: str) -> None:
    assert refusal(body_with({"type": "text", "text": "hi"}, **extra)).startswith(field)


def test_server_tools_need_no_schema_and_strict_tools_pass() -> None:
    tools = [{"type": "web_search_20250305", "name": "web_search"},
             {"name": "Read", "input_schema": {"type": "object"}, "strict": True}]  # fmt: skip
    validate_messages_request(body_with({"type": "text", "text": "hi"}, tools=tools))


def test_nesting_deeper_than_can_be_forwarded_is_refused_and_just_under_passes() -> None:
    def nested(depth: int) -> Any:
        value: Any = {}
        for _ in range(depth):
            value = [value]
        return value

    # The block is 5 levels down (body, messages, message, content, block) and its input one more.
    ok = {"type": "tool_use", "id": "t", "name": "n", "input": {"x": nested(MAX_NESTING - 8)}}
    validate_messages_request(body_with(ok))
    deep = {"type": "tool_use", "id": "t", "name": "n", "input": {"x": nested(300)}}
    assert refusal(body_with(deep)).startswith(f"request body: nested deeper than {MAX_NESTING} levels")

"""Non-streamed Responses API replies and errors -> Anthropic (translate/openai_responses/response.py)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from openai.types.responses import Response

from proxy.translate import ids, reasoning
from proxy.translate.base import UpstreamError
from proxy.translate.openai_responses import DIALECT
from proxy.translate.openai_responses.state import ResponsesState
from proxy.translate.types import Translation, UpstreamRequest
from tests.fakes.responses_upstream import Stream, response_object, usage


def translation(**state: Any) -> Translation:
    upstream = UpstreamRequest(method="POST", url="http://x/v1/responses", headers={}, body={}, stream=False)
    return Translation(
        upstream=upstream,
        client_model="claude-sonnet-4-6",
        message_id="msg_01R",
        state=ResponsesState(**{"reasoning": True, "provider": "openai", **state}),
    )


def parse(body: dict[str, Any], t: Translation | None = None) -> dict[str, Any]:
    Response.model_validate(body)  # the openai SDK's own type: the body is what the API sends
    return dict(DIALECT.parse_response(body, t or translation()))


def test_reasoning_text_and_a_call_become_thinking_text_and_tool_use() -> None:
    stream = (
        Stream()
        .reasoning("Plan it.", encrypted="gAAAAenc")
        .message("On it.")
        .call("call_7", "Bash", '{"command":"ls"}')
    )
    message = parse(stream.final("completed", usage=usage(100, 40, cached=64, reasoning=12)))
    thinking, text, tool = message["content"]
    assert thinking["thinking"] == "Plan it."
    assert reasoning.minted_by(thinking["signature"], dialect="openai_responses", provider="openai") == (
        "rs_006806bfca0b2481918a5748308061a26.gAAAAenc"
    )
    assert text == {"type": "text", "text": "On it."}
    assert tool == {
        "type": "tool_use",
        "id": ids.tool_id_to_client("call_7"),
        "name": "Bash",
        "input": {"command": "ls"},
    }
    assert message["stop_reason"] == "tool_use" and message["model"] == "claude-sonnet-4-6"
    assert message["usage"] == {
        "input_tokens": 36,
        "output_tokens": 40,
        "cache_read_input_tokens": 64,
        "cache_creation_input_tokens": 0,
    }


def test_incomplete_max_output_tokens_is_max_tokens() -> None:
    body = (
        Stream()
        .message("The answer")
        .final("incomplete", incomplete_details={"reason": "max_output_tokens"}, usage=usage(10, 16))
    )
    assert parse(body)["stop_reason"] == "max_tokens"


def test_a_refusal_is_text_with_stop_reason_refusal() -> None:
    item = {
        "id": "msg_1",
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "refusal", "refusal": "I can't help with that."}],
    }
    message = parse(response_object(status="completed", output=[item], usage=usage(5, 5)))
    assert message["content"] == [{"type": "text", "text": "I can't help with that."}]
    assert message["stop_reason"] == "refusal"


def test_a_local_stop_sequence_cuts_the_text() -> None:
    body = Stream().message("one ### two").final("completed", usage=usage(5, 5))
    message = parse(body, translation(local_stop_sequences=("###",)))
    assert message["content"] == [{"type": "text", "text": "one "}]
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "###")


def test_a_failed_response_is_an_upstream_error() -> None:
    body = Stream().final("failed", error={"code": "rate_limit_exceeded", "message": "Slow down."})
    with pytest.raises(UpstreamError) as raised:
        parse(body)
    assert (raised.value.error_type, raised.value.status) == ("rate_limit_error", 429)
    assert "Slow down." in raised.value.message


def test_arguments_that_are_not_json_are_an_upstream_error() -> None:
    body = Stream().call("call_1", "Bash", '{"command": "ls').final("completed", usage=usage(5, 5))
    with pytest.raises(UpstreamError, match="invalid JSON arguments"):
        parse(body)


def test_a_429_keeps_its_retry_after() -> None:
    error = {
        "error": {
            "message": "Rate limit reached",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    found = DIALECT.parse_error(429, orjson.dumps(error), {"retry-after": "7"})
    assert (found.error_type, found.status, found.retry_after) == ("rate_limit_error", 429, "7")
    assert "Rate limit reached" in found.message


def test_a_400_names_what_the_api_refused() -> None:
    message = "Unknown parameter: 'foo'."
    error = {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": "foo",
            "code": "unknown_parameter",
        }
    }
    found = DIALECT.parse_error(400, orjson.dumps(error), {})
    assert (found.error_type, found.status, found.upstream_status) == ("invalid_request_error", 400, 400)
    assert message in found.message


def test_a_context_overflow_is_worded_as_anthropic_words_it() -> None:
    message = (
        "Your input exceeds the context window of this model. maximum context length is 272000 tokens. "
        "However, you requested 280000 tokens"
    )
    error = {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": "input",
            "code": "context_length_exceeded",
        }
    }
    found = DIALECT.parse_error(400, orjson.dumps(error), {})
    assert found.message.startswith("prompt is too long: 280000 tokens > 272000 maximum")


def test_a_lenient_route_gets_arguments_that_are_not_json_as_their_raw_text() -> None:
    body = Stream().call("call_1", "Bash", '{"command": "ls').final("completed", usage=usage(5, 5))
    lenient = translation()
    lenient.lenient_tool_input = True
    assert parse(body, lenient)["content"][0]["input"] == '{"command": "ls'

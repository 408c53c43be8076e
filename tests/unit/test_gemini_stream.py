"""Gemini SSE stream -> Anthropic stream events (translate/gemini/stream.py), and non-streaming replies.

Each case replays tests/fixtures/gemini/<case>.sse through the byte-level decoder; complete streams are
checked against the Anthropic grammar, the anthropic SDK's own accumulator, and parse_response() of the
same reply sent whole.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest
from anthropic.lib.streaming._messages import accumulate_event

from proxy.translate import reasoning
from proxy.translate.accumulate import accumulate
from proxy.translate.base import UpstreamError
from proxy.translate.gemini import DIALECT, MalformedFunctionCall
from proxy.translate.gemini.signatures import carried
from proxy.translate.gemini.state import GeminiState
from proxy.translate.sse import SSEDecoder
from proxy.translate.types import SSEEvent, Translation, UpstreamRequest
from tests.fakes.gemini_upstream import signature
from tests.unit.stream_checks import assert_valid_anthropic_stream

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gemini"
PROVIDER = "gemini-main"


def translation(**state: Any) -> Translation:
    return Translation(
        upstream=UpstreamRequest(method="POST", url="http://x", headers={}, body={}, stream=True),
        client_model="claude-opus-4-8",
        message_id="msg_01GeminiStream000000000",
        tool_names={"mcp__server__do_thing_8f2a": "mcp__server__do.thing"},
        state=GeminiState(**{"provider": PROVIDER, "reasoning": True, **state}),
    )


def replay(case: str, chunk_size: int = 37, **state: Any) -> list[dict[str, Any]]:
    raw = (FIXTURES / f"{case}.sse").read_bytes()
    decoder = SSEDecoder()
    machine = DIALECT.stream_translator(translation(**state))
    events: list[dict[str, Any]] = []
    for i in range(0, len(raw), chunk_size):  # cut at odd byte offsets, CRLFs split included
        for event in decoder.feed(raw[i : i + chunk_size]):
            events += machine.feed(event)
    for event in decoder.flush():
        events += machine.feed(event)
    return events + machine.finish()


def whole(case: str) -> dict[str, Any]:
    """The same reply as generateContent would send it: one response, parts joined in order."""
    chunks = [
        orjson.loads(line[6:])
        for line in (FIXTURES / f"{case}.sse").read_bytes().decode().split("\r\n\r\n")
        if line
    ]
    body = copy.deepcopy(chunks[-1])
    body["candidates"][0]["content"] = {
        "role": "model",
        "parts": [p for c in chunks for p in c["candidates"][0].get("content", {}).get("parts", [])],
    }
    return body


def sdk_message(events: list[dict[str, Any]]) -> dict[str, Any]:
    from anthropic.types import RawMessageStreamEvent
    from pydantic import TypeAdapter

    adapter: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)
    snapshot = None
    json_bufs: dict[int, bytes] = {}
    for event in events:
        snapshot = accumulate_event(
            event=adapter.validate_python(event), current_snapshot=snapshot, json_bufs=json_bufs
        )
    assert snapshot is not None
    return snapshot.model_dump(exclude_none=True)


def carried_by(block: dict[str, Any]) -> tuple[str, str] | None:
    found = carried(block["signature"], provider=PROVIDER)
    return (found.where, found.signature) if found else None


@pytest.mark.parametrize(
    "case", ["text", "thinking_tool", "parallel", "max_tokens", "safety", "signature_only_end", "ids"]
)
def test_complete_streams_keep_the_grammar_and_match_the_sdk_and_the_whole_reply(case: str) -> None:
    events = replay(case)
    assert_valid_anthropic_stream(events)
    ours = accumulate(events)
    sdk = sdk_message(events)
    assert [b["type"] for b in ours["content"]] == [b["type"] for b in sdk["content"]]
    assert ours["content"] == [{k: v for k, v in b.items() if k != "citations"} for b in sdk["content"]]
    assert DIALECT.parse_response(whole(case), translation()) == ours


def test_text_usage_counts_thoughts_as_output_and_cache_reads_apart() -> None:
    message = accumulate(replay("text"))
    assert message["content"][0] == {"type": "text", "text": "Hello world!"}
    assert message["stop_reason"] == "end_turn"
    # promptTokenCount 120 of which 100 cached; candidates 30 + thoughts 40
    assert message["usage"] == {
        "input_tokens": 20,
        "output_tokens": 70,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 0,
    }
    # The signature on the turn's last text is not carried: a thinking block after the answer would be
    # the message's last block, which Claude Code prints as the answer (Gemini checks calls only).
    assert [b["type"] for b in message["content"]] == ["text"]


def test_a_function_call_after_thoughts_is_tool_use_and_its_signature_rides_on_the_thinking_block() -> None:
    message = accumulate(replay("thinking_tool"))
    thinking, call = message["content"]
    assert thinking["thinking"] == "I should read the file."
    assert carried_by(thinking) == ("n", signature(2))
    assert (
        call["type"] == "tool_use" and call["name"] == "Read" and call["input"] == {"file_path": "/tmp/a.txt"}
    )
    assert call["id"].startswith("toolu_")
    assert message["stop_reason"] == "tool_use"  # Gemini said STOP


def test_parallel_calls_become_separate_blocks_and_only_the_first_is_signed() -> None:
    message = accumulate(replay("parallel"))
    assert [b["type"] for b in message["content"]] == ["text", "thinking", "tool_use", "tool_use"]
    assert message["content"][1]["thinking"] == "" and carried_by(message["content"][1]) == (
        "n",
        signature(3),
    )
    assert [b["name"] for b in message["content"][2:]] == ["Write", "Bash"]
    assert len({b["id"] for b in message["content"][2:]}) == 2


def test_finish_reasons_map_to_anthropic_stop_reasons() -> None:
    assert accumulate(replay("max_tokens"))["stop_reason"] == "max_tokens"
    assert accumulate(replay("safety"))["stop_reason"] == "refusal"


def test_a_malformed_function_call_is_a_distinct_retryable_error_never_an_empty_end_turn() -> None:
    with pytest.raises(MalformedFunctionCall) as caught:
        replay("malformed")
    assert caught.value.retryable and caught.value.malformed_tool_call
    assert "print(default_api.Read(file=))" in caught.value.message
    with pytest.raises(MalformedFunctionCall):
        DIALECT.parse_response(whole("malformed"), translation())


def test_with_healing_a_malformed_call_ends_the_turn_as_a_placeholder_call_to_retry() -> None:
    from proxy.translate.healing.stream import MALFORMED_CALL

    healed = translation()
    healed.heals_malformed_calls = True
    message = DIALECT.parse_response(whole("malformed"), healed)
    text, block = message["content"]
    assert text == {"type": "text", "text": "Let me"}  # what came before, closed
    assert block["type"] == "tool_use" and block["name"] == ""
    assert block[MALFORMED_CALL] == "MALFORMED_FUNCTION_CALL"  # type: ignore[typeddict-item]
    assert block["input"] == "Malformed function call: print(default_api.Read(file=))"
    assert message["stop_reason"] == "tool_use"


def test_an_error_event_mid_stream_is_an_upstream_error_with_googles_words() -> None:
    with pytest.raises(UpstreamError) as caught:
        replay("error_midstream")
    assert caught.value.error_type == "overloaded_error" and "overloaded" in caught.value.message


def test_a_stream_that_ends_before_its_finish_reason_is_an_error() -> None:
    with pytest.raises(UpstreamError, match="ended before"):
        replay("truncated")


def test_a_signature_on_an_empty_last_part_leaves_the_answer_last() -> None:
    message = accumulate(replay("signature_only_end"))
    assert [b["type"] for b in message["content"]] == ["text"]


def test_a_texts_signature_is_carried_after_it_when_a_call_follows() -> None:
    chunks = [
        {"candidates": [{"content": {"parts": [{"text": "Looking", "thoughtSignature": signature(6)}]}}]},
        {
            "candidates": [
                {
                    "content": {"parts": [{"functionCall": {"name": "Read", "args": {}}}]},
                    "finishReason": "STOP",
                }
            ]
        },
    ]
    machine = DIALECT.stream_translator(translation())
    events = [e for c in chunks for e in machine.feed(SSEEvent(data=orjson.dumps(c).decode()))]
    text, carrier, call = accumulate(events)["content"]
    assert (
        text["text"] == "Looking"
        and carried_by(carrier) == ("p", signature(6))
        and call["type"] == "tool_use"
    )


def test_gemini_call_ids_map_to_toolu_ids_and_renamed_tools_get_their_names_back() -> None:
    (_thinking, call) = accumulate(replay("ids"))["content"]
    assert call["name"] == "mcp__server__do.thing"
    from proxy.translate.ids import tool_id_to_upstream

    assert call["id"].startswith("toolu_") and tool_id_to_upstream(call["id"]) == "call:7/x"


def test_thoughts_are_not_shown_when_the_client_did_not_ask_but_signatures_still_ride() -> None:
    message = accumulate(replay("thinking_tool", reasoning=False))
    thinking, _call = message["content"]
    assert thinking["thinking"] == "" and carried_by(thinking) == ("n", signature(2))


def test_unsigned_thoughts_are_tagged_as_gemini_so_no_other_backend_gets_them() -> None:
    events = DIALECT.stream_translator(translation()).feed(
        SSEEvent(
            data=orjson.dumps(
                {
                    "candidates": [
                        {"content": {"parts": [{"text": "hm", "thought": True}]}, "finishReason": "STOP"}
                    ]
                }
            ).decode()
        )
    )
    (block,) = accumulate(events)["content"]
    minted = reasoning.read(block["signature"])
    assert minted is not None and (minted.dialect, minted.provider) == ("gemini", PROVIDER)


def test_a_blocked_prompt_is_a_refusal() -> None:
    body = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 7}}
    message = DIALECT.parse_response(body, translation())
    assert message["stop_reason"] == "refusal" and message["content"] == []


def test_local_stop_sequences_cut_the_text() -> None:
    events = replay("text", local_stop_sequences=("o w",), request={"model": "m", "messages": []})
    message = accumulate(events)
    assert message["content"][0]["text"] == "Hell" and message["stop_reason"] == "stop_sequence"
    assert message["stop_sequence"] == "o w"


def test_search_grounding_becomes_anthropics_web_search_blocks() -> None:
    body = {
        "candidates": [{
            "content": {"parts": [{"text": "Spain won."}]},
            "finishReason": "STOP",
            "groundingMetadata": {
                "webSearchQueries": ["euro 2024 winner"],
                "groundingChunks": [{"web": {"uri": "https://search.example/x", "title": "uefa.com"}}],
            },
        }],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 3},
    }  # fmt: skip
    message = DIALECT.parse_response(body, translation())
    text, use, found = message["content"]
    assert text == {"type": "text", "text": "Spain won."}
    assert use["type"] == "server_tool_use" and use["input"] == {"query": "euro 2024 winner"}
    assert found["tool_use_id"] == use["id"] and found["content"][0]["title"] == "uefa.com"
    assert message["stop_reason"] == "end_turn"


def test_googles_refusals_are_worded_as_anthropic_words_them() -> None:
    def refused(status: int, code: str, message: str, details: list[Any] | None = None) -> Any:
        body = {"error": {"code": status, "status": code, "message": message, "details": details or []}}
        return DIALECT.parse_error(status, orjson.dumps(body), {})

    over = refused(
        400,
        "INVALID_ARGUMENT",
        "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
    )
    assert over.message.startswith("prompt is too long: 1200000 tokens > 1048576 maximum")
    output = refused(
        400,
        "INVALID_ARGUMENT",
        "Unable to submit request because it has a maxOutputTokens value of 64000 but the supported range "
        "is from 1 (inclusive) to 8193 (exclusive). Update the value and try again.",
    )
    assert (
        output.message
        == "max_tokens: 64000 > 8192, which is the maximum allowed number of output tokens for this model"
    )
    key = refused(
        400,
        "INVALID_ARGUMENT",
        "API key not valid. Please pass a valid API key.",
        [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}],
    )
    assert (key.error_type, key.status, key.retryable) == ("authentication_error", 401, False)
    limited = DIALECT.parse_error(
        429,
        orjson.dumps(
            {
                "error": {
                    "code": 429,
                    "status": "RESOURCE_EXHAUSTED",
                    "message": "quota",
                    "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.4s"}],
                }
            }
        ),
        {},
    )
    assert (limited.error_type, limited.retry_after, limited.retryable) == ("rate_limit_error", "1", True)
    html = DIALECT.parse_error(502, b"<html><title>Bad Gateway</title></html>", {"Retry-After": "3"})
    assert (html.error_type, html.status, html.retry_after) == ("api_error", 500, "3")

"""Responses API stream -> Anthropic stream events (translate/openai_responses/stream.py).

Every case replays a stream from tests/fixtures/openai_responses/<case>.sse, whose events validate
against the openai SDK's own `ResponseStreamEvent` types. Each complete stream is checked against the
Anthropic grammar, against the anthropic SDK's accumulator, and against parse_response() of the
Response object that the stream's own `response.completed` event carries (an independent path).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from proxy.translate import ids, reasoning
from proxy.translate.accumulate import accumulate
from proxy.translate.base import UpstreamError
from proxy.translate.openai_responses.response import parse_response
from proxy.translate.openai_responses.state import ResponsesState
from proxy.translate.openai_responses.stream import ResponsesStreamTranslator
from proxy.translate.sse import SSEDecoder
from proxy.translate.tokens import warm_up
from proxy.translate.tool_names import shorten
from proxy.translate.types import SSEEvent, Translation, UpstreamRequest
from tests.fakes.responses_upstream import Stream
from tests.unit.stream_checks import assert_valid_anthropic_stream

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "openai_responses"
warm_up()  # estimated usage is counted with the encoder once loaded: the same figures in any test order
CLIENT_MODEL = "claude-opus-4-8"
MESSAGE_ID = "msg_01ResponsesStream00000"
PROVIDER = "openai"
LONG_NAME = "mcp__claude_ai_Google_Drive__google_drive_search_files_and_folders_by_query"
FAILING = {"failed", "error_event", "truncated", "invalid_args"}
LOCAL_STOP_REQUEST = {
    "model": CLIENT_MODEL,
    "max_tokens": 100,
    "stop_sequences": ["###END"],
    "messages": [{"role": "user", "content": "Compute the result, then write ###END."}],
}
SETUP: dict[str, dict[str, Any]] = {
    "local_stop": {
        "stop_sequences": ("###END",),
        "state": {"local_stop_sequences": ("###END",), "request": LOCAL_STOP_REQUEST},
    },
    "long_tool_name": {"tool_names": {shorten(LONG_NAME): LONG_NAME}},
}


def make_translation(
    *,
    tool_names: dict[str, str] | None = None,
    stop_sequences: tuple[str, ...] = (),
    state: dict[str, Any] | None = None,
) -> Translation:
    upstream = UpstreamRequest(
        method="POST", url="http://upstream/v1/responses", headers={}, body={}, stream=True
    )
    return Translation(
        upstream=upstream,
        client_model=CLIENT_MODEL,
        message_id=MESSAGE_ID,
        tool_names=tool_names or {},
        stop_sequences=stop_sequences,
        state=ResponsesState(**{"reasoning": True, "provider": PROVIDER, **(state or {})}),
    )


def upstream_events(case: str) -> list[SSEEvent]:
    decoder = SSEDecoder()
    return decoder.feed((FIXTURES / f"{case}.sse").read_bytes()) + decoder.flush()


def translate(
    case: str, translation: Translation | None = None
) -> tuple[ResponsesStreamTranslator, list[dict]]:
    translator = ResponsesStreamTranslator(translation or make_translation(**SETUP.get(case, {})))
    out: list[dict] = []
    for event in upstream_events(case):
        out += translator.feed(event)
    out += translator.finish()
    return translator, out


def feed(translator: ResponsesStreamTranslator, stream: Stream) -> list[dict]:
    out: list[dict] = []
    for event in stream.events:
        out += translator.feed(SSEEvent(event=event["type"], data=orjson.dumps(event).decode()))
    return out


def sdk_accumulate(events: list[dict]) -> dict:
    snapshot = None
    json_bufs: dict[int, bytes] = {}
    for event in copy.deepcopy(events):
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=json_bufs)
    assert snapshot is not None
    message = snapshot.to_dict()
    if message.get("stop_details") is None:
        message.pop("stop_details", None)
    return message


def final_response(case: str) -> dict:
    last = orjson.loads(upstream_events(case)[-1].data)
    assert last["type"] in ("response.completed", "response.incomplete")
    return last["response"]


COMPLETE_CASES = sorted(p.stem for p in FIXTURES.glob("*.sse") if p.stem not in FAILING)
ALL_CASES = sorted(p.stem for p in FIXTURES.glob("*.sse"))


@pytest.mark.parametrize("case", ALL_CASES)
def test_fixture_events_are_in_the_vendors_wire_format(case: str) -> None:
    adapter = TypeAdapter(ResponseStreamEvent)
    for number, event in enumerate(upstream_events(case)):
        data = orjson.loads(event.data)
        assert event.event == data["type"] and data["sequence_number"] == number
        adapter.validate_python(data)  # the openai SDK's own types: every field the API sends


@pytest.mark.parametrize("case", COMPLETE_CASES)
def test_recorded_stream_follows_the_anthropic_grammar(case: str) -> None:
    translator, events = translate(case)
    assert_valid_anthropic_stream(events)
    assert translator.done
    assert all(e["message"]["model"] == CLIENT_MODEL for e in events if e["type"] == "message_start")


@pytest.mark.parametrize("case", COMPLETE_CASES)
def test_recorded_stream_translates_to_the_expected_events(case: str) -> None:
    # <case>.expected.jsonl was reviewed by hand once; it pins the exact output against regressions.
    lines = (FIXTURES / f"{case}.expected.jsonl").read_text().splitlines()
    assert translate(case)[1] == [orjson.loads(line) for line in lines]


@pytest.mark.parametrize("case", COMPLETE_CASES)
def test_recorded_stream_accumulates_like_the_anthropic_sdk(case: str) -> None:
    _, events = translate(case)
    assert accumulate(events) == sdk_accumulate(events)


@pytest.mark.parametrize("case", COMPLETE_CASES)
def test_recorded_stream_accumulates_to_the_non_streamed_translation(case: str) -> None:
    translation = make_translation(**SETUP.get(case, {}))
    _, events = translate(case, translation)
    expected = parse_response(final_response(case), translation)
    got = accumulate(events)
    if case == "local_stop":  # the stream hangs up at the stop sequence, before usage: estimated
        expected.pop("usage"), got.pop("usage")
    assert got == expected


@pytest.mark.parametrize("case", sorted(FAILING))
def test_a_failing_stream_raises_an_upstream_error(case: str) -> None:
    with pytest.raises(UpstreamError) as raised:
        translate(case)
    expected = {
        "failed": ("api_error", 500, "server had an error"),
        "error_event": ("rate_limit_error", 429, "Rate limit reached"),
        "truncated": ("api_error", 500, "ended before response.completed"),
        "invalid_args": ("api_error", 500, "invalid JSON arguments"),
    }[case]
    assert (raised.value.error_type, raised.value.status) == expected[:2]
    assert expected[2] in raised.value.message


def test_summaries_become_one_thinking_block_signed_with_the_encrypted_item() -> None:
    _, events = translate("reasoning_tool")
    message = accumulate(events)
    thinking, text, tool = message["content"]
    assert (
        thinking["thinking"].startswith("**Looking at the file**")
        and "\n\n**Planning the edit**" in thinking["thinking"]
    )
    payload = reasoning.minted_by(thinking["signature"], dialect="openai_responses", provider=PROVIDER)
    assert payload is not None and payload.endswith(".gAAAAABpQ1enc_first+/==") and payload.startswith("rs_")
    assert text == {"type": "text", "text": "I'll read it first."}
    assert tool["id"] == ids.tool_id_to_client("call_Kx81nN2b0tWZQe3") and tool["id"].startswith("toolu_")
    assert tool["input"] == {"file_path": "/tmp/notes.txt"}
    assert message["stop_reason"] == "tool_use"
    # 5400 in: 4096 read from the cache, 1024 written to it; 180 out, reasoning included
    assert message["usage"] == {
        "input_tokens": 280,
        "output_tokens": 180,
        "cache_read_input_tokens": 4096,
        "cache_creation_input_tokens": 1024,
    }


def test_reasoning_without_a_summary_is_a_redacted_block_that_carries_it() -> None:
    _, events = translate("reasoning_no_summary")
    block = accumulate(events)["content"][0]
    assert block["type"] == "redacted_thinking"
    assert reasoning.minted_by(block["data"], dialect="openai_responses", provider=PROVIDER) is not None


def test_no_thinking_blocks_when_the_client_did_not_ask_for_thinking() -> None:
    _, events = translate("reasoning_tool", make_translation(state={"reasoning": False}))
    assert [b["type"] for b in accumulate(events)["content"]] == ["text", "tool_use"]


def test_incomplete_for_max_output_tokens_is_max_tokens() -> None:
    _, events = translate("incomplete")
    assert accumulate(events)["stop_reason"] == "max_tokens"


def test_incomplete_for_the_content_filter_is_a_refusal() -> None:
    stream = Stream().created().message("I can").incomplete("content_filter")
    translator = ResponsesStreamTranslator(make_translation())
    assert accumulate(feed(translator, stream))["stop_reason"] == "refusal"


def test_a_local_stop_sequence_ends_the_stream_and_cuts_the_text() -> None:
    translator, events = translate("local_stop")
    message = accumulate(events)
    assert message["content"] == [{"type": "text", "text": "Result: 42\n"}]
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "###END")
    assert translator.done and translator.usage_estimated


def test_parallel_calls_become_separate_tool_use_blocks() -> None:
    _, events = translate("parallel")
    tools = accumulate(events)["content"]
    assert [(t["id"], t["input"]) for t in tools] == [
        (ids.tool_id_to_client("call_A1"), {"file_path": "/a.txt"}),
        (ids.tool_id_to_client("call_B2"), {"file_path": "/b.txt"}),
    ]


def test_a_long_tool_name_comes_back_as_the_clients_name() -> None:
    _, events = translate("long_tool_name")
    assert accumulate(events)["content"][0]["name"] == LONG_NAME


def test_interleaved_calls_wait_their_turn() -> None:
    """Two calls whose events interleave (never seen from OpenAI itself): each is still one block."""
    stream = Stream().created()
    stream.output = [{}, {}]
    a = {
        "id": "fc_a",
        "type": "function_call",
        "status": "in_progress",
        "arguments": "",
        "call_id": "c_a",
        "name": "Read",
    }
    b = {**a, "id": "fc_b", "call_id": "c_b"}
    stream.emit("response.output_item.added", output_index=0, item=a)
    stream.emit("response.output_item.added", output_index=1, item=b)
    stream.emit("response.function_call_arguments.delta", item_id="fc_b", output_index=1, delta='{"x":2}')
    stream.emit("response.function_call_arguments.delta", item_id="fc_a", output_index=0, delta='{"x":1}')
    stream.emit("response.output_item.done", output_index=1, item={**b, "arguments": '{"x":2}'})
    stream.emit("response.output_item.done", output_index=0, item={**a, "arguments": '{"x":1}'})
    stream.completed()
    translator = ResponsesStreamTranslator(make_translation())
    events = feed(translator, stream)
    assert_valid_anthropic_stream(events)
    assert [t["input"] for t in accumulate(events)["content"]] == [{"x": 1}, {"x": 2}]


def test_nothing_is_emitted_after_the_stop() -> None:
    translator, _ = translate("text")
    assert translator.feed(SSEEvent(event="error", data='{"type":"error","message":"late"}')) == []
    assert translator.finish() == []


def test_a_lenient_route_passes_arguments_that_are_not_json_through_as_they_came() -> None:
    translation = make_translation()
    translation.lenient_tool_input = True
    _, events = translate("invalid_args", translation)
    assert_valid_anthropic_stream(events)
    streamed = "".join(e["delta"]["partial_json"] for e in events if e["type"] == "content_block_delta")
    assert streamed == '{"command": "ls -la"'

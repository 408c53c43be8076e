"""accumulate(): Anthropic stream events -> the final Message, checked against the anthropic SDK."""

from __future__ import annotations

import copy
from pathlib import Path

import orjson
import pytest
from anthropic.lib.streaming._messages import accumulate_event

from proxy.translate.accumulate import Accumulator, accumulate
from proxy.translate.sse import SSEDecoder

ANTHROPIC_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "anthropic"


def recorded(case: str) -> list[dict]:
    """A recorded Anthropic stream as event dicts (the `error` frame included, a frame cut in half not)."""
    decoder = SSEDecoder()
    events = decoder.feed((ANTHROPIC_FIXTURES / f"{case}.sse").read_bytes()) + decoder.flush()
    parsed = []
    for event in events:
        try:
            parsed.append(orjson.loads(event.data))
        except orjson.JSONDecodeError:
            assert event is events[-1], "only the last frame of a truncated recording may be cut"
    return parsed


def sdk_accumulate(events: list[dict]) -> dict:
    snapshot = None
    json_bufs: dict[int, bytes] = {}
    for event in copy.deepcopy(events):
        if event["type"] in ("error", "ping"):
            continue  # the SDK raises on an error frame before accumulating, and pings carry nothing
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=json_bufs)
    assert snapshot is not None
    message = snapshot.to_dict()
    if message.get("stop_details") is None:
        message.pop("stop_details", None)  # the SDK sets it to None on every message_delta
    return message


def start(**usage: int) -> dict:
    return {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-opus-4-8",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage or {"input_tokens": 0, "output_tokens": 0},
        },
    }


def block(index: int, content_block: dict) -> dict:
    return {"type": "content_block_start", "index": index, "content_block": content_block}


def delta(index: int, **fields: str) -> dict:
    kind, value = next(iter(fields.items()))
    key = {"text_delta": "text", "thinking_delta": "thinking", "signature_delta": "signature"}.get(
        kind, "partial_json"
    )
    return {"type": "content_block_delta", "index": index, "delta": {"type": kind, key: value}}


def stop(index: int) -> dict:
    return {"type": "content_block_stop", "index": index}


def end(stop_reason: str = "end_turn", **usage: int) -> list[dict]:
    return [
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": usage or {"output_tokens": 5},
        },
        {"type": "message_stop"},
    ]


def tool_stream(*partials: str) -> list[dict]:
    tool = {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}
    return [
        start(),
        block(0, tool),
        *[delta(0, input_json_delta=p) for p in partials],
        stop(0),
        *end("tool_use"),
    ]


@pytest.mark.parametrize("case", sorted(p.stem for p in ANTHROPIC_FIXTURES.glob("*.sse")))
def test_recorded_anthropic_stream_accumulates_like_the_sdk(case: str) -> None:
    events = recorded(case)
    assert accumulate(events) == sdk_accumulate(events)


def test_text_deltas_are_concatenated() -> None:
    events = [
        start(),
        block(0, {"type": "text", "text": ""}),
        delta(0, text_delta="Hel"),
        delta(0, text_delta="lo"),
    ]
    message = accumulate([*events, stop(0), *end()])
    assert message["content"] == [{"type": "text", "text": "Hello"}]
    assert (message["stop_reason"], message["stop_sequence"]) == ("end_turn", None)


def test_thinking_deltas_and_signature_make_one_thinking_block() -> None:
    events = [
        start(),
        block(0, {"type": "thinking", "thinking": "", "signature": ""}),
        delta(0, thinking_delta="Let me "),
        delta(0, thinking_delta="think."),
        delta(0, signature_delta="sig-1"),
        stop(0),
        *end(),
    ]
    assert accumulate(events)["content"] == [
        {"type": "thinking", "thinking": "Let me think.", "signature": "sig-1"}
    ]


def test_tool_input_is_parsed_from_the_concatenated_partial_json() -> None:
    message = accumulate(tool_stream('{"comm', 'and": "l', 's"}'))
    assert message["content"][0]["input"] == {"command": "ls"}
    assert message["stop_reason"] == "tool_use"


def test_tool_without_argument_deltas_keeps_empty_input() -> None:
    assert accumulate(tool_stream())["content"][0]["input"] == {}
    assert accumulate(tool_stream(""))["content"][0]["input"] == {}


def test_tool_input_that_is_not_a_json_object_is_kept_as_the_raw_text() -> None:
    # A stream cut off mid-call: the record keeps exactly what arrived, a str marks the failed call.
    assert accumulate(tool_stream('{"command": "l'))["content"][0]["input"] == '{"command": "l'
    assert accumulate(tool_stream("[1]"))["content"][0]["input"] == "[1]"


def test_message_delta_usage_overwrites_and_keeps_message_start_values_it_omits() -> None:
    events = [start(input_tokens=472, output_tokens=2, cache_read_input_tokens=11800), *end(output_tokens=19)]
    assert accumulate(events)["usage"] == {
        "input_tokens": 472,
        "output_tokens": 19,
        "cache_read_input_tokens": 11800,
    }
    events = [
        start(),
        *end(input_tokens=10, output_tokens=3, cache_read_input_tokens=7, cache_creation_input_tokens=0),
    ]
    assert accumulate(events)["usage"] == {
        "input_tokens": 10,
        "output_tokens": 3,
        "cache_read_input_tokens": 7,
        "cache_creation_input_tokens": 0,
    }


def test_stop_sequence_is_taken_from_message_delta() -> None:
    final = {
        "type": "message_delta",
        "delta": {"stop_reason": "stop_sequence", "stop_sequence": "###"},
        "usage": {"output_tokens": 1},
    }
    message = accumulate([start(), final, {"type": "message_stop"}])
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "###")


def test_stream_cut_short_keeps_what_arrived() -> None:
    events = [start(), {"type": "ping"}, block(0, {"type": "text", "text": ""}), delta(0, text_delta="Half")]
    message = accumulate(events)
    assert message["content"] == [{"type": "text", "text": "Half"}]
    assert message["stop_reason"] is None


def test_accumulate_does_not_modify_the_events() -> None:
    events = tool_stream('{"a": 1}')
    before = copy.deepcopy(events)
    accumulate(events)
    assert events == before


def test_events_not_starting_with_message_start_are_refused() -> None:
    with pytest.raises(ValueError, match="message_start"):
        accumulate([])
    with pytest.raises(ValueError, match="message_start"):
        accumulate([block(0, {"type": "text", "text": ""})])


def test_accumulator_reads_the_message_so_far_and_goes_on() -> None:
    # The relay folds events in as it sends them; a read mid-stream (a hang-up) must not lose pieces.
    acc = Accumulator()
    for event in [start(), block(0, {"type": "text", "text": ""}), delta(0, text_delta="Hel")]:
        acc.feed(event)
    assert acc.message()["content"] == [{"type": "text", "text": "Hel"}]
    for event in [
        delta(0, text_delta="lo"),
        stop(0),
        block(1, {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}),
        delta(1, input_json_delta='{"a"'),
    ]:
        acc.feed(event)
    assert acc.message()["content"] == [
        {"type": "text", "text": "Hello"},
        {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": '{"a"'},
    ]
    acc.feed(delta(1, input_json_delta=": 1}"))
    acc.feed(stop(1))
    for event in end("tool_use"):
        acc.feed(event)
    message = acc.message()
    assert message["content"][1]["input"] == {"a": 1}
    assert message["stop_reason"] == "tool_use"


def test_accumulator_has_nothing_before_message_start() -> None:
    acc = Accumulator()
    assert not acc.started
    with pytest.raises(ValueError, match="message_start"):
        acc.message()


def test_malformed_events_are_skipped_not_raised() -> None:
    # The relay feeds every event it sends: a passthrough upstream's malformed event must not end the stream.
    events = [
        start(),
        delta(3, text_delta="for no block"),
        {"type": "content_block_delta", "index": 0},
        block(0, {"type": "text", "text": ""}),
        {"type": "content_block_delta", "index": "0", "delta": {"type": "text_delta", "text": "x"}},
        delta(0, text_delta="kept"),
        *end(),
    ]
    assert accumulate(events)["content"] == [{"type": "text", "text": "kept"}]


def test_generated_chars_counts_text_thinking_and_tool_arguments_as_they_arrive() -> None:
    # Read once a second for the live feed's progress (issue #12): a counter, never a join.
    acc = Accumulator()
    acc.feed({"type": "message_start", "message": {"id": "m", "role": "assistant", "content": []}})
    acc.feed({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    acc.feed({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}})
    assert acc.generated_chars() == 5
    start = {"type": "tool_use", "id": "t", "name": "Bash", "input": {}}
    acc.feed({"type": "content_block_start", "index": 1, "content_block": start})
    json_delta = {"type": "input_json_delta", "partial_json": '{"a": 1}'}
    acc.feed({"type": "content_block_delta", "index": 1, "delta": json_delta})
    acc.message()  # joining the pieces does not change the count
    assert acc.generated_chars() == 5 + 8

"""Invariants of the Anthropic Messages SSE grammar, checked on any translator's output.

message_start first and once; content blocks strictly nested (start, deltas, stop), indexed 0, 1, 2…
with no gap; deltas only inside their open block and of the block's kind; message_delta then
message_stop last. https://docs.anthropic.com/en/api/messages-streaming#event-types
"""

from __future__ import annotations

from typing import Any

_DELTA_KINDS = {
    "text": {"text_delta", "citations_delta"},
    "thinking": {"thinking_delta", "signature_delta"},
    "tool_use": {"input_json_delta"},
    "server_tool_use": {"input_json_delta"},
}


def assert_valid_anthropic_stream(events: list[dict[str, Any]], *, complete: bool = True) -> None:
    """Fails with a message naming the offending event. `complete=False` allows a stream cut short."""
    assert events, "no events"
    assert events[0]["type"] == "message_start", f"first event is {events[0]['type']}"
    start = events[0]["message"]
    assert start["type"] == "message" and start["role"] == "assistant" and start["content"] == []
    assert start["stop_reason"] is None and start["stop_sequence"] is None
    assert isinstance(start["usage"]["input_tokens"], int) and isinstance(
        start["usage"]["output_tokens"], int
    )

    open_index: int | None = None
    open_kind = ""
    next_index = 0
    seen_message_delta = False
    for position, event in enumerate(events[1:], start=1):
        where = f"event {position} ({event['type']})"
        assert not seen_message_delta or event["type"] in ("message_stop", "ping"), (
            f"{where} after message_delta"
        )
        match event["type"]:
            case "message_start":
                raise AssertionError(f"{where}: a second message_start")
            case "content_block_start":
                assert open_index is None, f"{where}: block {open_index} is still open"
                assert event["index"] == next_index, f"{where}: index {event['index']}, expected {next_index}"
                open_index, open_kind = event["index"], event["content_block"]["type"]
                next_index += 1
                if open_kind == "tool_use":
                    assert event["content_block"]["input"] == {}, f"{where}: tool_use starts with input {{}}"
                    assert event["content_block"]["id"].startswith("toolu_"), f"{where}: id not toolu_"
            case "content_block_delta":
                assert event["index"] == open_index, (
                    f"{where}: delta for {event['index']}, open is {open_index}"
                )
                kind = event["delta"]["type"]
                assert kind in _DELTA_KINDS.get(open_kind, set()), (
                    f"{where}: {kind} inside a {open_kind} block"
                )
            case "content_block_stop":
                assert event["index"] == open_index, (
                    f"{where}: stop for {event['index']}, open is {open_index}"
                )
                open_index = None
            case "message_delta":
                assert open_index is None, f"{where}: block {open_index} still open"
                assert set(event["delta"]) >= {"stop_reason", "stop_sequence"}, f"{where}: {event['delta']}"
                assert isinstance(event["usage"]["output_tokens"], int), f"{where}: usage {event['usage']}"
                seen_message_delta = True
            case "message_stop":
                assert seen_message_delta, f"{where}: message_stop without message_delta"
                assert position == len(events) - 1, f"{where}: events after message_stop"
            case "ping":
                pass
            case other:
                raise AssertionError(f"{where}: unknown event type {other!r}")
    if complete:
        assert events[-1]["type"] == "message_stop", f"last event is {events[-1]['type']}"

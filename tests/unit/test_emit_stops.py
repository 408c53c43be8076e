"""translate/emit.py (the Anthropic stream grammar) and translate/stops.py (local stop sequences)."""

from __future__ import annotations

from proxy.translate.accumulate import accumulate
from proxy.translate.emit import AnthropicStreamWriter, zero_usage
from proxy.translate.stops import StopFilter


def kinds(events: list[dict]) -> list[str]:
    return [e["type"] if e["type"] != "content_block_delta" else e["delta"]["type"] for e in events]


def test_blocks_are_nested_indexed_and_closed_before_the_stop() -> None:
    w = AnthropicStreamWriter(message_id="msg_1", model="claude-sonnet-4-5", input_estimate=12)
    events = (
        w.thinking("hmm", signature="sig")
        + w.thinking(" more")
        + w.text("Hello")
        + w.text(" world")
        + w.tool_use(tool_id="toolu_1", name="Bash", partial_json='{"command"')
        + w.tool_input(': "ls"}')
        + w.stop("tool_use", usage={**zero_usage(), "output_tokens": 7})
    )
    assert kinds(events) == [
        "message_start",
        "content_block_start",
        "thinking_delta",
        "thinking_delta",
        "signature_delta",
        "content_block_stop",
        "content_block_start",
        "text_delta",
        "text_delta",
        "content_block_stop",
        "content_block_start",
        "input_json_delta",
        "input_json_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert [e["index"] for e in events if e["type"] == "content_block_start"] == [0, 1, 2]
    assert events[0]["message"]["usage"] == {"input_tokens": 12, "output_tokens": 0}
    message = accumulate(events)
    assert message["content"] == [
        {"type": "thinking", "thinking": "hmm more", "signature": "sig"},
        {"type": "text", "text": "Hello world"},
        {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}},
    ]
    assert message["stop_reason"] == "tool_use" and message["usage"]["output_tokens"] == 7
    assert w.text("late") == [] and w.stop("end_turn", usage=zero_usage()) == [] and w.ping() == []


def test_a_whole_block_and_an_empty_message() -> None:
    w = AnthropicStreamWriter(message_id="msg_2", model="m")
    events = w.text("a") + w.block_start({"type": "redacted_thinking", "data": "x"}) + w.text("b")
    assert [(e["type"], e.get("index")) for e in events if "index" in e] == [
        ("content_block_start", 0),
        ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_stop", 1),
        ("content_block_start", 2),
        ("content_block_delta", 2),
    ]
    empty = AnthropicStreamWriter(message_id="msg_3", model="m")
    assert kinds(empty.stop("end_turn", usage=zero_usage())) == [
        "message_start",
        "message_delta",
        "message_stop",
    ]


def test_stop_filter_holds_back_a_possible_start_and_cuts_at_the_match() -> None:
    f = StopFilter(["END", ""])
    assert f.feed("abc E") == ("abc ", None)  # "E" may start END
    assert f.feed("N") == ("", None)
    assert f.feed("D and more") == ("", "END")
    assert f.generated == ["abc E", "N", "D"]  # the model got as far as the sequence's end
    assert f.feed("after") == ("", None)
    g = StopFilter(["END"])
    assert g.feed("xE") == ("x", None) and g.flush() == "E" and g.flush() == ""
    assert not StopFilter([]) and StopFilter([]).feed("END") == ("END", None)


def test_stop_filter_picks_the_sequence_a_model_would_hit_first() -> None:
    f = StopFilter(["world", "lo w"])
    assert f.feed("hello world") == ("hel", "lo w")


def test_opaque_thinking_is_an_empty_thinking_block_closed_with_its_signature() -> None:
    w = AnthropicStreamWriter(message_id="msg_1", model="claude-sonnet-4-5")
    events = (
        w.text("Calling.")
        + w.opaque_thinking("sb1.gemini.cA.xyz")
        + w.tool_use(tool_id="toolu_1", name="Bash")
    )
    events += w.stop("tool_use", usage=zero_usage())
    assert kinds(events)[4:8] == [
        "content_block_start",
        "signature_delta",
        "content_block_stop",
        "content_block_start",
    ]
    message = accumulate(events)
    assert message["content"][1] == {"type": "thinking", "thinking": "", "signature": "sb1.gemini.cA.xyz"}
    assert [b["type"] for b in message["content"]] == ["text", "thinking", "tool_use"]

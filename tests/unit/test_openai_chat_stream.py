"""OpenAI Chat Completions stream -> Anthropic stream events (translate/openai_chat/stream.py).

Every case replays a recorded upstream stream from tests/fixtures/openai/<case>.sse. Besides the
case's own assertions, each complete stream is checked against the Anthropic grammar, against the
anthropic SDK's own accumulator, and against parse_response() of the same reply without streaming
(built from the chunks by the openai SDK's ChatCompletionStreamState, an independent accumulator).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from proxy.translate import ids
from proxy.translate.accumulate import accumulate
from proxy.translate.base import UpstreamError
from proxy.translate.openai_chat import DIALECT
from proxy.translate.openai_chat.response import parse_response
from proxy.translate.openai_chat.state import ChatState
from proxy.translate.openai_chat.stream import OpenAIStreamTranslator, Phase
from proxy.translate.openai_chat.wire import thinking_signature
from proxy.translate.sse import SSEDecoder, encode_events
from proxy.translate.tokens import count_text_tokens, count_tokens, warm_up
from proxy.translate.tool_names import shorten
from proxy.translate.types import SSEEvent, Translation, UpstreamRequest
from tests.unit.stream_checks import assert_valid_anthropic_stream

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "openai"
# Estimated usage is counted with the encoder once it is loaded (else approximated from lengths, tested in
# test_tokens.py): load it, so the figures below do not depend on which tests ran first in this process.
warm_up()
CLIENT_MODEL = "claude-opus-4-8"
MESSAGE_ID = "msg_01StreamTest0000000000"
LONG_NAME = "mcp__claude_ai_Google_Drive__google_drive_search_files_and_folders_by_query"
FAILING = {"invalid_args", "error_midstream", "truncated"}
# Per case: what the request side would have put in the Translation.
# The request behind local_stop.sse: kept in the translation to estimate the usage of a stream we cut.
LOCAL_STOP_REQUEST = {
    "model": CLIENT_MODEL,
    "max_tokens": 100,
    "stop_sequences": ["a", "b", "c", "d", "###END"],
    "messages": [{"role": "user", "content": "Compute the result, then write ###END."}],
}
SETUP: dict[str, dict[str, Any]] = {
    "local_stop": {
        "stop_sequences": ("###END",),
        "state": ChatState(reasoning=False, local_stop_sequences=("###END",), request=LOCAL_STOP_REQUEST),
    },
    "long_tool_name": {"tool_names": {shorten(LONG_NAME): LONG_NAME}},
    "vllm_stop_reason": {"stop_sequences": ("</sql>",)},
}


def make_translation(
    *,
    tool_names: dict[str, str] | None = None,
    stop_sequences: tuple[str, ...] = (),
    state: ChatState | None = None,
) -> Translation:
    upstream = UpstreamRequest(
        method="POST", url="http://upstream/v1/chat/completions", headers={}, body={}, stream=True
    )
    return Translation(
        upstream=upstream,
        client_model=CLIENT_MODEL,
        message_id=MESSAGE_ID,
        tool_names=tool_names or {},
        stop_sequences=stop_sequences,
        state=state if state is not None else ChatState(),
    )


def translation_for(case: str) -> Translation:
    return make_translation(**SETUP.get(case, {}))


def upstream_events(case: str) -> list[SSEEvent]:
    decoder = SSEDecoder()
    raw = (FIXTURES / f"{case}.sse").read_bytes()
    return decoder.feed(raw) + decoder.flush()


def translate(case: str, translation: Translation | None = None) -> tuple[OpenAIStreamTranslator, list[dict]]:
    translator = OpenAIStreamTranslator(translation or translation_for(case))
    out: list[dict] = []
    for event in upstream_events(case):
        out += translator.feed(event)
    out += translator.finish()
    return translator, out


def feed_chunks(translator: OpenAIStreamTranslator, chunks: list[dict | str]) -> list[dict]:
    out: list[dict] = []
    for chunk in chunks:
        data = chunk if isinstance(chunk, str) else orjson.dumps(chunk).decode()
        out += translator.feed(SSEEvent(data=data))
    return out


def chunk(delta: dict, finish: str | None = None, **choice: Any) -> dict:
    return {
        "id": "chatcmpl-x",
        "object": "chat.completion.chunk",
        "created": 1764078000,
        "model": "backend-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, **choice}],
    }


def _call(index: int, call_id: str, name: str, arguments: str) -> dict:
    return {
        "index": index,
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def non_stream_body(case: str) -> dict:
    """The same reply without streaming, accumulated by the openai SDK (not by our code)."""
    state = ChatCompletionStreamState()
    for event in upstream_events(case):
        if event.data.strip() != "[DONE]":
            state.handle_chunk(ChatCompletionChunk.construct(**orjson.loads(event.data)))
    body = state.current_completion_snapshot.to_dict()
    body["object"] = "chat.completion"
    return body


def sdk_accumulate(events: list[dict]) -> dict:
    snapshot = None
    json_bufs: dict[int, bytes] = {}
    for event in copy.deepcopy(events):
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=json_bufs)
    assert snapshot is not None
    message = snapshot.to_dict()
    if message.get("stop_details") is None:
        message.pop("stop_details", None)  # the SDK sets it to None on every message_delta
    return message


def blocks(events: list[dict]) -> list[dict]:
    return [e["content_block"] for e in events if e["type"] == "content_block_start"]


def deltas(events: list[dict], index: int) -> list[dict]:
    return [e["delta"] for e in events if e["type"] == "content_block_delta" and e["index"] == index]


def message_delta(events: list[dict]) -> dict:
    (found,) = [e for e in events if e["type"] == "message_delta"]
    return found


COMPLETE_CASES = sorted(p.stem for p in FIXTURES.glob("*.sse") if p.stem not in FAILING)


# --- every recorded stream ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", COMPLETE_CASES)
def test_recorded_stream_follows_the_anthropic_grammar(case: str) -> None:
    translator, events = translate(case)
    assert_valid_anthropic_stream(events)
    assert translator.done and translator.phase is Phase.STOPPED
    assert encode_events(events).count(b"\n\n") == len(events)  # every event encodes as one SSE frame
    assert all(e["message"]["model"] == CLIENT_MODEL for e in events if e["type"] == "message_start")


@pytest.mark.parametrize("case", COMPLETE_CASES)
def test_recorded_stream_translates_to_the_expected_events(case: str) -> None:
    # <case>.expected.jsonl was reviewed by hand once; it pins the exact output against regressions.
    expected = [orjson.loads(line) for line in (FIXTURES / f"{case}.expected.jsonl").read_text().splitlines()]
    assert translate(case)[1] == expected


@pytest.mark.parametrize("case", COMPLETE_CASES)
def test_recorded_stream_accumulates_like_the_anthropic_sdk(case: str) -> None:
    _, events = translate(case)
    assert accumulate(events) == sdk_accumulate(events)


@pytest.mark.parametrize("case", sorted(set(COMPLETE_CASES) - {"vllm_stop_reason"}))
def test_recorded_stream_accumulates_to_the_non_streaming_translation(case: str) -> None:
    translator, events = translate(case)
    expected = parse_response(non_stream_body(case), translation_for(case))
    got = accumulate(events)
    if case == "local_stop":
        # Streaming hangs up at the stop sequence, before the backend's usage arrives: estimated instead.
        expected.pop("usage"), got.pop("usage")
    assert got == expected
    assert translator.stop_reason == expected["stop_reason"]


# --- text -----------------------------------------------------------------------------------------------


def test_plain_text_streams_one_text_block_when_first_chunk_is_role_only() -> None:
    translator, events = translate("text")
    assert [e["type"] for e in events] == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * 6,  # 7 content chunks, one of them empty
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0]["message"] == {
        "id": MESSAGE_ID,
        "type": "message",
        "role": "assistant",
        "model": CLIENT_MODEL,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }
    assert events[1]["content_block"] == {"type": "text", "text": ""}
    assert (
        "".join(d["text"] for d in deltas(events, 0))
        == 'Hello! I created `hello.txt` with the text "hi from proxy".'
    )
    assert message_delta(events) == {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {
            "input_tokens": 12873 - 11776,
            "output_tokens": 19,
            "cache_read_input_tokens": 11776,
            "cache_creation_input_tokens": 0,
        },
    }
    assert translator.usage == message_delta(events)["usage"]
    assert translator.stop_reason == "end_turn"


def test_role_only_chunk_emits_message_start_and_nothing_else() -> None:
    translator = OpenAIStreamTranslator(make_translation())
    out = feed_chunks(translator, [chunk({"role": "assistant", "content": ""})])
    assert [e["type"] for e in out] == ["message_start"]
    assert feed_chunks(translator, [chunk({"content": ""}), chunk({"content": None})]) == []


def test_message_start_carries_the_size_estimate_and_message_delta_the_backends_count() -> None:
    translation = make_translation()
    translation.input_estimate = 18_667  # what the request side estimated from the body's size
    _, out = translate("text", translation)
    start = next(e for e in out if e["type"] == "message_start")
    delta = next(e for e in out if e["type"] == "message_delta")
    assert start["message"]["usage"] == {"input_tokens": 18_667, "output_tokens": 0}
    usage_chunk = next(e.data for e in upstream_events("text") if '"usage":{' in e.data)
    upstream_usage = orjson.loads(usage_chunk)["usage"]
    cached = (upstream_usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    assert delta["usage"]["input_tokens"] == upstream_usage["prompt_tokens"] - cached
    # The anthropic SDK's own accumulator ends with the backend's figures, not the estimate.
    assert sdk_accumulate(out)["usage"]["input_tokens"] == delta["usage"]["input_tokens"] != 18_667


def test_message_delta_waits_for_the_usage_chunk_after_the_finish_chunk() -> None:
    translator = OpenAIStreamTranslator(make_translation())
    upstream = upstream_events("text")
    finish_at = next(i for i, e in enumerate(upstream) if '"finish_reason":"stop"' in e.data)
    before = [out for e in upstream[: finish_at + 1] for out in translator.feed(e)]
    assert before[-1] == {"type": "content_block_stop", "index": 0}  # blocks close at the finish chunk
    assert not translator.done
    after_usage = translator.feed(upstream[finish_at + 1])
    assert [e["type"] for e in after_usage] == ["message_delta", "message_stop"]
    assert after_usage[0]["usage"]["cache_read_input_tokens"] == 11776
    assert translator.feed(upstream[finish_at + 2]) == []  # [DONE]
    assert translator.finish() == []


def test_done_without_usage_chunk_still_completes_the_message() -> None:
    _, events = translate("tool_whole_chunk")  # Ollama: no usage chunk at all
    assert message_delta(events)["usage"] == {
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
    }


def test_finish_reason_without_done_completes_on_finish() -> None:
    translator = OpenAIStreamTranslator(translation_for("no_done"))
    fed = [out for e in upstream_events("no_done") for out in translator.feed(e)]
    assert "message_stop" not in [e["type"] for e in fed]
    closing = translator.finish()
    assert [e["type"] for e in closing] == ["message_delta", "message_stop"]
    assert translator.finish() == []  # idempotent
    assert_valid_anthropic_stream(fed + closing)
    assert accumulate(fed + closing)["content"] == [{"type": "text", "text": "All good."}]


def test_done_after_completion_emits_nothing_further() -> None:
    translator, _ = translate("text")
    assert translator.feed(SSEEvent(data="[DONE]")) == []
    assert translator.feed(SSEEvent(data=orjson.dumps(chunk({"content": "late"})).decode())) == []
    assert translator.finish() == []


def test_length_finish_becomes_max_tokens() -> None:
    translator, events = translate("length")
    assert message_delta(events)["delta"] == {"stop_reason": "max_tokens", "stop_sequence": None}
    assert translator.stop_reason == "max_tokens"


def test_content_filter_finish_becomes_refusal() -> None:
    translator = OpenAIStreamTranslator(make_translation())
    out = feed_chunks(
        translator, [chunk({"role": "assistant", "content": "I"}), chunk({}, "content_filter"), "[DONE]"]
    )
    assert message_delta(out)["delta"]["stop_reason"] == "refusal"


def test_refusal_delta_streams_as_text_and_stops_with_refusal() -> None:
    translator = OpenAIStreamTranslator(make_translation())
    out = feed_chunks(
        translator,
        [
            chunk({"role": "assistant", "content": None, "refusal": ""}),
            chunk({"refusal": "I can't help."}),
            chunk({}, "stop"),
            "[DONE]",
        ],
    )
    assert accumulate(out)["content"] == [{"type": "text", "text": "I can't help."}]
    assert translator.stop_reason == "refusal"


# --- tool calls -----------------------------------------------------------------------------------------


def test_tool_arguments_split_over_chunks_stream_as_input_json_deltas() -> None:
    _, events = translate("tool_args_split")
    assert blocks(events) == [
        {"type": "tool_use", "id": "toolu_sb_call_Qm3kX1bYp2VZ8nT4dR6sL0aE", "name": "Write", "input": {}}
    ]
    pieces = [d["partial_json"] for d in deltas(events, 0)]
    assert len(pieces) == 14  # one delta per upstream fragment, streamed live
    assert orjson.loads("".join(pieces)) == {
        "file_path": "/home/user/project/hello.txt",
        "content": "hi from proxy\n",
    }
    assert message_delta(events)["delta"]["stop_reason"] == "tool_use"


def test_tool_calls_without_text_open_no_text_block() -> None:
    _, events = translate("tool_args_split")
    assert [b["type"] for b in blocks(events)] == ["tool_use"]


def test_whole_tool_call_in_one_chunk_is_one_block_with_one_delta() -> None:
    _, events = translate("tool_whole_chunk")
    assert [b["name"] for b in blocks(events)] == ["Bash"]
    assert deltas(events, 0) == [
        {"type": "input_json_delta", "partial_json": '{"command":"ls -la","description":"List files"}'}
    ]


def test_tool_call_with_empty_arguments_starts_with_empty_input_and_sends_no_delta() -> None:
    _, events = translate("tool_empty_args")
    assert blocks(events)[0]["input"] == {}
    assert deltas(events, 0) == []
    assert accumulate(events)["content"][0]["input"] == {}


def test_interleaved_parallel_tool_calls_become_separate_blocks() -> None:
    _, events = translate("parallel_interleaved")
    assert [(b["id"], b["name"]) for b in blocks(events)] == [
        ("toolu_sb_call_read_a", "Read"),
        ("toolu_sb_call_read_b", "Read"),
    ]
    message = accumulate(events)
    assert [b["input"] for b in message["content"]] == [{"file_path": "/a.py"}, {"file_path": "/b.py"}]
    assert message["stop_reason"] == "tool_use"


def test_sequential_parallel_tool_calls_each_stream_live() -> None:
    translator = OpenAIStreamTranslator(make_translation())
    upstream = upstream_events("parallel_sequential")
    # The second call's first argument fragment reaches the client as it arrives, not at the end.
    second_start = next(i for i, e in enumerate(upstream) if '"index":1' in e.data)
    for event in upstream[:second_start]:
        translator.feed(event)
    opened = translator.feed(upstream[second_start])
    assert [e["type"] for e in opened] == ["content_block_stop", "content_block_start"]
    assert opened[1]["content_block"]["name"] == "Grep"
    assert translator.feed(upstream[second_start + 1]) == [
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"pat'},
        }
    ]


def test_text_then_tool_call_closes_text_before_the_tool_block() -> None:
    _, events = translate("text_then_tool")
    assert [b["type"] for b in blocks(events)] == ["text", "tool_use"]
    stop_text = events.index({"type": "content_block_stop", "index": 0})
    start_tool = next(
        i for i, e in enumerate(events) if e["type"] == "content_block_start" and e["index"] == 1
    )
    assert stop_text < start_tool
    assert accumulate(events)["content"][0] == {"type": "text", "text": "I'll create the file."}


def test_finish_reason_stop_with_tool_calls_is_tool_use() -> None:
    translator, events = translate("stop_with_tools")
    assert message_delta(events)["delta"]["stop_reason"] == "tool_use"
    assert translator.usage["input_tokens"] == 300


def test_kimi_tool_call_ids_map_to_client_ids_that_round_trip() -> None:
    _, events = translate("kimi_ids")
    first, second = blocks(events)
    assert first["id"] == ids.tool_id_to_client("functions.Bash:0")
    assert ids.tool_id_to_upstream(first["id"]) == "functions.Bash:0"
    # The second call came without an id: a deterministic synthetic one, by its position.
    assert second["id"] == ids.synthetic_tool_id(MESSAGE_ID, 1)
    assert message_delta(events)["usage"]["cache_read_input_tokens"] == 512


def test_long_tool_name_is_restored_in_content_block_start() -> None:
    _, events = translate("long_tool_name")
    assert blocks(events)[0]["name"] == LONG_NAME


def test_tool_name_not_in_the_map_passes_unchanged() -> None:
    _, events = translate("long_tool_name", make_translation())
    assert blocks(events)[0]["name"] == shorten(LONG_NAME)


def test_invalid_tool_arguments_raise_upstream_error_naming_the_tool() -> None:
    translator = OpenAIStreamTranslator(translation_for("invalid_args"))
    out: list[dict] = []
    with pytest.raises(UpstreamError) as caught:
        for event in upstream_events("invalid_args"):
            out += translator.feed(event)
    assert caught.value.error_type == "api_error"
    assert "'Bash'" in caught.value.message and '{"command": \\"ls' not in caught.value.message
    assert '{"command": "ls' in caught.value.message
    assert translator.done and translator.finish() == []  # nothing more after the error
    assert_valid_anthropic_stream(out, complete=False)


def test_calls_reusing_index_zero_with_new_ids_become_separate_blocks() -> None:
    translator = OpenAIStreamTranslator(make_translation())
    out = feed_chunks(
        translator,
        [
            chunk({"role": "assistant", "tool_calls": [_call(0, "call_a", "Read", "{}")]}),
            chunk({"tool_calls": [_call(0, "call_b", "Glob", "{}")]}),
            chunk({}, "tool_calls"),
            "[DONE]",
        ],
    )
    assert [(b["id"], b["name"]) for b in blocks(out)] == [
        ("toolu_sb_call_a", "Read"),
        ("toolu_sb_call_b", "Glob"),
    ]
    assert_valid_anthropic_stream(out)


def test_arguments_for_a_closed_call_raise_instead_of_being_dropped() -> None:
    translator = OpenAIStreamTranslator(make_translation())
    with pytest.raises(UpstreamError, match="after its call ended"):
        feed_chunks(
            translator,
            [
                chunk(
                    {"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "A", "arguments": "{}"}}]}
                ),
                chunk({"content": "text in between"}),
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"x": 1}'}}]}),
            ],
        )


# --- reasoning ------------------------------------------------------------------------------------------


def test_deepseek_reasoning_content_becomes_a_thinking_block_before_the_text() -> None:
    _, events = translate("deepseek_reasoning")
    assert [b["type"] for b in blocks(events)] == ["thinking", "text"]
    assert blocks(events)[0] == {"type": "thinking", "thinking": "", "signature": ""}
    thinking = deltas(events, 0)
    assert thinking[-1] == {"type": "signature_delta", "signature": thinking_signature("reasoning_content")}
    assert "".join(d.get("thinking", "") for d in thinking) == "The user wants a file. I'll answer briefly."
    assert message_delta(events)["usage"] == {
        "input_tokens": 128,
        "output_tokens": 64,
        "cache_read_input_tokens": 1920,
        "cache_creation_input_tokens": 0,
    }


def test_openrouter_reasoning_becomes_a_thinking_block_signed_with_its_field() -> None:
    _, events = translate("openrouter_reasoning")
    message = accumulate(events)
    assert message["content"] == [
        {
            "type": "thinking",
            "thinking": "Let me think about it.",
            "signature": thinking_signature("reasoning"),
        },
        {"type": "text", "text": "Four."},
    ]


def test_reasoning_then_text_then_tool_call_keep_their_order() -> None:
    _, events = translate("deepseek_reasoning_tool")
    assert [b["type"] for b in blocks(events)] == ["thinking", "text", "tool_use"]


def test_reasoning_is_dropped_when_the_client_did_not_ask_for_thinking() -> None:
    _, events = translate("deepseek_reasoning", make_translation(state=ChatState(reasoning=False)))
    assert [b["type"] for b in blocks(events)] == ["text"]
    assert blocks(events)[0]["type"] == "text" and events[1]["index"] == 0


# --- stop sequences -------------------------------------------------------------------------------------


def test_local_stop_sequence_split_across_chunks_cuts_the_text_and_stops() -> None:
    translator = OpenAIStreamTranslator(translation_for("local_stop"))
    out: list[dict] = []
    upstream = upstream_events("local_stop")
    for event in upstream:
        out += translator.feed(event)
        if translator.done:
            break
    assert_valid_anthropic_stream(out)
    # "### not it" looked like the start of "###END" for a while: held back, then released as text.
    assert accumulate(out)["content"] == [{"type": "text", "text": "Result: 42 ### not it. Done "}]
    assert message_delta(out)["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "###END"}
    assert translator.stop_reason == "stop_sequence" and translator.stop_sequence == "###END"
    assert translator.done
    rest = upstream[upstream.index(event) + 1 :]
    assert rest and all(translator.feed(e) == [] for e in rest)  # the rest of the upstream is ignored
    assert translator.finish() == []


def test_local_stop_sequence_never_leaks_a_partial_match_to_the_client() -> None:
    translator = OpenAIStreamTranslator(translation_for("local_stop"))
    emitted = ""
    for event in upstream_events("local_stop"):
        for out in translator.feed(event):
            if out["type"] == "content_block_delta":
                emitted += out["delta"]["text"]
                assert "###E" not in emitted


def test_stream_cut_at_a_local_stop_reports_estimated_usage_not_zero() -> None:
    # We hang up before the backend's usage chunk: the usage is counted locally from what was generated,
    # the stop sequence included and the text after it (never sent, never paid for) not.
    translator = OpenAIStreamTranslator(translation_for("local_stop"))
    out: list[dict] = []
    for event in upstream_events("local_stop"):
        out += translator.feed(event)
    usage = message_delta(out)["usage"]
    assert usage["input_tokens"] == count_tokens(LOCAL_STOP_REQUEST)
    assert usage["output_tokens"] == count_text_tokens("Result: 42 ### not it. Done ###END")
    assert usage["output_tokens"] < count_text_tokens("Result: 42 ### not it. Done ###END and more text")
    assert translator.usage_estimated


def test_backend_usage_seen_before_a_local_stop_is_kept_not_estimated() -> None:
    # Some servers (vLLM's continuous usage stats) put usage in every chunk.
    translator = OpenAIStreamTranslator(translation_for("local_stop"))
    with_usage = {**chunk({"content": "a ###END b"}), "usage": {"prompt_tokens": 9, "completion_tokens": 4}}
    out = feed_chunks(translator, [chunk({"role": "assistant", "content": ""}), with_usage])
    assert message_delta(out)["usage"]["output_tokens"] == 4
    assert message_delta(out)["usage"]["input_tokens"] == 9
    assert not translator.usage_estimated


def test_a_stream_that_ends_normally_is_never_estimated() -> None:
    translator, _ = translate("text")
    assert not translator.usage_estimated


def test_text_held_for_a_possible_stop_sequence_is_released_before_a_tool_call() -> None:
    translation = make_translation(state=ChatState(local_stop_sequences=("STOP",)))
    translator = OpenAIStreamTranslator(translation)
    out = feed_chunks(
        translator,
        [
            chunk({"content": "almost ST"}),
            chunk({"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "A", "arguments": "{}"}}]}),
            chunk({}, "tool_calls"),
            "[DONE]",
        ],
    )
    assert accumulate(out)["content"][0] == {"type": "text", "text": "almost ST"}
    assert translator.stop_reason == "tool_use"


def test_vllm_matched_stop_string_becomes_stop_sequence() -> None:
    translator, events = translate("vllm_stop_reason")
    assert message_delta(events)["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "</sql>"}
    assert translator.usage["input_tokens"] == 55


def test_sglang_integer_matched_stop_is_a_token_not_a_stop_sequence() -> None:
    translator = OpenAIStreamTranslator(make_translation())
    feed_chunks(translator, [chunk({"content": "x"}), chunk({}, "stop", matched_stop=151645), "[DONE]"])
    assert translator.stop_reason == "end_turn" and translator.stop_sequence is None


# --- upstream failures ----------------------------------------------------------------------------------


def test_error_object_in_the_stream_raises_upstream_error() -> None:
    translator = OpenAIStreamTranslator(translation_for("error_midstream"))
    out: list[dict] = []
    with pytest.raises(UpstreamError) as caught:
        for event in upstream_events("error_midstream"):
            out += translator.feed(event)
    assert caught.value.message == "upstream stream error: Provider returned error"
    assert caught.value.upstream_status == 502 and caught.value.status == 500
    assert caught.value.error_type == "api_error"
    assert [e["type"] for e in out] == ["message_start", "content_block_start", "content_block_delta"]
    assert translator.finish() == []  # the relay's finally may still call finish()


def test_sse_error_event_with_rate_limit_type_maps_to_rate_limit_error() -> None:
    translator = OpenAIStreamTranslator(make_translation())
    error = {"error": {"message": "slow down", "type": "rate_limit_exceeded", "code": None}}
    with pytest.raises(UpstreamError) as caught:
        translator.feed(SSEEvent(data=orjson.dumps(error).decode(), event="error"))
    assert (caught.value.error_type, caught.value.status) == ("rate_limit_error", 429)


def test_stream_ending_before_any_finish_reason_raises() -> None:
    translator = OpenAIStreamTranslator(translation_for("truncated"))
    out = [e for event in upstream_events("truncated") for e in translator.feed(event)]
    with pytest.raises(UpstreamError, match="upstream stream ended before finishing") as caught:
        translator.finish()
    assert caught.value.error_type == "api_error"
    assert translator.finish() == []  # idempotent: the failure is reported once
    assert_valid_anthropic_stream(out, complete=False)


def test_done_before_any_finish_reason_raises() -> None:
    translator = OpenAIStreamTranslator(make_translation())
    with pytest.raises(UpstreamError, match="ended before finishing"):
        feed_chunks(translator, [chunk({"content": "hi"}), "[DONE]"])


def test_empty_stream_raises_on_finish() -> None:
    with pytest.raises(UpstreamError, match="ended before finishing"):
        OpenAIStreamTranslator(make_translation()).finish()


def test_data_that_is_not_json_raises() -> None:
    translator = OpenAIStreamTranslator(make_translation())
    with pytest.raises(UpstreamError, match="not JSON"):
        translator.feed(SSEEvent(data="<html>502 Bad Gateway</html>"))


def test_dialect_hands_out_a_fresh_translator_per_request() -> None:
    translation = make_translation()
    first, second = DIALECT.stream_translator(translation), DIALECT.stream_translator(translation)
    assert first is not second and isinstance(first, OpenAIStreamTranslator)
    assert DIALECT.name == "openai"


def test_tool_call_that_never_gets_a_name_raises() -> None:
    translator = OpenAIStreamTranslator(make_translation())
    with pytest.raises(UpstreamError, match="without a name"):
        feed_chunks(
            translator,
            [chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}), chunk({}, "tool_calls")],
        )


def test_finish_reason_error_raises_at_once() -> None:
    translator = OpenAIStreamTranslator(make_translation())
    with pytest.raises(UpstreamError, match="finish_reason 'error'"):
        feed_chunks(translator, [chunk({"content": "par"}), chunk({}, "error")])
    assert translator.done and translator.finish() == []


@pytest.mark.parametrize(
    "bad",
    [
        {"choices": "nope"},
        {"choices": [["not", "a", "choice"]]},
        {"choices": [{"index": 0, "delta": "text"}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": {"index": 0}}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": ["call"]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": "Bash"}]}}]},
        {"choices": [], "usage": [1, 2]},
    ],
)
def test_malformed_chunks_raise_upstream_error(bad: dict) -> None:
    translator = OpenAIStreamTranslator(make_translation())
    with pytest.raises(UpstreamError, match="malformed"):
        feed_chunks(translator, [bad])


def test_lenient_tool_input_passes_invalid_arguments_on_as_they_came() -> None:
    translation = translation_for("invalid_args")
    translation.lenient_tool_input = True
    translator, events = translate("invalid_args", translation)
    deltas = [e["delta"] for e in events if e["type"] == "content_block_delta"]
    assert deltas == [{"type": "input_json_delta", "partial_json": '{"command": "ls'}]
    assert translator.done and translator.usage_estimated is False
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    assert_valid_anthropic_stream(events)


def test_content_after_the_finish_chunk_is_closed_before_the_message_stops() -> None:
    translator = OpenAIStreamTranslator(make_translation())
    events = feed_chunks(
        translator,
        [
            chunk({"content": "a"}, "stop"),
            chunk({"content": "b"}),  # a backend that goes on after its finish_reason
            {"id": "chatcmpl-x", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}},
        ],
    )
    assert translator.done
    assert_valid_anthropic_stream(events)
    assert [e["delta"]["text"] for e in events if e["type"] == "content_block_delta"] == ["a", "b"]

"""Tool-call healing's pure core (issue #15) over the tools Claude Code 2.1.197 really sends: each repair
kind, each case that must not be touched, the validator cache, the stream stage and the retry request."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from proxy.translate.accumulate import accumulate
from proxy.translate.base import UpstreamError
from proxy.translate.healing.decide import ToolSet, decide
from proxy.translate.healing.feedback import (
    feedback_of,
    malformed_retry_request,
    message_events,
    retried_call,
    retry_request,
)
from proxy.translate.healing.schema import ValidatorCache
from proxy.translate.healing.stream import MALFORMED_CALL, ToolCallHealer
from proxy.upstream import Timeouts
from tests.conftest import load_fixture

REQUEST = load_fixture("main_turn")
TOOLS = ToolSet(REQUEST["tools"])
ANY_OF = {
    "name": "Pick",
    "input_schema": {
        "type": "object",
        "properties": {
            "n": {"anyOf": [{"type": "integer"}, {"type": "boolean"}]},
            "either": {"anyOf": [{"type": "integer"}, {"type": "number"}]},
            "items": {"type": "array", "items": {"type": "string"}},
            "options": {"type": "object", "properties": {"a": {"type": "integer"}}},
        },
        "additionalProperties": False,
    },
}


# -- the repairs, each alone -------------------------------------------------------------------------

REPAIRS = [
    ("Bash", '{"command": "ls",}', "trailing_comma", {"command": "ls"}),
    ("Bash", '{"command": "ls", "timeout": [1, 2,],}', None, None),  # still invalid after: retry
    ("Bash", '```json\n{"command": "ls"}\n```', "fence_stripped", {"command": "ls"}),
    ("Bash", '```\n{"command": "ls"}\n```', "fence_stripped", {"command": "ls"}),
    ("Bash", 'Here is the call: {"command": "ls"} Let me know.', "prose_stripped", {"command": "ls"}),
    ("Bash", '"{\\"command\\": \\"ls\\"}"', "double_encoded", {"command": "ls"}),
    ("Edit", '{"file_path": "/a", "old_string": "x", "new_string": "y", "replace_all": True}',
     "python_literal", {"file_path": "/a", "old_string": "x", "new_string": "y", "replace_all": True}),
    ("Write", '{"file_path": "/a", "content": "line 1\nline 2\tend"}', "control_character_escaped",
     {"file_path": "/a", "content": "line 1\nline 2\tend"}),
    ("Bash", '{"command": "ls"', "closing_brackets_added", {"command": "ls"}),
    ("WebSearch", '{"query": "abc", "allowed_domains": ["a.com", "b.com"', "closing_brackets_added",
     {"query": "abc", "allowed_domains": ["a.com", "b.com"]}),
    ("Bash", '{"command": "ls", "timeout": "120"}', "string_to_integer", {"command": "ls", "timeout": 120}),
    ("Bash", '{"command": "ls", "timeout": "1.5"}', "string_to_number", {"command": "ls", "timeout": 1.5}),
    ("Edit", '{"file_path": "/a", "old_string": "x", "new_string": "y", "replace_all": "true"}',
     "string_to_boolean", {"file_path": "/a", "old_string": "x", "new_string": "y", "replace_all": True}),
    ("Write", '{"file_path": "/a", "content": 42}', "number_to_string", {"file_path": "/a", "content": "42"}),
    ("Bash", '{"command": "ls", "description": null}', "null_dropped", {"command": "ls"}),
    ("WebSearch", '{"query": "abc", "allowed_domains": "[\\"a.com\\"]"}', "string_to_array",
     {"query": "abc", "allowed_domains": ["a.com"]}),
    ("Pick", '{"options": "{\\"a\\": 1}"}', "string_to_object", {"options": {"a": 1}}),
    ("Pick", '{"n": "true"}', "string_to_boolean", {"n": True}),  # one anyOf branch takes it
    ("bash", '{"command": "ls"}', "tool_name", {"command": "ls"}),
    ("task_list", "{}", "tool_name", {}),
    ("TaskList", "", "empty_arguments", {}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "raw", "repair", "expected"), REPAIRS)
def test_each_repair_fixes_its_kind_and_says_so(
    name: str, raw: str, repair: str | None, expected: dict[str, Any] | None
) -> None:
    tools = ToolSet([*REQUEST["tools"], ANY_OF])
    verdict = decide(name, raw, tools, finished=True)
    if expected is None:
        assert verdict.outcome == "needs_retry"
        return
    assert verdict.outcome == "repaired", verdict.error
    assert verdict.input == expected
    assert repair in [e.repair for e in verdict.edits]


def test_a_coercion_records_its_path_and_both_values() -> None:
    verdict = decide("Bash", '{"command": "ls", "timeout": "120"}', TOOLS, finished=True)
    assert [e.as_dict() for e in verdict.edits] == [
        {"repair": "string_to_integer", "path": "/timeout", "before": "120", "after": 120}
    ]


# -- what goes to a retry instead ---------------------------------------------------------------------

RETRIES = [
    ("Bash", '{"command": "ls"', False, "token limit"),  # no closing brackets at the token limit
    ("Bash", '{"command": "ls', True, "inside a string"),  # never a closing quote
    ("Write", '{"file_path": "/a"}', True, "'content' is a required property"),
    ("Bash", '{"command": "ls", "force": true}', True, "Additional properties"),  # not binned
    ("Bash", "{'command': 'ls'}", True, "not valid JSON"),  # single quotes: json-repair would guess
    ("Bash", '{command: "ls"}', True, "not valid JSON"),
    ("Bash", '{"command": "ls", "timeout": }', True, "not valid JSON"),  # json-repair would invent ""
    ("Bash", "ls -la", True, "not valid JSON"),
    ("Bash", "", True, "no arguments"),  # lost arguments are not {}
    ("Bash", "[1, 2]", True, "not an object"),
    ("Nope", "{}", True, "no tool named"),
    ("Task_Create", '{"subject": "a"}', True, "required"),  # named right once loose, still invalid
    ("Pick", '{"either": "3"}', True, "any of the given schemas"),  # two branches take 3: not ours to choose
    ("Bash", '{"command": "ls", "timeout": "12abc"}', True, "is not of type 'number'"),
]


@pytest.mark.parametrize(("name", "raw", "finished", "why"), RETRIES)
def test_what_no_repair_can_be_sure_of_goes_to_a_retry(name: str, raw: str, finished: bool, why: str) -> None:
    tools = ToolSet([*REQUEST["tools"], ANY_OF])
    verdict = decide(name, raw, tools, finished=finished)
    assert verdict.outcome == "needs_retry" and verdict.input is None
    assert why in verdict.error


def test_a_retry_is_forced_to_the_tool_meant_only_when_one_is() -> None:
    assert decide("bash", "{}", TOOLS, finished=True).intended == "Bash"
    assert decide("Nope", "{}", TOOLS, finished=True).intended == ""


def test_a_name_two_tools_match_loosely_is_not_guessed() -> None:
    tools = ToolSet([{"name": "read_file", "input_schema": {}}, {"name": "ReadFile", "input_schema": {}}])
    assert tools.match_name("readfile") is None
    assert decide("readfile", "{}", tools, finished=True).outcome == "needs_retry"


# -- what must not be touched ----------------------------------------------------------------------------

UNTOUCHED = [
    ("Bash", '{"command": "echo \'```json\\n{\\"a\\": 1,}\\n```\'"}'),  # fences and commas inside a string
    ("Bash", '{"command": "ls", "description": "120"}'),  # a number-as-string where a string is wanted
    ("Bash", '{"command":"ls","timeout":120}'),
    ("Bash", '  {"command": "True None"}  '),
    ("Write", '{"file_path": "/a", "content": "{\\"x\\": 1}"}'),  # JSON in a string the schema wants
    ("TaskList", "{}"),
    ("TaskCreate", '{"subject": "a", "description": "b", "metadata": {"k": null}}'),
]


@pytest.mark.parametrize(("name", "raw"), UNTOUCHED)
def test_a_valid_call_is_never_touched(name: str, raw: str) -> None:
    verdict = decide(name, raw, TOOLS, finished=True)
    assert verdict.outcome == "valid" and verdict.edits == ()
    assert verdict.input == orjson.loads(raw)


def test_an_unschemed_tool_is_not_judged() -> None:
    tools = ToolSet([{"name": "web_search", "type": "web_search_20250305"}])
    assert decide("web_search", '{"query": 1}', tools, finished=True).outcome == "valid"


# -- the validator cache ------------------------------------------------------------------------------


def test_validators_are_compiled_once_per_schema_across_requests() -> None:
    cache = ValidatorCache()
    for _ in range(5):  # Claude Code sends the same tools every turn: a new list, equal schemas
        tools = ToolSet(orjson.loads(orjson.dumps(REQUEST["tools"])), cache=cache)
        assert decide("Bash", '{"command": "ls"}', tools, finished=True).outcome == "valid"
        assert decide("Read", '{"file_path": "/a"}', tools, finished=True).outcome == "valid"
    assert cache.compiled == 2 and len(cache) == 2


def test_the_validator_cache_is_bounded_and_drops_the_least_recently_used() -> None:
    cache = ValidatorCache(size=3)
    schemas = [{"type": "object", "properties": {f"p{i}": {"type": "string"}}} for i in range(4)]
    for schema in schemas[:3]:
        cache.validator(schema)
    cache.validator(schemas[0])  # used again: the oldest is now p1
    cache.validator(schemas[3])
    assert len(cache) == 3
    before = cache.compiled
    cache.validator(schemas[0])
    assert cache.compiled == before
    cache.validator(schemas[1])
    assert cache.compiled == before + 1


def test_a_schema_that_is_not_one_checks_nothing() -> None:
    tools = ToolSet([{"name": "Odd", "input_schema": {"type": 5}}])
    assert decide("Odd", '{"x": 1}', tools, finished=True).outcome == "valid"


# -- the stream stage -----------------------------------------------------------------------------------


def stream_of(*blocks: tuple[str, Any], stop: str = "tool_use") -> list[dict[str, Any]]:
    """Anthropic events: ("text", "..."), ("tool", (name, [fragments])) blocks in order."""
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                                              "model": "m", "content": [], "usage": {"input_tokens": 5}}}
    ]  # fmt: skip
    for index, (kind, value) in enumerate(blocks):
        if kind == "text":
            events.append(
                {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}
            )
            events.append(
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "text_delta", "text": value},
                }
            )
        else:
            name, fragments = value
            start = {"type": "tool_use", "id": f"toolu_{index}", "name": name, "input": {}}
            events.append({"type": "content_block_start", "index": index, "content_block": start})
            for fragment in fragments:
                delta = {"type": "input_json_delta", "partial_json": fragment}
                events.append({"type": "content_block_delta", "index": index, "delta": delta})
        events.append({"type": "content_block_stop", "index": index})
    events.append({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                   "usage": {"input_tokens": 5, "output_tokens": 9}})  # fmt: skip
    events.append({"type": "message_stop"})
    return events


def run(healer: ToolCallHealer, events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Each event's output, one list per event fed, then finish()'s."""
    return [healer.feed(e) for e in events] + [healer.finish()]


def test_text_streams_at_once_and_a_valid_call_goes_out_whole_and_untouched() -> None:
    raw = '{"command":  "ls"}'
    events = stream_of(("text", "Listing."), ("tool", ("Bash", [raw[:5], raw[5:11], raw[11:]])))
    outputs = run(ToolCallHealer(TOOLS, retries=1), events)
    assert [e["type"] for e in outputs[1]] == ["content_block_start"]  # the text block, at once
    assert outputs[2][0]["delta"]["text"] == "Listing."
    call_stop = events.index({"type": "content_block_stop", "index": 1})
    assert all(not out for out in outputs[4:call_stop])  # the call is held while it arrives
    sent = outputs[call_stop]
    assert [e["type"] for e in sent] == ["content_block_start", "content_block_delta", "content_block_stop"]
    assert sent[1]["delta"]["partial_json"] == raw and {e["index"] for e in sent} == {1}


def test_blocks_after_a_held_call_wait_and_keep_their_order_and_indices() -> None:
    events = stream_of(
        ("tool", ("Bash", ['{"command": "ls"'])),  # needs the stop reason (closing brackets)
        ("text", "and then"),
        ("tool", ("Read", ['{"file_path": "/a"}'])),
    )
    healer = ToolCallHealer(TOOLS, retries=1)
    outputs = run(healer, events)
    flat = [e for out in outputs for e in out]
    message = accumulate(flat)
    assert [b["type"] for b in message["content"]] == ["tool_use", "text", "tool_use"]
    assert message["content"][0]["input"] == {"command": "ls"}
    assert message["content"][2]["input"] == {"file_path": "/a"}
    starts = [e["index"] for e in flat if e["type"] == "content_block_start"]
    assert starts == [0, 1, 2]
    assert [c["kind"] for c in healer.changes] == ["tool_call_repaired"]
    assert healer.changes[0]["raw_arguments"] == '{"command": "ls"'


def test_a_call_needing_a_retry_holds_the_rest_until_it_is_resolved() -> None:
    events = stream_of(("text", "Writing."), ("tool", ("Write", ['{"file_path": "/a"}'])), ("text", "after"))
    healer = ToolCallHealer(TOOLS, retries=1)
    out = [e for event in events for e in healer.feed(event)]
    assert [e["type"] for e in out] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
    ]
    call = healer.pending
    assert call is not None and call.name == "Write" and call.raw == '{"file_path": "/a"}'
    fixed = decide("Write", '{"file_path": "/a", "content": "x"}', TOOLS, finished=True)
    out += healer.resolve(call, fixed, usage={"input_tokens": 50, "output_tokens": 7})
    assert healer.pending is None
    out += healer.finish()
    message = accumulate(out)
    assert message["content"][1]["input"] == {"file_path": "/a", "content": "x"}
    assert message["content"][2]["text"] == "after"
    assert message["usage"]["output_tokens"] == 16 and message["usage"]["input_tokens"] == 55
    assert [c["kind"] for c in healer.changes] == ["tool_call_retried"]


@pytest.mark.parametrize(
    ("raw", "sent"),
    [
        ('{"file_path": "/a"}', {"file_path": "/a"}),  # an object: unchanged (the client refuses it)
        ("file_path=/a", {"raw_arguments": "file_path=/a"}),  # not one: held in an object the tool refuses
    ],
)
def test_without_a_retry_the_original_call_goes_out_never_as_empty(raw: str, sent: dict[str, Any]) -> None:
    healer = ToolCallHealer(TOOLS, retries=0)
    flat = [e for out in run(healer, stream_of(("tool", ("Write", [raw])))) for e in out]
    assert healer.pending is None
    assert accumulate(flat)["content"][0]["input"] == sent
    assert [c["kind"] for c in healer.changes] == ["tool_call_unrepairable"]


def test_a_retry_budget_of_two_asks_twice_then_gives_up() -> None:
    healer = ToolCallHealer(TOOLS, retries=2)
    for event in stream_of(("tool", ("Write", ['{"file_path": "/a"}']))):
        healer.feed(event)
    first = healer.pending
    assert first is not None
    healer.resolve(first, None, usage=None)
    assert healer.pending is first
    healer.resolve(first, None, usage=None)
    assert healer.pending is None
    assert [c["kind"] for c in healer.changes] == ["tool_call_unrepairable"]


# -- the retry request and a plain reply --------------------------------------------------------------


def test_the_retry_request_carries_the_call_the_error_and_forces_the_tool() -> None:
    retry = retry_request(
        REQUEST, call_id="toolu_1", name="Write", raw_arguments='{"file_path": "/a"}',
        error="at /: 'content' is a required property", intended="Write",
    )  # fmt: skip
    assert retry["messages"][: len(REQUEST["messages"])] == REQUEST["messages"]
    call, result = retry["messages"][-2:]
    assert call["content"][0] == {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "Write",
        "input": {"file_path": "/a"},
    }
    assert result["content"][0]["is_error"] is True
    assert "'content' is a required property" in result["content"][0]["content"]
    assert retry["tool_choice"] == {"type": "tool", "name": "Write"} and retry["stream"] is False
    assert "thinking" not in retry and REQUEST["messages"] is not retry["messages"]


def test_the_retry_answer_gives_only_a_valid_call_to_the_tool_meant() -> None:
    def message(*content: dict[str, Any], stop: str = "tool_use") -> Any:
        return {"content": list(content), "stop_reason": stop}

    good = {"type": "tool_use", "id": "t", "name": "Write", "input": {"file_path": "/a", "content": "x"}}
    other = {"type": "tool_use", "id": "t", "name": "Bash", "input": {"command": "ls"}}
    assert retried_call(message(good), intended="Write", tools=TOOLS) is not None
    assert retried_call(message(other), intended="Write", tools=TOOLS) is None
    assert retried_call(message({"type": "text", "text": "no"}), intended="Write", tools=TOOLS) is None
    broken = {**good, "input": '{"file_path": "/a"'}
    assert retried_call(message(broken, stop="max_tokens"), intended="Write", tools=TOOLS) is None


def test_a_plain_reply_passes_the_same_stage_and_comes_back_whole() -> None:
    reply = {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "m",
        "content": [{"type": "text", "text": "hi"},
                    {"type": "tool_use", "id": "t1", "name": "bash", "input": '{"command": "ls",}'}],
        "stop_reason": "tool_use", "stop_sequence": None, "usage": {"input_tokens": 3, "output_tokens": 4},
    }  # fmt: skip
    healer = ToolCallHealer(TOOLS, retries=1)
    events = [e for event in message_events(reply) for e in healer.feed(event)] + healer.finish()
    healed = accumulate(events)
    assert healed["content"] == [
        {"type": "text", "text": "hi"},
        {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "ls"}},
    ]
    assert healed["stop_reason"] == "tool_use" and healed["usage"]["output_tokens"] == 4


# -- a call the backend failed to write (Gemini's MALFORMED_FUNCTION_CALL) -----------------------------

SAID = "Malformed function call: print(default_api.Read(file=))"


def malformed_stream(said: str = SAID) -> list[dict[str, Any]]:
    """Text, then the placeholder a dialect ends such a turn with (its arguments: what the backend said)."""
    events = stream_of(("text", "Reading."), ("tool", ("", [said])))
    events[4]["content_block"][MALFORMED_CALL] = "MALFORMED_FUNCTION_CALL"
    return events


def test_a_malformed_call_is_held_for_a_retry_and_replaced_by_the_retrys_call() -> None:
    healer = ToolCallHealer(TOOLS, retries=1)
    out = [e for event in malformed_stream() for e in healer.feed(event)]
    assert [e["type"] for e in out] == ["message_start", "content_block_start", "content_block_delta",
                                        "content_block_stop"]  # fmt: skip
    call = healer.pending
    assert call is not None and call.malformed == "MALFORMED_FUNCTION_CALL"
    assert call.verdict is not None and call.verdict.intended == "Read"  # named by what Gemini said
    assert SAID in call.verdict.error
    fixed = decide("Read", '{"file_path": "/a"}', TOOLS, finished=True)
    out = healer.resolve(call, fixed, usage={"output_tokens": 4}) + healer.finish()
    start = out[0]
    assert start["index"] == 1 and start["content_block"]["name"] == "Read"
    assert MALFORMED_CALL not in start["content_block"]  # the marker never reaches the client
    assert out[1]["delta"]["partial_json"] == '{"file_path":"/a"}'
    assert out[3]["delta"]["stop_reason"] == "tool_use" and out[3]["usage"]["output_tokens"] == 13
    (change,) = healer.changes
    assert change["kind"] == "tool_call_retried" and change["tool"] == "Read"
    assert change["raw_arguments"] == SAID


def test_a_malformed_call_no_retry_heals_is_an_upstream_error_not_a_call() -> None:
    healer = ToolCallHealer(TOOLS, retries=1)
    for event in malformed_stream():
        healer.feed(event)
    call = healer.pending
    assert call is not None
    with pytest.raises(UpstreamError, match=r"malformed tool call \(MALFORMED_FUNCTION_CALL\)"):
        healer.resolve(call, None, usage=None)
    (change,) = healer.changes  # on the record: what the backend said, and that nothing came of it
    assert change["kind"] == "tool_call_unrepairable" and change["raw_arguments"] == SAID


def test_the_malformed_retry_request_says_what_the_backend_said_after_the_last_user_turn() -> None:
    request: Any = {
        **REQUEST,
        "messages": [{"role": "user", "content": "read /a"}],
        "thinking": {"type": "enabled"},
    }
    retry = malformed_retry_request(request, error=f"it was malformed. {SAID}", intended="Read")
    (turn,) = retry["messages"]  # still one user turn: no two in a row
    assert turn["content"][0] == {"type": "text", "text": "read /a"}
    assert SAID in feedback_of(retry) and "Call Read again" in feedback_of(retry)
    assert retry["tool_choice"] == {"type": "tool", "name": "Read"} and "thinking" not in retry
    assert retry["stream"] is False and request["messages"][0]["content"] == "read /a"
    unnamed = malformed_retry_request(request, error="it was malformed.", intended="")
    assert unnamed.get("tool_choice") == request.get("tool_choice")  # no tool named: none forced
    assert "Make the tool call again" in feedback_of(unnamed)


def test_a_retry_has_what_is_left_of_the_total_timeout() -> None:
    assert Timeouts(total=0.0).after(100.0).total == 0.0  # no limit stays no limit
    assert Timeouts(total=10.0).after(4.0).total == 6.0
    assert Timeouts(total=10.0).after(12.0).total < 0  # nothing left: no retry is sent
    assert Timeouts(first_byte=30.0, total=10.0).after(4.0).first_byte == 30.0  # per read, as before

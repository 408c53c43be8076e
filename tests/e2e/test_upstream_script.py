"""The scripted upstreams read Claude Code's request instead of assuming it: renames must not break them.

Plain tests (no CLI, no server): they run with the unit suite.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.e2e.upstream.openai_server import OpenAIServer
from tests.e2e.upstream.script import (
    Context,
    Scenario,
    ScriptError,
    call,
    in_cwd,
    plan_turn,
    resolve_call,
    say,
    side_answer,
    working_directory,
)

WRITE_SCHEMA = {"type": "object", "properties": {"file_path": {}, "content": {}}, "required": ["file_path"]}


def ctx(tools: dict, **kw: object) -> Context:
    base = {
        "model": "m",
        "tools": tools,
        "cwd": "/work",
        "prompt": "[e2e:s] go",
        "turn": 0,
        "tool_results": [],
    }
    return Context(**{**base, **kw})  # type: ignore[arg-type]


def test_resolve_call_maps_arguments_onto_a_renamed_schema_when_claude_code_renames_a_field() -> None:
    renamed = {"Write": {"type": "object", "properties": {"path": {}, "content": {}}, "required": ["path"]}}
    turn = call("Write", file_path=in_cwd("a.txt"), content="x")

    resolved = resolve_call(turn.calls[0], ctx(renamed))

    assert resolved.arguments == {"path": "/work/a.txt", "content": "x"}


def test_resolve_call_finds_the_subagent_tool_under_its_old_name_task() -> None:
    schema = {"type": "object", "properties": {"prompt": {}, "description": {}}}
    resolved = resolve_call(call("Agent", prompt="p", description="d").calls[0], ctx({"Task": schema}))
    assert resolved.name == "Task"


def test_resolve_call_explains_a_missing_tool_when_the_request_does_not_offer_it() -> None:
    with pytest.raises(ScriptError, match="no tool 'Edit'"):
        resolve_call(call("Edit", file_path="x").calls[0], ctx({"Write": WRITE_SCHEMA}))


def test_plan_turn_answers_side_calls_with_json_when_a_schema_is_asked_for() -> None:
    schema = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
    side = ctx({}, prompt="Summarise this session", wants_json=schema)

    turn = plan_turn({}, side)

    assert json.loads(turn.text) == {"title": "Switchboard e2e"}
    assert side_answer(ctx({})) == "Switchboard e2e"


def test_plan_turn_plays_the_turn_counted_from_assistant_messages_then_the_after_turn() -> None:
    scenario = Scenario("s", [call("Write", file_path="a", content="b"), say("done")], after=say("again"))
    tools = {"Write": WRITE_SCHEMA}
    assert plan_turn({"s": scenario}, ctx(tools, turn=1)).text == "done"
    assert plan_turn({"s": scenario}, ctx(tools, turn=5)).text == "again"


def test_working_directory_is_read_from_claude_codes_environment_section() -> None:
    text = (
        "Here is useful information:\n - Primary working directory: /tmp/x y\n - Is a git repository: false"
    )
    assert working_directory(text) == "/tmp/x"


def test_openai_server_streams_tool_arguments_in_pieces_with_usage_and_done() -> None:
    server = OpenAIServer(delay=0).start()
    try:
        server.add(Scenario("s", [call("Write", chunk=4, file_path=in_cwd("f.txt"), content="hello")]))
        body = {
            "model": "m",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [
                {"role": "system", "content": "Primary working directory: /w"},
                {"role": "user", "content": "[e2e:s] go"},
            ],
            "tools": [{"type": "function", "function": {"name": "Write", "parameters": WRITE_SCHEMA}}],
        }
        reply = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=10)
    finally:
        server.stop()

    data = [line[6:] for line in reply.text.splitlines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    pieces = [
        tc["function"]["arguments"]
        for c in chunks
        if c["choices"]
        for tc in c["choices"][0]["delta"].get("tool_calls", [])
    ]
    assert len(pieces) > 5
    assert json.loads("".join(pieces)) == {"file_path": "/w/f.txt", "content": "hello"}

"""Tool-call healing over real HTTP (issue #15): the `anthropic` SDK against a real server routed to the
scripted OpenAI server, which sends each broken shape in small argument fragments (and answers a retry
with a fixed call); what the client got, the backend requests made, and what was recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from tests.conftest import ROOT, Server, start_server, stop_server
from tests.fakes.openai_upstream import FakeOpenAI, Reply, chunk, completion, tool_stream, usage_chunk

BASH = {
    "name": "Bash",
    "description": "run a command",
    "input_schema": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "command": {"type": "string"},
            "timeout": {"type": "number"},
            "description": {"type": "string"},
        },
        "required": ["command"],
        "additionalProperties": False,
    },
}
WRITE = {
    "name": "Write",
    "description": "write a file",
    "input_schema": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}},
        "required": ["file_path", "content"],
        "additionalProperties": False,
    },
}
TOOLS = [BASH, WRITE]


@pytest.fixture
def client(server: Server) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key="sk-client-key", max_retries=0)


def pieces(text: str, size: int = 3) -> list[str]:
    """Arguments in small fragments, as backends stream them."""
    return [text[i : i + size] for i in range(0, len(text), size)]


def stream_final(client: anthropic.Anthropic, text: str = "run it") -> anthropic.types.Message:
    """The SDK's final message, its `_request_id` set from the response header (a stream's is not)."""
    with client.messages.stream(
        model="claude-opus-4-8",
        max_tokens=1000,
        tools=TOOLS,  # type: ignore[arg-type]
        messages=[{"role": "user", "content": text}],
    ) as stream:
        final = stream.get_final_message()
        final._request_id = stream.response.headers["request-id"]
        return final


def record(server: Server, request_id: str) -> dict[str, Any]:
    return server.wait_for_exchange(lambda e: e["request_id"] == request_id)


def healing_changes(row: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in row["changes"] if c["kind"].startswith("tool_call_")]


def fixed_call(
    name: str, arguments: dict[str, Any], *, prompt: int = 50, completion_tokens: int = 7
) -> Reply:
    call = {
        "id": "call_retry",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }
    return completion(
        None, tool_calls=[call], finish="tool_calls", prompt=prompt, completion_tokens=completion_tokens
    )


@pytest.mark.parametrize(
    ("raw", "repair"),
    [
        ('```json\n{"command": "ls -la"}\n```', "fence_stripped"),
        ('{"command": "ls -la",}', "trailing_comma"),
        ('"{\\"command\\": \\"ls -la\\"}"', "double_encoded"),
        ('{"command": "ls -la", "timeout": "120"}', "string_to_integer"),
        ('{"command": "ls -la"', "closing_brackets_added"),
        ('{"command": "ls -la", "description": null}', "null_dropped"),
    ],
)
def test_stream_repairs_a_broken_call_without_a_second_request(
    client: anthropic.Anthropic, upstream: FakeOpenAI, server: Server, raw: str, repair: str
) -> None:
    upstream.script(tool_stream([("call_1", "Bash", pieces(raw))], text="Listing."))
    final = stream_final(client)
    assert [b.type for b in final.content] == ["text", "tool_use"]
    call = final.content[1]
    assert call.type == "tool_use" and call.name == "Bash"
    assert call.input["command"] == "ls -la"  # type: ignore[index]
    assert "description" not in call.input  # type: ignore[operator]
    assert final.stop_reason == "tool_use"
    assert len(upstream.requests) == 1
    row = record(server, final._request_id or "")
    (change,) = healing_changes(row)
    assert change["kind"] == "tool_call_repaired" and change["raw_arguments"] == raw
    assert repair in [e["repair"] for e in change["edits"]]
    assert row["tool_calls"] == 1 and row["tool_call_errors"] == 0
    assert row["client_response"]["content"][1]["input"] == call.input


def test_a_valid_call_reaches_the_client_byte_for_byte(upstream: FakeOpenAI, server: Server) -> None:
    # Fences and a number-as-string the schema wants as a string: valid, so never touched.
    raw = '{"command":   "echo \'```json {}```\'",  "description": "120"}'
    upstream.script(tool_stream([("call_1", "Bash", pieces(raw, 4))]))
    body = {"model": "claude-opus-4-8", "max_tokens": 100, "stream": True, "tools": TOOLS,
            "messages": [{"role": "user", "content": "go"}]}  # fmt: skip
    with httpx.stream("POST", f"{server.url}/v1/messages", json=body, timeout=10) as response:
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    sent = "".join(e["delta"]["partial_json"] for e in events if e["type"] == "content_block_delta")
    assert sent == raw
    assert [e["type"] for e in events] == [
        "message_start", "content_block_start", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop",
    ]  # fmt: skip
    row = record(server, response.headers["request-id"])
    assert healing_changes(row) == []


def test_text_streams_and_a_valid_sibling_keeps_its_place_behind_a_repaired_call(
    client: anthropic.Anthropic, upstream: FakeOpenAI
) -> None:
    upstream.script(
        tool_stream(
            [
                (
                    "call_1",
                    "bash",
                    pieces('{"command": "ls",}'),
                ),  # a name in the wrong case, a trailing comma
                ("call_2", "Write", pieces('{"file_path": "/tmp/a", "content": "x"}')),
            ],
            text="Two things.",
        )
    )
    final = stream_final(client)
    assert [(b.type, getattr(b, "name", None)) for b in final.content] == [
        ("text", None), ("tool_use", "Bash"), ("tool_use", "Write"),
    ]  # fmt: skip
    assert final.content[1].input == {"command": "ls"}  # type: ignore[union-attr]
    assert final.content[2].input == {"file_path": "/tmp/a", "content": "x"}  # type: ignore[union-attr]


def test_stream_retries_a_call_missing_a_required_property_and_sends_only_the_fixed_one(
    client: anthropic.Anthropic, upstream: FakeOpenAI, server: Server
) -> None:
    broken = '{"file_path": "/tmp/out.txt"}'
    upstream.script(
        tool_stream([("call_1", "Write", pieces(broken))], text="Writing.", prompt=40, completion=9),
        fixed_call(
            "Write", {"file_path": "/tmp/out.txt", "content": "hello"}, prompt=60, completion_tokens=11
        ),
    )
    final = stream_final(client, "write hello")
    assert [b.type for b in final.content] == ["text", "tool_use"]
    assert final.content[0].text == "Writing."  # type: ignore[union-attr]
    call = final.content[1]
    assert call.input == {"file_path": "/tmp/out.txt", "content": "hello"}  # type: ignore[union-attr]
    assert call.id.startswith("toolu_")
    assert final.usage.output_tokens == 9 + 11  # what was billed, the retry included
    assert len(upstream.requests) == 2
    retry = upstream.requests[1]
    assert not retry.get("stream")
    assert retry["tool_choice"] == {"type": "function", "function": {"name": "Write"}}
    said = json.dumps(retry["messages"][-2:])
    assert "content" in said and "is a required property" in said and "/tmp/out.txt" in said
    row = record(server, final._request_id or "")
    (change,) = healing_changes(row)
    assert change["kind"] == "tool_call_retried" and change["raw_arguments"] == broken
    assert "'content' is a required property" in change["error"]
    (attempt,) = [a for a in row["attempts"] if a.get("purpose") == "tool_call_retry"]
    assert attempt["status"] == 200 and attempt["tool"] == "Write"
    assert row["output_tokens"] == 20 and row["input_tokens"] == 100
    metrics = httpx.get(f"{server.url}/metrics", timeout=5).text
    healed = [
        line
        for line in metrics.splitlines()
        if line.startswith('switchboard_tool_calls_healed_total{how="retry"}')
    ]
    assert healed and float(healed[0].split()[-1]) >= 1


def test_a_failed_retry_sends_the_original_call_in_a_form_the_tool_refuses(
    client: anthropic.Anthropic, upstream: FakeOpenAI, server: Server
) -> None:
    broken = "{'command': 'ls'}"  # single quotes: not ours to guess
    upstream.script(tool_stream([("call_1", "Bash", pieces(broken))]), completion("I cannot."))
    final = stream_final(client)
    (call,) = final.content
    assert call.type == "tool_use" and call.input == {"raw_arguments": broken}
    assert len(upstream.requests) == 2
    row = record(server, final._request_id or "")
    (change,) = healing_changes(row)
    assert change["kind"] == "tool_call_unrepairable" and change["raw_arguments"] == broken
    assert row["status"] == "ok"


def test_max_tokens_cut_arguments_get_no_brackets_but_a_retry(
    client: anthropic.Anthropic, upstream: FakeOpenAI
) -> None:
    cut = Reply(
        chunks=[
            chunk({"role": "assistant", "content": None}),
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "Bash", "arguments": '{"command": "ls"'},
                        }
                    ]
                }
            ),
            chunk({}, finish="length"),
            usage_chunk(10, 100),
            "[DONE]",
        ]
    )
    upstream.script(cut, fixed_call("Bash", {"command": "ls"}))
    final = stream_final(client)
    assert final.content[0].input == {"command": "ls"}  # type: ignore[union-attr]
    assert final.stop_reason == "tool_use"
    assert len(upstream.requests) == 2


def test_create_heals_the_same_way(client: anthropic.Anthropic, upstream: FakeOpenAI, server: Server) -> None:
    calls = [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "Bash", "arguments": '{"command": "ls", "timeout": "30"}'},
        }
    ]
    upstream.script(completion("Running.", tool_calls=calls, finish="tool_calls"))
    message = client.messages.create(
        model="claude-opus-4-8",
        max_tokens=500,
        tools=TOOLS,
        messages=[{"role": "user", "content": "go"}],  # type: ignore[arg-type]
    )
    assert message.content[1].input == {"command": "ls", "timeout": 30}  # type: ignore[union-attr]
    row = record(server, message._request_id or "")
    (change,) = healing_changes(row)
    assert change["edits"] == [
        {"repair": "string_to_integer", "path": "/timeout", "before": "30", "after": 30}
    ]


def test_create_retries_arguments_that_are_not_json(
    client: anthropic.Anthropic, upstream: FakeOpenAI, server: Server
) -> None:
    calls = [
        {"id": "call_1", "type": "function", "function": {"name": "Write", "arguments": "file_path=/tmp/x"}}
    ]
    upstream.script(
        completion(None, tool_calls=calls, finish="tool_calls", completion_tokens=4),
        fixed_call("Write", {"file_path": "/tmp/x", "content": "y"}, completion_tokens=6),
    )
    message = client.messages.create(
        model="claude-opus-4-8",
        max_tokens=500,
        tools=TOOLS,
        messages=[{"role": "user", "content": "go"}],  # type: ignore[arg-type]
    )
    (call,) = message.content
    assert call.input == {"file_path": "/tmp/x", "content": "y"}  # type: ignore[union-attr]
    assert message.usage.output_tokens == 10
    assert len(upstream.requests) == 2 and not upstream.requests[1].get("stream")
    row = record(server, message._request_id or "")
    assert [c["kind"] for c in healing_changes(row)] == ["tool_call_retried"]


CONFIG = """
[[providers]]
name = "unhealed"
base_url = "{url}"
api_key_env = "OPENAI_API_KEY"
heal_tool_calls = false

[[providers]]
name = "healed"
base_url = "{url}"
api_key_env = "OPENAI_API_KEY"

[[rules]]
name = "repairs-only"
provider = "healed"
model = "small"
conditions = {{ model = "haiku" }}
tool_call_retries = 0

[[rules]]
name = "everything"
provider = "unhealed"
model = "big"
default = true
"""


@pytest.fixture(scope="module")
def configured(fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose routes come from a TOML file with the fixed keys, imported as a user would."""
    tmp = tmp_path_factory.mktemp("healing-config")
    data_dir, config = tmp / "data", tmp / "routes.toml"
    config.write_text(CONFIG.format(url=fake_openai.url))
    env = {**os.environ, "SWITCHBOARD_DATA_DIR": str(data_dir), "OPENAI_API_KEY": "sk-heal"}
    for command in (["migrate", "-v", "0"], ["routes", "import", str(config)]):
        subprocess.run(
            [sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True
        )
    srv = start_server(tmp, {"SWITCHBOARD_DATA_DIR": str(data_dir), "OPENAI_API_KEY": "sk-heal"})
    yield srv
    stop_server(srv)


def test_with_healing_off_a_broken_call_fails_as_it_did_before(
    configured: Server, upstream: FakeOpenAI
) -> None:
    upstream.script(tool_stream([("call_1", "Bash", pieces('```json\n{"command": "ls"}\n```'))]))
    body = {"model": "claude-opus-4-8", "max_tokens": 100, "stream": True, "tools": TOOLS,
            "messages": [{"role": "user", "content": "go"}]}  # fmt: skip
    with httpx.stream("POST", f"{configured.url}/v1/messages", json=body, timeout=10) as response:
        text = response.read().decode()
    assert "event: error" in text and "invalid JSON arguments for tool 'Bash'" in text
    assert len(upstream.requests) == 1
    row = record(configured, response.headers["request-id"])
    assert healing_changes(row) == [] and row["status"] == "error"


def test_with_no_retries_a_call_that_needs_one_goes_out_as_the_backend_wrote_it(
    configured: Server, upstream: FakeOpenAI
) -> None:
    upstream.script(tool_stream([("call_1", "Write", pieces('{"file_path": "/tmp/a"}'))]))
    client = anthropic.Anthropic(base_url=configured.url, api_key="sk-client-key", max_retries=0)
    with client.messages.stream(
        model="claude-haiku-4-5", max_tokens=100, tools=TOOLS,  # type: ignore[arg-type]
        messages=[{"role": "user", "content": "go"}],
    ) as stream:  # fmt: skip
        final = stream.get_final_message()
        request_id = stream.response.headers["request-id"]
    assert final.content[0].input == {"file_path": "/tmp/a"}  # type: ignore[union-attr]
    assert len(upstream.requests) == 1
    (change,) = healing_changes(record(configured, request_id))
    assert change["kind"] == "tool_call_unrepairable"


# -- any translated dialect: Gemini sends arguments as objects, so only the schema can be wrong ---------

GEMINI_KEY = "AIza-healing-key"
GEMINI_CONFIG = """
[[providers]]
name = "gemini"
dialect = "gemini"
base_url = "{url}"
api_key_env = "GEMINI_API_KEY"

[[providers]]
name = "gemini-unhealed"
dialect = "gemini"
base_url = "{url}"
api_key_env = "GEMINI_API_KEY"
heal_tool_calls = false

[[providers]]
name = "gemini-short"
dialect = "gemini"
base_url = "{url}"
api_key_env = "GEMINI_API_KEY"
total_timeout = 1.5

[[rules]]
name = "unhealed"
provider = "gemini-unhealed"
model = "gemini-3-flash-preview"
conditions = {{ model = "haiku" }}

[[rules]]
name = "short"
provider = "gemini-short"
model = "gemini-3-flash-preview"
conditions = {{ model = "sonnet" }}

[[rules]]
name = "main"
provider = "gemini"
model = "gemini-3-flash-preview"
default = true
"""


@pytest.fixture(scope="module")
def gemini() -> Iterator[Any]:
    from tests.fakes.gemini_upstream import FakeGemini

    with FakeGemini(key=GEMINI_KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def gemini_server(gemini: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("healing-gemini")
    data_dir, config = tmp / "data", tmp / "routes.toml"
    config.write_text(GEMINI_CONFIG.format(url=gemini.url))
    env = {**os.environ, "SWITCHBOARD_DATA_DIR": str(data_dir), "GEMINI_API_KEY": GEMINI_KEY}
    for command in (["migrate", "-v", "0"], ["routes", "import", str(config)]):
        subprocess.run(
            [sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True
        )
    srv = start_server(tmp, {"SWITCHBOARD_DATA_DIR": str(data_dir), "GEMINI_API_KEY": GEMINI_KEY})
    yield srv
    stop_server(srv)


def test_a_gemini_call_is_healed_by_the_same_stage(gemini_server: Server, gemini: Any) -> None:
    from tests.fakes.gemini_upstream import chunk, response, stream

    gemini.reset()
    call = {"functionCall": {"name": "bash", "args": {"command": "ls", "timeout": "30"}}}
    gemini.script(stream(chunk([{"text": "Listing."}]), chunk([call], finish="STOP")))
    sdk = anthropic.Anthropic(base_url=gemini_server.url, api_key="sk-ant-client", max_retries=0)
    final = stream_final(sdk)
    assert final.content[1].name == "Bash"  # type: ignore[union-attr]
    assert final.content[1].input == {"command": "ls", "timeout": 30}  # type: ignore[union-attr]
    (change,) = healing_changes(record(gemini_server, final._request_id or ""))
    assert [e["repair"] for e in change["edits"]] == ["tool_name", "string_to_integer"]
    # A required property missing: retried on Gemini, answered with the fixed call.
    gemini.reset()
    gemini.script(
        stream(chunk([{"functionCall": {"name": "Write", "args": {"file_path": "/a"}}}], finish="STOP")),
        response([{"functionCall": {"name": "Write", "args": {"file_path": "/a", "content": "x"}}}]),
    )
    final = stream_final(sdk)
    assert final.content[0].input == {"file_path": "/a", "content": "x"}  # type: ignore[union-attr]
    assert len(gemini.requests) == 2 and not gemini.rejections


# -- Gemini's MALFORMED_FUNCTION_CALL: a healing retry (issue #16), within the attempt's timeouts ----------

SAID = "Malformed function call: print(default_api.Write(file_path='/a', content=))"
FIXED = {"functionCall": {"name": "Write", "args": {"file_path": "/a", "content": "x"}}}


def malformed(said: str = SAID) -> dict[str, Any]:
    """Gemini's last chunk (or whole reply) for a call it failed to write: no content, its finishMessage."""
    from tests.fakes.gemini_upstream import usage

    candidate = {"finishReason": "MALFORMED_FUNCTION_CALL", "finishMessage": said, "index": 0}
    return {"candidates": [candidate], "usageMetadata": usage(), "modelVersion": "gemini-3-flash-preview"}


def retry_asked(gemini: Any) -> None:
    """The retry request: the same conversation, Gemini's words on the bad call after the last user turn,
    Write forced."""
    assert len(gemini.requests) == 2 and not gemini.rejections
    first, retry = gemini.requests
    assert len(retry["contents"]) == len(first["contents"])  # one user turn, not two in a row
    feedback = retry["contents"][-1]["parts"][-1]["text"]
    assert SAID in feedback and "MALFORMED_FUNCTION_CALL" in feedback
    assert retry["toolConfig"]["functionCallingConfig"] == {"mode": "ANY", "allowedFunctionNames": ["Write"]}


def retry_recorded(row: dict[str, Any]) -> None:
    assert row["status"] == "ok"
    (change,) = healing_changes(row)
    assert change["kind"] == "tool_call_retried" and change["tool"] == "Write"
    assert change["raw_arguments"] == SAID
    assert change["edits"][0]["after"] == '{"file_path":"/a","content":"x"}'
    retry = row["attempts"][-1]
    assert retry["purpose"] == "tool_call_retry" and retry["status"] == 200 and not retry["error"]
    assert SAID in retry["feedback"]
    assert row["output_tokens"] == 10  # the retry's tokens too (5 + 5)


def gemini_sdk(server: Server) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key="sk-ant-client", max_retries=0)


def write_it_streamed(server: Server) -> Any:
    """The SDK's stream of one "write it" turn (a context manager yielding its events)."""
    return gemini_sdk(server).messages.stream(
        model="claude-opus-4-8",
        max_tokens=1000,
        tools=TOOLS,  # type: ignore[arg-type]
        messages=[{"role": "user", "content": "write it"}],
    )


def test_a_malformed_gemini_reply_is_retried_and_the_client_gets_the_retrys_call(
    gemini_server: Server, gemini: Any
) -> None:
    from tests.fakes.gemini_upstream import Reply, response

    gemini.reset()
    gemini.script(Reply(body=malformed()), response([FIXED]))
    message = gemini_sdk(gemini_server).messages.create(
        model="claude-opus-4-8",
        max_tokens=1000,
        tools=TOOLS,  # type: ignore[arg-type]
        messages=[{"role": "user", "content": "write it"}],
    )
    assert [b.type for b in message.content] == ["tool_use"] and message.stop_reason == "tool_use"
    assert message.content[0].name == "Write"  # type: ignore[union-attr]
    assert message.content[0].input == {"file_path": "/a", "content": "x"}  # type: ignore[union-attr]
    assert message.usage.output_tokens == 10
    retry_asked(gemini)
    retry_recorded(record(gemini_server, message._request_id or ""))


def test_a_malformed_gemini_stream_is_retried_before_the_client_sees_a_block(
    gemini_server: Server, gemini: Any
) -> None:
    from tests.fakes.gemini_upstream import response, stream

    gemini.reset()
    gemini.script(stream(malformed()), response([FIXED]))
    final = stream_final(gemini_sdk(gemini_server), "write it")
    assert [b.type for b in final.content] == ["tool_use"] and final.stop_reason == "tool_use"
    assert final.content[0].input == {"file_path": "/a", "content": "x"}  # type: ignore[union-attr]
    retry_asked(gemini)
    retry_recorded(record(gemini_server, final._request_id or ""))


def test_a_malformed_call_after_streamed_text_is_appended_as_the_next_block(
    gemini_server: Server, gemini: Any
) -> None:
    from tests.fakes.gemini_upstream import chunk, response, stream

    gemini.reset()
    gemini.script(stream(chunk([{"text": "Writing it."}]), malformed()), response([FIXED]))
    with write_it_streamed(gemini_server) as s:
        events = list(s)
        final = s.get_final_message()
        request_id = s.response.headers["request-id"]
    starts = [(e.index, e.content_block.type) for e in events if e.type == "content_block_start"]
    assert starts == [(0, "text"), (1, "tool_use")]
    texts = [e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta"]
    assert "".join(texts) == "Writing it."  # streamed once, not repeated after the retry
    assert final.content[0].text == "Writing it."  # type: ignore[union-attr]
    assert final.content[1].input == {"file_path": "/a", "content": "x"}  # type: ignore[union-attr]
    assert final.stop_reason == "tool_use"
    retry_asked(gemini)
    retry_recorded(record(gemini_server, request_id))


def test_a_malformed_call_whose_retry_fails_is_an_error_event(gemini_server: Server, gemini: Any) -> None:
    from tests.fakes.gemini_upstream import Reply, chunk, stream

    gemini.reset()
    gemini.script(stream(chunk([{"text": "Writing it."}]), malformed()), Reply(body=malformed()))
    with pytest.raises(anthropic.APIStatusError, match="malformed tool call"):
        stream_final(gemini_sdk(gemini_server), "write it")
    assert len(gemini.requests) == 2
    row = gemini_server.wait_for_exchange(lambda e: e["dialect"] == "gemini" and e["status"] == "error")
    assert "MALFORMED_FUNCTION_CALL" in row["error_message"]
    retry = row["attempts"][-1]
    assert retry["purpose"] == "tool_call_retry" and "MALFORMED_FUNCTION_CALL" in retry["error"]
    assert [c["kind"] for c in healing_changes(row)] == ["tool_call_unrepairable"]


def test_without_healing_a_malformed_call_is_the_error_it_was(gemini_server: Server, gemini: Any) -> None:
    from tests.fakes.gemini_upstream import Reply, response

    gemini.reset()
    gemini.script(Reply(body=malformed()), response([FIXED]))
    with pytest.raises(anthropic.InternalServerError, match="malformed tool call"):
        gemini_sdk(gemini_server).messages.create(
            model="claude-haiku-4-5",  # the rule whose provider has heal_tool_calls = false
            max_tokens=1000,
            tools=TOOLS,  # type: ignore[arg-type]
            messages=[{"role": "user", "content": "write it"}],
        )
    assert len(gemini.requests) == 1
    row = gemini_server.wait_for_exchange(lambda e: e["provider"] == "gemini-unhealed")
    assert row["status"] == "error" and "MALFORMED_FUNCTION_CALL" in row["error_message"]
    assert not healing_changes(row)


def test_the_retry_has_only_what_is_left_of_the_total_timeout(gemini_server: Server, gemini: Any) -> None:
    from tests.fakes.gemini_upstream import Reply, response

    gemini.reset()
    # total_timeout = 1.5 s: the first answer takes 1 s, so the retry (which would bring the fixed call
    # after 1 s, within a fresh 1.5 s) has 0.5 s.
    retry = response([FIXED])
    retry.hold_s = 1.0
    gemini.script(Reply(body=malformed(), hold_s=1.0), retry)
    with pytest.raises(anthropic.InternalServerError, match="malformed tool call"):
        gemini_sdk(gemini_server).messages.create(
            model="claude-sonnet-4-5",  # the rule whose provider has total_timeout = 1.5
            max_tokens=1000,
            tools=TOOLS,  # type: ignore[arg-type]
            messages=[{"role": "user", "content": "write it"}],
        )
    row = gemini_server.wait_for_exchange(lambda e: e["provider"] == "gemini-short")
    retry = row["attempts"][-1]
    assert retry["purpose"] == "tool_call_retry" and "total timeout" in retry["error"]
    assert 400 <= retry["ms"] < 900  # cut at what was left (0.5 s), not after a fresh 1.5 s
    gemini.wait_for_requests(2)
    assert gemini.aborted == 1  # the retry's request was closed when its time ran out


def test_the_retry_is_cancelled_when_the_client_hangs_up(gemini_server: Server, gemini: Any) -> None:
    from tests.fakes.gemini_upstream import chunk, response, stream

    gemini.reset()
    retry = response([FIXED])
    retry.hold_s = 10.0
    gemini.script(stream(chunk([{"text": "Writing it."}]), malformed()), retry)
    with write_it_streamed(gemini_server) as s:
        request_id = s.response.headers["request-id"]
        for event in s:
            if event.type == "content_block_stop":  # the text is in: the retry runs now
                break
        gemini.wait_for_requests(2)
    # Leaving the `with` closed the connection mid-stream.
    deadline = time.monotonic() + 5
    while gemini.aborted < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gemini.aborted == 1  # the retry's request to the backend was closed, not left to run 10 s
    row = record(gemini_server, request_id)
    assert row["status"] == "cancelled"
    assert row["attempts"][-1]["purpose"] == "tool_call_retry"
    assert row["attempts"][-1]["status"] == 499


def test_a_plain_replys_retry_is_cancelled_when_the_client_gives_up(
    gemini_server: Server, gemini: Any
) -> None:
    from tests.fakes.gemini_upstream import Reply, response

    gemini.reset()
    retry = response([FIXED])
    retry.hold_s = 10.0
    gemini.script(Reply(body=malformed()), retry)
    body = {"model": "claude-opus-4-8", "max_tokens": 100, "tools": TOOLS,
            "messages": [{"role": "user", "content": "write it"}]}  # fmt: skip
    with pytest.raises(httpx.ReadTimeout):  # the client stops waiting and closes its connection
        httpx.post(
            f"{gemini_server.url}/v1/messages", json=body, headers={"x-api-key": "sk-ant-client"}, timeout=1.0
        )
    deadline = time.monotonic() + 5
    while gemini.aborted < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(gemini.requests) == 2 and gemini.aborted == 1
    row = gemini_server.wait_for_exchange(lambda e: e["dialect"] == "gemini" and not e["stream"])
    assert row["status"] == "cancelled"
    assert row["attempts"][-1]["purpose"] == "tool_call_retry" and row["attempts"][-1]["status"] == 499

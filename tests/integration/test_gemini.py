"""The Gemini dialect through a real server: the anthropic SDK as client, a scripted Gemini API behind.

The scripted server validates like the real one (unknown fields, Schema keywords, the x-goog-api-key,
Gemini 3's thought signatures), so a request it accepts is one Gemini would accept.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from tests.conftest import ROOT, Server, start_server, stop_server
from tests.fakes.gemini_upstream import (
    FakeGemini,
    chunk,
    error,
    rate_limited,
    response,
    signature,
    stream,
    usage,
)

KEY = "AIza-integration-key"
CONFIG = """
[[providers]]
name = "gemini"
dialect = "gemini"
base_url = "{url}"
api_key_env = "GEMINI_API_KEY"

[[providers]]
name = "gemini-nokey"
dialect = "gemini"
base_url = "{url}"

[[rules]]
name = "old"
provider = "gemini"
model = "gemini-2.0-flash"
conditions = {{ model = "haiku" }}

[[rules]]
name = "nokey"
provider = "gemini-nokey"
model = "gemini-3-flash-preview"
conditions = {{ model = "sonnet" }}

[[rules]]
name = "main"
provider = "gemini"
model = "gemini-3-flash-preview"
default = true
"""
TOOLS = [
    {
        "name": "Read",
        "description": "Read a file",
        "input_schema": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": False,
            "properties": {"file_path": {"type": "string"}, "limit": {"type": ["integer", "null"]}},
            "required": ["file_path"],
        },
    },
    {
        "name": "Bash",
        "input_schema": {
            "type": "object",
            "properties": {"command": {"type": "string"}},
            "required": ["command"],
        },
    },
]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeGemini]:
    with FakeGemini(key=KEY) as server:
        yield server


@pytest.fixture(scope="module")
def gemini_server(fake: FakeGemini, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("gemini")
    data_dir, config = tmp / "data", tmp / "routes.toml"
    config.write_text(CONFIG.format(url=fake.url))
    env = {**os.environ, "SWITCHBOARD_DATA_DIR": str(data_dir), "GEMINI_API_KEY": KEY}
    for command in (["migrate", "-v", "0"], ["routes", "import", str(config)]):
        subprocess.run(
            [sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True
        )
    srv = start_server(tmp, {"SWITCHBOARD_DATA_DIR": str(data_dir), "GEMINI_API_KEY": KEY})
    yield srv
    stop_server(srv)


@pytest.fixture
def gemini(fake: FakeGemini) -> Iterator[FakeGemini]:
    fake.reset()
    yield fake
    assert not fake.rejections, fake.rejections


def client(server: Server) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key="sk-ant-client", max_retries=0)


def test_create_answers_in_anthropics_shape_and_the_record_holds_no_key(
    gemini_server: Server, gemini: FakeGemini
) -> None:
    gemini.script(
        response([{"text": "Hello from Gemini"}], meta=usage(prompt=50, candidates=7, thoughts=3, cached=20))
    )
    message = client(gemini_server).messages.create(
        model="claude-opus-4-8",
        max_tokens=100,
        system="Be brief.",
        messages=[{"role": "user", "content": "hi"}],
    )
    assert message.model == "claude-opus-4-8" and message.content[0].text == "Hello from Gemini"  # type: ignore[union-attr]
    assert (
        message.usage.input_tokens,
        message.usage.output_tokens,
        message.usage.cache_read_input_tokens,
    ) == (30, 10, 20)
    assert gemini.paths[-1] == "/v1beta/models/gemini-3-flash-preview:generateContent"
    assert gemini.headers[-1]["x-goog-api-key"] == KEY
    assert gemini.requests[-1]["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    row = gemini_server.wait_for_exchange(lambda e: e["dialect"] == "gemini")
    assert row["status"] == "ok" and row["backend_model"] == "gemini-3-flash-preview"
    assert KEY not in json.dumps(row)


def test_a_three_turn_tool_loop_with_thinking_keeps_every_signature_on_its_part(
    gemini_server: Server, gemini: FakeGemini
) -> None:
    sdk = client(gemini_server)
    gemini.script(
        stream(
            chunk([{"text": "Need the file first.", "thought": True}]),
            chunk(
                [
                    {
                        "functionCall": {"name": "Read", "args": {"file_path": "/a.txt"}},
                        "thoughtSignature": signature(1),
                    }
                ],
                finish="STOP",
            ),
        ),
        stream(
            chunk([{"text": "Now both.", "thought": True}]),
            chunk(
                [
                    {
                        "functionCall": {"name": "Bash", "args": {"command": "wc -l /a.txt"}},
                        "thoughtSignature": signature(2),
                    },
                    {"functionCall": {"name": "Read", "args": {"file_path": "/b.txt"}}},
                ],
                finish="STOP",
            ),
        ),
        stream(
            chunk([{"text": "All done."}]),
            chunk([{"text": "", "thoughtSignature": signature(3)}], finish="STOP"),
        ),
    )
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Count the lines."}]
    thinking = {"type": "enabled", "budget_tokens": 2048}
    for turn in range(3):
        with sdk.messages.stream(
            model="claude-opus-4-8",
            max_tokens=4096,
            tools=TOOLS,
            thinking=thinking,
            messages=messages,  # type: ignore[arg-type]
        ) as s:
            final = s.get_final_message()
        blocks = [b.model_dump(exclude_none=True) for b in final.content]
        messages.append({"role": "assistant", "content": blocks})  # echoed back exactly, as Claude Code does
        calls = [b for b in blocks if b["type"] == "tool_use"]
        if turn < 2:
            assert final.stop_reason == "tool_use" and calls
            assert all(c["id"].startswith("toolu_") for c in calls)
            messages.append(
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": c["id"], "content": f"out {c['name']}"}
                        for c in calls
                    ],
                }
            )
    assert final.stop_reason == "end_turn" and final.content[0].text == "All done."  # type: ignore[union-attr]
    assert [b.type for b in final.content] == ["text"]  # the answer stays last
    # What Gemini got on the third turn: each signature on exactly the part it came with.
    contents = gemini.requests[-1]["contents"]
    model_turns = [c["parts"] for c in contents if c["role"] == "model"]
    assert model_turns[0] == [
        {"functionCall": {"name": "Read", "args": {"file_path": "/a.txt"}}, "thoughtSignature": signature(1)}
    ]
    assert (
        model_turns[1][0]["thoughtSignature"] == signature(2) and "thoughtSignature" not in model_turns[1][1]
    )
    responses = [p["functionResponse"] for p in contents[-1]["parts"]]
    assert [(r["name"], r["response"]) for r in responses] == [
        ("Bash", {"output": "out Bash"}),
        ("Read", {"output": "out Read"}),
    ]
    assert gemini.paths[-1].endswith(":streamGenerateContent?alt=sse")
    assert gemini.requests[0]["generationConfig"]["thinkingConfig"] == {
        "includeThoughts": True,
        "thinkingLevel": "low",
    }


def test_a_tool_call_another_backend_made_is_sent_with_the_placeholder_and_accepted(
    gemini_server: Server, gemini: FakeGemini
) -> None:
    gemini.script(response([{"text": "ok, the file says hi"}]))
    message = client(gemini_server).messages.create(
        model="claude-opus-4-8",
        max_tokens=100,
        tools=TOOLS,  # type: ignore[arg-type]
        messages=[
            {"role": "user", "content": "read it"},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "thinking",
                        "thinking": "from claude",
                        "signature": "EqQBCkYIBxgCKkAnthropicSignature",
                    },
                    {
                        "type": "tool_use",
                        "id": "toolu_01AnthropicMadeThis000",
                        "name": "Read",
                        "input": {"file_path": "/x"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01AnthropicMadeThis000", "content": "hi"}
                ],
            },
        ],
    )
    assert message.content[0].text == "ok, the file says hi"  # type: ignore[union-attr]
    call = gemini.requests[-1]["contents"][1]["parts"][0]
    assert call["thoughtSignature"] == "skip_thought_signature_validator"
    row = gemini_server.wait_for_exchange(lambda e: e["dialect"] == "gemini" and e["status"] == "ok")
    assert {"reasoning_placeholder", "foreign_reasoning_dropped"} <= {c["kind"] for c in row["changes"]}


def test_an_older_model_gets_the_cleaned_schema_subset(gemini_server: Server, gemini: FakeGemini) -> None:
    gemini.script(response([{"functionCall": {"name": "Read", "args": {"file_path": "/x"}}}]))
    message = client(gemini_server).messages.create(
        model="claude-haiku-4-5",
        max_tokens=100,
        tools=TOOLS,
        messages=[{"role": "user", "content": "read"}],  # type: ignore[arg-type]
    )
    assert message.stop_reason == "tool_use" and message.content[0].input == {"file_path": "/x"}  # type: ignore[union-attr]
    (declarations,) = [t["functionDeclarations"] for t in gemini.requests[-1]["tools"]]
    read = declarations[0]["parameters"]
    assert read["type"] == "OBJECT" and read["properties"]["limit"] == {"type": "INTEGER", "nullable": True}


@pytest.mark.parametrize(
    ("reply", "status", "error_type", "retry_after"),
    [
        (rate_limited("43.2s"), 429, "rate_limit_error", "44"),
        (
            error(400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
            400,
            "invalid_request_error",
            None,
        ),
        (
            error(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
            529,
            "overloaded_error",
            None,
        ),
    ],
    ids=["429", "400", "503"],
)
def test_gemini_errors_are_worded_as_anthropic_words_them(
    gemini_server: Server,
    gemini: FakeGemini,
    reply: Any,
    status: int,
    error_type: str,
    retry_after: str | None,
) -> None:
    gemini.script(reply)
    answer = httpx.post(
        f"{gemini_server.url}/v1/messages",
        json={"model": "claude-opus-4-8", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert answer.status_code == status
    assert answer.json()["error"]["type"] == error_type
    assert answer.headers.get("retry-after") == retry_after
    row = gemini_server.wait_for_exchange(lambda e: e["dialect"] == "gemini" and e["status"] == "error")
    assert row["error_type"] == error_type


def test_a_missing_key_is_googles_403_as_a_permission_error(
    gemini_server: Server, gemini: FakeGemini
) -> None:
    with pytest.raises(anthropic.PermissionDeniedError, match="unregistered callers"):
        client(gemini_server).messages.create(
            model="claude-sonnet-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert "x-goog-api-key" not in gemini.headers[-1]


def test_a_malformed_function_call_mid_stream_is_an_error_event_not_an_empty_turn(
    gemini_server: Server, gemini: FakeGemini
) -> None:
    gemini.script(
        stream(
            chunk([{"text": "Let me"}]),
            {
                "candidates": [
                    {
                        "finishReason": "MALFORMED_FUNCTION_CALL",
                        "finishMessage": "Malformed function call: x(",
                        "index": 0,
                    }
                ]
            },
        )
    )
    with (
        pytest.raises(anthropic.APIStatusError, match="malformed tool call"),
        client(gemini_server).messages.stream(
            model="claude-opus-4-8",
            max_tokens=100,
            tools=TOOLS,
            messages=[{"role": "user", "content": "go"}],  # type: ignore[arg-type]
        ) as s,
    ):
        s.get_final_message()
    # Healing is on: one retry, which the fake answers with text only, so no call: the error stands.
    # (The retry healing it, and the no-healing case: test_tool_call_healing.py.)
    assert len(gemini.requests) == 2
    row = gemini_server.wait_for_exchange(
        lambda e: e["dialect"] == "gemini" and e["stream"] and e["status"] == "error"
    )
    assert "MALFORMED_FUNCTION_CALL" in row["error_message"]


def test_count_tokens_asks_geminis_count_tokens(gemini_server: Server, gemini: FakeGemini) -> None:
    counted = client(gemini_server).messages.count_tokens(
        model="claude-opus-4-8",
        system="Be brief.",
        tools=TOOLS,
        messages=[{"role": "user", "content": "hi"}],  # type: ignore[arg-type]
    )
    assert gemini.paths[-1] == "/v1beta/models/gemini-3-flash-preview:countTokens"
    inner = gemini.requests[-1]["generateContentRequest"]
    assert inner["model"] == "models/gemini-3-flash-preview" and inner["systemInstruction"]
    assert counted.input_tokens == len(json.dumps(inner)) // 4

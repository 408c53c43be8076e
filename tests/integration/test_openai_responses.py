"""The openai_responses dialect over real HTTP: the anthropic SDK -> a real server -> the scripted
Responses API (tests/fakes/responses_upstream.py), which refuses what the real API refuses.

The provider is configured as a user would, in routes TOML (`dialect = "openai_responses"`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from proxy.translate import ids
from tests.conftest import ROOT, Server, start_server, stop_server
from tests.fakes.openai_upstream import Reply, error
from tests.fakes.responses_upstream import FakeResponses, Stream, completed

CONFIG = """
[[providers]]
name = "openai"
dialect = "openai_responses"
base_url = "{url}"
api_key_env = "OPENAI_API_KEY"
model_settings = {{ "*" = {{ options = ["count_tokens"] }} }}

[[providers]]
name = "keyless"
dialect = "openai_responses"
base_url = "{url}"

[[rules]]
name = "small"
provider = "keyless"
model = "gpt-5-mini"
conditions = {{ model = "haiku" }}

[[rules]]
name = "everything"
provider = "openai"
model = "gpt-5-codex"
default = true
"""
SESSION = "5b1e6a52-9a43-4d33-8d55-1f3c2f0b7a10"
BASH = {"name": "Bash", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}
READ = {"name": "Read", "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}}}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeResponses]:
    with FakeResponses() as upstream:
        yield upstream


@pytest.fixture
def responses(fake: FakeResponses) -> Iterator[FakeResponses]:
    fake.reset()
    yield fake
    fake.reset()


@pytest.fixture(scope="module")
def server(fake: FakeResponses, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("responses")
    data_dir, config = tmp / "data", tmp / "routes.toml"
    config.write_text(CONFIG.format(url=fake.url))
    env = {**os.environ, "SWITCHBOARD_DATA_DIR": str(data_dir), "OPENAI_API_KEY": "sk-responses"}
    for command in (["migrate", "-v", "0"], ["routes", "import", str(config)]):
        subprocess.run(
            [sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True
        )
    srv = start_server(tmp, {"SWITCHBOARD_DATA_DIR": str(data_dir), "OPENAI_API_KEY": "sk-responses"})
    yield srv
    stop_server(srv)


@pytest.fixture
def client(server: Server) -> anthropic.Anthropic:
    headers = {"x-claude-code-session-id": SESSION}
    return anthropic.Anthropic(
        base_url=server.url, api_key="sk-client", max_retries=0, default_headers=headers
    )


def test_create_reaches_the_responses_endpoint_with_the_key_and_answers_as_anthropic(
    client: anthropic.Anthropic, server: Server, responses: FakeResponses
) -> None:
    responses.script(completed(Stream().message("Hello from Responses."), 20, 6, cached=0))
    message = client.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=200,
        system="Be brief.",
        messages=[{"role": "user", "content": "hi"}],
    )
    assert responses.rejections == []
    sent = responses.requests[-1]
    assert responses.headers[-1]["authorization"] == "Bearer sk-responses"
    assert sent["instructions"] == "Be brief." and sent["store"] is False and sent["model"] == "gpt-5-codex"
    assert sent["input"] == [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
    ]
    assert sent["prompt_cache_key"] == SESSION
    assert message.model == "claude-sonnet-4-6"
    assert [b.type for b in message.content] == ["text"] and message.content[
        0
    ].text == "Hello from Responses."  # type: ignore[union-attr]
    assert (message.usage.input_tokens, message.usage.output_tokens) == (20, 6)
    row = server.wait_for_exchange(lambda e: e["request_id"] == message._request_id)
    assert (row["status"], row["dialect"], row["backend_model"]) == ("ok", "openai_responses", "gpt-5-codex")


def test_stream_translates_text_and_usage(
    client: anthropic.Anthropic, server: Server, responses: FakeResponses
) -> None:
    stream = Stream().created().message("Hel", "lo", "!").completed(1200, 9, cached=1024)
    responses.script(stream.reply())
    with client.messages.stream(
        model="claude-sonnet-4-6", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as events:
        text = "".join(events.text_stream)
        final = events.get_final_message()
    assert responses.rejections == [] and responses.requests[-1]["stream"] is True
    assert text == "Hello!" and final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.cache_read_input_tokens, final.usage.output_tokens) == (
        176,
        1024,
        9,
    )


def _stream_turn(client: anthropic.Anthropic, messages: list[dict[str, Any]]) -> anthropic.types.Message:
    with client.messages.stream(
        model="claude-opus-4-8",
        max_tokens=4096,
        thinking={"type": "adaptive"},
        tools=[BASH, READ],  # type: ignore[list-item]
        messages=messages,  # type: ignore[arg-type]
    ) as events:
        return events.get_final_message()


def test_a_three_turn_tool_loop_keeps_its_encrypted_reasoning(
    client: anthropic.Anthropic, responses: FakeResponses
) -> None:
    responses.script(
        Stream()
        .created()
        .reasoning("Listing first.", encrypted="gAAAAenc_one")
        .call("call_one", "Bash", '{"command":', '"ls"}')
        .completed(300, 50, reasoning=30)
        .reply(),
        Stream()
        .created()
        .reasoning(encrypted="gAAAAenc_two", rid="rs_two")
        .call("call_two", "Read", '{"file_path":"/a"}')
        .completed(400, 40, reasoning=20)
        .reply(),
        Stream()
        .created()
        .reasoning("Done reading.", encrypted="gAAAAenc_three")
        .message("All done.")
        .completed(500, 30)
        .reply(),
    )
    messages: list[dict[str, Any]] = [{"role": "user", "content": "look around"}]
    first = _stream_turn(client, messages)
    assert [b.type for b in first.content] == ["thinking", "tool_use"] and first.stop_reason == "tool_use"
    assert first.content[1].id == ids.tool_id_to_client("call_one")  # type: ignore[union-attr]
    messages += [
        {"role": "assistant", "content": [b.to_dict() for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": first.content[1].id, "content": "a\nb"}],
        },  # type: ignore[union-attr]
    ]
    second = _stream_turn(client, messages)
    assert [b.type for b in second.content] == ["redacted_thinking", "tool_use"]
    messages += [
        {"role": "assistant", "content": [b.to_dict() for b in second.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": second.content[1].id, "content": "alpha"}],
        },  # type: ignore[union-attr]
    ]
    third = _stream_turn(client, messages)
    assert third.content[-1].text == "All done." and third.stop_reason == "end_turn"  # type: ignore[union-attr]

    assert responses.rejections == []  # the fake refuses an unknown call_id or a bare reasoning item
    last = responses.requests[-1]
    assert last["reasoning"] == {"effort": "medium", "summary": "auto"}
    assert last["include"] == ["reasoning.encrypted_content"]
    replayed = [
        (i["type"], i.get("encrypted_content") or i.get("call_id"))
        for i in last["input"]
        if i["type"] != "message"
    ]
    assert replayed == [
        ("reasoning", "gAAAAenc_one"),
        ("function_call", "call_one"),
        ("function_call_output", "call_one"),
        ("reasoning", "gAAAAenc_two"),
        ("function_call", "call_two"),
        ("function_call_output", "call_two"),
    ]
    assert last["input"][1]["summary"] == [{"type": "summary_text", "text": "Listing first."}]


def test_a_429_is_a_rate_limit_error_with_retry_after(server: Server, responses: FakeResponses) -> None:
    responses.script(
        error(429, "Rate limit reached for gpt-5-codex", type_="requests", headers={"retry-after": "7"})
    )
    body = {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}
    response = httpx.post(f"{server.url}/v1/messages", json=body, timeout=30)
    assert response.status_code == 429 and response.headers["retry-after"] == "7"
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert "Rate limit reached" in response.json()["error"]["message"]


def test_what_the_api_refuses_comes_back_as_a_400_naming_it(server: Server, responses: FakeResponses) -> None:
    responses.script(error(400, "Invalid 'input[0].content[0].image_url'.", type_="invalid_request_error"))
    body = {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}
    response = httpx.post(f"{server.url}/v1/messages", json=body, timeout=30)
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
    assert "image_url" in response.json()["error"]["message"]


def test_a_one_token_probe_is_sent_with_the_apis_minimum(
    client: anthropic.Anthropic, responses: FakeResponses
) -> None:
    responses.script(completed(Stream().message("o"), 5, 1))
    message = client.messages.create(
        model="claude-sonnet-4-6", max_tokens=1, messages=[{"role": "user", "content": "quota"}]
    )
    assert responses.rejections == [] and responses.requests[-1]["max_output_tokens"] == 16
    assert message.content[0].text == "o"  # type: ignore[union-attr]


def test_a_provider_without_a_key_gets_the_apis_401_as_an_authentication_error(
    server: Server, responses: FakeResponses
) -> None:
    body = {"model": "claude-haiku-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}
    response = httpx.post(f"{server.url}/v1/messages", json=body, timeout=30)
    assert responses.rejections == ["no bearer key"]
    assert response.status_code == 401 and response.json()["error"]["type"] == "authentication_error"


@pytest.mark.parametrize(
    ("reply", "error_type", "words"),
    [
        (
            Stream().created().message("Partial").failed("server_error", "The server had an error"),
            "api_error",
            "server had an error",
        ),
        (
            Stream().created().message("Partial").error("rate_limit_exceeded", "Rate limit reached"),
            "rate_limit_error",
            "Rate limit",
        ),
    ],
)
def test_a_failure_mid_stream_is_an_error_event_and_is_recorded(
    client: anthropic.Anthropic,
    server: Server,
    responses: FakeResponses,
    reply: Stream,
    error_type: str,
    words: str,
) -> None:
    responses.script(reply.reply())
    with (
        pytest.raises(anthropic.APIStatusError) as raised,
        client.messages.stream(
            model="claude-sonnet-4-6", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        ) as events,
    ):
        for _ in events:
            pass
    assert words in str(raised.value)
    row = server.wait_for_exchange(lambda e: e["status"] != "ok")
    assert (
        row["status"] == "error" and row["error_type"] == error_type and row["dialect"] == "openai_responses"
    )


def test_a_refused_request_is_recorded_with_what_was_sent(server: Server, responses: FakeResponses) -> None:
    """A reasoning item another route made cannot go to this one: dropped, and the record says so."""
    foreign = {"type": "thinking", "thinking": "t", "signature": "EqQBCkgIARABGAIiQAnthropicSignature"}
    body = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 50,
        "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": [foreign, {"type": "text", "text": "y"}]},
            {"role": "user", "content": "z"},
        ],
    }
    responses.script(Reply(body=Stream().message("ok").final("completed", usage=None)))
    response = httpx.post(f"{server.url}/v1/messages", json=body, timeout=30)
    assert response.status_code == 200 and responses.rejections == []
    assert all(item["type"] != "reasoning" for item in responses.requests[-1]["input"])
    row = server.wait_for_exchange(lambda e: e["request_id"] == response.headers["request-id"])
    assert "foreign_reasoning_dropped" in [c["kind"] for c in row["changes"]]


def test_count_tokens_asks_the_input_tokens_endpoint_where_the_provider_counts(
    client: anthropic.Anthropic, responses: FakeResponses
) -> None:
    counted = client.messages.count_tokens(
        model="claude-sonnet-4-6",
        system="Be brief.",
        tools=[BASH],
        messages=[{"role": "user", "content": "hi"}],  # type: ignore[list-item]
    )
    assert counted.input_tokens == responses.input_tokens and responses.rejections == []
    (sent,) = responses.requests
    assert set(sent) == {"model", "input", "instructions", "tools"} and sent["model"] == "gpt-5-codex"


def test_count_tokens_is_local_where_the_provider_does_not_count(
    client: anthropic.Anthropic, responses: FakeResponses
) -> None:
    counted = client.messages.count_tokens(
        model="claude-haiku-4-5", messages=[{"role": "user", "content": "hi"}]
    )
    assert 0 < counted.input_tokens < 100 and responses.requests == []

"""The proxy core over real HTTP: the anthropic SDK as client, a scripted OpenAI server as backend."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from tests.conftest import Server, load_fixture
from tests.fakes.openai_upstream import (
    FakeOpenAI,
    Reply,
    chunk,
    completion,
    error,
    text_stream,
    tool_stream,
    usage_chunk,
)


@pytest.fixture
def client(server: Server) -> anthropic.Anthropic:
    # max_retries=0: the SDK's own retries would hide what the proxy answered.
    return anthropic.Anthropic(base_url=server.url, api_key="sk-client-key", max_retries=0)


def stream_message(server: Server, text: str) -> Any:
    """A raw streaming POST (no SDK), to read exactly the SSE frames the proxy sends."""
    body = {"model": "claude-opus-4-8", "max_tokens": 100, "stream": True,
            "messages": [{"role": "user", "content": text}]}  # fmt: skip
    return httpx.stream("POST", f"{server.url}/v1/messages", json=body, timeout=10)


def test_non_streaming_text_answers_as_anthropic_with_the_model_id_the_client_sent(
    client: anthropic.Anthropic, upstream: FakeOpenAI, server: Server
) -> None:
    upstream.script(completion("Hello there", prompt=120, completion_tokens=7, cached=100))
    message = client.messages.create(
        model="claude-sonnet-5", max_tokens=1000, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.model == "claude-sonnet-5"
    assert message.id.startswith("msg_")
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "Hello there"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == 20  # prompt minus cached
    assert message.usage.cache_read_input_tokens == 100
    assert message.usage.output_tokens == 7
    sent = upstream.requests[-1]
    assert sent["model"] == "mid-model"  # sonnet-class -> MIDDLE_MODEL
    assert sent["max_tokens"] == 1000
    assert upstream.headers[-1]["authorization"] == "Bearer sk-test-upstream"
    row = server.wait_for_exchange(lambda e: e["client_model"] == "claude-sonnet-5")
    assert row["status"] == "ok" and row["backend_model"] == "mid-model"
    assert row["client_request"]["messages"][0]["content"] == "hi"
    assert row["upstream_request"]["body"]["model"] == "mid-model"
    assert "authorization" not in row["upstream_request"]["headers"]
    assert json.loads(row["upstream_response"])["object"] == "chat.completion"
    assert row["client_response"]["content"][0]["text"] == "Hello there"
    assert (row["input_tokens"], row["output_tokens"], row["cache_read_tokens"]) == (20, 7, 100)


def test_streaming_text_follows_the_anthropic_event_grammar(
    client: anthropic.Anthropic, upstream: FakeOpenAI, server: Server
) -> None:
    upstream.script(text_stream("Hel", "lo", " world", prompt=50, completion=3, cached=10))
    with client.messages.stream(
        model="claude-opus-4-8", max_tokens=64000, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        types = [event.type for event in stream]
        final = stream.get_final_message()
    assert types[0] == "message_start" and types[-1] == "message_stop"
    assert final.content[0].text == "Hello world"  # type: ignore[union-attr]
    assert final.model == "claude-opus-4-8"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 3
    assert final.usage.cache_read_input_tokens == 10
    sent = upstream.requests[-1]
    assert sent["model"] == "big-model"
    assert sent["max_tokens"] == 64000  # passed through: never capped to a global constant
    assert sent["stream_options"] == {"include_usage": True}
    row = server.wait_for_exchange(lambda e: e["client_model"] == "claude-opus-4-8" and e["stream"])
    assert row["status"] == "ok"
    assert row["client_response"]["content"][0]["text"] == "Hello world"
    assert "data: [DONE]" in row["upstream_response"]
    assert row["first_token_ms"] is not None and row["duration_ms"] >= row["first_token_ms"]


def test_streamed_tool_call_split_over_many_chunks_arrives_whole(
    client: anthropic.Anthropic, upstream: FakeOpenAI
) -> None:
    fragments = ['{"file', '_path": "/tmp/a', '.txt", "con', 'tent": "hi ', 'there"}']
    upstream.script(tool_stream([("call_abc", "Write", fragments)], text="Writing it."))
    tools = [
        {
            "name": "Write",
            "description": "write a file",
            "input_schema": {
                "type": "object",
                "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}},
                "required": ["file_path", "content"],
            },
        }
    ]
    with client.messages.stream(
        model="claude-opus-4-8",
        max_tokens=1000,
        tools=tools,  # type: ignore[arg-type]
        messages=[{"role": "user", "content": "write"}],
    ) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["text", "tool_use"]
    call = final.content[1]
    assert call.type == "tool_use" and call.name == "Write"
    assert call.input == {"file_path": "/tmp/a.txt", "content": "hi there"}
    assert call.id.startswith("toolu_")
    assert final.stop_reason == "tool_use"


def test_parallel_tool_calls_interleaved_by_index_become_separate_blocks(
    client: anthropic.Anthropic, upstream: FakeOpenAI
) -> None:
    chunks = [
        chunk({"role": "assistant", "content": None}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "Read", "arguments": '{"file_'},
                    }
                ]
            }
        ),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 1,
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "Bash", "arguments": '{"comm'},
                    }
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'path": "a.py"}'}}]}),
        chunk({"tool_calls": [{"index": 1, "function": {"arguments": 'and": "ls"}'}}]}),
        chunk({}, finish="tool_calls"),
        usage_chunk(10, 5),
        "[DONE]",
    ]
    upstream.script(Reply(chunks=chunks))
    with client.messages.stream(
        model="claude-opus-4-8", max_tokens=1000, messages=[{"role": "user", "content": "go"}]
    ) as stream:
        final = stream.get_final_message()
    assert [(b.type, b.name, b.input) for b in final.content] == [  # type: ignore[union-attr]
        ("tool_use", "Read", {"file_path": "a.py"}),
        ("tool_use", "Bash", {"command": "ls"}),
    ]


def test_message_start_estimates_input_tokens_and_message_delta_has_the_backends(
    server: Server, upstream: FakeOpenAI
) -> None:
    """A Chat Completions backend counts the prompt only in its last chunk. Clients that read input
    tokens from message_start alone get an estimate close to a real count instead of 0."""
    body = load_fixture("main_turn")
    raw = json.dumps(body, separators=(",", ":")).encode()  # compact, as Claude Code sends it
    counted = httpx.post(f"{server.url}/v1/messages/count_tokens", content=raw, timeout=30).json()
    upstream.script(text_stream("Done.", prompt=17_500, completion=2, cached=17_000))
    with httpx.stream("POST", f"{server.url}/v1/messages", content=raw, timeout=10) as response:
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    start = events[0]["message"]["usage"]
    (delta,) = [e["usage"] for e in events if e["type"] == "message_delta"]
    assert 0.85 * counted["input_tokens"] <= start["input_tokens"] <= 1.15 * counted["input_tokens"]
    assert (delta["input_tokens"], delta["cache_read_input_tokens"]) == (500, 17_000)


def test_upstream_rate_limit_is_a_429_rate_limit_error_with_retry_after(
    server: Server, upstream: FakeOpenAI
) -> None:
    upstream.script(error(429, "slow down", type_="rate_limit_exceeded", headers={"retry-after": "7"}))
    response = httpx.post(
        f"{server.url}/v1/messages",
        json={"model": "claude-sonnet-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    assert "slow down" in body["error"]["message"]


@pytest.mark.parametrize(
    ("upstream_status", "status", "error_type"),
    [
        (400, 400, "invalid_request_error"),
        (401, 401, "authentication_error"),
        (403, 403, "permission_error"),
        (404, 404, "not_found_error"),
        (500, 500, "api_error"),
        (503, 529, "overloaded_error"),
    ],
)
def test_upstream_errors_map_to_anthropic_error_types(
    server: Server, upstream: FakeOpenAI, upstream_status: int, status: int, error_type: str
) -> None:
    upstream.script(*[error(upstream_status, "nope")] * 3)
    response = httpx.post(
        f"{server.url}/v1/messages",
        json={"model": "claude-sonnet-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == status
    assert response.json()["error"]["type"] == error_type
    row = server.wait_for_exchange(lambda e: e["http_status"] == status)
    assert row["status"] == "error" and row["error_type"] == error_type


def test_sdk_raises_the_matching_exception_type(client: anthropic.Anthropic, upstream: FakeOpenAI) -> None:
    upstream.script(error(401, "bad key", type_="invalid_api_key"))
    with pytest.raises(anthropic.AuthenticationError):
        client.messages.create(
            model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )


def test_stream_cut_at_a_stop_sequence_the_backend_never_saw_reports_estimated_usage(
    client: anthropic.Anthropic, upstream: FakeOpenAI, server: Server
) -> None:
    # OpenAI takes 4 stop sequences: the 5th is matched by the proxy, which hangs up before the usage chunk.
    pieces = ("The answer", " is 42. <<E", "ND>> and then", " more")
    upstream.script(text_stream(*pieces, prompt=900, completion=99))
    stops = ["<<A>>", "<<B>>", "<<C>>", "<<D>>", "<<END>>"]
    with client.messages.stream(
        model="claude-opus-4-8", max_tokens=500, stop_sequences=stops,
        messages=[{"role": "user", "content": "What is the answer? End with <<END>>."}],
    ) as stream:  # fmt: skip
        final = stream.get_final_message()
    assert final.content[0].text == "The answer is 42. "  # type: ignore[union-attr]
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", "<<END>>")
    # Counted locally: the backend's 900/99 never arrived, and zero would under-report the exchange.
    assert 0 < final.usage.input_tokens < 900
    assert 0 < final.usage.output_tokens < 99
    assert upstream.requests[-1]["stop"] == stops[:4]
    row = server.wait_for_exchange(
        lambda e: e["stream"] and (e["client_response"] or {}).get("stop_reason") == "stop_sequence"
    )
    assert row["input_tokens"] == final.usage.input_tokens
    assert row["output_tokens"] == final.usage.output_tokens
    assert "usage_estimated" in [change["kind"] for change in row["changes"]]


def test_stream_that_breaks_off_ends_with_an_sse_error_event_and_is_recorded(
    server: Server, upstream: FakeOpenAI
) -> None:
    reply = text_stream("partial ", "answer", "never sent")
    reply.break_after = 3
    upstream.script(reply)
    with stream_message(server, "hi") as response:
        assert response.status_code == 200
        text = response.read().decode()
    assert "event: message_start" in text
    assert "event: error" in text
    assert "event: message_stop" not in text
    row = server.wait_for_exchange(lambda e: e["stream"] and e["status"] == "error")
    assert row["error_type"] == "api_error"


def test_stream_that_ends_without_finish_reason_is_an_error_not_a_clean_end(
    server: Server, upstream: FakeOpenAI
) -> None:
    upstream.script(Reply(chunks=[chunk({"role": "assistant", "content": ""}), chunk({"content": "cut"})]))
    with stream_message(server, "hi") as response:
        text = response.read().decode()
    assert "event: error" in text
    assert "event: message_stop" not in text


def test_sdk_stream_raises_when_the_backend_fails_mid_stream(
    client: anthropic.Anthropic, upstream: FakeOpenAI
) -> None:
    reply = text_stream("a", "b", "c")
    reply.break_after = 2
    upstream.script(reply)
    with (
        pytest.raises(anthropic.APIError),
        client.messages.stream(
            model="claude-opus-4-8", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        ) as stream,
    ):
        for _ in stream:
            pass


def test_client_hang_up_mid_stream_is_recorded_as_cancelled_and_closes_upstream(
    server: Server, upstream: FakeOpenAI
) -> None:
    reply = text_stream(*[f"word{i} " for i in range(200)])
    reply.delay_s = 0.02
    upstream.script(reply)
    with stream_message(server, "long please") as response:
        for line in response.iter_lines():
            if "text_delta" in line:
                break  # hang up after the first token
    row = server.wait_for_exchange(lambda e: e["client_request"]["messages"][0]["content"] == "long please")
    assert row["status"] == "cancelled" and row["duration_ms"] >= row["first_token_ms"] > 0
    assert "word0" in row["upstream_response"]
    assert "word199" not in row["upstream_response"]  # the upstream request was closed, not read to the end
    # The backend's usage never came, but it billed the prompt and what it generated: counted locally.
    assert row["input_tokens"] > 0
    assert 0 < row["output_tokens"] < 200
    assert "usage_estimated" in [change["kind"] for change in row["changes"]]


def test_exchanges_api_with_settle_answers_once_the_last_reply_is_recorded(
    server: Server, upstream: FakeOpenAI
) -> None:
    body = {
        "model": "claude-opus-4-8",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "settle me"}],
    }
    for n in range(5):  # without settle, the row of a reply just received is not written yet (batches)
        upstream.script(completion(f"reply {n}"))
        assert httpx.post(f"{server.url}/v1/messages", json=body, timeout=10).status_code == 200
        rows = httpx.get(f"{server.url}/api/exchanges", params={"limit": 1, "settle": 1}, timeout=15).json()
        assert rows["data"][0]["client_response"]["content"][0]["text"] == f"reply {n}"


def test_a_tool_result_reported_failed_counts_against_the_call_that_made_it(
    client: anthropic.Anthropic, upstream: FakeOpenAI, server: Server
) -> None:
    """The client says a call failed only in its next request (`is_error`); the feed's failed-calls
    filter and the session totals must count it on the exchange whose answer made the call, once."""
    session = str(uuid.uuid4())
    headers = {"x-claude-code-session-id": session}
    tools: Any = [{"name": "Read", "description": "read a file", "input_schema": {"type": "object"}}]
    ask = [{"role": "user", "content": "read two files"}]
    upstream.script(tool_stream([("call_1", "Read", ['{"file_path": "/a"}']), ("call_2", "Read", ["{}"])]))
    with client.messages.stream(
        model="claude-opus-4-8", max_tokens=100, tools=tools, messages=ask, extra_headers=headers
    ) as stream:
        answer = stream.get_final_message()
    first, second = [b.id for b in answer.content if b.type == "tool_use"]
    # Issue #12: one call refused by Claude Code (the model's failure), one tool that reported an error.
    refused = "<tool_use_error>InputValidationError: Read failed: file_path is missing</tool_use_error>"
    results = [
        {"type": "tool_result", "tool_use_id": first, "is_error": True, "content": "File does not exist."},
        {"type": "tool_result", "tool_use_id": second, "is_error": True, "content": refused},
    ]
    follow_up: Any = [*ask, {"role": "assistant", "content": answer.model_dump()["content"]},
                      {"role": "user", "content": results}]  # fmt: skip
    for _ in range(2):  # the second time is the client retrying the same request: still one failure
        upstream.script(completion("The second file is missing."))
        client.messages.create(
            model="claude-opus-4-8", max_tokens=100, tools=tools, messages=follow_up, extra_headers=headers
        )

    calls, *retries = reversed(server.exchanges(10, session=session))
    assert [(r["tool_call_errors"], r["tool_result_errors"]) for r in retries] == [(0, 0), (0, 0)]
    assert (calls["tool_calls"], calls["tool_call_errors"], calls["tool_result_errors"]) == (2, 1, 1)
    for feed_filter in ("failed", "tool_errors"):
        feed = httpx.get(f"{server.url}/", params={feed_filter: "1", "session": session}, timeout=10).text
        assert re.findall(r'<tr id="exchange-(\d+)"', feed) == [str(calls["id"])]
    sessions = httpx.get(f"{server.url}/sessions", timeout=10).text
    row = re.search(rf"<tr[^>]*>\s*<td[^>]*><a href=\"/sessions/{session}\".*?</tr>", sessions, re.S)
    cells = re.findall(r"<td class=\"num\">(.*?)</td>", row[0]) if row else []
    assert cells[-3:] == ['<span class="bad">1</span>', '<span class="tool-errors">1</span>', "0"]


def test_client_hang_up_before_the_response_began_is_recorded_as_cancelled(
    server: Server, upstream: FakeOpenAI
) -> None:
    reply = completion("too late")
    reply.first_delay_s = 3.0  # the upstream takes its time before the headers
    upstream.script(reply)
    body = {
        "model": "claude-opus-4-8",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "slow one"}],
    }
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.url}/v1/messages", json=body, timeout=httpx.Timeout(10.0, read=0.5))
    row = server.wait_for_exchange(lambda e: e["client_request"]["messages"][0]["content"] == "slow one")
    assert row["status"] == "cancelled" and row["duration_ms"] >= 400  # the client waited 0.5 s
    assert row["error_message"] == "client disconnected before the response began"
    assert row["upstream_request"]["body"]["messages"][-1]["content"] == "slow one"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "claude-x", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"model": "claude-x", "max_tokens": 10}, "messages"),
        (
            {"model": "claude-x", "max_tokens": 10, "messages": [{"role": "robot", "content": "x"}]},
            "messages.0.role",
        ),
        (
            {"model": "claude-x", "max_tokens": 10, "messages": [{"role": "user", "content": 5}]},
            "messages.0.content",
        ),
        ({"model": "claude-x", "max_tokens": "ten", "messages": []}, "max_tokens"),
    ],
)
def test_malformed_request_is_a_400_naming_the_field(server: Server, body: dict, field: str) -> None:
    response = httpx.post(f"{server.url}/v1/messages", json=body)
    assert response.status_code == 400
    error_body = response.json()
    assert error_body["type"] == "error"
    assert error_body["error"]["type"] == "invalid_request_error"
    assert error_body["error"]["message"].startswith(field + ":")


def test_body_that_is_not_json_is_a_400_and_is_recorded(server: Server) -> None:
    response = httpx.post(
        f"{server.url}/v1/messages", content=b"{not json", headers={"user-agent": "broken-client"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    row = server.wait_for_exchange(lambda e: e["user_agent"] == "broken-client")
    assert row["status"] == "error" and row["http_status"] == 400


def test_count_tokens_counts_a_large_read_tool_body_offline(server: Server) -> None:
    body = load_fixture("count_tokens")
    response = httpx.post(
        f"{server.url}/v1/messages/count_tokens?beta=true",
        json=body,
        headers={"anthropic-beta": "token-counting-2024-11-01,some-future-beta-2099-01-01"},
    )
    assert response.status_code == 200
    tokens = response.json()["input_tokens"]
    text_len = len(json.dumps(body))
    assert text_len // 8 < tokens < text_len // 2  # a real count, not a stub


def test_models_lists_only_claude_ids(server: Server) -> None:
    response = httpx.get(f"{server.url}/v1/models")
    assert response.status_code == 200
    ids = [m["id"] for m in response.json()["data"]]
    assert ids and all(i.startswith("claude") for i in ids)


CLAUDE_CODE_FIXTURES = [
    "main_turn",
    "tool_result_turn",
    "main_turn_interactive",
    "background_title",
    "background_haiku",
    "read_tool_result_turn",
    "subagent_turn",
    "subagent_result_turn",
    "subagent_explore_haiku",
    "main_turn_custom_model",
    "main_turn_model_flag_haiku",
]


@pytest.mark.parametrize("name", CLAUDE_CODE_FIXTURES)
def test_every_captured_claude_code_request_streams_back_a_valid_answer(
    server: Server, upstream: FakeOpenAI, name: str
) -> None:
    body = load_fixture(name)
    headers = json.loads((load_fixture.__globals__["FIXTURES"] / "claude-code" / "headers.json").read_text())[
        name
    ]
    sent_headers = {
        k: v
        for k, v in headers["headers"].items()
        if k not in ("host", "content-length", "accept-encoding", "connection")
    }
    sent_headers["x-api-key"] = "sk-client"
    upstream.script(text_stream("done"))
    with httpx.stream(
        "POST", server.url + headers["path"], json=body, headers=sent_headers, timeout=30
    ) as response:
        assert response.status_code == 200, response.read()
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
    assert events[0]["message"]["model"] == body["model"]
    sent = upstream.requests[-1]
    text = json.dumps(sent)
    assert "cache_control" not in text
    assert "context_management" not in sent and "metadata" not in sent
    assert sent["max_tokens"] == body["max_tokens"]
    for tool, original in zip(sent.get("tools", []), body["tools"], strict=True):
        assert tool["function"]["parameters"] == original["input_schema"]


def test_request_over_the_size_limit_is_a_413_request_too_large(server: Server, upstream: FakeOpenAI) -> None:
    huge = "x" * (5 * 1024 * 1024)
    response = httpx.post(
        f"{server.url}/v1/messages",
        timeout=30,
        json={"model": "claude-opus-4-8", "max_tokens": 10, "messages": [{"role": "user", "content": huge}]},
    )
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "request_too_large"
    assert upstream.requests == []


def test_chunked_request_over_the_size_limit_is_a_413_and_recorded(
    server: Server, upstream: FakeOpenAI
) -> None:
    # No content-length up front: the limit is enforced while reading, not only from the header.
    piece = b"x" * (256 * 1024)

    def chunks() -> Iterator[bytes]:
        yield b'{"model": "claude-opus-4-8", "max_tokens": 10, "messages": [{"role": "user", "content": "'
        for _ in range(20):  # 5 MB
            yield piece
        yield b'"}]}'

    response = httpx.post(f"{server.url}/v1/messages", timeout=30, content=chunks())
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "request_too_large"
    assert upstream.requests == []
    [row] = server.exchanges(limit=1)  # the newest
    assert (row["http_status"], row["error_type"]) == (413, "request_too_large")


def test_unknown_api_path_is_an_anthropic_404(server: Server) -> None:
    response = httpx.post(f"{server.url}/v1/complete", json={})
    assert response.status_code == 404
    assert response.json() == {
        "type": "error",
        "error": {"type": "not_found_error", "message": "POST /v1/complete: no such endpoint"},
        "request_id": response.headers["request-id"],
    }


def test_serve_creates_its_database_in_wal_mode_with_16_kb_pages(server: Server) -> None:
    # WAL: the recorder never blocks dashboard readers. 16 KB pages: exchanges carry ~100 KB of bodies.
    import sqlite3

    db = sqlite3.connect(server.data_dir / "switchboard.sqlite3")
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA page_size").fetchone()[0] == 16384
    finally:
        db.close()

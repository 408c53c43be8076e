"""Zero configuration: no backend set, so the proxy passes through to the Anthropic API (scripted here)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import anthropic
import httpx
import pytest

from tests.conftest import Server, load_fixture, start_server, stop_server
from tests.fakes.anthropic_upstream import FakeAnthropic, anthropic_error, message, sse_file
from tests.fakes.openai_upstream import Reply


@pytest.fixture(scope="module")
def fake_anthropic() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture(scope="module")
def inspector(fake_anthropic: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("inspector"), {"SWITCHBOARD_ANTHROPIC_URL": fake_anthropic.url}
    )
    yield srv
    stop_server(srv)


@pytest.fixture
def anthropic_upstream(fake_anthropic: FakeAnthropic) -> Iterator[FakeAnthropic]:
    fake_anthropic.reset()
    yield fake_anthropic


def test_passthrough_forwards_the_clients_own_key_betas_and_query(
    inspector: Server, anthropic_upstream: FakeAnthropic
) -> None:
    anthropic_upstream.script(message("hello"))
    response = httpx.post(
        f"{inspector.url}/v1/messages?beta=true",
        json={"model": "claude-opus-4-8", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]},
        headers={
            "x-api-key": "sk-ant-users-own",
            "anthropic-version": "2023-06-01",
            "anthropic-beta": "claude-code-20250219,unknown-beta-2099-01-01",
        },
    )
    assert response.status_code == 200
    assert response.json()["content"][0]["text"] == "hello"
    assert response.json()["model"] == "claude-opus-4-8"  # the client's id, whatever the upstream says
    sent_headers = anthropic_upstream.headers[-1]
    assert sent_headers["x-api-key"] == "sk-ant-users-own"
    assert sent_headers["anthropic-beta"] == "claude-code-20250219,unknown-beta-2099-01-01"
    assert sent_headers["anthropic-version"] == "2023-06-01"
    assert anthropic_upstream.queries[-1] == "beta=true"
    row = inspector.wait_for_exchange(lambda e: e["dialect"] == "anthropic")
    assert row["status"] == "ok"
    assert "sk-ant-users-own" not in json.dumps(row)  # the key is forwarded, never stored


def test_passthrough_stream_is_relayed_event_by_event_and_recorded(
    inspector: Server, anthropic_upstream: FakeAnthropic
) -> None:
    anthropic_upstream.script(sse_file("tool_use", split=37))  # frames cut at odd byte offsets
    client = anthropic.Anthropic(base_url=inspector.url, api_key="sk-ant-x", max_retries=0)
    with client.messages.stream(
        model="claude-sonnet-5", max_tokens=100, messages=[{"role": "user", "content": "write"}]
    ) as stream:
        final = stream.get_final_message()
    assert final.model == "claude-sonnet-5"
    tool = next(b for b in final.content if b.type == "tool_use")
    assert tool.name == "Write" and "file_path" in tool.input  # type: ignore[operator]
    row = inspector.wait_for_exchange(lambda e: e["dialect"] == "anthropic" and e["stream"])
    assert row["status"] == "ok"
    assert row["client_response"]["content"][-1]["type"] == "tool_use"
    assert "event: message_stop" in row["upstream_response"]


def test_passthrough_error_keeps_its_type_and_status(
    inspector: Server, anthropic_upstream: FakeAnthropic
) -> None:
    anthropic_upstream.script(*[anthropic_error(529, "overloaded_error", "Overloaded")] * 3)
    response = httpx.post(
        f"{inspector.url}/v1/messages",
        json={"model": "claude-opus-4-8", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-api-key": "k"},
    )
    assert response.status_code == 529
    assert response.json()["error"]["type"] == "overloaded_error"


def test_passthrough_real_claude_code_turn_is_forwarded_untranslated(
    inspector: Server, anthropic_upstream: FakeAnthropic
) -> None:
    body = load_fixture("main_turn")
    anthropic_upstream.script(sse_file("text"))
    with httpx.stream(
        "POST",
        f"{inspector.url}/v1/messages?beta=true",
        json=body,
        headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
    ) as response:
        assert response.status_code == 200
        response.read()
    # Nothing translated. A server that is not api.anthropic.com is a "compatible" one: the Anthropic-only
    # context_management and billing line are dropped, and the drops are recorded, not silent.
    expected = {k: v for k, v in body.items() if k != "context_management"}
    billing, *system = expected["system"]
    assert billing["text"].startswith("x-anthropic-billing-header:")
    assert anthropic_upstream.requests[-1] == {**expected, "system": system}
    row = inspector.wait_for_exchange(
        lambda e: (
            e["dialect"] == "anthropic"
            and e["client_model"] == "claude-opus-4-8"
            and e["client_request"].get("context_management") is not None
        )
    )
    assert any("context_management" in c["detail"] for c in row["changes"])
    assert {"kind": "billing_header_dropped", "detail": billing["text"], "loss": False} in row["changes"]


def test_count_tokens_is_local_for_a_compatible_server_and_recorded(inspector: Server) -> None:
    body = load_fixture("count_tokens")
    response = httpx.post(
        f"{inspector.url}/v1/messages/count_tokens?beta=true", json=body, headers={"x-api-key": "k"}
    )
    assert response.status_code == 200
    assert response.json()["input_tokens"] > 1000
    row = inspector.wait_for_exchange(lambda e: e["endpoint"] == "count_tokens")
    assert row["status"] == "ok" and row["input_tokens"] == response.json()["input_tokens"]
    assert row["cost_usd"] is None


def test_passthrough_stream_with_a_malformed_event_still_reaches_the_client_whole(
    inspector: Server, anthropic_upstream: FakeAnthropic
) -> None:
    # A delta for a block the upstream never started: relayed as sent, skipped by the record, and the
    # stream goes on to its end.
    frames = sse_file("text").chunks
    stray = {"type": "content_block_delta", "index": 7, "delta": {"type": "text_delta", "text": "?"}}
    stray_frame = b"event: content_block_delta\ndata: " + json.dumps(stray).encode() + b"\n\n"
    anthropic_upstream.script(Reply(chunks=[frames[0], stray_frame, *frames[1:]]))
    with httpx.stream(
        "POST",
        f"{inspector.url}/v1/messages",
        headers={"x-api-key": "sk-ant-x", "anthropic-version": "2023-06-01"},
        json={
            "model": "claude-sonnet-5",
            "max_tokens": 50,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        },
        timeout=30,
    ) as response:
        text = response.read().decode()
    assert response.status_code == 200
    assert "event: error" not in text
    assert "event: message_stop" in text
    row = inspector.wait_for_exchange(lambda e: e["dialect"] == "anthropic" and e["stream"])
    assert row["status"] == "ok"
    assert row["client_response"]["content"][0]["type"] == "text"

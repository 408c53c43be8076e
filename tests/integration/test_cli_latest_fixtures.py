"""The real request bodies of Claude Code 2.1.332 over real HTTP: POSTed as the CLI sent them to a real
server routed to a scripted OpenAI upstream, and (for `safeguards`) to a scripted Anthropic-compatible one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, start_server, stop_server
from tests.fakes.anthropic_upstream import FakeAnthropic, sse_file
from tests.fakes.openai_upstream import FakeOpenAI, text_stream

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "claude-code-2.1.332"
HEADERS: dict[str, dict[str, Any]] = json.loads((FIXTURES / "headers.json").read_text())
ALL = sorted(p.stem for p in FIXTURES.glob("*.json") if p.name != "headers.json")
MESSAGES = [n for n in ALL if HEADERS[n]["path"].split("?")[0] == "/v1/messages"]
WITH_SAFEGUARDS = [n for n in MESSAGES if "safeguards" in json.loads((FIXTURES / f"{n}.json").read_text())]
# Hop-by-hop or body-bound headers httpx sets itself.
NOT_RESENT = ("host", "content-length", "accept-encoding", "connection")


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def cli_headers(name: str) -> dict[str, str]:
    """The headers the CLI sent, with a client key in place of the redacted one."""
    headers = {k: v for k, v in HEADERS[name]["headers"].items() if k not in NOT_RESENT}
    headers["x-api-key"] = "sk-client"
    return headers


def post_stream(url: str, name: str) -> list[dict[str, Any]]:
    """POST the fixture as captured; the SSE `data:` payloads of the answer."""
    with httpx.stream(
        "POST", url + HEADERS[name]["path"], json=load(name), headers=cli_headers(name), timeout=30
    ) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]


def assert_valid_anthropic_stream(events: list[dict[str, Any]], model: str, text: str) -> None:
    kinds = [e["type"] for e in events if e["type"] != "ping"]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert kinds[-2] == "message_delta"
    assert events[0]["message"]["model"] == model
    assert events[0]["message"]["id"].startswith("msg_")
    starts = [e["index"] for e in events if e["type"] == "content_block_start"]
    stops = [e["index"] for e in events if e["type"] == "content_block_stop"]
    assert starts == stops == list(range(len(starts)))
    said = "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
    assert said == text
    delta = next(e for e in events if e["type"] == "message_delta")
    assert delta["delta"]["stop_reason"] == "end_turn"


# --- to an OpenAI Chat Completions backend -------------------------------------------------------------


@pytest.mark.parametrize("name", MESSAGES)
def test_every_cli_latest_request_streams_back_a_valid_answer(
    server: Server, upstream: FakeOpenAI, name: str
) -> None:
    body = load(name)
    upstream.script(text_stream("done ", "here"))
    events = post_stream(server.url, name)
    assert_valid_anthropic_stream(events, body["model"], "done here")

    sent = upstream.requests[-1]
    text = json.dumps(sent)
    for word in ("cache_control", "safeguards", "classifier_context", "context_management", "defer_loading"):
        assert word not in text, word
    assert "metadata" not in sent
    assert sent["max_tokens"] == body["max_tokens"]
    assert [t["function"]["parameters"] for t in sent.get("tools", [])] == [
        t["input_schema"] for t in body["tools"]
    ]
    for i, message in enumerate(sent["messages"]):  # tool answers right after the calls they answer
        ids = [call["id"] for call in message.get("tool_calls") or []]
        assert [m.get("tool_call_id") for m in sent["messages"][i + 1 : i + 1 + len(ids)]] == ids


@pytest.mark.parametrize("name", WITH_SAFEGUARDS)
def test_recorded_exchange_lists_the_safeguards_drop(server: Server, upstream: FakeOpenAI, name: str) -> None:
    before = server.last_id()
    upstream.script(text_stream("ok"))
    post_stream(server.url, name)
    row = server.wait_for_exchange(lambda e: e["id"] > before and e["endpoint"] == "messages")
    assert row["status"] == "ok"
    assert {"kind": "field_dropped", "detail": "safeguards", "loss": False} in row["changes"]
    assert "classifier_context" not in json.dumps(row["upstream_request"])


def test_cli_latest_count_tokens_is_answered_with_an_estimate(server: Server) -> None:
    name = "count_tokens"
    body = load(name)
    response = httpx.post(
        server.url + HEADERS[name]["path"], json=body, headers=cli_headers(name), timeout=30
    )
    assert response.status_code == 200, response.text
    tokens = response.json()["input_tokens"]
    size = len(json.dumps(body))
    assert size // 8 < tokens < size // 2  # a real count, not a stub


# --- to an Anthropic-compatible backend (not api.anthropic.com) ----------------------------------------


@pytest.fixture(scope="module")
def compatible(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, FakeAnthropic]]:
    with FakeAnthropic() as fake:
        srv = start_server(tmp_path_factory.mktemp("compatible"), {"SWITCHBOARD_ANTHROPIC_URL": fake.url})
        try:
            yield srv, fake
        finally:
            stop_server(srv)


@pytest.mark.parametrize("name", WITH_SAFEGUARDS)
def test_passthrough_to_a_compatible_server_never_forwards_safeguards(
    compatible: tuple[Server, FakeAnthropic], name: str
) -> None:
    srv, fake = compatible
    fake.reset()
    fake.script(sse_file("text"))
    body = load(name)
    events = post_stream(srv.url, name)
    assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
    assert events[0]["message"]["model"] == body["model"]
    sent = fake.requests[-1]
    assert "safeguards" not in sent and "classifier_context" not in json.dumps(sent)
    # Everything else goes through untouched (context_management and the billing line are Anthropic-only
    # too: the line would defeat the compatible server's prefix cache).
    expected = {k: v for k, v in body.items() if k not in ("safeguards", "context_management")}
    assert expected["system"][0]["text"].startswith("x-anthropic-billing-header:")
    assert sent == {**expected, "system": expected["system"][1:]}

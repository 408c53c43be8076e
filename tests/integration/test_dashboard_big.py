"""A 20 MB request recorded through a real server: every page that shows it stays small and quick.

Issue #12: the exchange page of a 20 MB request sent 84 MB of HTML (the body four times) and took
75 s to open, and its context breakdown raised "Input too long to encode safely".
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import orjson
import pytest

from tests.conftest import Server, start_server, stop_server
from tests.fakes.openai_upstream import FakeOpenAI, text_stream

PAGE_LIMIT = 2_000_000
SECONDS = 10  # generous: two shared cores; it took 75 s before


@pytest.fixture(scope="module")
def big_server(fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # The default request limit (32 MB), not the test server's 4 MB.
    srv = start_server(
        tmp_path_factory.mktemp("big"),
        {"OPENAI_BASE_URL": fake_openai.url, "OPENAI_API_KEY": "sk-test-upstream"},
    )
    yield srv
    stop_server(srv)


def _twenty_mb_turn() -> dict:
    """A Claude Code-like turn that read an enormous file: a long history and a 17 MB tool result."""
    listing = "".join(f'{i}\tconst line{i} = "<value & more>";\n' for i in range(40_000))  # ~1.4 MB
    history = []
    for i in range(400):
        history.append({"role": "user", "content": f"step {i}: " + "please continue " * 200})
        history.append({"role": "assistant", "content": [{"type": "text", "text": f"done step {i}"}]})
    read = {"type": "tool_use", "id": "toolu_big", "name": "Read", "input": {"file_path": "/src/big.ts"}}
    history[-1]["content"].append(read)
    result = {"type": "tool_result", "tool_use_id": "toolu_big", "content": listing * 12}
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 200,
        "stream": True,
        "tools": [{"name": "Read", "input_schema": {"type": "object"}}],
        "system": [{"type": "text", "text": "You are a coding agent. " * 2000}],
        "messages": [*history, {"role": "user", "content": [result]}],
    }


def _timed_get(url: str) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    response = httpx.get(url, timeout=60)
    return response, time.monotonic() - start


def test_a_20_mb_exchange_opens_small_and_fast_on_every_page(
    big_server: Server, upstream: FakeOpenAI
) -> None:
    session = str(uuid.uuid4())
    body = _twenty_mb_turn()
    raw = orjson.dumps(body)
    assert len(raw) > 20_000_000
    upstream.script(text_stream("Read it all.", prompt=5_000_000, completion=5))
    sent = httpx.post(
        f"{big_server.url}/v1/messages",
        content=raw,
        headers={"content-type": "application/json", "x-api-key": "sk-client",
                 "anthropic-version": "2023-06-01", "x-claude-code-session-id": session},
        timeout=120,
    )  # fmt: skip
    assert sent.status_code == 200, sent.text[:500]
    row = big_server.wait_for_exchange(lambda e: e["session_id"] == session, timeout=60)

    pages = {
        "exchange": f"/exchanges/{row['id']}",
        "exchange again": f"/exchanges/{row['id']}",
        "feed": "/",
        "feed searched": "/?q=toolu_big",
        "session": f"/sessions/{session}",
        "sessions": "/sessions",
        "tools": "/tools",
        "costs": "/costs",
    }
    for name, path in pages.items():
        response, seconds = _timed_get(big_server.url + path)
        assert response.status_code == 200, name
        assert len(response.content) < PAGE_LIMIT, (name, len(response.content))
        assert seconds < SECONDS, (name, seconds)
    html = httpx.get(big_server.url + pages["exchange"], timeout=60).text
    assert "context (estimated tokens)" in html  # counted, not refused
    assert "step 399: " in html and "Read it all." in html  # the newest turn and the answer are there
    assert f"exchange-{row['id']}-client-request.json" in html  # curl reads the downloaded body

    # Each side downloads whole, exactly as recorded.
    download, seconds = _timed_get(f"{big_server.url}/exchanges/{row['id']}/raw/client-request?download=1")
    assert seconds < SECONDS
    assert download.headers["content-disposition"].startswith("attachment;")
    assert orjson.loads(download.content) == body
    upstream_side = httpx.get(f"{big_server.url}/exchanges/{row['id']}/raw/upstream-request", timeout=60)
    assert orjson.loads(upstream_side.content)["body"]["messages"][-1]["content"].endswith(
        body["messages"][-1]["content"][0]["content"][-1000:]
    )
    answer = httpx.get(f"{big_server.url}/exchanges/{row['id']}/raw/client-response", timeout=60).json()
    assert answer["content"][0]["text"] == "Read it all."

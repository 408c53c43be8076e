"""Scaling out: two server processes on PostgreSQL with the Redis channel layer.

Uses the machine's PostgreSQL (127.0.0.1:5432, trust auth) and Redis (127.0.0.1:6379). Skipped where
they are not running, unless SWITCHBOARD_REQUIRE_SERVICES=1 (CI), where their absence is a failure.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from tests.conftest import Server, run_async, start_server, stop_server
from tests.fakes.openai_upstream import FakeOpenAI, completion, text_stream, tool_stream

PG = ("127.0.0.1", 5432)
REDIS = ("127.0.0.1", 6379)


def reachable(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def services() -> None:
    missing = [name for name, addr in (("PostgreSQL", PG), ("Redis", REDIS)) if not reachable(addr)]
    if missing:
        if os.environ.get("SWITCHBOARD_REQUIRE_SERVICES"):
            pytest.fail(f"{', '.join(missing)} not running")
        pytest.skip(f"{', '.join(missing)} not running")


@pytest.fixture(scope="module")
def database(services: None) -> Iterator[str]:
    import psycopg

    name = f"switchboard_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgres://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def pair(
    database: str, fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Server]]:
    env = {
        "DATABASE_URL": database,
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "OPENAI_BASE_URL": fake_openai.url,
        "OPENAI_API_KEY": "sk-pg",
        "BIG_MODEL": "pg-big",
    }
    tmp = tmp_path_factory.mktemp("pg")
    servers = [start_server(tmp, env)]
    servers.append(start_server(tmp, env))  # the second finds the schema and the seed already there
    yield servers
    for server in servers:
        stop_server(server)


def test_two_processes_share_one_postgres_record(pair: list[Server], upstream: FakeOpenAI) -> None:
    upstream.script(completion("from pg"), completion("from pg too"))
    for server, text in zip(pair, ["one", "two"], strict=True):
        client = anthropic.Anthropic(base_url=server.url, api_key="k", max_retries=0)
        reply = client.messages.create(
            model="claude-opus-4-8", max_tokens=10, messages=[{"role": "user", "content": f"pg {text}"}]
        )
        assert reply.model == "claude-opus-4-8"
    first = pair[0].wait_for_exchange(lambda e: e["client_request"]["messages"][0]["content"] == "pg two")
    assert first["backend_model"] == "pg-big" and first["status"] == "ok"
    assert first["client_response"]["content"][0]["text"] == "from pg too"


def test_live_feed_event_crosses_processes_over_redis(pair: list[Server], upstream: FakeOpenAI) -> None:
    """A dashboard socket on process A hears about an exchange served by process B."""
    import websockets

    async def scenario() -> str:
        ws_url = pair[0].url.replace("http://", "ws://") + "/ws/exchanges/"
        async with websockets.connect(ws_url, origin=pair[0].url) as socket_a:
            await asyncio.sleep(0.3)
            async with httpx.AsyncClient() as http:
                response = await http.post(
                    f"{pair[1].url}/v1/messages",
                    json={
                        "model": "claude-opus-4-8",
                        "max_tokens": 10,
                        "messages": [{"role": "user", "content": "across processes"}],
                    },
                )
                assert response.status_code == 200
            return str(await asyncio.wait_for(socket_a.recv(), timeout=10))

    upstream.script(completion("hello across"))
    message = run_async(scenario())
    assert "exchange-" in message


def test_a_long_stream_is_recorded_pending_then_finished_on_postgres(
    pair: list[Server], upstream: FakeOpenAI
) -> None:
    reply = text_stream(*[f"w{i} " for i in range(10)])
    reply.delay_s = 0.06  # outlives the pending-row delay: inserted pending, then rewritten when done
    upstream.script(reply)
    with httpx.stream(
        "POST",
        f"{pair[0].url}/v1/messages",
        json={
            "model": "claude-opus-4-8",
            "max_tokens": 10,
            "stream": True,
            "messages": [{"role": "user", "content": "slow on pg"}],
        },
        timeout=10,
    ) as response:
        seen_pending = False
        for line in response.iter_lines():
            if not seen_pending and "text_delta" in line:
                time.sleep(0.4)
                rows = pair[1].exchanges(5)
                seen_pending = any(
                    r["status"] == "pending" and r["client_model"] == "claude-opus-4-8" for r in rows
                )
    assert seen_pending, "the row was not visible as pending while the stream ran"
    row = pair[1].wait_for_exchange(lambda e: e["client_request"]["messages"][0]["content"] == "slow on pg")
    assert row["status"] == "ok"
    assert row["client_response"]["content"][0]["text"] == "".join(f"w{i} " for i in range(10))
    assert (
        row["client_request"]["model"] == "claude-opus-4-8"
        and row["upstream_request"]["body"]["model"] == "pg-big"
    )


def test_a_failure_reported_through_one_process_counts_on_the_call_another_answered(
    pair: list[Server], upstream: FakeOpenAI
) -> None:
    session = str(uuid.uuid4())
    headers = {"x-claude-code-session-id": session}
    tools: Any = [{"name": "Bash", "description": "run", "input_schema": {"type": "object"}}]
    ask: Any = [{"role": "user", "content": "run it"}]
    upstream.script(tool_stream([("call_pg", "Bash", ['{"command": "false"}'])]), completion("It failed."))
    a, b = (anthropic.Anthropic(base_url=s.url, api_key="k", max_retries=0) for s in pair)
    with a.messages.stream(
        model="claude-opus-4-8", max_tokens=50, tools=tools, messages=ask, extra_headers=headers
    ) as stream:
        answer = stream.get_final_message()
    pair[0].exchanges(1)  # settle: process A has written the call's row
    (call,) = [block for block in answer.content if block.type == "tool_use"]
    failed = {"type": "tool_result", "tool_use_id": call.id, "is_error": True, "content": "Exit code 1"}
    follow_up = [*ask, {"role": "assistant", "content": answer.model_dump()["content"]},
                 {"role": "user", "content": [failed]}]  # fmt: skip
    b.messages.create(model="claude-opus-4-8", max_tokens=50, tools=tools, messages=follow_up,
                      extra_headers=headers)  # fmt: skip
    rows = pair[1].exchanges(5, session=session)
    # A failing command is the tool's result (issue #12), credited across processes all the same.
    counts = [(r["tool_calls"], r["tool_call_errors"], r["tool_result_errors"]) for r in rows]
    assert counts == [(0, 0, 0), (1, 0, 1)]

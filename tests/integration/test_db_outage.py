"""The database locked or unavailable for a while (issue #17): the API keeps serving at full speed,
exchanges wait in bounded memory and are written when it is back, and what cannot be kept is counted
and shown (log, GET /api/exchanges, the dashboard), never dropped silently."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, start_server, stop_server
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.tcp_cut import TcpCut

BUSY_TIMEOUT_S = 5  # the writer's wait for a lock: the outage below outlasts it three times


@contextmanager
def locked(server: Server) -> Iterator[None]:
    """Another process holds the database's write lock (a backup, a migration, `sqlite3` left open)."""
    db = sqlite3.connect(server.data_dir / "switchboard.sqlite3", isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        db.execute("COMMIT")
        db.close()


def ask(server: Server, text: str, *, stream: bool) -> tuple[int, float]:
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 20,
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
    }
    started = time.monotonic()
    response = httpx.post(f"{server.url}/v1/messages", json=body, timeout=60)
    return response.status_code, time.monotonic() - started


def recorder_status(server: Server) -> dict[str, Any]:
    # No settle: it would wait for the writer, which waits for the database.
    answer = httpx.get(f"{server.url}/api/exchanges", params={"limit": 1}, timeout=10).json()
    return answer.get("recorder", {})


def rows_with(server: Server, marker: str) -> list[dict[str, Any]]:
    return [r for r in server.exchanges(500) if marker in str(r["client_request"])]


@pytest.fixture
def outage_server(tmp_path: Path, upstream: FakeOpenAI) -> Iterator[Server]:
    server = start_server(
        tmp_path,
        {
            "OPENAI_BASE_URL": upstream.url,
            "OPENAI_API_KEY": "sk-test",
            "SWITCHBOARD_SQLITE_TIMEOUT": str(BUSY_TIMEOUT_S),
        },
    )
    yield server
    stop_server(server)


def test_a_locked_database_never_stalls_the_api_and_every_exchange_is_written_after(
    outage_server: Server, upstream: FakeOpenAI
) -> None:
    server = outage_server
    marker = f"outage-{time.time_ns()}"
    assert ask(server, "warm up", stream=False)[0] == 200
    latencies: list[float] = []
    sent = 0
    with locked(server):
        until = time.monotonic() + 3 * BUSY_TIMEOUT_S  # the writer fails, waits and retries meanwhile
        while time.monotonic() < until:
            status, took = ask(server, f"{marker} {sent}", stream=sent % 2 == 0)
            assert status == 200
            latencies.append(took)
            sent += 1
            time.sleep(0.1)
        status = recorder_status(server)
        page = httpx.get(f"{server.url}/", timeout=10).text
    # Before: once the writer's 20 s lock wait ran out, a request stalled for as long (issue #17).
    assert max(latencies) < 1.0, latencies
    assert status["database"] == "unavailable" and status["waiting"] > 0
    assert "locked" in status["last_error"]
    assert 'id="recording-status"' in page and "The database is unavailable" in page  # the dashboard too
    rows = rows_with(server, marker)  # written once the lock is gone
    assert len(rows) == sent
    assert {r["status"] for r in rows} == {"ok"}
    after = recorder_status(server)
    assert (after["database"], after["waiting"], after["dropped"], after["lost"]) == ("ok", 0, 0, 0)
    assert "the database is back after" in server.log.read_text()


def test_what_does_not_fit_while_the_database_is_away_is_counted_and_shown(
    tmp_path: Path, upstream: FakeOpenAI
) -> None:
    server = start_server(
        tmp_path,
        {
            "OPENAI_BASE_URL": upstream.url,
            "OPENAI_API_KEY": "sk-test",
            "SWITCHBOARD_SQLITE_TIMEOUT": "1",
            "SWITCHBOARD_RECORD_BACKLOG": "5",
        },
    )
    try:
        marker = f"bounded-{time.time_ns()}"
        assert ask(server, "warm up", stream=False)[0] == 200
        server.exchanges(1)  # written: the writer is idle when the lock comes
        sent = 20
        with locked(server):
            threads = [
                threading.Thread(target=ask, args=(server, f"{marker} {i}"), kwargs={"stream": False})
                for i in range(sent)
            ]
            for t in threads:
                t.start()
                t.join(10)
            status = recorder_status(server)
            assert status["dropped"] > 0
            assert status["waiting"] <= 5
            page = httpx.get(f"{server.url}/", timeout=10).text
            assert f"{status['dropped']} finished exchange" in page
        rows = rows_with(server, marker)
        after = recorder_status(server)
        assert len(rows) + after["dropped"] == sent  # every exchange is either recorded or counted
        assert "not recorded so far" in server.log.read_text()
    finally:
        stop_server(server)


def test_a_postgres_restart_never_stalls_the_api_and_every_exchange_is_written_after(
    tmp_path: Path, upstream: FakeOpenAI
) -> None:
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True)
    except psycopg.OperationalError:
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    name = f"switchboard_outage_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with TcpCut(("127.0.0.1", 5432)) as db:
            server = start_server(
                tmp_path,
                {
                    "OPENAI_BASE_URL": upstream.url,
                    "OPENAI_API_KEY": "sk-test",
                    "DATABASE_URL": f"postgres://postgres@127.0.0.1:{db.port}/{name}",
                },
            )
            try:
                marker = f"pg-outage-{time.time_ns()}"
                assert ask(server, "warm up", stream=False)[0] == 200
                server.exchanges(1)
                db.cut()  # every connection reset, new ones refused: the database restarts
                latencies = []
                for i in range(30):
                    status, took = ask(server, f"{marker} {i}", stream=i % 2 == 0)
                    assert status == 200
                    latencies.append(took)
                    time.sleep(0.1)
                db.restore()
                assert max(latencies) < 1.0, latencies
                rows = rows_with(server, marker)
                assert len(rows) == 30
                assert recorder_status(server)["database"] == "ok"
                log = server.log.read_text()
                assert "the database is unavailable" in log and "the database is back after" in log
            finally:
                stop_server(server)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

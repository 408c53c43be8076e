"""`switchboard serve --workers 2` (issue #14): two processes behind one port, sharing PostgreSQL and the
Redis channel layer: both answer, the live feed hears every exchange whichever process served it, a
routing edit reaches both, and SIGTERM stops both with everything recorded.

Uses a database and a Redis db number of its own (skipped where the services are not running).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, free_port, postgres_database, run_async, server_env
from tests.fakes.openai_upstream import FakeOpenAI, completion
from tests.integration.test_ops import scrape, value

REDIS_URL = "redis://127.0.0.1:6379/11"  # a db number of its own


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with postgres_database("workers") as name:
        yield f"postgres://postgres@127.0.0.1:5432/{name}"


@pytest.fixture(scope="module")
def workers(
    database: str, fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, subprocess.Popen[bytes], dict[str, str], Path]]:
    pytest.importorskip("channels_redis")
    tmp = tmp_path_factory.mktemp("workers")
    env = server_env(
        tmp / "data",
        {"DATABASE_URL": database, "REDIS_URL": REDIS_URL, "OPENAI_BASE_URL": fake_openai.url,
         "OPENAI_API_KEY": "sk-w", "BIG_MODEL": "w-big"},
    )  # fmt: skip
    port = free_port()
    log = tmp / "workers.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "proxy.cli", "serve", "--workers", "2", "--port", str(port)],
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:  # ready once both workers answer
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        try:
            if len(pids(url, tries=10)) == 2:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    yield url, process, env, log
    if process.poll() is None:
        process.kill()
        process.wait()


def pids(url: str, tries: int = 60) -> set[int]:
    seen = set()
    for _ in range(tries):  # a new connection each time: the kernel picks a worker per connection
        seen.add(httpx.get(f"{url}/healthz", timeout=5).json()["pid"])
        if len(seen) == 2:
            break
    return seen


def ask(url: str, text: str) -> None:
    body = {"model": "claude-opus-4-8", "max_tokens": 10, "messages": [{"role": "user", "content": text}]}
    response = httpx.post(f"{url}/v1/messages", json=body, timeout=15)
    assert response.status_code == 200, response.text


def test_two_workers_answer_on_one_port(workers: tuple) -> None:
    url, process, _, log = workers
    seen = pids(url)
    assert len(seen) == 2, f"only {seen} answered"
    assert process.pid not in seen  # the parent only supervises
    assert "2 workers on" in log.read_text()


def test_the_live_feed_hears_exchanges_from_every_worker(workers: tuple, upstream: FakeOpenAI) -> None:
    import websockets

    url = workers[0]
    texts = [f"live {i} {uuid.uuid4().hex[:6]}" for i in range(6)]
    upstream.script(*[completion(t) for t in texts])

    async def scenario() -> list[set[str]]:
        ws_url = url.replace("http://", "ws://") + "/ws/exchanges/"
        sockets = [await websockets.connect(ws_url, origin=url) for _ in range(6)]  # spread over both
        await asyncio.sleep(0.5)
        async with httpx.AsyncClient() as http:
            for text in texts:  # a new connection each: served by either worker
                body = {
                    "model": "claude-opus-4-8",
                    "max_tokens": 10,
                    "messages": [{"role": "user", "content": text}],
                }
                response = await http.post(f"{url}/v1/messages", json=body, headers={"connection": "close"})
                assert response.status_code == 200
        heard: list[set[str]] = []
        for socket_ in sockets:
            ids: set[str] = set()
            try:
                async with asyncio.timeout(10):
                    while len(ids) < len(texts):
                        ids |= set(re.findall(r'id="exchange-(\d+)"', str(await socket_.recv())))
            except TimeoutError:
                pass
            heard.append(ids)
            await socket_.close()
        return heard

    heard = run_async(scenario())  # beside a browser test's event loop, if one ran in this worker
    assert all(len(ids) == len(texts) for ids in heard), heard


def test_a_routing_edit_reaches_every_worker(workers: tuple, upstream: FakeOpenAI, tmp_path: Path) -> None:
    url, _, env, _ = workers
    manage = [sys.executable, "manage.py", "routes"]
    exported = subprocess.run(
        [*manage, "export"], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    edited = tmp_path / "routes.toml"
    edited.write_text(exported.stdout.replace('"w-big"', '"w-big-edited"'))
    subprocess.run([*manage, "import", str(edited)], cwd=ROOT, env=env, capture_output=True, check=True)
    upstream.script(*[completion("edited") for _ in range(8)])
    for i in range(8):
        ask(url, f"after the edit {i}")
    models = [r["model"] for r in upstream.requests[-8:]]
    assert models == ["w-big-edited"] * 8


def count_ok(database_url: str) -> int:
    import psycopg

    with psycopg.connect(database_url.replace("postgres://", "postgresql://")) as conn:
        row = conn.execute(
            "SELECT count(*) FROM proxy_exchange WHERE status = 'ok' AND endpoint = 'messages'"
        )
        return int(row.fetchone()[0])


def settled(url: str, database_url: str, at_least: int = 0) -> int:
    """The number of ok exchanges once every worker has written and counted them all (the same count in
    the database and in /metrics, three polls in a row: rows land shortly after each reply)."""
    deadline = time.monotonic() + 15
    seen: list[tuple[int, float]] = []
    while True:
        ok = count_ok(database_url)
        seen.append((ok, value(scrape(url), "switchboard_requests_total", status="ok")))
        if ok >= at_least and len(seen) >= 3 and all(pair == (ok, ok) for pair in seen[-3:]):
            return ok
        assert time.monotonic() < deadline, f"(recorded, counted): {seen[-5:]}"
        time.sleep(0.3)


def test_metrics_add_up_every_worker(workers: tuple, upstream: FakeOpenAI) -> None:
    url, _, env, _ = workers
    before = count_ok(env["DATABASE_URL"])  # earlier tests' last rows may still be on their way
    upstream.script(*[completion("m", prompt=10, completion_tokens=2) for _ in range(6)])
    for i in range(6):
        ask(url, f"metrics {i}")
    ok = settled(url, env["DATABASE_URL"], at_least=before + 6)
    for _ in range(6):  # whichever worker answers the scrape, it reports both
        samples = scrape(url)
        assert value(samples, "switchboard_requests_total", status="ok") == ok
        assert value(samples, "switchboard_request_duration_seconds_count", endpoint="messages") == ok
        assert value(samples, "switchboard_recorder_queue_depth") == 0
        assert value(samples, "switchboard_open_streams") == 0
        assert value(samples, "switchboard_tool_calls_healed_total", how="repair") == 0


def test_sigterm_stops_every_worker_with_everything_recorded(workers: tuple, upstream: FakeOpenAI) -> None:
    url, process, _, _ = workers
    seen = pids(url)
    marker = f"last words {uuid.uuid4().hex[:6]}"
    upstream.script(completion("bye"))
    ask(url, marker)
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0
    for pid in seen:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    import psycopg

    with psycopg.connect(workers[2]["DATABASE_URL"].replace("postgres://", "postgresql://")) as conn:
        statuses = conn.execute(
            "SELECT status FROM proxy_exchange WHERE client_request::text LIKE %s", [f"%{marker}%"]
        ).fetchall()
    assert statuses == [("ok",)]

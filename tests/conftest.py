"""Shared fixtures: the fixtures folder, a scripted OpenAI upstream, and a real server process.

The server is started exactly as the README says (`python manage.py serve --port N`), with its own
data directory, so tests talk real HTTP to real daphne.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def load_fixture(name: str) -> dict[str, Any]:
    """A captured Claude Code request body from tests/fixtures/claude-code/ (name without .json)."""
    return json.loads((FIXTURES / "claude-code" / f"{name}.json").read_text())


@contextlib.contextmanager
def postgres_database(purpose: str) -> Iterator[str]:
    """A PostgreSQL database of this test's own on 127.0.0.1:5432 (its name), dropped afterwards; the
    test is skipped when PostgreSQL does not run (and fails if SWITCHBOARD_REQUIRE_SERVICES is set)."""
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True)
    except psycopg.OperationalError:
        if os.environ.get("SWITCHBOARD_REQUIRE_SERVICES"):
            pytest.fail("PostgreSQL not running on 127.0.0.1:5432")
        pytest.skip("PostgreSQL not running on 127.0.0.1:5432")
    name = f"switchboard_{purpose}_{uuid.uuid4().hex[:8]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield name
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_async(coro: Any) -> Any:
    """asyncio.run in a thread of its own: a browser test's Playwright keeps an event loop running in the
    worker's main thread for the rest of the session, and asyncio.run refuses to start beside it."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def without_request_id(body: Any) -> Any:
    """An Anthropic error body without its top-level request_id, which is checked to be there (req_…)."""
    assert isinstance(body, dict) and str(body.get("request_id", "")).startswith("req_"), body
    return {k: v for k, v in body.items() if k != "request_id"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    data_dir: Path
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    _dashboard: httpx.Client | None = field(default=None, repr=False)

    def dashboard(self) -> httpx.Client:
        """An HTTP client for the dashboard pages, as a browser has one: logged in as the first-run admin
        when this server needs a login (its start printed that password once), plain otherwise."""
        if self._dashboard is None:
            client = httpx.Client(base_url=self.url, timeout=15)
            printed = re.search(
                r"Created dashboard user 'admin' with password: (\S+)", self.log.read_text(errors="replace")
            )
            if printed:
                token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', client.get("/login").text)
                assert token, "no login form"
                form = {
                    "csrfmiddlewaretoken": token.group(1),
                    "username": "admin",
                    "password": printed.group(1),
                }
                assert client.post("/login", data=form).status_code == 302, (
                    "the first-run admin could not log in"
                )
            self._dashboard = client
        return self._dashboard

    def exchanges(self, limit: int = 50, key: str = "", **params: str) -> list[dict[str, Any]]:
        # settle: everything the server finished so far is written first (rows go out in batches)
        query = {"limit": limit, "settle": 1, **params}
        # With client keys configured /api/ needs one (security/access.py): `key`, else the first of the env.
        keys = [k.strip() for k in self.env.get("SWITCHBOARD_API_KEYS", "").split(",") if k.strip()]
        # An entry may be `label:key` (proxy/security/clientkeys.py env_keys): send the key part.
        key = key or (keys[0].rpartition(":")[2] if keys else "")
        headers = {"x-api-key": key} if key else {}
        response = httpx.get(f"{self.url}/api/exchanges", params=query, headers=headers, timeout=15)
        response.raise_for_status()
        return response.json()["data"]

    def wait_for_exchange(
        self, predicate: Callable[[dict[str, Any]], bool] = lambda e: True, timeout: float = 10.0
    ) -> dict[str, Any]:
        """The newest recorded exchange matching `predicate` once it is no longer pending."""
        deadline = time.monotonic() + timeout
        while True:
            for row in self.exchanges(20):
                if row["status"] != "pending" and predicate(row):
                    return row
            if time.monotonic() > deadline:
                raise AssertionError(f"no finished exchange matched within {timeout}s; log: {self.log}")
            time.sleep(0.05)

    def last_id(self) -> int:
        rows = self.exchanges(1)
        return rows[0]["id"] if rows else 0


# Nothing from the caller's shell may pick a backend or a database: only what the test says.
_ISOLATED = (
    "OPENAI_", "ANTHROPIC_", "SWITCHBOARD_", "BIG_MODEL", "MIDDLE_MODEL", "SMALL_MODEL",
    "DATABASE_URL", "REDIS_URL",
)  # fmt: skip


def server_env(data_dir: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_ISOLATED)}
    env.update({"SWITCHBOARD_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1", **extra})
    return env


def start_server(
    tmp: Path, env: dict[str, str], *, port: int | None = None, data_dir: Path | None = None
) -> Server:
    """`python manage.py serve --port N` exactly as the README says, ready once /v1/models answers."""
    port = port or free_port()
    data_dir = data_dir or tmp / f"data-{port}"
    data_dir.mkdir(parents=True, exist_ok=True)
    log = tmp / f"server-{port}.log"
    full_env = server_env(data_dir, env)
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        cwd=ROOT,
        env=full_env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    server = Server(url=f"http://127.0.0.1:{port}", process=process, data_dir=data_dir, log=log, env=full_env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text()[-3000:]}")
        try:
            # 401: up, and asking for a client key (SWITCHBOARD_API_KEYS)
            if httpx.get(f"{server.url}/v1/models", timeout=2).status_code in (200, 401):
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    stop_server(server)
    raise RuntimeError(f"server not ready in 60s:\n{log.read_text()[-3000:]}")


def stop_server(server: Server) -> None:
    stop_process(server.process)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="session")
def server(fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real `manage.py serve` routed to the scripted OpenAI upstream (big/mid/small models)."""
    srv = start_server(
        tmp_path_factory.mktemp("server"),
        {
            "OPENAI_BASE_URL": fake_openai.url,
            "OPENAI_API_KEY": "sk-test-upstream",
            "BIG_MODEL": "big-model",
            "MIDDLE_MODEL": "mid-model",
            "SMALL_MODEL": "small-model",
            "SWITCHBOARD_MAX_REQUEST_BYTES": str(4 * 1024 * 1024),  # small enough to test request_too_large
        },
    )
    yield srv
    stop_server(srv)


@pytest.fixture
def upstream(fake_openai: FakeOpenAI) -> Iterator[FakeOpenAI]:
    """The scripted upstream, emptied before each test."""
    fake_openai.reset()
    yield fake_openai
    fake_openai.reset()

"""End-to-end fixtures: the real Claude Code CLI, a real Switchboard process, scripted vendor servers.

Each test module starts its own scripted upstream and its own server (`python manage.py serve --port N`,
as the README says) with a fresh SWITCHBOARD_DATA_DIR, so routing is seeded from the environment anew.
The CLI runs once per Claude Code version in SWITCHBOARD_E2E_CLAUDE_VERSIONS (default: the pinned
version and the latest checked), non-interactively, in a scratch directory with a scratch HOME.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import start_server, stop_process
from tests.e2e.install_claude import DEFAULT_VERSIONS, NpmMissing, ensure_claude
from tests.e2e.upstream.base import ScriptedServer
from tests.e2e.upstream.script import Scenario

ROOT = Path(__file__).resolve().parents[2]
BIG, MIDDLE, SMALL = "e2e-big", "e2e-middle", "e2e-small"
# Tools the CLI may use without asking (`--dangerously-skip-permissions` is refused when run as root).
ALLOWED_TOOLS = "Bash Write Edit Read"
CLAUDE_TIMEOUT = 90.0

JSON = dict[str, Any]


def versions() -> list[str]:
    raw = os.environ.get("SWITCHBOARD_E2E_CLAUDE_VERSIONS", "")
    return [v.strip() for v in raw.split(",") if v.strip()] or list(DEFAULT_VERSIONS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- Switchboard ------------------------------------------------------------------------------------
@dataclass
class Switchboard:
    url: str
    data_dir: Path
    log: Path
    process: subprocess.Popen[bytes]
    env: dict[str, str]

    def exchanges(self, session: str = "", limit: int = 100) -> list[JSON]:
        """Recorded exchanges, oldest first: from GET /api/exchanges, else straight from the SQLite file."""
        params: dict[str, str | int] = {"limit": limit, "settle": 1}  # what is finished is written
        if session:
            params["session"] = session
        try:
            response = httpx.get(f"{self.url}/api/exchanges", params=params, timeout=10)
            if response.status_code == 200:
                return list(reversed(response.json()["data"]))
        except httpx.HTTPError:
            pass
        return self._exchanges_from_db(session, limit)

    def _exchanges_from_db(self, session: str, limit: int) -> list[JSON]:
        db = sqlite3.connect(self.data_dir / "switchboard.sqlite3")
        db.row_factory = sqlite3.Row
        where, args = ("WHERE session_id = ?", [session]) if session else ("", [])
        rows = db.execute(f"SELECT * FROM proxy_exchange {where} ORDER BY id DESC LIMIT ?", [*args, limit])
        out = []
        for row in rows:
            item = dict(row)
            for key in ("client_request", "upstream_request", "client_response", "changes", "attempts"):
                if isinstance(item.get(key), str):
                    item[key] = json.loads(item[key])
            out.append(item)
        db.close()
        return list(reversed(out))

    def settled(self, session: str, timeout: float = 15.0) -> list[JSON]:
        """The session's exchanges once none is pending (the recorder writes after the reply)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.exchanges(session)
            if rows and all(r["status"] != "pending" for r in rows):
                return rows
            if time.monotonic() > deadline:
                raise AssertionError(f"exchanges of session {session} still pending/absent: {rows}")
            time.sleep(0.1)

    def manage(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run `manage.py ARGS` against this server's data directory (config edits apply live)."""
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )


def start_switchboard(tmp: Path, extra_env: dict[str, str]) -> Switchboard:
    server = start_server(tmp, extra_env, data_dir=tmp / "data")
    return Switchboard(server.url, server.data_dir, server.log, server.process, server.env)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Switchboard]]:
    """Start Switchboard processes for this module; all are stopped when the module ends."""
    started: list[Switchboard] = []

    def start(**env: str) -> Switchboard:
        server = start_switchboard(tmp_path_factory.mktemp("switchboard"), env)
        started.append(server)
        return server

    yield start
    for server in started:
        stop_process(server.process)


def upstream_body(exchange: JSON) -> JSON:
    """The JSON body Switchboard sent upstream for a recorded exchange."""
    sent = exchange["upstream_request"] or {}
    return sent.get("body", sent) if isinstance(sent, dict) else {}


# --- Claude Code ------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=versions())
def claude(request: pytest.FixtureRequest) -> Path:
    """The `claude` binary of one Claude Code version (installed once into the cache)."""
    try:
        return ensure_claude(request.param)
    except NpmMissing as exc:
        pytest.skip(str(exc))


@dataclass
class ClaudeRun:
    returncode: int | None  # None: killed at the timeout
    events: list[JSON]
    stderr: str
    seconds: float
    cwd: Path
    raw: str = field(repr=False, default="")

    @property
    def session(self) -> str:
        return next((e["session_id"] for e in self.events if e.get("session_id")), "")

    @property
    def result(self) -> JSON:
        found = [e for e in self.events if e.get("type") == "result"]
        assert found, (
            f"Claude Code printed no result event; stderr: {self.stderr[-2000:]}\n{self.raw[-3000:]}"
        )
        return found[-1]

    @property
    def retries(self) -> list[JSON]:
        return [e for e in self.events if e.get("type") == "system" and e.get("subtype") == "api_retry"]

    def blocks(self, kind: str, main_only: bool = True) -> list[JSON]:
        """Content blocks of one type from the assistant messages Claude Code received, in order."""
        return [
            block
            for e in self.events
            if e.get("type") == "assistant" and (not main_only or e.get("parent_tool_use_id") is None)
            for block in e["message"].get("content", [])
            if block.get("type") == kind
        ]

    def tool_results(self) -> list[JSON]:
        return [
            block
            for e in self.events
            if e.get("type") == "user" and isinstance(e["message"].get("content"), list)
            for block in e["message"]["content"]
            if block.get("type") == "tool_result"
        ]

    def assert_ok(self, *, failed_tools: int = 0) -> None:
        """The run finished cleanly, and exactly `failed_tools` of its tool calls failed."""
        result = self.result
        assert not result.get("is_error"), f"Claude Code reported an error: {result.get('result')}"
        assert self.returncode == 0, f"exit {self.returncode}; stderr: {self.stderr[-2000:]}"
        assert not self.retries, f"Claude Code had to retry: {self.retries}"
        failed = [r for r in self.tool_results() if r.get("is_error")]
        assert len(failed) == failed_tools, f"tool calls failed inside Claude Code: {failed}"


def claude_env(home: Path, base_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A minimal environment: nothing from the caller's shell reaches the CLI but PATH and the locale."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_AUTH_TOKEN": "dummy",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        # One retry at most: a broken exchange shows up as an `api_retry` event, not as minutes of backoff.
        "CLAUDE_CODE_MAX_RETRIES": "1",
        **(extra or {}),
    }


def run_claude(
    binary: Path,
    base_url: str,
    prompt: str,
    workdir: Path,
    *,
    env: dict[str, str] | None = None,
    timeout: float = CLAUDE_TIMEOUT,
    args: tuple[str, ...] = (),
) -> ClaudeRun:
    """`claude -p PROMPT --output-format stream-json --verbose` in `workdir`; stdout parsed into events."""
    home = workdir.parent / f"{workdir.name}-home"
    home.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(binary),
        "-p",
        prompt,
        "--output-format",
        "stream-json",
        "--verbose",
        "--permission-mode",
        "acceptEdits",
        "--allowedTools",
        ALLOWED_TOOLS,
        *args,
    ]
    started = time.monotonic()
    try:
        done = subprocess.run(
            cmd,
            cwd=workdir,
            env=claude_env(home, base_url, env),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        code, out, err = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:
        code = None
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
    # Kept beside the scratch directory for post-mortems (pytest keeps its last few temp roots).
    (workdir.parent / f"{workdir.name}.stream.jsonl").write_text(out)
    (workdir.parent / f"{workdir.name}.stderr.txt").write_text(err)
    events = []
    for line in out.splitlines():
        if line.strip().startswith("{"):
            events.append(json.loads(line))
    return ClaudeRun(code, events, err, time.monotonic() - started, workdir, out)


@dataclass
class Harness:
    """One module's setup: a Claude Code binary, a Switchboard, a scripted upstream."""

    claude: Path
    server: Switchboard
    upstream: ScriptedServer
    tmp: Path

    @property
    def version(self) -> str:
        return self.claude.parents[2].name.removeprefix("claude-")

    def run(
        self,
        scenario: Scenario,
        prompt: str,
        *,
        files: dict[str, str] | None = None,
        also: tuple[Scenario, ...] = (),
        **kwargs: Any,
    ) -> ClaudeRun:
        """Have Claude Code play `scenario` (its marker leads the prompt) in a fresh directory.

        `files` are created in that directory first; `also` registers the scripts of subagents.
        The upstream's request log is emptied first, so `upstream.received()` is this run's traffic.
        """
        for extra in also:
            self.upstream.add(extra)
        self.upstream.add(scenario)
        self.upstream.requests.clear()
        self.upstream.errors.clear()
        workdir = self.tmp / f"{scenario.name}-{self.version}"
        workdir.mkdir(parents=True)
        for name, text in (files or {}).items():
            (workdir / name).parent.mkdir(parents=True, exist_ok=True)
            (workdir / name).write_text(text)
        run = run_claude(self.claude, self.server.url, f"[e2e:{scenario.name}] {prompt}", workdir, **kwargs)
        assert not self.upstream.errors, (
            f"the upstream script did not fit the request: {self.upstream.errors}"
        )
        return run


def assert_failure_reported(harness: Harness, scenario: Scenario) -> None:
    """A backend failing mid-stream: Claude Code reports an API error within seconds (never hangs), and
    every exchange of the run is recorded as failed, the streamed one with its error type."""
    run = harness.run(scenario, "Write a file.", timeout=60)

    assert run.returncode is not None, f"Claude Code still waiting after 60 s: {run.raw[-2000:]}"
    assert run.returncode != 0
    assert run.result["is_error"] is True
    assert "API Error" in run.result["result"]
    assert run.seconds < 45
    rows = harness.server.settled(run.session)
    assert rows and all(r["status"] == "error" for r in rows)
    streamed = [r for r in rows if r["stream"]]
    assert streamed and streamed[0]["error_type"]

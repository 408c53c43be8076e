"""`switchboard claude` with the real Claude Code CLI (issue #14): the launcher starts the service, runs
a `-p` task through it against the scripted OpenAI upstream, and stops the service when Claude Code exits.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port, server_env
from tests.e2e.conftest import ALLOWED_TOOLS, BIG, CLAUDE_TIMEOUT, MIDDLE, SMALL, claude_env
from tests.e2e.upstream.openai_server import OpenAIServer
from tests.e2e.upstream.script import Scenario, call, in_cwd, say

pytestmark = pytest.mark.e2e

WRITE = Scenario(
    "launcher-write",
    [call("Write", file_path=in_cwd("launched.txt"), content="through switchboard claude\n"), say("Done.")],
)


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIServer]:
    server = OpenAIServer().start()
    yield server
    server.stop()


def test_switchboard_claude_runs_a_task_and_stops_the_service(
    claude: Path, upstream: OpenAIServer, tmp_path: Path
) -> None:
    upstream.add(WRITE)
    upstream.errors.clear()
    port = free_port()
    workdir = tmp_path / "work"
    workdir.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    env = server_env(
        tmp_path / "data",
        {
            "OPENAI_BASE_URL": f"{upstream.url}/v1",
            "OPENAI_API_KEY": "sk-e2e-upstream",
            "BIG_MODEL": BIG,
            "MIDDLE_MODEL": MIDDLE,
            "SMALL_MODEL": SMALL,
            "SWITCHBOARD_CLAUDE": str(claude),
            "PYTHONPATH": str(ROOT),
        },
    )
    # Claude Code's scratch environment, minus what the launcher must set itself.
    cc = claude_env(home, "unused")
    for name in ("ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN"):
        cc.pop(name)
    env.update({k: v for k, v in cc.items() if k != "PATH"})
    args = ["-p", f"[e2e:{WRITE.name}] write the file", "--output-format", "stream-json", "--verbose",
            "--permission-mode", "acceptEdits", "--allowedTools", ALLOWED_TOOLS]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "proxy.cli", "claude", "--port", str(port), *args],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=CLAUDE_TIMEOUT + 60,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    result = next((e for e in events if e.get("type") == "result"), None)
    assert result is not None and not result.get("is_error"), (done.stderr[-3000:], done.stdout[-3000:])
    assert done.returncode == 0
    assert not upstream.errors, upstream.errors
    assert (workdir / "launched.txt").read_text() == "through switchboard claude\n"
    assert "started on" in done.stderr
    with pytest.raises(OSError):  # the service the launcher started is gone
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    session = next(e["session_id"] for e in events if e.get("session_id"))
    db = sqlite3.connect(tmp_path / "data" / "switchboard.sqlite3")
    rows = db.execute(
        "SELECT status, backend_model FROM proxy_exchange WHERE session_id = ? AND endpoint = 'messages'",
        [session],
    ).fetchall()
    assert len(rows) >= 2 and all(status == "ok" for status, _ in rows), rows
    assert {model for _, model in rows} <= {BIG, MIDDLE, SMALL}
    assert list(home.glob(".claude/settings*.json")) == []  # the user's settings files untouched

"""The `switchboard` command (issue #14): `claude` against a stub `claude` executable on PATH that records
what it was given and uses the service the way Claude Code would, `--print-env`, and `statusline` against
a running server with recorded sessions."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import tomllib
import uuid
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from tests.conftest import ROOT, Server, free_port, server_env
from tests.fakes.openai_upstream import FakeOpenAI, completion

# A stand-in for Claude Code: records its arguments and environment, calls the service as Claude Code
# would (models, one message in a session), and runs the status-line command it was configured with.
STUB = r"""#!{python}
import json, os, subprocess, sys, urllib.request
base, token = os.environ["ANTHROPIC_BASE_URL"], os.environ.get("ANTHROPIC_AUTH_TOKEN", "")
auth = {{"Authorization": f"Bearer {{token}}"}}
def call(path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    headers = {{**auth, "content-type": "application/json",
               "x-claude-code-session-id": os.environ["STUB_SESSION"]}}
    request = urllib.request.Request(base + path, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")
out = {{"argv": sys.argv[1:], "env": dict(os.environ)}}
out["models"] = call("/v1/models")[0]
out["message"] = call("/v1/messages", {{"model": "claude-opus-4-8", "max_tokens": 20,
                                       "messages": [{{"role": "user", "content": "stub turn"}}]}})
args = sys.argv[1:]
settings = json.loads(args[args.index("--settings") + 1])
line = subprocess.run(settings["statusLine"]["command"], shell=True, capture_output=True, text=True,
                      input=json.dumps({{"session_id": os.environ["STUB_SESSION"],
                                        "model": {{"id": "claude-opus-4-8", "display_name": "Opus"}}}}))
out["statusline"] = [line.returncode, line.stdout, line.stderr]
open(os.environ["STUB_OUT"], "w").write(json.dumps(out))
if os.environ.get("STUB_SLEEP"):
    import time; time.sleep(float(os.environ["STUB_SLEEP"]))
sys.exit(int(os.environ.get("STUB_EXIT", "0")))
"""


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def stub_dir(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "claude"
    stub.write_text(STUB.format(python=sys.executable))
    stub.chmod(0o755)
    return bin_dir


def launcher_env(tmp_path: Path, stub_dir: Path, extra: dict[str, str]) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = server_env(tmp_path / "data", extra)
    env.update(
        PATH=f"{stub_dir}{os.pathsep}{env['PATH']}",
        HOME=str(home),
        PYTHONPATH=str(ROOT),  # `python -m proxy.cli` from another directory, as an installed script would
        STUB_OUT=str(tmp_path / "stub.json"),
        STUB_SESSION=str(uuid.uuid4()),
    )
    return env


def switchboard(
    args: list[str], env: dict[str, str], cwd: Path, **kw: Any
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proxy.cli", *args], env=env, cwd=cwd, capture_output=True, text=True,
        timeout=120, **kw,
    )  # fmt: skip


def test_claude_starts_the_service_runs_claude_then_stops_it(
    tmp_path: Path, stub_dir: Path, upstream: FakeOpenAI
) -> None:
    port = free_port()
    env = launcher_env(
        tmp_path, stub_dir,
        {"OPENAI_BASE_URL": upstream.url, "OPENAI_API_KEY": "sk-up", "BIG_MODEL": "gpt-4o", "STUB_EXIT": "3"},
    )  # fmt: skip
    upstream.script(completion("through the launcher", prompt=1000, completion_tokens=50))
    done = switchboard(["claude", "--port", str(port), "-p", "do it", "--model", "opus"], env, tmp_path)
    assert done.returncode == 3, done.stderr  # Claude Code's exit status is ours
    out = json.loads((tmp_path / "stub.json").read_text())
    assert out["argv"][0] == "--settings" and out["argv"][2:] == ["-p", "do it", "--model", "opus"]
    settings = json.loads(out["argv"][1])
    assert settings["statusLine"]["type"] == "command"
    child = out["env"]
    assert child["ANTHROPIC_BASE_URL"] == f"http://127.0.0.1:{port}"
    assert child["ANTHROPIC_AUTH_TOKEN"] == "switchboard"
    assert child["CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY"] == "1"
    assert child["CLAUDE_CODE_AUTO_COMPACT_WINDOW"] == "128000"  # opus -> gpt-4o, a 128k window
    assert out["models"] == 200
    status, message = out["message"]
    assert status == 200 and message["content"][0]["text"] == "through the launcher"
    code, line, err = out["statusline"]
    assert code == 0 and not err
    assert line.startswith("⇄ gpt-4o (opus) · session $") and "on claude-opus-4-8 $" in line
    assert not port_open(port), "the service it started is still running"
    db = sqlite3.connect(tmp_path / "data" / "switchboard.sqlite3")
    rows = db.execute("SELECT status, session_id FROM proxy_exchange").fetchall()
    assert rows == [("ok", child["STUB_SESSION"])]  # recorded before it stopped
    assert list((tmp_path / "home").iterdir()) == []  # no settings file written anywhere


def test_claude_stopped_with_sigterm_still_stops_the_service(
    tmp_path: Path, stub_dir: Path, upstream: FakeOpenAI
) -> None:
    port = free_port()
    env = launcher_env(tmp_path, stub_dir, {"OPENAI_BASE_URL": upstream.url, "STUB_SLEEP": "60"})
    launcher = subprocess.Popen([sys.executable, "-m", "proxy.cli", "claude", "--port", str(port)], env=env,
                                cwd=tmp_path, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "stub.json").exists():  # Claude Code is running, on the service it started
            assert launcher.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        assert port_open(port)
        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(30) == 128 + signal.SIGTERM  # Claude Code's status: it was terminated
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert not port_open(port)


def test_claude_uses_a_running_service_and_leaves_it_running(
    tmp_path: Path, stub_dir: Path, server: Server, upstream: FakeOpenAI
) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    env = launcher_env(tmp_path, stub_dir, {})
    upstream.script(completion("hi"))
    done = switchboard(["claude", "--port", str(port), "-p", "x"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "started on" not in done.stderr
    assert server.process.poll() is None and httpx.get(f"{server.url}/healthz").status_code == 200
    out = json.loads((tmp_path / "stub.json").read_text())
    assert "CLAUDE_CODE_AUTO_COMPACT_WINDOW" not in out["env"]  # big-model: its window is unknown
    assert out["message"][0] == 200


def test_claude_sends_the_client_key_when_keys_are_configured(
    tmp_path: Path, stub_dir: Path, upstream: FakeOpenAI
) -> None:
    env = launcher_env(
        tmp_path, stub_dir,
        {"OPENAI_BASE_URL": upstream.url, "OPENAI_API_KEY": "sk-up",
         "SWITCHBOARD_API_KEYS": "key-one,key-two", "SWITCHBOARD_API_KEY": "key-two",
         "ANTHROPIC_API_KEY": "sk-ant-users-own"},
    )  # fmt: skip
    upstream.script(completion("keyed"))
    done = switchboard(["claude", "--port", str(free_port())], env, tmp_path)
    assert done.returncode == 0, done.stderr
    out = json.loads((tmp_path / "stub.json").read_text())
    assert out["env"]["ANTHROPIC_AUTH_TOKEN"] == "key-two"
    assert "ANTHROPIC_API_KEY" not in out["env"]  # it would be sent as x-api-key and refused
    assert out["models"] == 200 and out["message"][0] == 200
    assert out["statusline"][1].startswith("⇄ "), out["statusline"]  # the status line sends the key too


def test_claude_keeps_the_users_own_settings_and_adds_the_status_line(
    tmp_path: Path, stub_dir: Path, server: Server
) -> None:
    port = server.url.rsplit(":", 1)[1]
    env = launcher_env(tmp_path, stub_dir, {})
    theirs = {"theme": "dark", "env": {"FOO": "1"}}
    done = switchboard(["claude", "--port", port, "--settings", json.dumps(theirs), "-p", "x"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    argv = json.loads((tmp_path / "stub.json").read_text())["argv"]
    assert argv.count("--settings") == 1 and argv[2:] == ["-p", "x"]
    assert json.loads(argv[1]) == {**theirs, "statusLine": json.loads(argv[1])["statusLine"]}


def test_print_env_prints_what_claude_needs(tmp_path: Path, server: Server) -> None:
    port = server.url.rsplit(":", 1)[1]
    env = launcher_env(tmp_path, tmp_path, {"SWITCHBOARD_API_KEY": "my-key"})
    done = switchboard(["claude", "--print-env", "--port", port], env, tmp_path)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split("=", 1) for line in done.stdout.splitlines())
    assert lines == {
        "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}",
        "CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY": "1",
        "ANTHROPIC_AUTH_TOKEN": "my-key",
    }
    assert done.stderr == ""
    down = switchboard(["claude", "--print-env", "--port", str(free_port())], env, tmp_path)
    assert down.returncode == 0 and "ANTHROPIC_BASE_URL=" in down.stdout
    assert "not running" in down.stderr


def test_claude_refuses_a_port_held_by_another_service(tmp_path: Path, stub_dir: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as other:
        port = other.getsockname()[1]
        done = switchboard(
            ["claude", "--port", str(port), "-p", "x"], launcher_env(tmp_path, stub_dir, {}), tmp_path
        )
    assert done.returncode == 1
    assert "not as Switchboard" in done.stderr
    assert not (tmp_path / "stub.json").exists()


def test_claude_says_when_claude_is_not_installed(tmp_path: Path, server: Server) -> None:
    env = launcher_env(tmp_path, tmp_path, {"SWITCHBOARD_CLAUDE": "no-such-claude-binary"})
    done = switchboard(["claude", "--port", server.url.rsplit(":", 1)[1]], env, tmp_path)
    assert done.returncode == 127 and "not found on PATH" in done.stderr


# --- the status line --------------------------------------------------------------------------------


def statusline(url: str, stdin: str, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "proxy.cli", "statusline", "--url", url], input=stdin, capture_output=True,
        text=True, timeout=30, cwd=ROOT, env={**os.environ, **env},
    )  # fmt: skip
    return done, time.monotonic() - started


def test_statusline_shows_the_sessions_backend_rule_and_costs(server: Server, upstream: FakeOpenAI) -> None:
    session = str(uuid.uuid4())
    upstream.script(completion("a", prompt=2000, completion_tokens=100), completion("b", prompt=10))
    client = anthropic.Anthropic(
        base_url=server.url, api_key="k", max_retries=0, default_headers={"X-Claude-Code-Session-Id": session}
    )
    client.messages.create(
        model="claude-opus-4-8", max_tokens=50, messages=[{"role": "user", "content": "1"}]
    )
    client.messages.create(
        model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "2"}]
    )
    rows = server.exchanges(5, session=session)
    claude_cost = sum(r["claude_cost_usd"] or 0 for r in rows)
    given = {"session_id": session, "model": {"id": "claude-opus-4-8", "display_name": "Opus"},
             "workspace": {"current_dir": "/tmp"}}  # fmt: skip
    done, _ = statusline(server.url, json.dumps(given))
    assert done.returncode == 0 and done.stderr == ""
    # the last answer came from the haiku rule's model; costs summed over the session
    assert done.stdout.startswith(f"⇄ small-model ({rows[0]['rule']}) · session $")
    assert done.stdout.strip().endswith(f"on claude-opus-4-8 ${claude_cost:.4f}")


def test_statusline_is_quiet_and_safe_when_things_are_off(server: Server) -> None:
    cases = [
        (server.url, json.dumps({"session_id": "never-seen"}), "no requests recorded"),
        (server.url, "not json", "no session yet"),
        (server.url, "", "no session yet"),
        (f"http://127.0.0.1:{free_port()}", json.dumps({"session_id": "s"}), "not reachable"),
        ("https://example.invalid", json.dumps({"session_id": "s"}), "not reachable"),
    ]
    for url, stdin, expected in cases:
        done, seconds = statusline(url, stdin)
        assert done.returncode == 0 and done.stderr == "", (url, stdin, done.stderr)
        assert expected in done.stdout and len(done.stdout.splitlines()) == 1
        assert seconds < 5


def test_statusline_endpoint_is_fast(server: Server) -> None:
    url = f"{server.url}/api/sessions/{uuid.uuid4()}/summary"
    with httpx.Client() as client:
        client.get(url)
        timings = []
        for _ in range(20):
            started = time.perf_counter()
            assert client.get(url).status_code == 200
            timings.append(time.perf_counter() - started)
    assert sorted(timings)[10] < 0.05  # median, on a shared 2-core machine


def test_the_console_script_is_declared() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, func = scripts["switchboard"].partition(":")
    assert module == "proxy.cli.main" and func == "main"
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}, sys; sys.exit({module}.{func}(['--help']))"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0 and "switchboard claude" in done.stdout

"""The first run, as the README tells it: `manage.py serve` says where it listens (only once it does),
where data lives, where routing came from and what to paste into Claude Code's shell; a busy port is
said and exits non-zero; `routes` works on a fresh data directory. Issue #12."""

from __future__ import annotations

import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.conftest import ROOT, free_port, server_env, start_server, stop_process, stop_server

OPENAI_ENV = {
    "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
    "OPENAI_API_KEY": "sk-test",
    "BIG_MODEL": "big-model",
    "SMALL_MODEL": "small-model",
}


def serve(data_dir: Path, env: dict[str, str], port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        cwd=ROOT,
        env=server_env(data_dir, env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_banner(process: subprocess.Popen[str], timeout: float = 30) -> str:
    """stdout up to the banner's last line (the `claude` line); fails after `timeout` seconds."""
    assert process.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout or ()], daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            seen.append(lines.get(timeout=left))
        except queue.Empty:
            break
        if seen[-1].strip().startswith("claude"):
            return "".join(seen)
    raise AssertionError(f"no banner within {timeout}s; stdout so far: {''.join(seen)!r}")


def routes(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "routes", *args],
        cwd=ROOT,
        env=server_env(data_dir, {}),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_banner_comes_once_the_port_answers_and_says_what_to_paste(tmp_path: Path) -> None:
    port = free_port()
    process = serve(tmp_path / "data", OPENAI_ENV, port)
    try:
        banner = read_banner(process)
        # printed only once bound: the port answers the moment the banner is out
        assert httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=5).status_code == 200
    finally:
        stop_process(process)
    assert f"Switchboard is listening on http://127.0.0.1:{port}" in banner
    assert f"data:      {tmp_path / 'data' / 'switchboard.sqlite3'}" in banner
    assert "routing:   seeded from the environment: openai at http://127.0.0.1:9/v1" in banner
    assert "haiku -> small-model, opus -> big-model, the rest -> big-model" in banner
    assert "read on\n           the first start only" in banner
    assert (
        f"  export ANTHROPIC_BASE_URL=http://127.0.0.1:{port} ANTHROPIC_AUTH_TOKEN=anything\n  claude"
        in banner
    )
    assert "sk-test" not in banner


def test_a_later_start_says_routing_is_from_the_database_and_what_it_ignores(tmp_path: Path) -> None:
    first = start_server(tmp_path, OPENAI_ENV, data_dir=tmp_path / "data")
    stop_server(first)
    port = free_port()
    process = serve(tmp_path / "data", {**OPENAI_ENV, "BIG_MODEL": "a-newer-model"}, port)
    try:
        banner = read_banner(process)
    finally:
        stop_process(process)
    assert "routing:   from the database (1 providers, 3 rules), not the environment" in banner
    assert "changed later do\n           nothing" in banner
    assert "ignored now, not what the stored routing uses: BIG_MODEL=a-newer-model" in banner


def test_with_no_backend_the_banner_says_the_clients_own_login_is_forwarded(tmp_path: Path) -> None:
    port = free_port()
    process = serve(tmp_path / "data", {}, port)
    try:
        banner = read_banner(process)
    finally:
        stop_process(process)
    assert "seeded from the environment: Anthropic passthrough to https://api.anthropic.com" in banner
    assert f"  export ANTHROPIC_BASE_URL=http://127.0.0.1:{port}\n  claude    # your own" in banner
    assert "ANTHROPIC_AUTH_TOKEN" not in banner


def test_a_busy_port_is_said_and_exits_non_zero(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = serve(tmp_path / "data", OPENAI_ENV, port)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "listening on" not in out  # no claim of success first
    assert f"Switchboard: port {port} on 127.0.0.1 is busy" in err
    assert f"python manage.py serve --port {port + 1}" in err
    assert "Traceback" not in err


def test_routes_commands_work_on_a_fresh_data_directory(tmp_path: Path) -> None:
    listed = routes(tmp_path / "empty", "list")
    assert listed.returncode == 0, listed.stderr
    assert "no such table" not in listed.stderr and "Traceback" not in listed.stderr
    assert "no routing configuration yet" in listed.stderr
    exported = routes(tmp_path / "empty-2", "export")
    assert exported.returncode == 0 and "Traceback" not in exported.stderr
    config = tmp_path / "routes.toml"
    config.write_text(
        '[[providers]]\nname = "p"\ndialect = "openai"\nbase_url = "https://x.example/v1"\n\n'
        '[[rules]]\nname = "default"\nprovider = "p"\nmodel = "m"\ndefault = true\n'
    )
    imported = routes(tmp_path / "empty-3", "import", str(config))
    assert imported.returncode == 0, imported.stderr
    assert "imported 1 providers and 1 rules" in imported.stderr
    assert "1. rule default: default, tried last => p/m" in routes(tmp_path / "empty-3", "list").stdout

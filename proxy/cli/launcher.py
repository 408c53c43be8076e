"""`switchboard claude`: run Claude Code through Switchboard, configured for that run only.

Starts the service in the background unless it already answers on the port (and stops it when Claude
Code exits, if it started it), then runs `claude` with ANTHROPIC_BASE_URL, a token, gateway model
discovery, the auto-compact window of the model the main requests are routed to, and the status line
(`--settings` with a JSON string). The user's own settings files are never written.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from proxy.cli import statusline
from proxy.cli.main import child_env

DEFAULT_PORT = 8082
START_TIMEOUT_S = 60.0


def launch(argv: list[str]) -> int:
    port, print_env, claude_args = _own_options(argv)
    url = f"http://127.0.0.1:{port}"
    token = client_token()
    state = probe(url)
    if print_env:
        window = compact_window(url, token, claude_args) if state == "switchboard" else None
        for name, value in claude_env(url, token, window).items():
            print(f"{name}={shlex.quote(value)}")
        if state != "switchboard":
            print(f"# Switchboard is not running on {url}: start it with `switchboard serve --port {port}`",
                  file=sys.stderr)  # fmt: skip
        return 0
    if state == "other":
        print(
            f"switchboard: port {port} answers, but not as Switchboard; pick another with --port",
            file=sys.stderr,
        )
        return 1
    binary = shutil.which(os.environ.get("SWITCHBOARD_CLAUDE", "claude"))
    if binary is None:
        print(
            "switchboard: `claude` not found on PATH (npm install -g @anthropic-ai/claude-code)",
            file=sys.stderr,
        )
        return 127
    server = start_service(port) if state == "down" else None
    if server is False:
        return 1
    try:
        env = {**os.environ, **claude_env(url, token, compact_window(url, token, claude_args))}
        if "ANTHROPIC_AUTH_TOKEN" in env and token:
            env.pop("ANTHROPIC_API_KEY", None)  # it would be sent as x-api-key instead of the client key
        args, settings = _with_settings(claude_args, url)
        return run_claude([binary, "--settings", json.dumps(settings), *args], env)
    finally:
        if isinstance(server, subprocess.Popen):
            stop_service(server)


def run_claude(command: list[str], env: dict[str, str]) -> int:
    """Run Claude Code in the foreground and return its exit status.

    Ctrl-C belongs to Claude Code (same terminal, same process group), so we ignore it and wait; a
    SIGTERM to us is passed on, so the service we started is still stopped afterwards."""
    claude = subprocess.Popen(command, env=env)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    previous_term = signal.signal(signal.SIGTERM, lambda signum, frame: claude.terminate())
    try:
        code = claude.wait()
        return 128 - code if code < 0 else code  # killed by signal N: 128 + N, as a shell reports it
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)


def _own_options(argv: list[str]) -> tuple[int, bool, list[str]]:
    """`--port P` and `--print-env` before Claude Code's own arguments (`--` ends them)."""
    port = int(os.environ.get("SWITCHBOARD_PORT", DEFAULT_PORT))
    print_env = False
    rest = list(argv)
    while rest:
        if rest[0] == "--print-env":
            print_env = True
            rest.pop(0)
        elif rest[0] == "--port" and len(rest) > 1:
            port = int(rest[1])
            del rest[:2]
        elif rest[0].startswith("--port="):
            port = int(rest.pop(0).split("=", 1)[1])
        elif rest[0] == "--":
            rest.pop(0)
            break
        else:
            break
    return port, print_env, rest


def client_token() -> str:
    """The client key to send: SWITCHBOARD_API_KEY, else the first of SWITCHBOARD_API_KEYS ("" = none)."""
    if key := os.environ.get("SWITCHBOARD_API_KEY", "").strip():
        return key
    keys = [k.strip() for k in os.environ.get("SWITCHBOARD_API_KEYS", "").split(",") if k.strip()]
    return keys[0] if keys else ""


def claude_env(url: str, token: str, window: int | None) -> dict[str, str]:
    """The environment Claude Code needs to go through Switchboard."""
    env = {"ANTHROPIC_BASE_URL": url, "CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY": "1"}
    # Without a client key, a user's own ANTHROPIC_API_KEY is left alone: the passthrough route forwards it.
    if token or not os.environ.get("ANTHROPIC_API_KEY"):
        env["ANTHROPIC_AUTH_TOKEN"] = token or "switchboard"
    if window:
        env["CLAUDE_CODE_AUTO_COMPACT_WINDOW"] = str(window)
    return env


def statusline_command(url: str) -> str:
    """The status-line command: this Python on the stdlib-only module (-I -S: no site, no cwd on the
    path; it starts fastest)."""
    return shlex.join([sys.executable, "-I", "-S", str(Path(statusline.__file__).resolve()), "--url", url])


def _with_settings(args: list[str], url: str) -> tuple[list[str], dict[str, Any]]:
    """Claude Code's args without a `--settings` the user gave, and those settings with our status line
    added (theirs win)."""
    ours: dict[str, Any] = {
        "statusLine": {"type": "command", "command": statusline_command(url), "padding": 0}
    }
    out, theirs = [], {}
    i = 0
    while i < len(args):
        arg = args[i]
        value = None
        if arg == "--settings" and i + 1 < len(args):
            value, i = args[i + 1], i + 2
        elif arg.startswith("--settings="):
            value, i = arg.split("=", 1)[1], i + 1
        else:
            out.append(arg)
            i += 1
        if value is not None:
            text = value if value.lstrip().startswith("{") else Path(value).expanduser().read_text()
            theirs = json.loads(text)
    return out, {**ours, **theirs}


def probe(url: str) -> str:
    """ "switchboard" (it answers /healthz), "other" (something else has the port) or "down"."""
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
            body = json.loads(response.read())
        return "switchboard" if body.get("service") == "switchboard" else "other"
    except urllib.error.HTTPError:
        return "other"
    except (OSError, ValueError):
        return "other" if _port_open(url) else "down"


def _port_open(url: str) -> bool:
    import socket

    port = int(url.rsplit(":", 1)[1])
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def start_service(port: int) -> subprocess.Popen[bytes] | bool:
    """`switchboard serve --port P` in the background, logging to the data directory; once it answers."""
    data_dir = Path(os.environ.get("SWITCHBOARD_DATA_DIR", str(Path.home() / ".switchboard"))).expanduser()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "switchboard-claude.log"
    with log_path.open("ab") as log:
        # Its own session: Ctrl-C in Claude Code must not stop it before Claude Code is done with it.
        process = subprocess.Popen(
            [sys.executable, "-m", "proxy.cli", "serve", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env(),
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    url = f"http://127.0.0.1:{port}"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            print(f"switchboard: the service did not start (log: {log_path}):\n{tail}", file=sys.stderr)
            return False
        if probe(url) == "switchboard":
            print(f"switchboard: started on {url} (log: {log_path}); it stops when Claude Code exits",
                  file=sys.stderr)  # fmt: skip
            return process
        time.sleep(0.2)
    print(
        f"switchboard: the service did not answer in {START_TIMEOUT_S:g} s (log: {log_path})", file=sys.stderr
    )
    stop_service(process)
    return False


def stop_service(process: subprocess.Popen[bytes]) -> None:
    process.terminate()  # SIGTERM: it writes what it recorded, then exits
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def compact_window(url: str, token: str, claude_args: list[str]) -> int | None:
    """The context window of the backend model Claude Code's main requests are routed to, for
    CLAUDE_CODE_AUTO_COMPACT_WINDOW: Claude Code assumes the Claude model's window and would compact
    too late on a smaller one. None when the user set it, the route keeps a Claude model, or unknown."""
    if os.environ.get("CLAUDE_CODE_AUTO_COMPACT_WINDOW"):
        return None
    from proxy import catalog

    model = _requested_model(claude_args) or os.environ.get("ANTHROPIC_MODEL") or "sonnet"
    if model in ("opus", "sonnet", "haiku") or model.startswith(("opus[", "sonnet[")):
        model = catalog.newest_claude(model.split("[")[0]) or f"claude-{model}"
    body = {"model": model, "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}
    request = urllib.request.Request(
        f"{url}/api/route/explain",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", **({"x-api-key": token} if token else {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            targets = json.loads(response.read()).get("targets") or []
    except (OSError, ValueError):
        return None
    target = targets[0].get("model", "") if targets else ""
    if not target or target.startswith("claude"):
        return None
    return catalog.context_window(target)


def _requested_model(args: list[str]) -> str:
    for i, arg in enumerate(args):
        if arg == "--model" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--model="):
            return arg.split("=", 1)[1]
    return ""

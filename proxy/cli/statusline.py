"""`switchboard statusline`: Claude Code's status line, from what Switchboard recorded for the session.

Claude Code runs the command after each assistant message with JSON on stdin (`session_id`,
`model.id`, `workspace.current_dir`, ...: https://code.claude.com/docs/en/statusline) and shows the first
line printed. Standard library only, so it starts in ~20 ms and can run as a plain script
(`python -I statusline.py`); it never prints a traceback: a short fallback when anything is off.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from typing import Any
from urllib.parse import quote, urlsplit

DEFAULT_URL = "http://127.0.0.1:8082"
TIMEOUT_S = 0.5  # Claude Code waits for the command; a slow service must not hold its prompt


def money(value: float | None) -> str:
    if value is None:
        return "$?"
    return f"${value:.2f}" if value >= 1 else f"${value:.4f}"


def line(summary: dict[str, Any], asked: str = "") -> str:
    """One status line from GET /api/sessions/<id>/summary."""
    last = summary.get("last") or {}
    model = last.get("backend_model") or "?"
    rule = f" ({last['rule']})" if last.get("rule") else ""
    claude_model = asked or last.get("client_model") or "Claude"
    return (
        f"⇄ {model}{rule} · session {money(summary.get('cost_usd'))}"
        f" · on {claude_model} {money(summary.get('claude_cost_usd'))}"
    )


def fetch(url: str, session_id: str, token: str) -> tuple[int, dict[str, Any]]:
    """GET the session's summary. A plain HTTP/1.0 request on a socket, not http.client or urllib: they
    import the email package, which tripled this command's start-up time (60 ms -> 120-180 ms)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError("only http:// URLs")
    path = f"{parts.path.rstrip('/')}/api/sessions/{quote(session_id, safe='')}/summary"
    host = f"{parts.hostname}:{parts.port or 80}"
    head = f"GET {path} HTTP/1.0\r\nHost: {host}\r\nAccept: application/json\r\n"
    if token:
        head += f"x-api-key: {token}\r\n"
    with socket.create_connection((parts.hostname, parts.port or 80), timeout=TIMEOUT_S) as sock:
        sock.sendall((head + "\r\n").encode("latin-1"))
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    response = b"".join(chunks)
    header, _, body = response.partition(b"\r\n\r\n")
    status = int(header.split(b" ", 2)[1])
    return status, json.loads(body) if status == 200 else {}


def render(stdin_text: str, url: str, token: str) -> str:
    try:
        given = json.loads(stdin_text or "{}")
    except ValueError:
        given = {}
    session_id = given.get("session_id") if isinstance(given, dict) else None
    if not isinstance(session_id, str) or not session_id:
        return "switchboard: no session yet"
    model = given.get("model")
    asked = model.get("id", "") if isinstance(model, dict) and isinstance(model.get("id"), str) else ""
    try:
        status, summary = fetch(url, session_id, token)
    except (OSError, ValueError, IndexError):  # refused, timed out, not HTTP, not JSON
        return f"switchboard: not reachable at {url}"
    if status in (401, 403):
        return "switchboard: set SWITCHBOARD_API_KEY to a client key"
    if status != 200:
        return f"switchboard: HTTP {status}"
    if not summary.get("exchanges"):
        return "switchboard: no requests recorded for this session yet"
    return line(summary, asked)


def token_from_env() -> str:
    """The client key: SWITCHBOARD_API_KEY, else the token Claude Code itself was given."""
    return os.environ.get("SWITCHBOARD_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN", "")


def main(url: str = DEFAULT_URL) -> int:
    try:
        text = sys.stdin.read() if not sys.stdin.isatty() else ""
        out = render(text, url, token_from_env())
    except BaseException:  # a status line must never show a traceback, whatever happened
        out = "switchboard: status unavailable"
    print(out)
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(main(args[args.index("--url") + 1] if "--url" in args[:-1] else DEFAULT_URL))

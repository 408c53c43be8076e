"""A real HTTP server (stdlib, one thread per connection) that plays scripted model turns.

Subclasses speak one vendor's wire format: `context()` reads a request body, `reply()` writes a turn.
The server keeps every request it received and every script error, for the tests to read.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .script import JSON, Context, Scenario, ScriptError, Turn, plan_turn, scenario_name


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: JSON
    scenario: str | None
    turn: int


class ScriptedServer:
    """Start with `start()`; `url` is its base URL; `add(scenario)` before Claude Code runs it."""

    name = "scripted"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, delay: float = 0.002) -> None:
        self.scenarios: dict[str, Scenario] = {}
        self.requests: list[Received] = []
        self.errors: list[str] = []
        self.delay = delay  # seconds between stream events, so chunks really arrive apart
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True, name=self.name)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def add(self, scenario: Scenario) -> Scenario:
        self.scenarios[scenario.name] = scenario
        return scenario

    def received(self, scenario: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if scenario is None or r.scenario == scenario]

    # --- per vendor -------------------------------------------------------------------------------
    def context(self, body: JSON) -> Context:
        raise NotImplementedError

    def handle(self, h: BaseHTTPRequestHandler, path: str, body: JSON) -> None:
        """Route one POST; the default plays a turn for any path ending in the vendor's endpoint."""
        raise NotImplementedError

    def reply(self, h: BaseHTTPRequestHandler, turn: Turn, ctx: Context, body: JSON) -> None:
        raise NotImplementedError

    # --- shared -----------------------------------------------------------------------------------
    def play(self, h: BaseHTTPRequestHandler, path: str, body: JSON) -> None:
        ctx = self.context(body)
        with self._lock:
            self.requests.append(
                Received(path, dict(h.headers.items()), body, scenario_name(ctx.prompt), ctx.turn)
            )
        try:
            turn = plan_turn(self.scenarios, ctx)
        except ScriptError as exc:
            self.errors.append(str(exc))
            send_json(h, 500, self.error_body("script_error", str(exc)))
            return
        try:
            self.reply(h, turn, ctx, body)
        except ScriptError as exc:
            self.errors.append(str(exc))
            send_json(h, 500, self.error_body("script_error", str(exc)))
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True  # the client hung up: nothing left to tell it

    def error_body(self, kind: str, message: str) -> JSON:
        raise NotImplementedError

    def pause(self) -> None:
        if self.delay:
            time.sleep(self.delay)


def _handler_for(server: ScriptedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows failures
            pass

        def do_GET(self) -> None:
            send_json(self, 404, server.error_body("not_found", self.path))

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b"{}"
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                send_json(self, 400, server.error_body("invalid_request_error", "body is not JSON"))
                return
            server.handle(self, self.path.split("?")[0], body)

    return Handler


def send_json(h: BaseHTTPRequestHandler, status: int, payload: JSON) -> None:
    data = json.dumps(payload).encode()
    h.send_response(status)
    h.send_header("content-type", "application/json")
    h.send_header("content-length", str(len(data)))
    h.end_headers()
    h.wfile.write(data)


class ChunkedStream:
    """An SSE response body written with chunked transfer encoding, one chunk per event."""

    def __init__(self, h: BaseHTTPRequestHandler, server: ScriptedServer) -> None:
        self.h, self.server = h, server
        h.send_response(200)
        h.send_header("content-type", "text/event-stream")
        h.send_header("cache-control", "no-cache")
        h.send_header("transfer-encoding", "chunked")
        h.end_headers()

    def send(self, data: str, event: str | None = None) -> None:
        frame = (f"event: {event}\n" if event else "") + f"data: {data}\n\n"
        payload = frame.encode()
        self.h.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
        self.h.wfile.flush()
        self.server.pause()

    def end(self) -> None:
        self.h.wfile.write(b"0\r\n\r\n")
        self.h.wfile.flush()

    def hang_up(self) -> None:
        """Drop the connection without ending the body, as a crashed backend does."""
        self.h.close_connection = True
        self.h.wfile.flush()
        self.h.connection.shutdown(2)


def pieces(text: str, size: int) -> list[str]:
    size = max(size, 1)
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def text_of(content: Any) -> str:
    """Text of a message content: a string, or blocks/parts with `text` (nested in tool results)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, dict):
                if "text" in part and isinstance(part["text"], str):
                    out.append(part["text"])
                elif "content" in part:
                    out.append(text_of(part["content"]))
            elif isinstance(part, str):
                out.append(part)
        return "\n".join(out)
    return ""

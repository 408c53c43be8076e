"""Stopping the server (SIGTERM, as systemd and `docker stop` do) with requests in flight (issue #17).

New connections are refused at once; requests in flight finish within SWITCHBOARD_SHUTDOWN_GRACE or
end with an error (an `event: error` mid-stream, a 503 before it), and every one is recorded.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, start_server, stop_process, without_request_id
from tests.fakes.openai_upstream import FakeOpenAI, completion, text_stream


def body(text: str, *, stream: bool = True) -> dict[str, Any]:
    return {
        "model": "claude-opus-4-8",
        "max_tokens": 500,
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
    }


def rows_with(server: Server, text: str) -> list[tuple[str, str, str]]:
    with sqlite3.connect(server.data_dir / "switchboard.sqlite3") as db:
        return db.execute(
            "SELECT status, error_message, upstream_response FROM proxy_exchange WHERE client_request LIKE ?",
            (f"%{text}%",),
        ).fetchall()


class StreamingClient(threading.Thread):
    """A client reading a stream in the background; `started` is set at its first text."""

    def __init__(self, server: Server, text: str) -> None:
        super().__init__()
        self.server, self.text = server, text
        self.started = threading.Event()
        self.received = ""
        self.failure: Exception | None = None

    def run(self) -> None:
        try:
            with httpx.stream(
                "POST", f"{self.server.url}/v1/messages", json=body(self.text), timeout=30
            ) as r:
                for line in r.iter_lines():
                    self.received += line + "\n"
                    if "text_delta" in line:
                        self.started.set()
        except httpx.HTTPError as exc:
            self.failure = exc


def serve(tmp_path: Path, upstream: FakeOpenAI, **env: str) -> Server:
    return start_server(tmp_path, {"OPENAI_BASE_URL": upstream.url, "OPENAI_API_KEY": "sk-test", **env})


def terminate(server: Server) -> float:
    """SIGTERM; how long the process took to exit (0 is its exit code)."""
    started = time.monotonic()
    server.process.terminate()
    assert server.process.wait(30) == 0, server.log.read_text()[-2000:]
    return time.monotonic() - started


def test_sigterm_lets_a_stream_in_flight_finish_and_refuses_new_connections(
    tmp_path: Path, upstream: FakeOpenAI
) -> None:
    server = serve(tmp_path, upstream)
    try:
        reply = text_stream(*[f"word{i} " for i in range(100)])
        reply.delay_s = 0.02  # ~2 s in all, inside the default 8 s grace
        upstream.script(reply)
        client = StreamingClient(server, "still streaming at shutdown")
        client.start()
        assert client.started.wait(10)
        server.process.terminate()
        time.sleep(0.3)
        with pytest.raises(httpx.ConnectError):  # the port is closed: a load balancer moves on
            httpx.post(f"{server.url}/v1/messages", json=body("too late"), timeout=5)
        assert server.process.wait(30) == 0, server.log.read_text()[-2000:]
        client.join(10)
    finally:
        if server.process.poll() is None:
            stop_process(server.process)
    assert client.failure is None
    assert "event: message_stop" in client.received and "word99" in client.received
    [(status, _, upstream_response)] = rows_with(server, "still streaming at shutdown")
    assert status == "ok" and "word99" in upstream_response


def test_sigterm_ends_a_stream_that_outlasts_the_grace_with_an_error_event(
    tmp_path: Path, upstream: FakeOpenAI
) -> None:
    server = serve(tmp_path, upstream, SWITCHBOARD_SHUTDOWN_GRACE="1")
    try:
        reply = text_stream(*[f"word{i} " for i in range(1000)])
        reply.delay_s = 0.02  # 20 s: longer than the grace
        upstream.script(reply)
        client = StreamingClient(server, "a long answer at shutdown")
        client.start()
        assert client.started.wait(10)
        took = terminate(server)
        client.join(10)
    finally:
        if server.process.poll() is None:
            stop_process(server.process)
    assert took < 6
    # Before: the stream just stopped, with neither message_stop nor an error (a silently cut answer).
    assert "event: error" in client.received and "shutting down" in client.received
    assert "event: message_stop" not in client.received
    [(status, error_message, upstream_response)] = rows_with(server, "a long answer at shutdown")
    assert status == "error" and "shutting down" in error_message
    assert "word0" in upstream_response and "word999" not in upstream_response
    assert upstream.disconnects == 1  # the backend's stream was closed, not left running


def test_a_second_sigterm_ends_the_grace_at_once(tmp_path: Path, upstream: FakeOpenAI) -> None:
    server = serve(tmp_path, upstream, SWITCHBOARD_SHUTDOWN_GRACE="60")
    try:
        reply = text_stream(*[f"word{i} " for i in range(1000)])
        reply.delay_s = 0.02
        upstream.script(reply)
        client = StreamingClient(server, "asked twice to stop")
        client.start()
        assert client.started.wait(10)
        server.process.terminate()
        time.sleep(1)
        took = terminate(server)  # the impatient operator (or a second Ctrl-C)
        client.join(10)
    finally:
        if server.process.poll() is None:
            stop_process(server.process)
    assert took < 5  # not the 60 s grace
    assert "event: error" in client.received and "shutting down" in client.received
    [(status, _, _)] = rows_with(server, "asked twice to stop")
    assert status == "error"


def test_sigterm_answers_a_request_still_waiting_for_its_backend(
    tmp_path: Path, upstream: FakeOpenAI
) -> None:
    server = serve(tmp_path, upstream, SWITCHBOARD_SHUTDOWN_GRACE="1")
    answers: list[httpx.Response] = []
    try:
        slow = completion("late")
        slow.first_delay_s = 5  # longer than the grace; over before the fake upstream stops
        upstream.script(slow)
        waiting = threading.Thread(
            target=lambda: answers.append(
                httpx.post(
                    f"{server.url}/v1/messages", json=body("waiting at shutdown", stream=False), timeout=30
                )
            )
        )
        waiting.start()
        upstream.wait_for_requests(1)
        terminate(server)
        waiting.join(10)
    finally:
        if server.process.poll() is None:
            stop_process(server.process)
    # Before: no response at all (the connection was dropped).
    [answer] = answers
    assert answer.status_code == 503
    assert without_request_id(answer.json()) == {
        "type": "error",
        "error": {"type": "api_error", "message": "the server is shutting down; send the request again"},
    }
    [(status, error_message, _)] = rows_with(server, "waiting at shutdown")
    assert status == "error" and "shutting down" in error_message

"""The request size limit (issue #17): a body over it is refused by its Content-Length, never kept."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.conftest import Server, without_request_id
from tests.fakes.openai_upstream import FakeOpenAI


def peak_rss_kb(server: Server) -> int:
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0])


def test_a_body_declared_over_the_limit_is_refused_without_being_kept(
    server: Server, upstream: FakeOpenAI
) -> None:
    size = 100 * 1024 * 1024  # 25x the test server's limit
    piece = b"x" * (1024 * 1024)

    def chunks() -> Iterator[bytes]:
        for _ in range(size // len(piece)):
            yield piece

    before = peak_rss_kb(server)
    response = httpx.post(
        f"{server.url}/v1/messages",
        content=chunks(),
        headers={"content-length": str(size), "content-type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 413
    assert without_request_id(response.json()) == {
        "type": "error",
        "error": {
            "type": "request_too_large",
            "message": f"request body: {size} bytes is over the {4 * 1024 * 1024} byte limit",
        },
    }
    # Before: Twisted spooled it to a temporary file and daphne queued all 100 MB for the app at once.
    assert peak_rss_kb(server) - before < 20 * 1024
    assert upstream.requests == []
    [row] = server.exchanges(limit=1)
    assert (row["http_status"], row["error_type"]) == (413, "request_too_large")


def test_a_chunked_body_over_the_limit_is_kept_only_up_to_it(server: Server, upstream: FakeOpenAI) -> None:
    piece = b"x" * (1024 * 1024)

    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield piece

    before = peak_rss_kb(server)
    response = httpx.post(f"{server.url}/v1/messages", content=chunks(), timeout=60)
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "request_too_large"
    assert peak_rss_kb(server) - before < 20 * 1024


def test_a_client_waiting_for_100_continue_is_refused_before_it_sends_the_body(
    server: Server, upstream: FakeOpenAI
) -> None:
    """curl waits for `100 Continue` before sending a body over 1 MB: it gets the 413 instead."""
    size = 50 * 1024 * 1024
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/messages HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            b"user-agent: curl/8.5.0\r\nExpect: 100-continue\r\ncontent-length: %d\r\n\r\n" % size
        )
        answer = b""
        while chunk := sock.recv(65536):  # the server closes after answering
            answer += chunk
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"100 Continue" not in answer
    # Refused by the HTTP layer before the app sees a request: no exchange, so no request id.
    assert json.loads(payload) == {
        "type": "error",
        "error": {
            "type": "request_too_large",
            "message": f"request body: {size} bytes is over the {4 * 1024 * 1024} byte limit",
        },
    }
    [row] = server.exchanges(limit=1)
    assert (row["http_status"], row["error_type"]) == (413, "request_too_large")
    assert row["user_agent"] == "curl/8.5.0"
    assert row["duration_ms"] > 0  # ended as every exchange is (Tape.end), not stamped at its start
    assert upstream.requests == []

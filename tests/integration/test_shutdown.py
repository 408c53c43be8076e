"""Stopping the server (SIGTERM, as systemd and `docker stop` do) while a stream is in flight."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import httpx

from tests.conftest import start_server, stop_process
from tests.fakes.openai_upstream import FakeOpenAI, text_stream


def test_sigterm_mid_stream_exits_cleanly_and_records_the_stream_as_cancelled(
    tmp_path: Path, upstream: FakeOpenAI
) -> None:
    server = start_server(tmp_path, {"OPENAI_BASE_URL": upstream.url, "OPENAI_API_KEY": "sk-test"})
    try:
        reply = text_stream(*[f"word{i} " for i in range(300)])
        reply.delay_s = 0.02
        upstream.script(reply)
        first_token = threading.Event()

        def client() -> None:
            body = {
                "model": "claude-opus-4-8",
                "max_tokens": 500,
                "stream": True,
                "messages": [{"role": "user", "content": "still streaming at shutdown"}],
            }
            try:
                with httpx.stream("POST", f"{server.url}/v1/messages", json=body, timeout=30) as response:
                    for line in response.iter_lines():
                        if "text_delta" in line:
                            first_token.set()
            except httpx.HTTPError:
                pass  # the server went away mid-stream: expected

        thread = threading.Thread(target=client)
        thread.start()
        assert first_token.wait(10)
        server.process.terminate()
        assert server.process.wait(15) == 0, server.log.read_text()[-2000:]
        thread.join(10)
    finally:
        if server.process.poll() is None:
            stop_process(server.process)
    with sqlite3.connect(server.data_dir / "switchboard.sqlite3") as db:
        rows = db.execute(
            "SELECT status, upstream_response FROM proxy_exchange WHERE client_request LIKE ?",
            ("%still streaming at shutdown%",),
        ).fetchall()
    assert len(rows) == 1
    status, upstream_response = rows[0]
    assert status == "cancelled"
    assert "word0" in upstream_response and "word299" not in upstream_response

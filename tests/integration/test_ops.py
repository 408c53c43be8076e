"""The operations endpoints over real HTTP (issue #14): /healthz, /readyz, /metrics (parsed with the
Prometheus parser after known traffic) and the session summary the status line reads."""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Server, postgres_database, start_server, stop_server
from tests.fakes.openai_upstream import FakeOpenAI, completion, error, text_stream, tool_stream

KEY = "sk-ops-client-key"


@pytest.fixture(scope="module")
def ops_server(fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own: the counters then hold only this module's traffic."""
    srv = start_server(
        tmp_path_factory.mktemp("ops"),
        {"OPENAI_BASE_URL": fake_openai.url, "OPENAI_API_KEY": "sk-up", "BIG_MODEL": "ops-big"},
    )
    yield srv
    stop_server(srv)


def scrape(url: str, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics as {(sample name, sorted labels): value}."""
    response = httpx.get(f"{url}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    """The sum of the samples named `name` whose labels include `labels`."""
    return sum(v for (n, ls), v in samples.items() if n == name and labels.items() <= dict(ls).items())


def test_healthz_and_readyz_answer_and_are_not_recorded(ops_server: Server) -> None:
    before = ops_server.last_id()
    health = httpx.get(f"{ops_server.url}/healthz", timeout=5)
    ready = httpx.get(f"{ops_server.url}/readyz", timeout=5)
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "service": "switchboard", "pid": ops_server.process.pid}
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ok" and ready.json()["problems"] == []
    assert ops_server.last_id() == before


def test_probes_refuse_a_foreign_host(ops_server: Server) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        assert httpx.get(f"{ops_server.url}{path}", headers={"Host": "evil.example"}).status_code == 400


def test_metrics_count_known_traffic(ops_server: Server, upstream: FakeOpenAI) -> None:
    upstream.script(
        text_stream("Hel", "lo", prompt=100, completion=7),
        completion("plain", prompt=50, completion_tokens=3),
        tool_stream([("call_1", "Read", ['{"file_path":', '"/tmp/x"}'])], prompt=20, completion=4),
        error(400, "This model's maximum context length is 10 tokens"),
    )
    client = anthropic.Anthropic(base_url=ops_server.url, api_key="k", max_retries=0)
    ask = {"model": "claude-opus-4-8", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
    with client.messages.stream(**ask) as stream:
        assert stream.get_final_message().content[0].text == "Hello"
    client.messages.create(**ask)
    tools = [{"name": "Read", "description": "read", "input_schema": {"type": "object"}}]
    with client.messages.stream(**ask, tools=tools) as stream:
        assert stream.get_final_message().stop_reason == "tool_use"
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(**ask)
    rows = [r for r in ops_server.exchanges(4)]
    assert len({(r["rule"], r["provider"], r["backend_model"]) for r in rows}) == 1
    route = {"route": rows[0]["rule"], "provider": rows[0]["provider"], "model": "ops-big"}

    samples = scrape(ops_server.url)
    requests = "switchboard_requests_total"
    assert value(samples, requests, endpoint="messages", status="ok", **route) == 3
    assert value(samples, requests, endpoint="messages", status="error", **route) == 1
    assert value(samples, "switchboard_errors_total", type="invalid_request_error", **route) == 1
    assert value(samples, "switchboard_tokens_total", kind="input", **route) == 170
    assert value(samples, "switchboard_tokens_total", kind="output", **route) == 14
    assert value(samples, "switchboard_request_duration_seconds_count", endpoint="messages", **route) == 4
    with_first_token = [r for r in rows if r["first_token_ms"] is not None]
    assert len(with_first_token) >= 2  # the two streams at least
    assert value(samples, "switchboard_time_to_first_token_seconds_count", **route) == len(with_first_token)
    assert value(samples, "switchboard_tool_calls_total", **route) == 1
    recorded_cost = sum(r["cost_usd"] or 0 for r in rows)
    assert value(samples, "switchboard_cost_usd_total", **route) == pytest.approx(recorded_cost)
    claude_cost = sum(r["claude_cost_usd"] or 0 for r in rows)
    assert claude_cost > 0
    assert value(samples, "switchboard_claude_cost_usd_total", **route) == pytest.approx(claude_cost)
    for how in ("repair", "retry"):  # present, and 0: no call here needed healing
        assert ("switchboard_tool_calls_healed_total", (("how", how),)) in samples
        assert value(samples, "switchboard_tool_calls_healed_total", how=how) == 0
    assert value(samples, "switchboard_recorder_queue_depth") == 0
    assert value(samples, "switchboard_recorder_dropped_total") == 0
    assert value(samples, "switchboard_open_streams") == 0
    assert ("process_resident_memory_bytes", ()) in samples  # the library's process collector


def test_open_streams_counts_a_stream_in_flight(ops_server: Server, upstream: FakeOpenAI) -> None:
    slow = text_stream(*["w "] * 20)
    slow.delay_s = 0.1
    upstream.script(slow)
    body = {"model": "claude-opus-4-8", "max_tokens": 50, "stream": True, "messages": [
        {"role": "user", "content": "slow"}]}  # fmt: skip
    with httpx.stream("POST", f"{ops_server.url}/v1/messages", json=body, timeout=10) as response:
        lines = response.iter_lines()
        next(line for line in lines if "text_delta" in line)
        assert value(scrape(ops_server.url), "switchboard_open_streams") == 1
        for _ in lines:
            pass
    ops_server.exchanges(1)  # settled
    assert value(scrape(ops_server.url), "switchboard_open_streams") == 0


def test_session_summary_reports_the_last_backend_and_the_costs(
    ops_server: Server, upstream: FakeOpenAI
) -> None:
    session = str(uuid.uuid4())
    upstream.script(completion("one", prompt=1000, completion_tokens=100), completion("two"))
    client = anthropic.Anthropic(
        base_url=ops_server.url, api_key="k", max_retries=0,
        default_headers={"X-Claude-Code-Session-Id": session},
    )  # fmt: skip
    for text in ("a", "b"):
        messages = [{"role": "user", "content": text}]
        client.messages.create(model="claude-opus-4-8", max_tokens=50, messages=messages)
    rows = ops_server.exchanges(10, session=session)
    summary = httpx.get(f"{ops_server.url}/api/sessions/{session}/summary", timeout=5)
    assert summary.status_code == 200, summary.text
    data = summary.json()
    assert data["exchanges"] == 2
    assert data["last"] == {
        "backend_model": "ops-big",
        "rule": rows[0]["rule"],
        "provider": rows[0]["provider"],
        "client_model": "claude-opus-4-8",
        "status": "ok",
    }
    assert data["claude_cost_usd"] == pytest.approx(sum(r["claude_cost_usd"] for r in rows))
    assert ops_server.exchanges(10, session=session) == rows  # reading it recorded nothing


def test_session_summary_of_a_session_without_exchanges_is_empty(ops_server: Server) -> None:
    response = httpx.get(f"{ops_server.url}/api/sessions/no-such-session/summary", timeout=5)
    assert response.status_code == 200
    assert response.json() == {
        "session_id": "no-such-session",
        "exchanges": 0,
        "cost_usd": None,
        "claude_cost_usd": None,
        "last": None,
    }


def test_metrics_need_a_client_key_when_keys_are_configured(tmp_path: Path) -> None:
    srv = start_server(tmp_path, {"SWITCHBOARD_API_KEYS": KEY})
    try:
        refused = httpx.get(f"{srv.url}/metrics", timeout=5)
        assert refused.status_code == 401
        assert refused.json()["error"]["type"] == "authentication_error"
        wrong = httpx.get(f"{srv.url}/metrics", headers={"x-api-key": "nope"}, timeout=5)
        assert wrong.status_code == 401
        assert (
            "switchboard_requests"
            in httpx.get(f"{srv.url}/metrics", headers={"Authorization": f"Bearer {KEY}"}, timeout=5).text
        )
        # probes carry no credentials
        assert httpx.get(f"{srv.url}/healthz", timeout=5).status_code == 200
        assert httpx.get(f"{srv.url}/readyz", timeout=5).status_code == 200
    finally:
        stop_server(srv)


# --- readyz when the database goes away ---------------------------------------------------------


class TcpRelay:
    """A loopback TCP relay to the database that the test can cut (and restore)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Close the listener and every relayed connection: the database is unreachable."""
        assert self._listener is not None
        self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(): close alone would not
        self._listener.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self._conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def postgres_db() -> Iterator[str]:
    with postgres_database("ops") as name:
        yield name


def test_readyz_fails_while_the_database_is_unreachable(tmp_path: Path, postgres_db: str) -> None:
    relay = TcpRelay(("127.0.0.1", 5432))
    relay.start()
    srv = start_server(
        tmp_path, {"DATABASE_URL": f"postgres://postgres@127.0.0.1:{relay.port}/{postgres_db}"}
    )
    try:
        assert httpx.get(f"{srv.url}/readyz", timeout=5).status_code == 200
        relay.cut()
        down = httpx.get(f"{srv.url}/readyz", timeout=10)
        assert down.status_code == 503
        assert down.json()["status"] == "unavailable"
        assert "database unreachable" in down.json()["problems"][0]
        assert httpx.get(f"{srv.url}/readyz", timeout=10).status_code == 503  # still, on reconnecting
        assert httpx.get(f"{srv.url}/healthz", timeout=5).status_code == 200  # the process is up
        relay.start()  # the database is back on the same port
        assert httpx.get(f"{srv.url}/readyz", timeout=10).status_code == 200
    finally:
        stop_server(srv)

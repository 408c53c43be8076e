"""Faults survived (issue #17): a real server, real HTTP, and a backend that misbehaves on purpose.

Every fault is injected by tests/fakes/faulty_upstream.py on loopback. Before the client got a byte a
failure takes the fallback; after it, the client gets Anthropic's `event: error` and the exchange is
recorded as failed with what arrived. Error texts are ours and name the backend (issue #12).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from tests.conftest import ROOT, Server, free_port, start_server, stop_server
from tests.fakes.faulty_upstream import Fault, FaultyOpenAI, completion_body, error_body, sse, text_frames
from tests.fakes.openai_upstream import FakeOpenAI

DEAD_PORT = free_port()  # nothing listens there

CONFIG = """
[[providers]]
name = "faulty"
dialect = "openai"
base_url = "{faulty}"
connect_timeout = 2.0
first_byte_timeout = 1.0
idle_timeout = 1.0

[[providers]]
name = "faulty-total"
dialect = "openai"
base_url = "{faulty}"
first_byte_timeout = 1.0
idle_timeout = 1.0
total_timeout = 1.5

[[providers]]
name = "rescue"
dialect = "openai"
base_url = "{rescue}"

[[providers]]
name = "dead"
dialect = "openai"
base_url = "http://127.0.0.1:{dead}/v1"

[[providers]]
name = "tls"
dialect = "openai"
base_url = "{faulty_tls}"

[[rules]]
name = "tls"
provider = "tls"
model = "m-tls"
conditions = {{ model = "claude-tls-*" }}

[[rules]]
name = "nofb"
provider = "faulty"
model = "m-nofb"
conditions = {{ model = "claude-nofb-*" }}

[[rules]]
name = "total"
provider = "faulty-total"
model = "m-total"
conditions = {{ model = "claude-total-*" }}

[[rules]]
name = "dead-nofb"
provider = "dead"
model = "m-dead"
conditions = {{ model = "claude-deadend-*" }}

[[rules]]
name = "dead"
provider = "dead"
model = "m-dead"
conditions = {{ model = "claude-dead-*" }}
fallbacks = [{{ provider = "rescue", model = "rescued" }}]

[[rules]]
name = "default"
provider = "faulty"
model = "m-faulty"
default = true
fallbacks = [{{ provider = "rescue", model = "rescued" }}]
"""


@pytest.fixture(scope="module")
def faulty() -> Iterator[FaultyOpenAI]:
    with FaultyOpenAI() as fake:
        yield fake


@pytest.fixture(scope="module")
def rescue() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def import_routes(server: Server, text: str) -> None:
    """As a user would: `manage.py routes import FILE` in another shell, against the server's data."""
    path = server.data_dir / "routes.toml"
    path.write_text(text)
    env = {k: v for k, v in server.env.items() if not k.startswith(("OPENAI_", "DATABASE_URL"))}
    result = subprocess.run(
        [sys.executable, "manage.py", "routes", "import", str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode()


@pytest.fixture(scope="module")
def server(
    faulty: FaultyOpenAI, rescue: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("faults"), {})
    try:
        tls = rescue.url.replace("http:", "https:")  # it answers the TLS hello with an HTTP 400
        urls = {"faulty": faulty.url, "faulty_tls": tls, "rescue": rescue.url}
        import_routes(srv, CONFIG.format(**urls, dead=DEAD_PORT))
        yield srv
    finally:
        stop_server(srv)


@pytest.fixture
def fakes(faulty: FaultyOpenAI, rescue: FakeOpenAI) -> Iterator[tuple[FaultyOpenAI, FakeOpenAI]]:
    faulty.reset()
    rescue.reset()
    yield faulty, rescue
    assert faulty.problems == []  # every request the proxy sent was a valid OpenAI request


def body(model: str = "claude-sonnet-4-5", *, stream: bool = False, text: str = "hi") -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 100,
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
    }


def post(server: Server, payload: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/messages", json=payload, timeout=30)


def stream_text(server: Server, payload: dict[str, Any]) -> tuple[int, str]:
    with httpx.stream("POST", f"{server.url}/v1/messages", json=payload, timeout=30) as response:
        return response.status_code, response.read().decode()


def newest(server: Server, last: int) -> dict[str, Any]:
    return server.wait_for_exchange(lambda row: row["id"] > last)


# --- before the first byte: the fallback is taken --------------------------------------------------


def test_a_refused_connection_falls_back_and_is_worded_as_ours(server: Server, fakes: Any) -> None:
    _, rescue = fakes
    last = server.last_id()
    response = post(server, body("claude-dead-1"))
    assert response.status_code == 200, response.text
    assert [r["model"] for r in rescue.requests] == ["rescued"]
    row = newest(server, last)
    assert [a["provider"] for a in row["attempts"]] == ["dead", "rescue"]
    # Issue #12: our sentence, naming the backend; not aiohttp's "Cannot connect to host ... ssl:default"
    assert row["attempts"][0]["error"] == f"backend 127.0.0.1:{DEAD_PORT} refused the connection"


def test_https_to_a_plain_http_backend_says_the_tls_handshake_failed(server: Server, fakes: Any) -> None:
    _, rescue = fakes
    response = post(server, body("claude-tls-1"))
    assert response.status_code == 502
    message = response.json()["error"]["message"]
    assert message.startswith(f"backend 127.0.0.1:{rescue.port}: the TLS handshake failed ("), message


def test_a_refused_connection_without_fallback_is_an_anthropic_error(server: Server, fakes: Any) -> None:
    client = anthropic.Anthropic(base_url=server.url, api_key="sk-client", max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as raised:
        client.messages.create(**body("claude-deadend-1"))
    assert raised.value.status_code == 502
    error = raised.value.body["error"]  # type: ignore[index]
    assert error == {"type": "api_error", "message": f"backend 127.0.0.1:{DEAD_PORT} refused the connection"}


@pytest.mark.parametrize("stream", [False, True])
def test_no_answer_within_the_first_byte_timeout_falls_back(server: Server, fakes: Any, stream: bool) -> None:
    faulty, rescue = fakes
    faulty.script(Fault(head_delay_s=5))
    last = server.last_id()
    started = time.monotonic()
    response = post(server, body(stream=stream))
    assert response.status_code == 200
    assert 0.9 < time.monotonic() - started < 3
    assert len(rescue.requests) == 1
    row = newest(server, last)
    assert row["status"] == "ok"
    first = row["attempts"][0]
    assert first["provider"] == "faulty" and first["status"] == 504
    assert first["error"] == (
        f"backend 127.0.0.1:{faulty.port} sent nothing within 1 s (the provider's first-byte timeout)"
    )


def test_headers_without_a_first_chunk_count_as_no_first_byte(server: Server, fakes: Any) -> None:
    faulty, rescue = fakes
    faulty.script(Fault(stall_after=0))  # 200 and SSE headers, then silence
    status, text = stream_text(server, body(stream=True))
    assert status == 200 and "event: message_stop" in text
    assert len(rescue.requests) == 1
    faulty.wait_for(1)
    time.sleep(0.2)
    assert faulty.seen[0].closed_at is not None  # the stalled request was given up, not left open


SLOW_DOWN = error_body(429, "slow down", "rate_limit")


def test_429_with_retry_after_waits_then_falls_back(server: Server, fakes: Any) -> None:
    faulty, rescue = fakes
    faulty.script(
        Fault(status=429, body=error_body(429, "slow down", "rate_limit"), headers={"retry-after": "1"})
    )
    started = time.monotonic()
    assert post(server, body()).status_code == 200
    assert time.monotonic() - started >= 0.9
    assert len(rescue.requests) == 1


def test_429_without_fallback_reaches_the_client_with_its_retry_after(server: Server, fakes: Any) -> None:
    faulty, _ = fakes
    faulty.script(
        Fault(status=429, body=error_body(429, "slow down", "rate_limit"), headers={"retry-after": "7"})
    )
    response = post(server, body("claude-nofb-1"))
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "rate_limit_error"


@pytest.mark.parametrize("status", [500, 502, 503, 529])
def test_server_errors_fall_back(server: Server, fakes: Any, status: int) -> None:
    faulty, rescue = fakes
    faulty.script(Fault(status=status))
    last = server.last_id()
    assert post(server, body(stream=True)).status_code == 200
    assert len(rescue.requests) == 1
    row = newest(server, last)
    assert [a["status"] for a in row["attempts"]] == [status, 200]


@pytest.mark.parametrize(
    ("status", "answered", "error_type"),
    [(500, 500, "api_error"), (503, 529, "overloaded_error"), (529, 529, "overloaded_error")],
)
def test_server_errors_without_fallback_keep_their_meaning(
    server: Server, fakes: Any, status: int, answered: int, error_type: str
) -> None:
    faulty, _ = fakes
    faulty.script(Fault(status=status))
    response = post(server, body("claude-nofb-1"))
    assert response.status_code == answered  # 503 is OpenAI's "overloaded": Claude Code backs off on 529
    assert response.json()["error"]["type"] == error_type


def test_a_connection_closed_before_the_headers_falls_back(server: Server, fakes: Any) -> None:
    faulty, _ = fakes
    faulty.script(Fault(close_before_head=True))
    last = server.last_id()
    assert post(server, body(stream=True)).status_code == 200
    row = newest(server, last)
    assert row["attempts"][0]["error"] == (
        f"backend 127.0.0.1:{faulty.port} closed the connection before answering"
    )


def test_a_short_body_without_fallback_says_how_much_arrived(server: Server, fakes: Any) -> None:
    faulty, _ = fakes
    full = completion_body("x" * 300)
    faulty.script(Fault(body=full[: len(full) // 2], content_length=len(full)))
    response = post(server, body("claude-nofb-1"))
    assert response.status_code == 502
    # Issue #12: not "ContentLengthError: 400, message='Not enough data to satisfy content length header.'"
    assert response.json()["error"] == {
        "type": "api_error",
        "message": f"backend 127.0.0.1:{faulty.port} closed the connection after "
        f"{len(full) // 2} of {len(full)} bytes",
    }


# --- after the first byte: an error event, and the record keeps what arrived -----------------------


@pytest.mark.parametrize("fault", ["close", "reset"])
def test_a_connection_lost_mid_stream_ends_with_an_error_event(
    server: Server, fakes: Any, fault: str
) -> None:
    faulty, rescue = fakes
    frames = text_frames("partial ", "answer ", "never sent")
    faulty.script(Fault(frames=frames, **{f"{fault}_after": 3}))  # type: ignore[arg-type]
    last = server.last_id()
    status, text = stream_text(server, body(stream=True))
    assert status == 200
    assert "partial" in text and "event: error" in text and "event: message_stop" not in text
    assert rescue.requests == []  # the client had bytes already: no second attempt
    row = newest(server, last)
    assert (row["status"], row["error_type"]) == ("error", "api_error")
    assert row["error_message"].startswith(f"backend 127.0.0.1:{faulty.port} ")
    assert "answer" in row["upstream_response"] and "never sent" not in row["upstream_response"]
    assert "partial answer" in str(row["client_response"])


def test_the_sdk_raises_on_a_stream_cut_mid_way(server: Server, fakes: Any) -> None:
    faulty, _ = fakes
    faulty.script(Fault(frames=text_frames("a", "b", "c"), reset_after=2))
    client = anthropic.Anthropic(base_url=server.url, api_key="sk-client", max_retries=0)
    request = {k: v for k, v in body().items() if k != "stream"}
    with pytest.raises(anthropic.APIError), client.messages.stream(**request) as stream:  # type: ignore[arg-type]
        for _ in stream:
            pass


@pytest.mark.parametrize(
    "bad", [b"data: {not json\n\n", b"data: [1, 2, 3]\n\n", b'data: {"choices": "nope"}\n\n']
)
def test_malformed_sse_mid_stream_ends_with_an_error_event(server: Server, fakes: Any, bad: bytes) -> None:
    faulty, _ = fakes
    frames = text_frames("fine ", "then")
    faulty.script(Fault(frames=[*frames[:2], bad, *frames[2:]]))
    last = server.last_id()
    status, text = stream_text(server, body(stream=True))
    assert status == 200 and "event: error" in text and "event: message_stop" not in text
    row = newest(server, last)
    assert row["status"] == "error"
    assert bad.decode().strip() in row["upstream_response"]


def test_a_stall_mid_stream_ends_after_the_idle_timeout(server: Server, fakes: Any) -> None:
    faulty, _ = fakes
    faulty.script(Fault(frames=text_frames("thinking ", "then silence"), stall_after=2))
    last = server.last_id()
    started = time.monotonic()
    status, text = stream_text(server, body(stream=True))
    took = time.monotonic() - started
    assert status == 200 and 0.9 < took < 3
    assert "event: error" in text and "timeout_error" in text
    row = newest(server, last)
    assert (row["status"], row["error_type"]) == ("error", "timeout_error")
    assert row["error_message"].startswith(f"backend 127.0.0.1:{faulty.port} sent nothing for 1 s after ")
    time.sleep(0.2)
    assert faulty.seen[0].closed_at is not None and faulty.open_connections == 0


def test_a_slow_drip_within_the_idle_timeout_is_served_whole(server: Server, fakes: Any) -> None:
    faulty, _ = fakes
    faulty.script(Fault(frames=text_frames(*[f"w{i} " for i in range(8)]), delay_s=0.3))  # ~3 s in all
    status, text = stream_text(server, body(stream=True))
    assert status == 200 and "event: message_stop" in text and "w7" in text


def test_a_drip_past_the_total_timeout_ends_with_an_error_event(server: Server, fakes: Any) -> None:
    faulty, _ = fakes
    faulty.script(Fault(frames=text_frames(*[f"w{i} " for i in range(20)]), delay_s=0.3))
    last = server.last_id()
    started = time.monotonic()
    status, text = stream_text(server, body("claude-total-1", stream=True))
    assert status == 200 and time.monotonic() - started < 3
    assert "w1" in text and "event: error" in text and "event: message_stop" not in text
    row = newest(server, last)
    assert row["error_message"] == (
        f"backend 127.0.0.1:{faulty.port} did not finish within 1.5 s (the provider's total timeout)"
    )


def test_a_huge_streamed_answer_arrives_whole_and_is_recorded(server: Server, fakes: Any) -> None:
    faulty, _ = fakes
    piece = "y" * 4000
    faulty.script(Fault(frames=text_frames(*[piece] * 2500)))  # ~10 MB of text, ~12 MB of SSE
    last = server.last_id()
    status, text = stream_text(server, body(stream=True))
    assert status == 200 and "event: message_stop" in text
    assert text.count(piece) == 2500
    row = newest(server, last)
    assert row["status"] == "ok"
    assert row["upstream_response"].count(piece) == 2500


def test_a_client_hang_up_cancels_the_upstream_request_within_a_second(server: Server, fakes: Any) -> None:
    faulty, _ = fakes
    faulty.script(Fault(frames=text_frames(*[f"w{i} " for i in range(400)]), delay_s=0.02))
    last = server.last_id()
    with httpx.stream("POST", f"{server.url}/v1/messages", json=body(stream=True), timeout=30) as response:
        for line in response.iter_lines():
            if "w5" in line:
                break
        hung_up = time.monotonic()
    deadline = time.monotonic() + 3
    while faulty.seen[0].closed_at is None and time.monotonic() < deadline:
        time.sleep(0.01)
    closed_at = faulty.seen[0].closed_at
    assert closed_at is not None and closed_at - hung_up < 1.0
    assert faulty.open_connections == 0  # nothing leaked
    row = newest(server, last)
    assert row["status"] == "cancelled"
    assert "w5" in row["upstream_response"] and "w399" not in row["upstream_response"]


# --- nothing is lost ----------------------------------------------------------------------------------

FAULTS = {
    "refused": (lambda: None, "claude-deadend-1"),
    "first-byte timeout": (lambda: Fault(head_delay_s=5), "claude-nofb-1"),
    "503": (lambda: Fault(status=503), "claude-nofb-1"),
    "closed mid-stream": (lambda: Fault(frames=text_frames("a", "b", "c"), close_after=3), "claude-nofb-1"),
    "malformed SSE": (lambda: Fault(frames=[*text_frames("a")[:2], sse(b"{oops")]), "claude-nofb-1"),
    "stall mid-stream": (lambda: Fault(frames=text_frames("a", "b"), stall_after=2), "claude-nofb-1"),
}


def test_every_request_through_every_fault_is_recorded(server: Server, fakes: Any) -> None:
    """N requests through each fault, 8 at a time: as many rows as requests, none of them pending."""
    faulty, _ = fakes
    n = 8
    for make, _model in FAULTS.values():
        fault = make()
        if fault is not None:
            faulty.script(*[make() for _ in range(n)])  # type: ignore[misc]
    last = server.last_id()
    marker = f"lost-check-{time.time_ns()}"
    results: list[int] = []

    def one(model: str) -> None:
        status, _ = stream_text(server, body(model, stream=True, text=marker))
        results.append(status)

    for _make, model in FAULTS.values():
        threads = [threading.Thread(target=one, args=(model,)) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert len(results) == n * len(FAULTS)
    rows = [r for r in server.exchanges(500) if r["id"] > last and marker in str(r["client_request"])]
    assert len(rows) == n * len(FAULTS)
    assert {r["status"] for r in rows} == {"error"}


@pytest.mark.parametrize("fault", ["no headers", "headers, no first chunk"])
def test_a_client_hang_up_before_the_first_byte_closes_the_upstream_request(
    server: Server, fakes: Any, fault: str
) -> None:
    faulty, rescue = fakes
    faulty.script(Fault(head_delay_s=5) if fault == "no headers" else Fault(stall_after=0))
    last = server.last_id()
    with pytest.raises(httpx.ReadTimeout):  # the client gives up before the backend said anything
        httpx.post(f"{server.url}/v1/messages", json=body("claude-nofb-1", stream=True), timeout=0.5)
    hung_up = time.monotonic()
    deadline = hung_up + 3
    while (not faulty.seen or faulty.seen[0].closed_at is None) and time.monotonic() < deadline:
        time.sleep(0.01)
    closed_at = faulty.seen[0].closed_at
    # at once, not when the first-byte timeout (1 s after the request) would have ended it
    assert closed_at is not None and closed_at - hung_up < 0.3
    assert faulty.open_connections == 0
    row = newest(server, last)
    assert row["status"] == "cancelled"
    assert rescue.requests == []

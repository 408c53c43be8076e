"""Routing through real server processes: two scripted OpenAI upstreams, fallbacks, and an edit made by a
third process (`manage.py routes import`) applying on the next request in two servers sharing one database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, Server, free_port, load_fixture, start_server, stop_server
from tests.fakes.openai_upstream import FakeOpenAI, Reply, chunk, error, text_stream

CONFIG = """
[[providers]]
name = "a"
dialect = "openai"
base_url = "{a}"
api_key_env = "A_API_KEY"

[[providers]]
name = "b"
dialect = "openai"
base_url = "{b}"

[[providers]]
name = "dead"
dialect = "openai"
base_url = "http://127.0.0.1:{dead_port}/v1"
connect_timeout = 2.0

[[rules]]
name = "bg"
provider = "b"
model = "small-b"
conditions = {{ task = "background" }}

[[rules]]
name = "via-dead"
provider = "dead"
model = "never"
conditions = {{ model = "claude-dead-*" }}
fallbacks = [{{ provider = "b", model = "rescue-b" }}]

[[rules]]
name = "default"
provider = "{default_provider}"
model = "main-{default_provider}"
default = true
fallbacks = [{{ provider = "{fallback_provider}", model = "backup-{fallback_provider}" }}]
"""


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeOpenAI, FakeOpenAI]]:
    with FakeOpenAI() as a, FakeOpenAI() as b:
        yield a, b


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("routing-shared")


def import_routes(shared: Path, fakes: tuple[FakeOpenAI, FakeOpenAI], *, default: str = "a") -> None:
    """What a user does in another shell: a third process edits the shared database."""
    a, b = fakes
    text = CONFIG.format(
        a=a.url,
        b=b.url,
        dead_port=DEAD_PORT,
        default_provider=default,
        fallback_provider="b" if default == "a" else "a",
    )
    path = shared / f"routes-{default}.toml"
    path.write_text(text)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SWITCHBOARD_", "OPENAI_", "DATABASE_URL"))
    }
    env["SWITCHBOARD_DATA_DIR"] = str(shared / "data")
    result = subprocess.run(
        [sys.executable, "manage.py", "routes", "import", str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode()


DEAD_PORT = free_port()  # nothing listens there: a connect error


@pytest.fixture(scope="module")
def servers(shared: Path, fakes: tuple[FakeOpenAI, FakeOpenAI]) -> Iterator[tuple[Server, Server]]:
    env = {"SWITCHBOARD_DATA_DIR": str(shared / "data"), "A_API_KEY": "sk-upstream-a"}
    first = start_server(shared, env)  # migrates and seeds the zero-config passthrough
    try:
        import_routes(shared, fakes)
        second = start_server(shared, env)
        try:
            yield first, second
        finally:
            stop_server(second)
    finally:
        stop_server(first)


@pytest.fixture
def upstreams(fakes: tuple[FakeOpenAI, FakeOpenAI]) -> Iterator[tuple[FakeOpenAI, FakeOpenAI]]:
    for fake in fakes:
        fake.reset()
    yield fakes
    for fake in fakes:
        fake.reset()


def post(server: Server, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/messages",
        json=body,
        headers={"x-api-key": "sk-client", "anthropic-version": "2023-06-01", **headers},
        timeout=30,
    )


def simple(model: str = "claude-sonnet-4-5", **extra: Any) -> dict[str, Any]:
    return {"model": model, "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}], **extra}


def finished_after(server: Server, last: int) -> dict[str, Any]:
    return server.wait_for_exchange(lambda row: row["id"] > last)


def test_requests_land_where_the_rules_say(servers: tuple[Server, Server], upstreams: Any) -> None:
    server, _ = servers
    a, b = upstreams
    title = {**load_fixture("background_title"), "stream": False}
    last = server.last_id()
    assert post(server, title).status_code == 200
    assert [r["model"] for r in b.requests] == ["small-b"] and a.requests == []
    row = finished_after(server, last)
    assert (row["rule"], row["task"], row["provider"]) == ("bg", "background", "b")
    assert row["route_reason"] == "rule 'bg': task is background"

    last = server.last_id()
    assert post(server, simple()).status_code == 200
    assert [r["model"] for r in a.requests] == ["main-a"]
    assert a.headers[-1]["authorization"] == "Bearer sk-upstream-a"
    row = finished_after(server, last)
    assert (row["rule"], row["provider"], row["backend_model"]) == ("default", "a", "main-a")


def test_explain_answers_without_calling_a_backend(servers: tuple[Server, Server], upstreams: Any) -> None:
    server, _ = servers
    response = httpx.post(
        f"{server.url}/api/route/explain", json=load_fixture("subagent_explore_haiku"), timeout=10
    )
    assert response.status_code == 200, response.text
    assert response.json()["targets"] == [{"provider": "b", "model": "small-b", "dialect": "openai"}]
    assert response.json()["agent"] == "Explore"
    assert upstreams[0].requests == upstreams[1].requests == []


@pytest.mark.parametrize("status", [429, 500, 529])
def test_an_upstream_error_before_the_first_byte_falls_back(
    servers: tuple[Server, Server], upstreams: Any, status: int
) -> None:
    server, _ = servers
    a, b = upstreams
    a.script(error(status, "busy", type_="server_error"))
    last = server.last_id()
    response = post(server, simple())
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "claude-sonnet-4-5"
    assert [r["model"] for r in a.requests] == ["main-a"]
    assert [r["model"] for r in b.requests] == ["backup-b"]
    row = finished_after(server, last)
    assert [(t["provider"], t["status"]) for t in row["attempts"]] == [("a", status), ("b", 200)]
    assert row["attempts"][0]["error"]
    # The recorded reply is the one that answered, not the failed attempt's error body glued in front.
    assert json.loads(row["upstream_response"])["object"] == "chat.completion"


def test_a_streamed_fallback_records_only_the_stream_that_answered(
    servers: tuple[Server, Server], upstreams: Any
) -> None:
    server, _ = servers
    a, _b = upstreams
    a.script(error(500, "busy-marker", type_="server_error"))
    last = server.last_id()
    response = post(server, simple(stream=True))
    assert response.status_code == 200 and "event: message_stop" in response.text
    row = finished_after(server, last)
    assert row["upstream_response"].startswith("data: ")
    assert "busy-marker" not in row["upstream_response"]
    assert "busy-marker" in row["attempts"][0]["error"]


def test_fallback_waits_for_retry_after(servers: tuple[Server, Server], upstreams: Any) -> None:
    server, _ = servers
    a, b = upstreams
    a.script(error(429, "slow down", type_="rate_limit_error", headers={"retry-after": "1"}))
    started = time.monotonic()
    assert post(server, simple()).status_code == 200
    assert time.monotonic() - started >= 0.9
    assert len(b.requests) == 1


def test_a_connect_error_falls_back(servers: tuple[Server, Server], upstreams: Any) -> None:
    server, _ = servers
    _, b = upstreams
    last = server.last_id()
    response = post(server, simple(model="claude-dead-1"))
    assert response.status_code == 200, response.text
    assert [r["model"] for r in b.requests] == ["rescue-b"]
    row = finished_after(server, last)
    assert [t["provider"] for t in row["attempts"]] == ["dead", "b"]
    assert row["attempts"][0]["error"] == f"backend 127.0.0.1:{DEAD_PORT} refused the connection"  # issue #12


def test_a_failure_after_the_first_byte_is_reported_not_retried(
    servers: tuple[Server, Server], upstreams: Any
) -> None:
    server, _ = servers
    a, b = upstreams
    a.script(
        Reply(
            chunks=[chunk({"role": "assistant", "content": ""}), chunk({"content": "partial"})], break_after=2
        )
    )
    last = server.last_id()
    with httpx.stream(
        "POST",
        f"{server.url}/v1/messages",
        json=simple(stream=True),
        headers={"x-api-key": "sk-client"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        text = response.read().decode()
    assert "partial" in text
    assert "event: error" in text
    assert b.requests == []  # the client already had data: no second attempt
    row = finished_after(server, last)
    assert row["status"] == "error"
    assert [t["provider"] for t in row["attempts"]] == ["a"]


def test_an_edit_applies_on_the_next_request_in_every_server_process(
    servers: tuple[Server, Server], shared: Path, fakes: tuple[FakeOpenAI, FakeOpenAI], upstreams: Any
) -> None:
    first, second = servers
    a, b = upstreams
    for server in (first, second):
        assert post(server, simple()).status_code == 200
    assert [r["model"] for r in a.requests] == ["main-a", "main-a"] and b.requests == []
    import_routes(shared, fakes, default="b")  # a third process edits the shared database
    try:
        for server in (second, first):
            assert post(server, simple()).status_code == 200
        assert [r["model"] for r in b.requests] == ["main-b", "main-b"]
        assert len(a.requests) == 2
    finally:
        import_routes(shared, fakes)


def test_the_default_stream_still_works_after_the_edits(
    servers: tuple[Server, Server], upstreams: Any
) -> None:
    server, _ = servers
    a, _ = upstreams
    a.script(text_stream("fine"))
    response = post(server, simple(stream=True))
    assert response.status_code == 200
    assert "fine" in response.text

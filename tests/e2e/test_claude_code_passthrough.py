"""Claude Code through the Anthropic passthrough (no OpenAI env at all) to a scripted Anthropic server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Harness, Switchboard, upstream_body
from tests.e2e.upstream.anthropic_server import AnthropicServer
from tests.e2e.upstream.script import Scenario, call, fail, in_cwd, say

pytestmark = pytest.mark.e2e

WRITE = Scenario(
    "pass-write",
    [
        call("Write", file_path=in_cwd("hello.txt"), content="hi through the passthrough\n"),
        say("Wrote hello.txt."),
    ],
)
BROKEN = Scenario("pass-broken", [fail("Starting to wr")])


@pytest.fixture(scope="module")
def upstream() -> Iterator[AnthropicServer]:
    server = AnthropicServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def switchboard(served, upstream: AnthropicServer) -> Switchboard:  # type: ignore[no-untyped-def]
    return served(SWITCHBOARD_ANTHROPIC_URL=upstream.url)


@pytest.fixture(scope="module")
def harness(
    claude: Path,
    switchboard: Switchboard,
    upstream: AnthropicServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Harness:
    return Harness(claude, switchboard, upstream, tmp_path_factory.mktemp("work"))


def test_write_creates_the_file_through_the_anthropic_passthrough(harness: Harness) -> None:
    run = harness.run(WRITE, "Create hello.txt.")

    run.assert_ok()
    assert (run.cwd / "hello.txt").read_text() == "hi through the passthrough\n"
    rows = harness.server.settled(run.session)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    for row in rows:
        assert row["dialect"] == "anthropic"
        assert row["backend_model"] == row["client_model"]  # passthrough keeps Claude Code's model
    (write,) = [b for b in rows[0]["client_response"]["content"] if b["type"] == "tool_use"]
    assert write["name"] == "Write"
    assert write["input"]["file_path"] == str(run.cwd / "hello.txt")
    # The scripted Anthropic server got Claude Code's own request, tools and model untouched.
    received = harness.upstream.received("pass-write")
    assert len(received) == 2
    assert received[0].body["model"] == rows[0]["client_model"]
    assert [t["name"] for t in received[0].body["tools"]] == [
        t["name"] for t in rows[0]["client_request"]["tools"]
    ]
    assert upstream_body(rows[1])["messages"][-1]["content"][0]["type"] == "tool_result"
    # The scripted server is not api.anthropic.com: Claude Code's billing line, whose hash would defeat a
    # compatible server's prefix cache, is the one thing left out of its system prompt, and it says so.
    billing, *system = rows[0]["client_request"]["system"]
    assert billing["text"].startswith("x-anthropic-billing-header: cc_version=")
    assert [r.body["system"] for r in received] == [system, rows[1]["client_request"]["system"][1:]]
    assert "billing_header_dropped" in [c["kind"] for c in rows[0]["changes"]]
    headers = {k.lower(): v for k, v in received[0].headers.items()}
    assert headers.get("anthropic-version") == "2023-06-01"


def test_backend_error_mid_stream_is_reported_through_the_passthrough(harness: Harness) -> None:
    run = harness.run(BROKEN, "Write a file.", timeout=60)

    assert run.returncode is not None and run.returncode != 0
    assert run.result["is_error"] is True
    assert "API Error" in run.result["result"]
    rows = harness.server.settled(run.session)
    assert rows and all(r["status"] == "error" for r in rows)

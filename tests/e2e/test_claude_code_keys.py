"""The real Claude Code CLI against a Switchboard that requires a client key. Issue #17.

With ANTHROPIC_AUTH_TOKEN set to a configured key it works as before and every exchange carries the
key's label; with a wrong key it stops at the first request with Anthropic's 401, and nothing reaches
the backend.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import BIG, MIDDLE, SMALL, Harness, Switchboard
from tests.e2e.upstream.openai_server import OpenAIServer
from tests.e2e.upstream.script import Scenario, call, in_cwd, say

pytestmark = pytest.mark.e2e

KEY = "sk-sb-e2e-" + "k" * 40
WRITE = Scenario(
    "keyed-write",
    [call("Write", file_path=in_cwd("hello.txt"), content="hi with a key\n"), say("Wrote hello.txt.")],
)
REFUSED = Scenario("keyed-refused", [say("never asked")])
HEADER = Scenario("keyed-header", [say("Served with the header.")])


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIServer]:
    server = OpenAIServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def switchboard(served, upstream: OpenAIServer) -> Switchboard:  # type: ignore[no-untyped-def]
    return served(
        OPENAI_BASE_URL=f"{upstream.url}/v1",
        OPENAI_API_KEY="sk-e2e-upstream",
        BIG_MODEL=BIG,
        MIDDLE_MODEL=MIDDLE,
        SMALL_MODEL=SMALL,
        SWITCHBOARD_API_KEYS=KEY,
    )


@pytest.fixture(scope="module")
def harness(
    claude: Path, switchboard: Switchboard, upstream: OpenAIServer, tmp_path_factory: pytest.TempPathFactory
) -> Harness:
    return Harness(claude, switchboard, upstream, tmp_path_factory.mktemp("work"))


def test_claude_code_with_the_key_works_and_its_exchanges_are_labelled(harness: Harness) -> None:
    run = harness.run(WRITE, "Create hello.txt.", env={"ANTHROPIC_AUTH_TOKEN": KEY})
    run.assert_ok()
    assert (run.cwd / "hello.txt").read_text() == "hi with a key\n"
    rows = harness.server.settled(run.session)
    assert rows and {r["client_key"] for r in rows} == {"env-1"}
    assert all(r["status"] == "ok" for r in rows)


def test_claude_code_with_a_wrong_key_gets_anthropics_401_and_reaches_no_backend(harness: Harness) -> None:
    run = harness.run(REFUSED, "Say hi.", env={"ANTHROPIC_AUTH_TOKEN": "sk-sb-wrong-" + "w" * 30})
    assert run.result.get("is_error"), run.result
    assert harness.upstream.received() == []
    refused = [r for r in harness.server.exchanges() if r["error_type"] == "authentication_error"]
    assert refused and all(r["http_status"] == 401 for r in refused)


def test_claude_code_sends_our_key_in_its_own_header_beside_its_own_credentials(harness: Harness) -> None:
    """A Claude subscriber keeps their token in Authorization and adds ours with ANTHROPIC_CUSTOM_HEADERS."""
    env = {
        "ANTHROPIC_AUTH_TOKEN": "sk-ant-oat01-" + "o" * 40,
        "ANTHROPIC_CUSTOM_HEADERS": f"x-switchboard-key: {KEY}",
    }
    run = harness.run(HEADER, "Say hi.", env=env)
    run.assert_ok()
    assert run.result["result"] == "Served with the header."
    rows = harness.server.settled(run.session)
    assert rows and {r["client_key"] for r in rows} == {"env-1"}

"""Claude Code doing real work through Switchboard's Gemini route, against a scripted Gemini API.

The same scenarios as the OpenAI route (edit, parallel, chunked, thinking, subagent, errors), on a
Gemini 3 model id, so every function-call turn Claude Code sends back is checked for its thought
signatures by the scripted server, which refuses the turn as Gemini does when one is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import JSON, Harness, Switchboard, assert_failure_reported, upstream_body
from tests.e2e.test_claude_code_openai import (
    BROKEN,
    CHUNKED,
    EDIT,
    HAIKU,
    HAIKU_SUB,
    HUNG_UP,
    LONG_TEXT,
    PARALLEL,
    THINKING,
    assert_all_ok,
    tool_uses,
)
from tests.e2e.upstream.gemini_server import KEY, GeminiServer
from tests.e2e.upstream.script import Scenario

pytestmark = pytest.mark.e2e

BIG, SMALL = "gemini-3-e2e-big", "gemini-3-e2e-small"
CONFIG = """
[[providers]]
name = "gemini"
dialect = "gemini"
base_url = "{url}"
api_key_env = "GEMINI_E2E_API_KEY"

[[rules]]
name = "haiku"
provider = "gemini"
model = "{small}"
conditions = {{ model = "haiku" }}

[[rules]]
name = "main"
provider = "gemini"
model = "{big}"
default = true
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[GeminiServer]:
    server = GeminiServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def switchboard(served, upstream: GeminiServer) -> Switchboard:  # type: ignore[no-untyped-def]
    server: Switchboard = served(GEMINI_E2E_API_KEY=KEY)
    config = server.data_dir / "routes.toml"
    config.write_text(CONFIG.format(url=upstream.url, small=SMALL, big=BIG))
    server.manage("routes", "import", str(config))  # applies to the running server
    return server


@pytest.fixture(scope="module")
def harness(
    claude: Path, switchboard: Switchboard, upstream: GeminiServer, tmp_path_factory: pytest.TempPathFactory
) -> Harness:
    return Harness(claude, switchboard, upstream, tmp_path_factory.mktemp("work"))


def model_turns(exchange: JSON) -> list[list[JSON]]:
    return [c["parts"] for c in upstream_body(exchange)["contents"] if c["role"] == "model"]


def responses(exchange: JSON) -> list[JSON]:
    return [
        p["functionResponse"]
        for c in upstream_body(exchange)["contents"]
        for p in c["parts"]
        if "functionResponse" in p
    ]


def test_edit_changes_the_file_and_the_signed_calls_go_back_to_gemini(harness: Harness) -> None:
    run = harness.run(
        EDIT, "Make the colour green in notes.txt.", files={"notes.txt": "name: switchboard\ncolour: red\n"}
    )

    run.assert_ok()
    assert (run.cwd / "notes.txt").read_text() == "name: switchboard\ncolour: green\n"
    rows = harness.server.settled(run.session)
    assert_all_ok(rows)
    assert all(r["dialect"] == "gemini" and r["backend_model"] == BIG for r in rows)
    assert [tool_uses(r)[0]["name"] for r in rows[:2]] == ["Read", "Edit"]
    # Claude Code echoed the thinking blocks that carry the signatures: each call went back signed,
    # with the signature Gemini gave it (the scripted server refuses any other).
    last = rows[-1]
    turns = model_turns(last)
    assert len(turns) == 2 and all(t[0]["thoughtSignature"] in harness.upstream.issued for t in turns)  # type: ignore[attr-defined]
    assert "colour: red" in str(responses(rows[1])[-1]["response"])
    assert not any(c["kind"] == "reasoning_placeholder" for r in rows for c in r["changes"])


def test_two_function_calls_in_one_turn_both_run_and_answer_in_order(harness: Harness) -> None:
    run = harness.run(PARALLEL, "Create a.txt and b.txt at once.")

    run.assert_ok()
    assert (run.cwd / "a.txt").read_text() == "from Write\n"
    assert (run.cwd / "b.txt").read_text() == "from-bash\n"
    rows = harness.server.settled(run.session)
    assert_all_ok(rows)
    assert [t["name"] for t in tool_uses(rows[0])] == ["Write", "Bash"]
    assert rows[0]["client_response"]["stop_reason"] == "tool_use"
    (turn,) = model_turns(rows[1])
    calls = [p for p in turn if "functionCall" in p]
    assert [c["functionCall"]["name"] for c in calls] == ["Write", "Bash"]
    assert "thoughtSignature" in calls[0] and "thoughtSignature" not in calls[1]
    assert [r["name"] for r in responses(rows[1])] == ["Write", "Bash"]


def test_a_long_call_cut_anywhere_by_the_network_arrives_whole(harness: Harness) -> None:
    run = harness.run(CHUNKED, "Write the long file.")

    run.assert_ok()
    assert (run.cwd / "long.txt").read_text() == LONG_TEXT
    rows = harness.server.settled(run.session)
    assert_all_ok(rows)
    assert tool_uses(rows[0])[0]["input"]["content"] == LONG_TEXT


def test_gemini_thoughts_reach_claude_code_as_thinking(harness: Harness) -> None:
    run = harness.run(THINKING, "Think, then create thought.txt.")

    run.assert_ok()
    assert (run.cwd / "thought.txt").read_text() == "considered\n"
    rows = harness.server.settled(run.session)
    assert_all_ok(rows)
    assert upstream_body(rows[0])["generationConfig"]["thinkingConfig"]["includeThoughts"] is True
    blocks = rows[0]["client_response"]["content"]
    assert [b["type"] for b in blocks] == ["thinking", "tool_use"]
    assert blocks[0]["thinking"] == "The user wants a file. The Write tool makes one."
    assert blocks[0]["signature"].startswith("sb1.gemini.")
    shown = [b.get("thinking") for b in run.blocks("thinking")]
    assert "The user wants a file. The Write tool makes one." in shown
    assert run.result["result"] == "Done, after thinking it over."


def test_haiku_subagent_runs_on_the_small_gemini_model_without_thinking(harness: Harness) -> None:
    run = harness.run(HAIKU, "Ask a quick helper for a greeting.", also=(HAIKU_SUB,))

    run.assert_ok()
    rows = harness.server.settled(run.session)
    assert_all_ok(rows)
    haiku = [r for r in rows if "haiku" in r["client_model"]]
    assert len(haiku) == 1, [(r["client_model"], r["backend_model"]) for r in rows]
    assert (haiku[0]["backend_model"], haiku[0]["rule"]) == (SMALL, "haiku")
    assert any("hello from the small model" in str(r["content"]) for r in run.tool_results())


@pytest.mark.parametrize("scenario", [BROKEN, HUNG_UP], ids=["error-event", "hang-up"])
def test_gemini_failure_mid_stream_is_reported_not_hung(harness: Harness, scenario: Scenario) -> None:
    assert_failure_reported(harness, scenario)

"""Claude Code doing real work through a `dialect = "openai_responses"` provider, against a scripted
Responses API (tests/e2e/upstream/responses_server.py) that refuses what the real API refuses.

The scenarios are the OpenAI route's own (tests/e2e/test_claude_code_openai.py); what is checked
upstream is the Responses wire: function_call / function_call_output items paired by call_id, and
encrypted reasoning carried back on the next turn.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import JSON, Harness, Switchboard, upstream_body
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
from tests.e2e.upstream.responses_server import ResponsesServer
from tests.e2e.upstream.script import Scenario

pytestmark = pytest.mark.e2e

BIG, SMALL = "gpt-5-codex", "gpt-5-mini"  # model ids that reason: thinking maps to `reasoning`
CONFIG = """
[[providers]]
name = "openai"
dialect = "openai_responses"
base_url = "{url}/v1"
api_key_env = "OPENAI_API_KEY"

[[rules]]
name = "haiku"
provider = "openai"
model = "{small}"
conditions = {{ model = "haiku" }}

[[rules]]
name = "default"
provider = "openai"
model = "{big}"
default = true
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[ResponsesServer]:
    server = ResponsesServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def switchboard(served, upstream: ResponsesServer, tmp_path_factory: pytest.TempPathFactory) -> Switchboard:  # type: ignore[no-untyped-def]
    server: Switchboard = served(OPENAI_API_KEY="sk-e2e-responses")
    config = tmp_path_factory.mktemp("routes") / "routes.toml"
    config.write_text(CONFIG.format(url=upstream.url, big=BIG, small=SMALL))
    server.manage("routes", "import", str(config))  # read per request: applies to the running server
    return server


@pytest.fixture(scope="module")
def harness(
    claude: Path,
    switchboard: Switchboard,
    upstream: ResponsesServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Harness:
    return Harness(claude, switchboard, upstream, tmp_path_factory.mktemp("work"))


def items(row: JSON, kind: str) -> list[JSON]:
    return [i for i in upstream_body(row)["input"] if i.get("type") == kind]


def assert_on_responses(rows: list[JSON]) -> None:
    assert_all_ok(rows)
    assert {r["dialect"] for r in rows} == {"openai_responses"}
    assert all(upstream_body(r)["store"] is False for r in rows)


def test_edit_changes_the_file_after_reading_it(harness: Harness) -> None:
    run = harness.run(
        EDIT, "Make the colour green in notes.txt.", files={"notes.txt": "name: x\ncolour: red\n"}
    )

    run.assert_ok()
    assert (run.cwd / "notes.txt").read_text() == "name: x\ncolour: green\n"
    rows = harness.server.settled(run.session)
    assert_on_responses(rows)
    assert [tool_uses(r)[0]["name"] for r in rows[:2]] == ["Read", "Edit"]
    (read_call,) = items(rows[1], "function_call")
    (read_output,) = items(rows[1], "function_call_output")
    assert read_output["call_id"] == read_call["call_id"] and "colour: red" in str(read_output["output"])
    assert tool_uses(rows[0])[0]["id"].startswith("toolu_")  # the client never sees a call_ id


def test_two_tool_calls_in_one_turn_both_run(harness: Harness) -> None:
    run = harness.run(PARALLEL, "Create a.txt and b.txt at once.")

    run.assert_ok()
    assert (run.cwd / "a.txt").read_text() == "from Write\n"
    assert (run.cwd / "b.txt").read_text() == "from-bash\n"
    rows = harness.server.settled(run.session)
    assert_on_responses(rows)
    assert [t["name"] for t in tool_uses(rows[0])] == ["Write", "Bash"]
    calls = [c["call_id"] for c in items(rows[1], "function_call")]
    assert len(calls) == 2
    assert sorted(o["call_id"] for o in items(rows[1], "function_call_output")) == sorted(calls)


def test_tool_arguments_split_over_many_chunks_arrive_whole(harness: Harness) -> None:
    run = harness.run(CHUNKED, "Write the long file.")

    run.assert_ok()
    assert (run.cwd / "long.txt").read_text() == LONG_TEXT
    rows = harness.server.settled(run.session)
    assert_on_responses(rows)
    assert tool_uses(rows[0])[0]["input"]["content"] == LONG_TEXT
    assert rows[0]["upstream_response"].count("event: response.function_call_arguments.delta") > 300


def test_reasoning_summaries_reach_claude_code_and_their_encrypted_items_go_back(harness: Harness) -> None:
    run = harness.run(THINKING, "Think, then create thought.txt.")

    run.assert_ok()
    assert (run.cwd / "thought.txt").read_text() == "considered\n"
    rows = harness.server.settled(run.session)
    assert_on_responses(rows)
    blocks = rows[0]["client_response"]["content"]
    assert [b["type"] for b in blocks] == ["thinking", "tool_use"]
    assert blocks[0]["thinking"] == "The user wants a file. The Write tool makes one."
    assert upstream_body(rows[0])["reasoning"]["summary"] == "auto"
    assert "The user wants a file. The Write tool makes one." in [
        b.get("thinking") for b in run.blocks("thinking")
    ]
    # The second turn sends the first turn's reasoning item back, encrypted content and all.
    (replayed,) = items(rows[1], "reasoning")
    assert replayed["encrypted_content"].startswith("gAAAAB-e2e-") and replayed["id"].startswith("rs_e2e")
    assert run.result["result"] == "Done, after thinking it over."


def test_haiku_subagent_request_is_routed_to_the_small_model(harness: Harness) -> None:
    run = harness.run(HAIKU, "Ask a quick helper for a greeting.", also=(HAIKU_SUB,))

    run.assert_ok()
    rows = harness.server.settled(run.session)
    assert_on_responses(rows)
    haiku = [r for r in rows if "haiku" in r["client_model"]]
    assert len(haiku) == 1 and haiku[0]["backend_model"] == SMALL
    assert [r.body["model"] for r in harness.upstream.received("haiku-sub")] == [SMALL]
    assert any("hello from the small model" in str(r["content"]) for r in run.tool_results())


@pytest.mark.parametrize("scenario", [BROKEN, HUNG_UP], ids=["response-failed", "hang-up"])
def test_backend_failure_mid_stream_is_reported_not_hung(harness: Harness, scenario: Scenario) -> None:
    run = harness.run(scenario, "Write a file.", timeout=60)

    assert run.returncode is not None and run.returncode != 0
    assert run.result["is_error"] is True and "API Error" in run.result["result"]
    assert run.seconds < 45
    rows = harness.server.settled(run.session)
    assert rows and all(r["status"] == "error" for r in rows)
    streamed = [r for r in rows if r["stream"]]
    assert streamed and streamed[0]["error_type"]

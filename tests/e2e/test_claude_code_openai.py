"""Claude Code doing real work through Switchboard's OpenAI route, against a scripted OpenAI upstream.

Each test runs `claude -p` and checks three things: what Claude Code did on disk, what it printed
(stream-json), and what Switchboard recorded for that session.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    BIG,
    JSON,
    MIDDLE,
    SMALL,
    Harness,
    Switchboard,
    assert_failure_reported,
    upstream_body,
)
from tests.e2e.upstream.openai_server import OpenAIServer
from tests.e2e.upstream.script import (
    Scenario,
    ToolCall,
    Turn,
    broken_stream,
    call,
    fail,
    in_cwd,
    last_result,
    parallel,
    say,
)

pytestmark = pytest.mark.e2e

# --- the scripts: what the "model" does, one line per turn ---------------------------------------
WRITE = Scenario(
    "write",
    [
        call("Write", file_path=in_cwd("hello.txt"), content="hi from switchboard\n"),
        say("Wrote hello.txt."),
    ],
)
EDIT = Scenario(
    "edit",
    [
        call("Read", file_path=in_cwd("notes.txt")),
        call("Edit", file_path=in_cwd("notes.txt"), old_string="colour: red", new_string="colour: green"),
        say("The colour is green now."),
    ],
)
BASH = Scenario(
    "bash",
    [
        call("Bash", command="echo $((6 * 7))", description="Multiply six by seven"),
        call(
            "Write",
            file_path=in_cwd("answer.txt"),
            content=last_result(lambda out: f"answer={out.strip()}\n"),
        ),
        say("The answer is in answer.txt."),
    ],
)
PARALLEL = Scenario(
    "parallel",
    [
        parallel(
            call("Write", file_path=in_cwd("a.txt"), content="from Write\n"),
            call("Bash", command="echo from-bash > b.txt", description="Create b.txt"),
        ),
        say("Both files exist."),
    ],
)
# Quotes, backslashes, newlines, tabs, non-ASCII and a JSON-looking line: every escape the arguments
# JSON can hold, cut into 3-character pieces so escapes and multi-byte characters straddle chunks.
LONG_TEXT = "".join(
    f'line {i}: "quoted" \\ back\\slash\ttab, café ☕ 日本語, {{"json": [{i}, null]}}\n' for i in range(40)
)
CHUNKED = Scenario(
    "chunked",
    [
        call("Write", chunk=3, file_path=in_cwd("long.txt"), content=LONG_TEXT),
        say("Wrote long.txt."),
    ],
)
THINKING = Scenario(
    "thinking",
    [
        Turn(
            thinking="The user wants a file. The Write tool makes one.",
            calls=(ToolCall("Write", {"file_path": in_cwd("thought.txt"), "content": "considered\n"}),),
        ),
        say("Done, after thinking it over.", thinking="The file exists now; I can answer."),
    ],
)
# A subagent on the haiku alias: Claude Code sends a claude-haiku-* model id, routed to SMALL_MODEL.
HAIKU = Scenario(
    "haiku",
    [
        call(
            "Agent",
            subagent_type="general-purpose",
            model="haiku",
            run_in_background=False,
            description="Quick greeting",
            prompt="[e2e:haiku-sub] Reply with a greeting.",
        ),
        say("The helper said hello."),
    ],
    after=say("The helper said hello."),
)
HAIKU_SUB = Scenario("haiku-sub", [say("hello from the small model")])
# Every streaming attempt of the first turn breaks; Claude Code's non-streaming fallback gets the Write.
RECOVERED = Scenario(
    "recovered",
    [
        broken_stream(
            call("Write", file_path=in_cwd("saved.txt"), content="saved by the fallback\n"), after="Sav"
        ),
        say("Saved."),
    ],
)
MISSING = Scenario(
    "missing", [call("Read", file_path=in_cwd("absent.txt")), say("absent.txt does not exist.")]
)
# A backend model whose output limit is below the 64000/128000 max_tokens Claude Code asks for, and
# which our limits table does not know (so the request goes out as asked and is refused).
LIMITED = Scenario(
    "limited",
    [call("Write", file_path=in_cwd("small.txt"), content="fits\n"), say("Wrote small.txt.")],
    max_output=8192,
)
BROKEN = Scenario("broken", [fail("I will start writing the fi")])
HUNG_UP = Scenario("hung-up", [fail("I will start writing the fi", hang_up=True)])


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
    )


@pytest.fixture(scope="module")
def harness(
    claude: Path, switchboard: Switchboard, upstream: OpenAIServer, tmp_path_factory: pytest.TempPathFactory
) -> Harness:
    return Harness(claude, switchboard, upstream, tmp_path_factory.mktemp("work"))


def tool_uses(exchange: JSON) -> list[JSON]:
    return [b for b in (exchange["client_response"] or {}).get("content", []) if b["type"] == "tool_use"]


def main_thread(rows: list[JSON]) -> list[JSON]:
    return [r for r in rows if not r["agent"]]


def assert_all_ok(rows: list[JSON]) -> None:
    bad = [(r["id"], r["status"], r["error_type"], r["error_message"]) for r in rows if r["status"] != "ok"]
    assert not bad, f"exchanges not ok: {bad}"


def test_write_creates_the_file_through_the_openai_route(harness: Harness) -> None:
    run = harness.run(WRITE, "Create hello.txt saying hi.")

    run.assert_ok()
    assert (run.cwd / "hello.txt").read_text() == "hi from switchboard\n"
    assert run.result["result"] == "Wrote hello.txt."
    rows = harness.server.settled(run.session)
    assert_all_ok(rows)
    # One exchange per request Claude Code made, one upstream call per exchange.
    assert len(rows) == len(harness.upstream.received()) == 2
    first, second = rows
    assert first["client_model"].startswith("claude-") and "opus" in first["client_model"]
    assert first["backend_model"] == BIG
    offered = {t["function"]["name"] for t in upstream_body(first)["tools"]}
    assert {"Write", "Edit", "Bash", "Read"} <= offered
    (write,) = tool_uses(first)
    assert write["name"] == "Write"
    assert write["input"] == {"file_path": str(run.cwd / "hello.txt"), "content": "hi from switchboard\n"}
    # The second turn carries the tool result back to the backend as an OpenAI tool message.
    tool_msgs = [m for m in upstream_body(second)["messages"] if m["role"] == "tool"]
    assert len(tool_msgs) == 1 and "hello.txt" in str(tool_msgs[0]["content"])


def test_edit_changes_the_file_after_reading_it(harness: Harness) -> None:
    run = harness.run(
        EDIT, "Make the colour green in notes.txt.", files={"notes.txt": "name: switchboard\ncolour: red\n"}
    )

    run.assert_ok()
    assert (run.cwd / "notes.txt").read_text() == "name: switchboard\ncolour: green\n"
    rows = harness.server.settled(run.session)
    assert_all_ok(rows)
    assert [tool_uses(r)[0]["name"] for r in rows[:2]] == ["Read", "Edit"]
    assert tool_uses(rows[1])[0]["input"]["new_string"] == "colour: green"
    # What Read returned reached the backend before it asked for the edit.
    read_result = [m for m in upstream_body(rows[1])["messages"] if m["role"] == "tool"]
    assert "colour: red" in str(read_result[-1]["content"])


def test_bash_output_feeds_the_next_tool_call(harness: Harness) -> None:
    run = harness.run(BASH, "Compute six times seven in the shell and save it.")

    run.assert_ok()
    # 42 exists only in the Bash output: it reached the model through Switchboard and came back.
    assert (run.cwd / "answer.txt").read_text() == "answer=42\n"
    rows = harness.server.settled(run.session)
    assert_all_ok(rows)
    assert tool_uses(rows[0])[0]["input"]["command"] == "echo $((6 * 7))"
    bash_result = [m for m in upstream_body(rows[1])["messages"] if m["role"] == "tool"]
    assert "42" in str(bash_result[-1]["content"])


def test_two_tool_calls_in_one_turn_both_run(harness: Harness) -> None:
    run = harness.run(PARALLEL, "Create a.txt and b.txt at once.")

    run.assert_ok()
    assert (run.cwd / "a.txt").read_text() == "from Write\n"
    assert (run.cwd / "b.txt").read_text() == "from-bash\n"
    rows = harness.server.settled(run.session)
    assert_all_ok(rows)
    assert [t["name"] for t in tool_uses(rows[0])] == ["Write", "Bash"]
    assert rows[0]["client_response"]["stop_reason"] == "tool_use"
    second = upstream_body(rows[1])["messages"]
    (assistant,) = [m for m in second if m["role"] == "assistant"]
    call_ids = [c["id"] for c in assistant["tool_calls"]]
    assert len(call_ids) == 2
    assert sorted(m["tool_call_id"] for m in second if m["role"] == "tool") == sorted(call_ids)


def test_a_tool_that_fails_in_claude_code_is_counted_as_its_result_on_the_exchange_that_made_it(
    harness: Harness,
) -> None:
    run = harness.run(MISSING, "Show me absent.txt.")

    run.assert_ok(failed_tools=1)
    rows = harness.server.settled(run.session)
    assert_all_ok(rows)
    call_row, answer_row = rows
    (read,) = tool_uses(call_row)
    # Claude Code reports the failure in its next request, as an is_error tool_result for that call.
    last_turn = answer_row["client_request"]["messages"][-1]["content"]
    (result,) = [b for b in last_turn if b["type"] == "tool_result"]
    assert (result["tool_use_id"], result.get("is_error")) == (read["id"], True)
    # Issue #12: a missing file is the tool's result, not a call the model got wrong.
    assert (call_row["tool_call_errors"], call_row["tool_result_errors"]) == (0, 1)
    assert (answer_row["tool_call_errors"], answer_row["tool_result_errors"]) == (0, 0)


def test_a_backend_refusing_claude_codes_max_tokens_is_reported_in_anthropics_words(harness: Harness) -> None:
    run = harness.run(LIMITED, "Create small.txt.")

    rows = harness.server.settled(run.session)
    refused = rows[0]
    assert (refused["status"], refused["http_status"]) == ("error", 400)
    assert re.fullmatch(
        r"max_tokens: \d+ > 8192, which is the maximum allowed number of output tokens for this model",
        refused["error_message"],
    )
    if harness.version == "2.1.197":  # no recovery in this version: the turn ends on that message
        assert run.result["is_error"] is True and "> 8192, which is the maximum" in run.result["result"]
        return
    # Newer versions send the turn again at the limit the message names and keep it for the session.
    assert (run.cwd / "small.txt").read_text() == "fits\n"
    assert run.result.get("result") == "Wrote small.txt.", run.result
    assert [upstream_body(r)["max_tokens"] for r in rows[1:]] == [8192, 8192]
    assert all(r["status"] == "ok" for r in rows[1:])


def test_tool_arguments_split_over_many_chunks_arrive_whole(harness: Harness) -> None:
    run = harness.run(CHUNKED, "Write the long file.")

    run.assert_ok()
    assert (run.cwd / "long.txt").read_text() == LONG_TEXT
    rows = harness.server.settled(run.session)
    assert_all_ok(rows)
    assert tool_uses(rows[0])[0]["input"]["content"] == LONG_TEXT
    # The backend really sent the arguments in hundreds of pieces.
    assert rows[0]["upstream_response"].count("data:") > 300


def test_reasoning_content_reaches_claude_code_as_thinking(harness: Harness) -> None:
    run = harness.run(THINKING, "Think, then create thought.txt.")

    run.assert_ok()
    assert (run.cwd / "thought.txt").read_text() == "considered\n"
    rows = harness.server.settled(run.session)
    assert_all_ok(rows)
    blocks = rows[0]["client_response"]["content"]
    assert [b["type"] for b in blocks] == ["thinking", "tool_use"]
    assert blocks[0]["thinking"] == "The user wants a file. The Write tool makes one."
    shown = [b.get("thinking") for b in run.blocks("thinking")]
    assert "The user wants a file. The Write tool makes one." in shown
    assert run.result["result"] == "Done, after thinking it over."


def test_haiku_subagent_request_is_routed_to_the_small_model(harness: Harness) -> None:
    run = harness.run(HAIKU, "Ask a quick helper for a greeting.", also=(HAIKU_SUB,))

    run.assert_ok()
    rows = harness.server.settled(run.session)
    assert_all_ok(rows)
    haiku = [r for r in rows if "haiku" in r["client_model"]]
    assert len(haiku) == 1, [(r["client_model"], r["backend_model"]) for r in rows]
    assert (haiku[0]["backend_model"], haiku[0]["rule"]) == (SMALL, "haiku")
    assert all(r["backend_model"] == BIG for r in rows if r is not haiku[0])
    sub = [r.body for r in harness.upstream.received("haiku-sub")]
    assert [b["model"] for b in sub] == [SMALL]
    # The subagent's answer came back to the main thread as the Agent tool's result.
    assert any("hello from the small model" in str(r["content"]) for r in run.tool_results())


@pytest.mark.parametrize("scenario", [BROKEN, HUNG_UP], ids=["error-event", "hang-up"])
def test_backend_failure_mid_stream_is_reported_not_hung(harness: Harness, scenario: Scenario) -> None:
    assert_failure_reported(harness, scenario)


def test_claude_codes_non_streaming_fallback_completes_the_turn_after_a_broken_stream(
    harness: Harness,
) -> None:
    run = harness.run(RECOVERED, "Save a file.")

    assert run.result.get("is_error") is False, run.result
    assert (run.cwd / "saved.txt").read_text() == "saved by the fallback\n"
    rows = harness.server.settled(run.session)
    streamed = [r for r in rows if r["stream"]]
    fallback = [r for r in rows if not r["stream"]]
    assert streamed[0]["status"] == "error"
    assert len(fallback) == 1 and fallback[0]["status"] == "ok"
    assert [t["name"] for t in tool_uses(fallback[0])] == ["Write"]
    assert upstream_body(fallback[0]).get("stream") in (None, False)

"""Claude Code through Switchboard when the "model" botches its first Write/Edit call (issue #15): the
proxy mends it (fences, a trailing comma) or retries it (a required field left out) before Claude Code
sees it; Claude Code completes the task, the file on disk is right, and the record says what was done."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import BIG, JSON, MIDDLE, SMALL, Harness, Switchboard
from tests.e2e.upstream.openai_server import OpenAIServer
from tests.e2e.upstream.script import Scenario, botched, call, in_cwd, say

pytestmark = pytest.mark.e2e


def fenced(text: str) -> str:
    return f"```json\n{text}\n```"


def trailing_comma(text: str) -> str:
    return text[:-1] + ",}"


def without_content(text: str) -> str:
    return json.dumps({k: v for k, v in json.loads(text).items() if k != "content"})


FENCED_WRITE = Scenario(
    "heal-fenced-write",
    [
        botched(call("Write", chunk=7, file_path=in_cwd("fenced.txt"), content="mended\n"), fenced),
        say("Wrote fenced.txt."),
    ],
)
COMMA_EDIT = Scenario(
    "heal-comma-edit",
    [
        call("Read", file_path=in_cwd("notes.txt")),
        botched(
            call(
                "Edit",
                chunk=5,
                file_path=in_cwd("notes.txt"),
                old_string="colour: red",
                new_string="colour: blue",
            ),
            trailing_comma,
        ),
        say("The colour is blue now."),
    ],
)
RETRIED_WRITE = Scenario(
    "heal-retried-write",
    [
        botched(
            call("Write", file_path=in_cwd("retried.txt"), content="second time lucky\n"),
            without_content,
            retry=call("Write", file_path=in_cwd("retried.txt"), content="second time lucky\n"),
        ),
        say("Wrote retried.txt."),
    ],
)


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


def healing(rows: list[JSON]) -> list[JSON]:
    return [c for r in rows for c in r["changes"] or [] if c["kind"].startswith("tool_call_")]


@pytest.mark.parametrize(("scenario", "repair"), [(FENCED_WRITE, "fence_stripped")])
def test_a_fenced_write_is_mended_and_the_file_written(
    harness: Harness, scenario: Scenario, repair: str
) -> None:
    run = harness.run(scenario, "Create fenced.txt saying mended.")
    run.assert_ok()
    assert (run.cwd / "fenced.txt").read_text() == "mended\n"
    (change,) = healing(harness.server.settled(run.session))
    assert change["kind"] == "tool_call_repaired" and change["tool"] == "Write"
    assert change["raw_arguments"].startswith("```json") and repair in [e["repair"] for e in change["edits"]]


def test_an_edit_with_a_trailing_comma_is_mended(harness: Harness) -> None:
    run = harness.run(COMMA_EDIT, "Make the colour blue in notes.txt.", files={"notes.txt": "colour: red\n"})
    run.assert_ok()
    assert (run.cwd / "notes.txt").read_text() == "colour: blue\n"
    (change,) = healing(harness.server.settled(run.session))
    assert change["kind"] == "tool_call_repaired" and change["tool"] == "Edit"
    assert [e["repair"] for e in change["edits"]] == ["trailing_comma"]


def test_a_write_missing_its_content_is_retried_and_the_file_is_right(harness: Harness) -> None:
    run = harness.run(RETRIED_WRITE, "Create retried.txt.")
    run.assert_ok()
    assert (run.cwd / "retried.txt").read_text() == "second time lucky\n"
    rows = harness.server.settled(run.session)
    (change,) = healing(rows)
    assert change["kind"] == "tool_call_retried" and "'content' is a required property" in change["error"]
    retries = [a for r in rows for a in r["attempts"] or [] if a.get("purpose") == "tool_call_retry"]
    assert len(retries) == 1 and retries[0]["status"] == 200
    # The backend saw the retry: the broken call's request, the retry, then the turn after the Write.
    said = "The call to Write could not be used"
    feedback = [r for r in harness.upstream.received() if said in json.dumps(r.body)]
    assert len(feedback) == 1

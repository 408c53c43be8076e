"""Subagent turns routed by agent rules: Claude Code's built-in general-purpose agent, and a project agent
that names itself with a `<switchboard-agent>` marker in its prompt."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import BIG, MIDDLE, SMALL, Harness, Switchboard, upstream_body
from tests.e2e.upstream.base import text_of
from tests.e2e.upstream.openai_server import OpenAIServer
from tests.e2e.upstream.script import Scenario, call, say

pytestmark = pytest.mark.e2e

AGENT_MODEL, REVIEWER_MODEL = "e2e-agent-model", "e2e-reviewer-model"
# Tried top to bottom, before the seeded haiku/opus/default rules.
AGENT_RULES = f"""
[[rules]]
name = "reviewer-agent"
provider = "openai"
model = "{REVIEWER_MODEL}"
conditions = {{ agent = "reviewer" }}

[[rules]]
name = "general-agent"
provider = "openai"
model = "{AGENT_MODEL}"
conditions = {{ agent = "general-purpose" }}

"""
REVIEWER_AGENT = """---
name: reviewer
description: Reviews a file and reports one finding.
tools: Read, Bash
---
<switchboard-agent>reviewer</switchboard-agent>
You review files and report exactly one finding.
"""

GENERAL = Scenario(
    "agent-general",
    [
        call(
            "Agent",
            subagent_type="general-purpose",
            run_in_background=False,
            description="Count files",
            prompt="[e2e:agent-general-sub] Count the files here.",
        ),
        say("The helper counted them."),
    ],
    after=say("The helper counted them."),
)
GENERAL_SUB = Scenario(
    "agent-general-sub",
    [
        call("Bash", command="ls | wc -l", description="Count files"),
        say("There are files."),
    ],
)
REVIEW = Scenario(
    "agent-reviewer",
    [
        call(
            "Agent",
            subagent_type="reviewer",
            run_in_background=False,
            description="Review notes",
            prompt="[e2e:agent-reviewer-sub] Review notes.txt.",
        ),
        say("Review done."),
    ],
    after=say("Review done."),
)
REVIEW_SUB = Scenario("agent-reviewer-sub", [say("One finding: the notes are short.")])


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIServer]:
    server = OpenAIServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def switchboard(served, upstream: OpenAIServer) -> Switchboard:  # type: ignore[no-untyped-def]
    server = served(
        OPENAI_BASE_URL=f"{upstream.url}/v1",
        OPENAI_API_KEY="sk-e2e-upstream",
        BIG_MODEL=BIG,
        MIDDLE_MODEL=MIDDLE,
        SMALL_MODEL=SMALL,
    )
    # Add the agent rules the way a user would: export, edit, import (applies to the running server).
    exported = server.manage("routes", "export").stdout
    head, sep, tail = exported.partition("[[rules]]")
    config = server.data_dir / "routes.toml"
    config.write_text(head + AGENT_RULES + sep + tail)
    server.manage("routes", "import", str(config))
    return server


@pytest.fixture(scope="module")
def harness(
    claude: Path, switchboard: Switchboard, upstream: OpenAIServer, tmp_path_factory: pytest.TempPathFactory
) -> Harness:
    return Harness(claude, switchboard, upstream, tmp_path_factory.mktemp("work"))


def test_general_purpose_subagent_is_routed_by_its_agent_rule(harness: Harness) -> None:
    run = harness.run(
        GENERAL,
        "Have a helper count the files.",
        also=(GENERAL_SUB,),
        files={"one.txt": "1\n", "two.txt": "2\n"},
    )

    run.assert_ok()
    rows = harness.server.settled(run.session)
    assert all(r["status"] == "ok" for r in rows)
    sub = [r for r in rows if r["agent"]]
    main = [r for r in rows if not r["agent"]]
    assert len(sub) == 2 and len(main) == 2
    for row in sub:
        assert (row["agent"], row["rule"], row["backend_model"]) == (
            "general-purpose",
            "general-agent",
            AGENT_MODEL,
        )
    assert all(r["backend_model"] == BIG for r in main)
    # The subagent's Bash ran in the scratch directory and its output went back to the backend.
    tool_msgs = [m for m in upstream_body(sub[1])["messages"] if m["role"] == "tool"]
    assert text_of(tool_msgs[-1]["content"]).strip() == "2"


def test_project_agent_is_routed_by_its_marker_and_the_marker_is_not_forwarded(harness: Harness) -> None:
    run = harness.run(
        REVIEW,
        "Have the reviewer look at notes.txt.",
        also=(REVIEW_SUB,),
        files={"notes.txt": "short\n", ".claude/agents/reviewer.md": REVIEWER_AGENT},
    )

    run.assert_ok()
    rows = harness.server.settled(run.session)
    sub = [r for r in rows if r["agent"]]
    assert [(r["agent"], r["rule"], r["backend_model"]) for r in sub] == [
        ("reviewer", "reviewer-agent", REVIEWER_MODEL)
    ]
    assert "<switchboard-agent>" not in str(upstream_body(sub[0]))
    assert any("One finding" in str(r["content"]) for r in run.tool_results())

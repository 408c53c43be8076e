"""The session view: threads recognised from the traffic, subagents nested under their Agent call."""

from __future__ import annotations

import copy
import re
from html import escape as html_escape
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from dashboard.sessions import build_tree
from proxy.models import Exchange
from tests.conftest import load_fixture

pytestmark = pytest.mark.django_db

SESSION = "00000000-0000-4000-8000-000000000000"
AGENT_PROMPT = "Subagent job: reply with the single word PONG."


def record(body: dict[str, Any], answer: list[dict[str, Any]], **fields: Any) -> Exchange:
    return Exchange.objects.create(
        created_at=timezone.now(),
        session_id=SESSION,
        client_model=body["model"],
        status="ok",
        client_request=body,
        client_response={"role": "assistant", "content": answer},
        **fields,
    )


def agent_call(tool_id: str = "toolu_agent_1") -> dict[str, Any]:
    agent_input = {"description": "Say pong", "prompt": AGENT_PROMPT, "subagent_type": "general-purpose"}
    return {"type": "tool_use", "id": tool_id, "name": "Agent", "input": agent_input}


def follow_up(
    body: dict[str, Any], answer: list[dict[str, Any]], results: list[dict[str, Any]]
) -> dict[str, Any]:
    """The next request of the same thread: the history, the answer, then the new tool results."""
    nxt = copy.deepcopy(body)
    nxt["messages"] = [
        *nxt["messages"],
        {"role": "assistant", "content": answer},
        {"role": "user", "content": results},
    ]
    return nxt


def make_session() -> dict[str, Exchange]:
    main1 = load_fixture("main_turn")
    title = record(load_fixture("background_title"), [{"type": "text", "text": '{"title": "Hello file"}'}])
    m1 = record(main1, [agent_call()], cache_read_tokens=9000, tool_calls=1)
    sub = record(
        load_fixture("subagent_turn"),
        [{"type": "text", "text": "PONG"}],
        agent="general-purpose",
        client_headers={"x-claude-code-agent-id": "ae92c2c6a46dd5384"},
    )
    results = [
        {"type": "tool_result", "tool_use_id": "toolu_agent_1", "content": [{"type": "text", "text": "PONG"}]}
    ]
    main2 = follow_up(main1, [agent_call()], results)
    write = {"type": "tool_use", "id": "toolu_w", "name": "Write", "input": {"content": "x"}}
    m2 = record(main2, [write], cache_read_tokens=200, tool_calls=1)
    error = "<tool_use_error>InputValidationError: missing required file_path</tool_use_error>"
    bad = [{"type": "tool_result", "tool_use_id": "toolu_w", "is_error": True, "content": error}]
    m3 = record(follow_up(main2, [write], bad), [{"type": "text", "text": "Sorry."}], cache_read_tokens=9500)
    return {"title": title, "m1": m1, "sub": sub, "m2": m2, "m3": m3}


def test_session_tree_nests_subagent_under_the_turn_that_started_it() -> None:
    rows = make_session()
    roots, _ = build_tree(SESSION)
    kinds = [(r.kind, [t.e.pk for t in r.turns]) for r in roots]
    assert kinds == [
        ("background", [rows["title"].pk]),
        ("main", [rows["m1"].pk, rows["m2"].pk, rows["m3"].pk]),
    ]
    main = roots[1]
    (child,) = main.turns[0].children
    assert child.kind == "subagent" and child.label == "general-purpose"
    assert [t.e.pk for t in child.turns] == [rows["sub"].pk]
    assert child.parent_tool_id == "toolu_agent_1"
    assert main.turns[1].children == [] and main.turns[2].children == []


def test_session_turn_shows_only_what_is_new_since_the_previous_request() -> None:
    make_session()
    roots, _ = build_tree(SESSION)
    first, second, third = roots[1].turns
    assert any(i.kind == "text" and "create a file hello.txt" in i.text for i in first.new)
    assert [(i.kind, i.text) for i in second.new] == [("tool_result", "PONG")]
    assert [(i.kind, i.is_error) for i in third.new] == [("tool_result", True)]
    # The Write call that failed is counted on the turn that made it.
    assert second.failures == 1 and first.failures == 0


def test_a_failure_the_recorder_already_counted_on_the_row_is_not_counted_twice() -> None:
    rows = make_session()
    Exchange.objects.filter(pk=rows["m2"].pk).update(tool_call_errors=1)  # as the recorder credits it now
    roots, _ = build_tree(SESSION)
    first, second, third = roots[1].turns
    assert (first.failures, second.failures, third.failures) == (0, 1, 0)
    assert roots[1].totals()["failures"] == 1


def test_session_flags_a_turn_whose_cache_reads_dropped() -> None:
    make_session()
    roots, _ = build_tree(SESSION)
    _first, second, third = roots[1].turns
    assert second.cache_broke and not third.cache_broke
    assert any("cache reads dropped 9000 → 200" in n for n in second.notes), second.notes


def test_session_page_renders_tree_and_totals() -> None:
    rows = make_session()
    html = Client().get(f"/sessions/{SESSION}").content.decode()
    # The subagent's turn is inside the main thread's first turn's <li>.
    m1 = html.index(f'id="turn-{rows["m1"].pk}"')
    sub = html.index(f'id="turn-{rows["sub"].pk}"')
    m2 = html.index(f'id="turn-{rows["m2"].pk}"')
    assert m1 < sub < m2
    # Issue #12: Claude Code refusing the call (InputValidationError) is the model's failure.
    assert "cache broken" in html and "call refused" in html
    assert re.search(r"failed tool calls</dt><dd><span class=\"bad\">1</span>", html)
    listing = Client().get("/sessions").content.decode()
    assert f'href="/sessions/{SESSION}"' in listing


def test_session_page_escapes_hostile_prompts_and_odd_session_ids() -> None:
    hostile = '<script>alert(1)</script><div hx-get="/evil" hx-trigger="load">x</div>'
    body = {"model": "m", "messages": [{"role": "user", "content": hostile}], "tools": [{"name": "Bash"}]}
    Exchange.objects.create(
        created_at=timezone.now(),
        session_id="team/run 1",
        client_model="m",
        client_request=body,
        agent='<img src=x onerror="alert(1)">',
    )
    client = Client()
    listing = client.get("/sessions").content.decode()
    assert 'href="/sessions/team/run%201"' in listing
    html = client.get("/sessions/team/run%201").content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert" not in html and 'hx-get="/evil"' not in html and "<img src=x" not in html


def test_a_tool_that_reported_an_error_is_a_tool_error_not_a_failed_call() -> None:
    # Issue #12: a failing test run (Bash, non-zero exit) is the tool's result.
    rows = make_session()
    bash = {"type": "tool_use", "id": "toolu_b", "name": "Bash", "input": {"command": "pytest"}}
    m3_request = rows["m3"].client_request
    m4 = record(m3_request, [bash], tool_calls=1)
    failed_run = [{"type": "tool_result", "tool_use_id": "toolu_b", "is_error": True,
                   "content": "Exit code 1\nFAILED tests/test_x.py::test_y"}]  # fmt: skip
    record(follow_up(m4.client_request, [bash], failed_run), [{"type": "text", "text": "A test fails."}])
    roots, _ = build_tree(SESSION)
    totals = roots[1].totals()
    assert (totals["failures"], totals["tool_errors"]) == (1, 1)
    html = Client().get(f"/sessions/{SESSION}").content.decode()
    assert "1 tool error" in html


def test_sessions_list_tells_runs_apart() -> None:
    # Issue #12: title, first prompt, project directory, CLI version, models and unpriced cost per run.
    rows = make_session()
    Exchange.objects.filter(session_id=SESSION).update(
        user_agent="claude-cli/2.1.197 (external, sdk-cli)", backend_model="big-model"
    )
    Exchange.objects.filter(pk=rows["m1"].pk).update(input_tokens=100, output_tokens=10, cost_usd=None)
    other = "11111111-2222-4333-8444-555555555555"
    Exchange.objects.create(created_at=timezone.now(), session_id=other, client_model="claude-haiku-4-5",
                            backend_model="small-model", status="ok", cost_usd=0.5)  # fmt: skip
    first_prompt = next(
        t["text"] for t in load_fixture("main_turn")["messages"][0]["content"]
        if not t["text"].lstrip().startswith("<system-reminder>")
    )  # fmt: skip
    html = Client().get("/sessions").content.decode()
    row = re.search(r'<tr id="session-00000000">.*?</tr>', html, re.S)
    assert row, html
    text = row[0]
    assert re.search(r'<strong class="title[^"]*"[^>]*>Hello file</strong>', text)
    assert html_escape(first_prompt.strip()[:40]) in text
    assert "/home/user/project" in text and "Claude Code 2.1.197" in text
    assert "big-model" in text and "+3 unpriced" in text  # m1, m2, m3 used tokens; none is priced
    assert f'href="/sessions/{other}"' in html
    assert "+3 unpriced" in Client().get(f"/sessions/{SESSION}").content.decode()
    # The feed's 8-character session id works in its filter and in search.
    for params in ({"session": SESSION[:8]}, {"q": SESSION[:8]}):
        feed = Client().get("/", params).content.decode()
        ids = {int(i) for i in re.findall(r'<tr id="exchange-(\d+)"', feed)}
        assert ids == {e.pk for e in rows.values()}, params

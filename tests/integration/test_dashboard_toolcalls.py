"""The tool-calls matrix: every kind of failure counted in its cell and grouped by error."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from dashboard.toolcalls import analyse, normalize_error, recent_report
from proxy.models import Exchange

pytestmark = pytest.mark.django_db

WRITE = {"name": "Write", "input_schema": {
    "type": "object", "additionalProperties": False, "required": ["file_path", "content"],
    "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}},
}}  # fmt: skip
EDIT = {"name": "Edit", "input_schema": {"type": "object", "properties": {"old_string": {"type": "string"}}}}


def call(tool_id: str, name: str, args: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_id, "name": name, "input": args}


def record(
    calls: list[dict[str, Any]], *, results: list[dict[str, Any]] | None = None, **fields: Any
) -> Exchange:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "go"}]
    if results:
        messages.append({"role": "user", "content": results})
    return Exchange.objects.create(
        created_at=timezone.now(), client_model="claude-sonnet-4-5",
        backend_model=fields.pop("model", "gpt-5-mini"),
        status=fields.pop("status", "ok"), agent=fields.pop("agent", ""), tool_calls=len(calls),
        client_request={"model": "claude-sonnet-4-5", "messages": messages, "tools": [WRITE, EDIT]},
        client_response={"role": "assistant", "content": calls},
    )  # fmt: skip


def result(tool_id: str, text: str, *, is_error: bool = True) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": tool_id, "is_error": is_error, "content": text}


def make_traffic() -> dict[str, Exchange]:
    rows = {
        "ok": record([call("t1", "Write", {"file_path": "/a", "content": "x"})]),
        "missing": record([call("t2", "Write", {"content": "x"})]),
        "not_json": record([call("t3", "Write", '{"file_path": "/a", "content": ')]),
        "not_offered": record([call("t4", "Bash", {"command": "ls"})]),
        "broke": record([call("t5", "Write", {"file_path": "/b", "content": "y"})], status="cancelled"),
        "edit": record([call("t6", "Edit", {"old_string": "foo"})]),
        "edit2": record([call("t7", "Edit", {"old_string": "bar"})]),
    }
    not_unique = (
        "<tool_use_error>Found 2 matches of the string to replace, but replace_all is false.</tool_use_error>"
    )
    answers = [
        result("t6", not_unique),
        result("t7", not_unique.replace("2", "3")),
        result("t1", "ok", is_error=False),
    ]
    rows["answers"] = record([], results=answers)
    return rows


def test_matrix_counts_calls_and_each_kind_of_failure() -> None:
    make_traffic()
    report = analyse(list(Exchange.objects.all()))
    write = report.cells[("main", "gpt-5-mini", "Write")]
    assert (write.calls, write.failures) == (4, 3)
    assert {g for g, _ in report.groups("main", "gpt-5-mini", "Write")} == {
        "missing required file_path", "not valid JSON", "stream broke during the call",
    }  # fmt: skip
    bash = report.cells[("main", "gpt-5-mini", "Bash")]
    assert (bash.calls, bash.failures) == (1, 1)
    assert report.groups("main", "gpt-5-mini", "Bash")[0][0] == "tool not offered"


def test_is_error_results_join_to_their_calls_and_group_by_normalized_message() -> None:
    rows = make_traffic()
    report = analyse(list(Exchange.objects.all()))
    # Issue #12: the Edit tool ran its own check and reported an error: a tool error, not a failed call.
    assert report.groups("main", "gpt-5-mini", "Edit") == []
    ((group, failures),) = report.groups("main", "gpt-5-mini", "Edit", by_tool=True)
    assert group == "Found N matches of the string to replace, but replace_all is false."
    assert sorted(f.exchange_id for f in failures) == sorted([rows["edit"].pk, rows["edit2"].pk])
    edit = report.cells[("main", "gpt-5-mini", "Edit")]
    assert (edit.calls, edit.failures, edit.tool_errors) == (2, 0, 2)


def test_claude_code_refusing_a_call_is_the_models_failure() -> None:
    # Issue #12: Claude Code's own refusal (bad arguments, unknown tool) counts against the model.
    # Arguments that pass our schema check: only the client's answer tells they failed.
    record(
        [call("t10", "Write", {"file_path": "/a", "content": "x"}), call("t11", "Edit", {"old_string": "x"})]
    )
    refused = "<tool_use_error>InputValidationError: Write failed: file_path is not absolute</tool_use_error>"
    unknown = "<tool_use_error>Error: No such tool available: Edit</tool_use_error>"
    record([], results=[result("t10", refused), result("t11", unknown)])
    report = analyse(list(Exchange.objects.all()))
    for tool in ("Write", "Edit"):
        cell = report.cells[("main", "gpt-5-mini", tool)]
        assert (cell.calls, cell.failures, cell.tool_errors) == (1, 1, 0)
    assert "100% failed" in Client().get("/tools").content.decode()


def test_normalize_error_elides_paths_quotes_and_numbers() -> None:
    assert normalize_error("<tool_use_error>File /home/u/p/x.py has 12 lines, 'foo' missing\nmore") == (
        "File <path> has N lines, … missing"
    )


def test_tools_pages_show_matrix_and_failure_groups_escaped() -> None:
    rows = make_traffic()
    record(
        [call("t9", "Write", {"content": "<script>alert(1)</script>"})], agent="Explore", model="small-model"
    )
    client = Client()
    html = client.get("/tools").content.decode()
    assert "Write" in html and "75% failed" in html and "2 tool errors" in html
    assert "/tools/failures?agent=Explore&amp;model=small-model&amp;tool=Write" in html
    detail = client.get(
        "/tools/failures", {"agent": "main", "model": "gpt-5-mini", "tool": "Write"}
    ).content.decode()
    assert "missing required file_path" in detail and f'href="/exchanges/{rows["missing"].pk}"' in detail
    explore = client.get("/tools/failures", {"agent": "Explore", "model": "small-model", "tool": "Write"})
    assert "<script>alert" not in explore.content.decode()


def test_report_reads_bodies_once_then_only_the_small_columns(django_assert_num_queries: Any) -> None:
    make_traffic()
    first = recent_report()
    with django_assert_num_queries(1):
        again = recent_report()
    assert again.cells == first.cells
    assert again.groups("main", "gpt-5-mini", "Edit") == first.groups("main", "gpt-5-mini", "Edit")


def test_the_failures_page_lists_tool_errors_apart() -> None:
    rows = make_traffic()
    html = (
        Client()
        .get("/tools/failures", {"agent": "main", "model": "gpt-5-mini", "tool": "Edit"})
        .content.decode()
    )
    assert "No failures for this cell." in html
    errors = html.split('id="tool-errors"', 1)[1]
    assert (
        "Found N matches of the string to replace" in errors
        and f'href="/exchanges/{rows["edit"].pk}"' in errors
    )

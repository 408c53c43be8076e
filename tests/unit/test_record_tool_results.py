"""record.failed_tool_results: which calls a request reports failed (read by the handler, credited by
the writer to the exchange that made each call)."""

from __future__ import annotations

from proxy.record import failed_tool_results


def result(tool_id: str, *, is_error: bool | None = None) -> dict:
    block = {"type": "tool_result", "tool_use_id": tool_id, "content": [{"type": "text", "text": "out"}]}
    return block if is_error is None else {**block, "is_error": is_error}


def request(*turns: list[dict] | str) -> dict:
    messages: list[dict] = []
    for i, content in enumerate(turns):
        messages += [{"role": "user", "content": content}, {"role": "assistant", "content": f"turn {i}"}]
    return {"model": "claude-opus-4-8", "max_tokens": 10, "messages": messages[:-1]}


def test_only_the_newest_user_turn_counts_and_only_its_error_results() -> None:
    body = request(
        [result("toolu_old", is_error=True)],  # reported (and counted) by an earlier request
        [result("toolu_a", is_error=True), result("toolu_b"), result("toolu_c", is_error=False),
         result("toolu_d", is_error=True), {"type": "text", "text": "go on"}],
    )  # fmt: skip
    assert failed_tool_results(body) == ("toolu_a", "toolu_d")


def test_requests_that_report_no_failure() -> None:
    assert failed_tool_results(request([result("toolu_old", is_error=True)], "thanks")) == ()
    assert failed_tool_results(request([result("toolu_a")])) == ()
    ends_with_assistant = request([result("toolu_a", is_error=True)])
    ends_with_assistant["messages"].append({"role": "assistant", "content": "prefill"})
    assert failed_tool_results(ends_with_assistant) == ()
    malformed = request([{"type": "tool_result", "is_error": True}, "not a block"])
    assert failed_tool_results(malformed) == ()

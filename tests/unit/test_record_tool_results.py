"""record.failed_tool_results: which calls a request reports failed (read by the handler, credited by
the writer to the exchange that made each call)."""

from __future__ import annotations

from proxy.recording.rows import failed_tool_results


def result(tool_id: str, *, is_error: bool | None = None, text: str = "out") -> dict:
    block = {"type": "tool_result", "tool_use_id": tool_id, "content": [{"type": "text", "text": text}]}
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
    assert failed_tool_results(body) == ((), ("toolu_a", "toolu_d"))


def test_requests_that_report_no_failure() -> None:
    assert failed_tool_results(request([result("toolu_old", is_error=True)], "thanks")) == ((), ())
    assert failed_tool_results(request([result("toolu_a")])) == ((), ())
    ends_with_assistant = request([result("toolu_a", is_error=True)])
    ends_with_assistant["messages"].append({"role": "assistant", "content": "prefill"})
    assert failed_tool_results(ends_with_assistant) == ((), ())
    malformed = request([{"type": "tool_result", "is_error": True}, "not a block"])
    assert failed_tool_results(malformed) == ((), ())


# Issue #12: Claude Code's own refusals of a call (the model's failure), worded as its binaries word them,
# apart from a tool that ran and failed (a failing test run, a missing file).
REFUSED = [
    "<tool_use_error>InputValidationError: Read failed due to the following issue:\n"
    "The required parameter `file_path` is missing</tool_use_error>",
    "<tool_use_error>InputValidationError: JSON parse failed (212 bytes)</tool_use_error>",
    "<tool_use_error>Error: No such tool available: GetTask</tool_use_error>",
]
TOOL_ERRORS = [
    "Exit code 1\nFAILED tests/test_x.py::test_y - AssertionError",
    "<tool_use_error>File does not exist. Note: your current working directory is /p.</tool_use_error>",
    "<tool_use_error>Found 2 matches of the string to replace, but replace_all is false.</tool_use_error>",
    "Permission to use Bash has been denied.",
    "InputValidationError in my own test output, not at the start",
]


def test_claude_codes_refusals_are_call_failures_and_other_errors_are_tool_results() -> None:
    refused = [result(f"toolu_r{i}", is_error=True, text=t) for i, t in enumerate(REFUSED)]
    errors = [result(f"toolu_e{i}", is_error=True, text=t) for i, t in enumerate(TOOL_ERRORS)]
    calls, results = failed_tool_results(request([*errors, *refused]))
    assert calls == tuple(f"toolu_r{i}" for i in range(len(REFUSED)))
    assert results == tuple(f"toolu_e{i}" for i in range(len(TOOL_ERRORS)))


def test_a_string_result_is_classified_by_its_text_too() -> None:
    block = {"type": "tool_result", "tool_use_id": "toolu_s", "is_error": True, "content": REFUSED[2]}
    assert failed_tool_results(request([block])) == (("toolu_s",), ())

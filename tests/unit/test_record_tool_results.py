"""record.failed_tool_results: which calls a request reports failed, read in the recorder's thread."""

from __future__ import annotations

import json

import orjson
import pytest

from proxy.record import failed_tool_results
from proxy.tape import Packed, Tape


def result(tool_id: str, *, is_error: bool | None = None) -> dict:
    block = {"type": "tool_result", "tool_use_id": tool_id, "content": [{"type": "text", "text": "out"}]}
    return block if is_error is None else {**block, "is_error": is_error}


def request(*turns: list[dict]) -> dict:
    messages: list[dict] = []
    for i, blocks in enumerate(turns):
        messages += [{"role": "user", "content": blocks}, {"role": "assistant", "content": f"turn {i}"}]
    return {"model": "claude-opus-4-8", "max_tokens": 10, "messages": messages[:-1]}


def tape(body: object, endpoint: str = "messages") -> Tape:
    return Tape(endpoint=endpoint, client_request=body, client_headers={})


LATEST = request(
    [result("toolu_old", is_error=True)],  # reported (and counted) by an earlier request
    [result("toolu_a", is_error=True), result("toolu_b"), result("toolu_c", is_error=False),
     result("toolu_d", is_error=True), {"type": "text", "text": "go on"}],
)  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        LATEST,
        orjson.Fragment(orjson.dumps(LATEST)),  # as Claude Code sends it: no spaces
        orjson.Fragment(json.dumps(LATEST).encode()),  # as Python clients send it: '"is_error": true'
        Packed.json(orjson.Fragment(orjson.dumps(LATEST))),  # compressed while the writer is behind
    ],
    ids=["dict", "compact", "spaced", "packed"],
)
def test_only_the_newest_user_turn_counts_and_only_its_error_results(body: object) -> None:
    assert failed_tool_results(tape(body)) == ["toolu_a", "toolu_d"]


def test_requests_without_failures_or_that_are_not_messages_report_none() -> None:
    old_failure_only = request([result("toolu_old", is_error=True)], [{"type": "text", "text": "hi"}])
    assert failed_tool_results(tape(orjson.Fragment(orjson.dumps(old_failure_only)))) == []
    assert failed_tool_results(tape(orjson.Fragment(orjson.dumps(request([result("toolu_a")]))))) == []
    assert failed_tool_results(tape(LATEST, endpoint="count_tokens")) == []
    assert failed_tool_results(tape(orjson.Fragment(b'{"is_error": true, "messages": "x"'))) == []  # bad JSON
    assert failed_tool_results(tape(None)) == []

"""The bounded fuzz run (a few seconds of the suite); `python bench/fuzz.py --cases 100000` is the long one.

Issue #17: of 20,000 mutated Claude Code requests, 614 got a 500 from the inspection that ran before
validation. tests/fuzzing.py states the contract each case is checked against.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.routing.detect import request_facts
from tests import fuzzing

# No example database: each run explores afresh, and a failure prints the input hypothesis shrank it to.
# The deadline is for hangs, not speed (two cores shared by the whole suite).
_BOUNDED = settings(
    database=None, deadline=timedelta(seconds=5), suppress_health_check=[HealthCheck.too_slow]
)


@settings(_BOUNDED, max_examples=250)
@given(body=fuzzing.mutated_requests())
def test_a_mutated_claude_code_request_is_refused_naming_a_field_or_translated(body: Any) -> None:
    fuzzing.check_request(body)


@settings(_BOUNDED, max_examples=120)
@given(body=fuzzing.random_requests())
def test_a_random_request_is_refused_naming_a_field_or_translated(body: Any) -> None:
    fuzzing.check_request(body)


@settings(_BOUNDED, max_examples=100)
@given(body=fuzzing.mutated_requests())
def test_a_mutated_count_tokens_request_is_refused_naming_a_field_or_counted(body: Any) -> None:
    fuzzing.check_request(body, endpoint="count_tokens")


@settings(_BOUNDED, max_examples=200)
@given(body=st.dictionaries(st.sampled_from(["model", "messages", "system", "tools", "metadata",
       "thinking", "output_config"]), fuzzing.JSON_VALUES) | fuzzing.mutated_requests())  # fmt: skip
def test_routing_inspection_reads_any_body_without_failing(body: Any) -> None:
    # The route explainer and the dry run inspect bodies that were never validated.
    if isinstance(body, dict):
        request_facts(body, fuzzing.HEADERS)


@settings(_BOUNDED, max_examples=200)
@given(case=fuzzing.mutated_streams())
def test_a_mutated_upstream_stream_is_translated_or_an_upstream_error(case: tuple) -> None:
    fuzzing.check_stream(*case)


@settings(_BOUNDED, max_examples=150)
@given(dialect=st.sampled_from(["openai", "anthropic", "gemini"]), body=fuzzing.JSON_VALUES)
def test_a_random_upstream_reply_is_translated_or_an_upstream_error(dialect: str, body: Any) -> None:
    fuzzing.check_reply(dialect, body)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("where", ["system", "user"])
def test_an_unclosed_agent_marker_before_a_long_run_of_spaces_is_read_in_linear_time(where: str) -> None:
    # Issue #17 ("never a hang"): the marker's pattern backtracked cubically (4,000 spaces: 55 s).
    text = "<switchboard-agent>" + " " * 200_000 + "x"
    body: dict[str, Any] = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}
    if where == "system":
        body["system"] = [{"type": "text", "text": text}]
    else:
        body["messages"][0]["content"] = [{"type": "text", "text": text}]
    started = time.perf_counter()
    facts = request_facts(body, fuzzing.HEADERS)
    assert facts.agent == "" and time.perf_counter() - started < 1.0


def test_the_agent_marker_still_names_the_agent_with_spaces_around_the_name() -> None:
    body = {"model": "m", "system": "<switchboard-agent>  reviewer \n</switchboard-agent>\nYou review.",
            "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    facts = request_facts(body, fuzzing.HEADERS)
    assert facts.agent == "reviewer" and facts.body["system"] == "You review."

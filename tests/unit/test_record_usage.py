"""record.finished_fields: the usage of an exchange the client left before the backend reported it."""

from __future__ import annotations

import time

import orjson
import pytest

from proxy.recording.rows import finished_fields
from proxy.recording.tape import Packed, Tape
from proxy.translate.tokens import count_text_tokens, count_tokens, warm_up

# Counted with the encoder once loaded, approximated from lengths before (tested in test_tokens.py).
warm_up()

REQUEST = {
    "model": "claude-opus-4-8",
    "max_tokens": 1000,
    "system": "You are a careful assistant. " * 20,
    "messages": [{"role": "user", "content": "Explain the relay's state machine."}],
}
RECEIVED = [
    {"type": "thinking", "thinking": "The user wants an overview.", "signature": "s"},
    {"type": "text", "text": "The relay reads upstream events and "},
    {"type": "tool_use", "id": "toolu_01", "name": "Read", "input": {"file_path": "/src/relay.py"}},
]


def cancelled_tape(request: orjson.Fragment | Packed | dict, *, began: bool = True) -> Tape:
    tape = Tape(endpoint="messages", client_request=request, client_headers={}, stream=True)
    tape.client_model, tape.status = "claude-opus-4-8", "cancelled"
    tape.first_byte_at = time.perf_counter() if began else None
    tape.client_message = {
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-opus-4-8",
        "content": RECEIVED, "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }  # fmt: skip
    return tape


@pytest.mark.parametrize(
    "request_as",
    [
        pytest.param(lambda r: orjson.Fragment(orjson.dumps(r)), id="as received"),
        pytest.param(lambda r: Packed.json(orjson.Fragment(orjson.dumps(r))), id="compressed while waiting"),
        pytest.param(lambda r: r, id="parsed"),
    ],
)
def test_a_stream_the_client_left_is_recorded_with_estimated_usage(request_as) -> None:
    fields = finished_fields(cancelled_tape(request_as(REQUEST)))
    assert fields["input_tokens"] == count_tokens(REQUEST)
    generated = (
        "The user wants an overview."
        + "The relay reads upstream events and "
        + '{"file_path":"/src/relay.py"}'
    )
    assert fields["output_tokens"] == count_text_tokens(generated)
    assert [c["kind"] for c in fields["changes"]] == ["usage_estimated"]


def test_no_estimate_when_the_backend_never_answered() -> None:
    # Left before the first upstream byte: nothing says the backend billed anything.
    fields = finished_fields(cancelled_tape(REQUEST, began=False))
    assert (fields["input_tokens"], fields["output_tokens"], fields["changes"]) == (0, 0, [])


def test_no_estimate_when_the_backend_reported_usage() -> None:
    tape = cancelled_tape(REQUEST)
    tape.usage = {"input_tokens": 321, "output_tokens": 7}  # e.g. usage in every chunk (vLLM)
    fields = finished_fields(tape)
    assert (fields["input_tokens"], fields["output_tokens"], fields["changes"]) == (321, 7, [])


def test_no_estimate_for_an_exchange_that_finished() -> None:
    tape = cancelled_tape(REQUEST)
    tape.status = "ok"
    assert finished_fields(tape)["changes"] == []

"""Packed: bodies compressed while they wait for the writer come back exactly, and really are smaller."""

from __future__ import annotations

import threading
import tracemalloc
from pathlib import Path

import orjson

from proxy.recording.tape import Packed

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
BODY = (FIXTURES / "claude-code" / "read_tool_result_turn.json").read_bytes()


def test_json_and_text_come_back_exactly_in_another_thread() -> None:
    packed_json, packed_text = Packed.json(orjson.Fragment(BODY)), Packed.raw_text(b"data: {}\n\ncaf\xc3\xa9")
    out: list[object] = []
    reader = threading.Thread(target=lambda: out.extend([packed_json.unpack(), packed_text.unpack()]))
    reader.start()  # the event loop packs, the writer's thread unpacks
    reader.join()
    assert orjson.dumps(out[0]) == BODY
    assert out[1] == "data: {}\n\ncafé"


def test_a_packed_body_holds_only_its_compressed_size() -> None:
    Packed.json(orjson.Fragment(BODY))  # the thread's compression context exists before measuring
    tracemalloc.start()
    try:
        packs = [Packed.json(orjson.Fragment(BODY)) for _ in range(10)]
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(packs[0].data) < len(BODY) / 3
    # Held, not just reported: a compressor's output can keep the allocation of the whole input.
    assert held / len(packs) < 1.2 * len(packs[0].data) + 200


def test_a_dialects_declared_auth_header_is_secret_even_without_a_hint_in_its_name(monkeypatch) -> None:
    from proxy.recording.tape import is_secret_header, safe_headers
    from proxy.translate.base import Capabilities
    from proxy.translate.dialects import DIALECTS

    class Dummy:
        name = "dummy"
        capabilities = Capabilities(secret_headers=frozenset({"x-goog-credential"}))

    assert not is_secret_header("x-goog-credential")
    monkeypatch.setitem(DIALECTS, "dummy", Dummy())
    assert is_secret_header("x-goog-credential") and is_secret_header("x-api-key")
    assert safe_headers({"x-goog-credential": "s3cret", "accept": "*/*"}) == {"accept": "*/*"}


def test_a_tape_ends_once_with_its_outcome_and_time_and_later_ends_change_nothing(settings) -> None:
    from proxy.recording.tape import Failure, Tape
    from tests.conftest import run_async

    settings.RECORD_EXCHANGES = False  # the writer is not what this tests: submit() keeps nothing
    tape = Tape(endpoint="messages", client_request=None, client_headers={})

    async def end_twice() -> None:
        tape.end("error", Failure("request_too_large", "too big", 413))
        first = tape.done_at
        tape.end("ok")  # e.g. serving's finally after a refusal already ended it
        assert tape.done_at == first

    run_async(end_twice())
    assert tape.finished and tape.done_at is not None and tape.done_at > tape.t0
    assert (tape.status, tape.error_type, tape.error_message, tape.http_status) == (
        "error",
        "request_too_large",
        "too big",
        413,
    )

"""The recorder's writer: batches, and what happens when a row cannot be written."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from proxy.models import Exchange
from proxy.recording.tape import Tape
from proxy.recording.writer import Recorder, Started
from tests.conftest import run_async


def finished_tape(model: str) -> Tape:
    tape = Tape(endpoint="messages", client_request=None, client_headers={})
    tape.client_model, tape.status, tape.http_status = model, "ok", 200
    return tape


@pytest.mark.django_db(transaction=True)
def test_one_bad_row_does_not_lose_the_rest_of_its_batch() -> None:
    recorder = Recorder()

    async def scenario() -> None:
        recorder.finish(finished_tape("claude-before"))
        recorder.submit(Started(key=-1, fields={"created_at": None}))  # NOT NULL: this row cannot be written
        recorder.finish(finished_tape("claude-after"))
        await recorder.drain()

    run_async(scenario())
    assert sorted(Exchange.objects.values_list("client_model", flat=True)) == [
        "claude-after",
        "claude-before",
    ]


@pytest.mark.django_db(transaction=True)
def test_a_long_exchange_is_inserted_pending_then_rewritten_finished() -> None:
    recorder = Recorder()
    tape = finished_tape("claude-long")
    tape.status = "pending"
    tape.client_request = orjson.Fragment(b'{"model": "claude-long", "max_tokens": 5}')
    tape.client_headers = {"user-agent": "claude-cli/2.1.332"}

    async def scenario() -> None:
        recorder.start(tape)
        await asyncio.sleep(0.4)  # outlives the pending-row delay
        await recorder.drain()
        assert (await Exchange.objects.aget()).status == "pending"
        tape.status = "ok"
        recorder.finish(tape)
        await recorder.drain()

    run_async(scenario())
    row = Exchange.objects.get()
    assert (row.client_model, row.status) == ("claude-long", "ok")
    # The rewrite leaves the request as the pending insert wrote it.
    assert row.client_request == {"model": "claude-long", "max_tokens": 5}
    assert row.client_headers == {"user-agent": "claude-cli/2.1.332"}


@pytest.mark.django_db(transaction=True)
def test_finishing_a_pending_row_does_not_write_its_request_again() -> None:
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from proxy.recording import writer as recorder_module
    from proxy.recording.rows import start_fields, update_fields

    tape = finished_tape("claude-long")
    tape.client_request = orjson.Fragment(orjson.dumps({"prompt": "unmistakable-request-text"}))
    tape.provider = "first"
    with transaction.atomic():
        [pk] = recorder_module.write_exchanges([start_fields(tape)], updates=[])
    tape.provider = "fallback"  # a fallback answered
    tape.usage = {"input_tokens": 3, "output_tokens": 7}
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        recorder_module.write_exchanges([], updates=[(pk, update_fields(tape))])
    [upsert] = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    assert "unmistakable-request-text" not in upsert
    row = Exchange.objects.get(pk=pk)
    assert (row.provider, row.status, row.output_tokens) == ("fallback", "ok", 7)
    assert row.client_request == {"prompt": "unmistakable-request-text"}


@pytest.mark.django_db(transaction=True)
def test_a_batch_larger_than_a_statement_is_split_and_every_row_keeps_its_own_body(monkeypatch) -> None:
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from proxy.recording import writer as recorder_module
    from proxy.recording.rows import row_fields

    monkeypatch.setattr(recorder_module, "_MAX_STATEMENT_BYTES", 10_000)
    tapes = []
    for n in range(12):
        tape = finished_tape(f"claude-{n}")
        tape.client_request = orjson.Fragment(orjson.dumps({"n": n, "pad": "x" * 3000}))
        tapes.append(tape)
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        pks = recorder_module.write_exchanges([row_fields(t) for t in tapes], updates=[])
    inserts = [q for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    assert len(inserts) == 4  # three ~3 KB rows fit under 10 KB, a fourth does not
    rows = {row.pk: row for row in Exchange.objects.all()}
    assert [(rows[pk].client_model, rows[pk].client_request["n"]) for pk in pks] == [
        (f"claude-{n}", n) for n in range(12)
    ]


def test_statements_respect_the_parameter_limit_and_keep_an_oversized_row_alone(monkeypatch) -> None:
    from proxy.recording import writer as recorder_module

    monkeypatch.setattr(recorder_module, "_MAX_STATEMENT_BYTES", 100)
    rows = [["a" * 10, 1], ["b" * 500, 2], ["c" * 10, 3], ["d" * 10, 4]]
    assert list(recorder_module._statements(rows, width=2)) == [[rows[0]], [rows[1]], [rows[2], rows[3]]]
    monkeypatch.setattr(recorder_module, "_MAX_PARAMS", 4)
    assert list(recorder_module._statements(rows[2:] * 2, width=2)) == [rows[2:], rows[2:]]


@pytest.mark.django_db(transaction=True)
def test_a_sealed_tape_waits_compressed_and_is_written_exactly_as_received(monkeypatch) -> None:
    from proxy.recording import writer as recorder_module
    from proxy.recording.tape import Packed

    body = orjson.dumps(
        {"system": "You are Claude Code. " * 400, "messages": [{"role": "user", "content": "é"}]}
    )
    reply = b'data: {"id": "chatcmpl-1", "choices": []}\n\n' * 200 + b"data: [DONE]\n\n"
    tape = finished_tape("claude-sealed")
    tape.client_request = orjson.Fragment(body)
    tape.upstream_request = {"method": "POST", "url": "http://up/v1", "body": orjson.Fragment(body)}
    tape.upstream_chunks = [reply[:100], reply[100:]]
    recorder = Recorder()
    monkeypatch.setattr(recorder_module, "BACKLOG_PACK_AT", 0)  # as if the writer were behind

    async def scenario() -> None:
        recorder.finish(tape)
        # What waits in the queue is compressed, and the chunks are not kept beside it.
        assert isinstance(tape.client_request, Packed) and len(tape.client_request.data) < len(body) / 10
        assert isinstance(tape.upstream_request, Packed) and tape.upstream_chunks == []
        await recorder.drain()

    run_async(scenario())
    row = Exchange.objects.get()
    assert row.client_request == orjson.loads(body)
    assert row.upstream_request == {"method": "POST", "url": "http://up/v1", "body": orjson.loads(body)}
    assert row.upstream_response == reply.decode()


@pytest.mark.django_db(transaction=True)
def test_bodies_are_compressed_only_while_the_writer_is_behind(monkeypatch) -> None:
    from proxy.recording import writer as recorder_module
    from proxy.recording.tape import Packed

    monkeypatch.setattr(recorder_module, "BACKLOG_PACK_AT", 3)
    recorder = Recorder()
    tapes = [finished_tape(f"claude-{n}") for n in range(10)]
    for tape in tapes:
        tape.client_request = orjson.Fragment(b'{"n": 1}')

    async def scenario() -> None:
        for tape in tapes:
            recorder.start(tape)  # ten in flight
        for tape in tapes:  # no await in between: the writer has not taken any yet
            recorder.finish(tape)
        await recorder.drain()

    run_async(scenario())
    # Packed once 3 wait while at least 3 others are still in flight: a backlog at low concurrency (the
    # writer's own batching) is not worth compressing.
    packed = [isinstance(t.client_request, Packed) for t in tapes]
    assert packed == [False] * 3 + [True] * 4 + [False] * 3
    assert Exchange.objects.count() == 10


@pytest.mark.django_db(transaction=True)
def test_a_long_exchange_started_while_the_writer_is_behind_keeps_its_request_compressed(monkeypatch) -> None:
    from proxy.recording import writer as recorder_module
    from proxy.recording.tape import Packed

    monkeypatch.setattr(recorder_module, "BACKLOG_PACK_AT", 0)
    recorder = Recorder()
    tape = finished_tape("claude-long")
    tape.status = "pending"
    tape.client_request = orjson.Fragment(b'{"model": "claude-long", "max_tokens": 5}')

    async def scenario() -> None:
        recorder.start(tape)
        await asyncio.sleep(0.4)  # outlives the pending-row delay
        await recorder.drain()
        assert isinstance(tape.client_request, Packed)  # while it streams on, the tape holds it packed
        pending = await Exchange.objects.aget()
        assert (pending.status, pending.client_request) == (
            "pending",
            {"model": "claude-long", "max_tokens": 5},
        )
        tape.status = "ok"
        recorder.finish(tape)
        await recorder.drain()

    run_async(scenario())
    row = Exchange.objects.get()
    assert (row.status, row.client_request) == ("ok", {"model": "claude-long", "max_tokens": 5})

"""The recorder's writer: batches, and what happens when a row cannot be written."""

from __future__ import annotations

import asyncio

import pytest

from proxy.models import Exchange
from proxy.recorder import Recorder, Started
from proxy.tape import Tape


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

    asyncio.run(scenario())
    assert sorted(Exchange.objects.values_list("client_model", flat=True)) == [
        "claude-after",
        "claude-before",
    ]


@pytest.mark.django_db(transaction=True)
def test_a_long_exchange_is_inserted_pending_then_rewritten_finished() -> None:
    recorder = Recorder()
    tape = finished_tape("claude-long")
    tape.status = "pending"

    async def scenario() -> None:
        recorder.start(tape)
        await asyncio.sleep(0.4)  # outlives the pending-row delay
        await recorder.drain()
        assert (await Exchange.objects.aget()).status == "pending"
        tape.status = "ok"
        recorder.finish(tape)
        await recorder.drain()

    asyncio.run(scenario())
    row = Exchange.objects.get()
    assert (row.client_model, row.status) == ("claude-long", "ok")

"""The recorder's CPU per exchange with and without blobs (proxy/recording/blobs.py), in this process.

    python bench/blob_writer_cpu.py [--turns 40] [--repeats 3]

Builds the rows of a Claude Code session (bench/blob_bytes.py's turns: real 2.1.332 system blocks and
tools, a growing conversation; the upstream side as the Chat Completions body the translator sends) and
writes them with `write_exchanges` in batches of 20 into a fresh SQLite database per run, as the writer
thread does, once with the blob split and once with it turned into the identity (the code before blobs).
CPU is this thread's (`time.thread_time`); the runs alternate so drift hits both alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from blob_bytes import session_turns
from bodies import anthropic_to_openai


def run(turns: list[dict], *, blobs_on: bool) -> float:
    import django
    from django.core.management import call_command
    from django.db import connections, transaction

    from proxy.recording import writer
    from proxy.recording.rows import row_fields
    from proxy.recording.tape import Tape

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SWITCHBOARD_DATA_DIR"] = tmp
        from django.conf import settings

        settings.DATABASES["default"]["NAME"] = str(Path(tmp) / "switchboard.sqlite3")
        connections.close_all()
        del connections["default"]
        django.setup()
        call_command("migrate", verbosity=0)
        blob_writer = writer._blob_writer
        originals = blob_writer.split_client_request, blob_writer.split_upstream_request
        if not blobs_on:
            blob_writer.split_client_request = blob_writer.split_upstream_request = lambda value: value  # type: ignore
        rows = []
        for body in turns:
            tape = Tape(
                endpoint="messages", client_request=orjson.Fragment(orjson.dumps(body)), client_headers={}
            )
            tape.status, tape.finished = "ok", True
            payload = orjson.dumps(anthropic_to_openai(body))
            tape.upstream_request = {
                "method": "POST",
                "url": "http://up/v1",
                "body": orjson.Fragment(payload),
            }
            tape.upstream_chunks = [b'data: {"choices": []}\n\n' * 20]
            rows.append(row_fields(tape))
        start = time.thread_time()
        for i in range(0, len(rows), 20):
            with transaction.atomic():
                writer.write_exchanges(rows[i : i + 20], updates=[])
        spent = time.thread_time() - start
        blob_writer.split_client_request, blob_writer.split_upstream_request = originals  # type: ignore
        connections.close_all()
        return spent / len(rows) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proxy.settings")
    os.environ["SWITCHBOARD_DATA_DIR"] = tempfile.mkdtemp()
    import django

    django.setup()
    turns = session_turns(args.turns)
    results: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.repeats):
        for on in (False, True):
            results[on].append(run(turns, blobs_on=on))
    for on in (False, True):
        label = "with blobs   " if on else "without blobs"
        runs = ", ".join(f"{v:.2f}" for v in results[on])
        print(f"{label}: {statistics.median(results[on]):.2f} ms CPU per exchange (median; runs {runs})")


if __name__ == "__main__":
    main()

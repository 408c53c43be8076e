"""Database bytes and server CPU per exchange over a long Claude Code session (recording/blobs.py's measure).

    python bench/blob_bytes.py [--turns 60] [--root /path/to/another/checkout]

Starts `manage.py serve` from --root (default: this checkout; pass a checkout of the commit before blobs
to compare) on a fresh SQLite data dir, routed to the scripted OpenAI upstream, and POSTs one session of
real Claude Code 2.1.332 turns (tests/fixtures/claude-code-2.1.332/main_turn.json: its system blocks and
12 tools, resent every turn) whose conversation grows by a tool call and a ~2 KB result per turn, as the
CLI sends it. Reports the growth of the database's used pages, the file and the WAL per exchange, and the
server's CPU (event loop and writer thread) per exchange. Not a timed test: run it by hand.
"""

from __future__ import annotations

import argparse
import copy
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from procstat import proc_tree, tree_cpu_s

from tests.conftest import start_server, stop_server
from tests.fakes.openai_upstream import FakeOpenAI, text_stream

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "claude-code-2.1.332"
WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "the",
    "lazy",
    "dog",
    "while",
    "the",
    "proxy",
    "records",
    "every",
    "turn",
]


def session_turns(n: int) -> list[dict]:
    base = json.loads((FIXTURE / "main_turn.json").read_text())
    headers = json.loads((FIXTURE / "headers.json").read_text())["main_turn"]["headers"]
    turns, messages = [], list(base["messages"])
    for i in range(n):
        body = copy.deepcopy(base)
        body["messages"] = copy.deepcopy(messages)
        turns.append(body)
        tool_id = f"toolu_bench{i:04d}"
        result = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(350)) + f" #{i}"
        messages.append(
            {"role": "assistant", "content": [{"type": "tool_use", "id": tool_id, "name": "Read",
                                               "input": {"file_path": f"/home/user/project/f{i}.py"}}]}
        )  # fmt: skip
        messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_id,
                                                      "content": result}]})  # fmt: skip
    del headers
    return turns


def image_request(mb: float) -> dict:
    import base64
    import os

    data = base64.b64encode(os.urandom(int(mb * 1024 * 1024 * 3 / 4))).decode()
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}
    text = {"type": "text", "text": "what is in it?"}
    return {"model": "claude-opus-4-8", "max_tokens": 100, "stream": True,
            "messages": [{"role": "user", "content": [image, text]}]}  # fmt: skip


def used_bytes(db: Path) -> tuple[int, int, int]:
    with sqlite3.connect(db) as conn:
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        used = (
            conn.execute("PRAGMA page_count").fetchone()[0]
            - conn.execute("PRAGMA freelist_count").fetchone()[0]
        )
    wal = db.with_name(db.name + "-wal")
    return used * page, db.stat().st_size, wal.stat().st_size if wal.exists() else 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=60)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--image-mb", type=float, help="instead: one request carrying an image this large")
    args = parser.parse_args()
    import tests.conftest as conftest

    conftest.ROOT = args.root  # the server runs the code under test from there
    turns = session_turns(args.turns) if not args.image_mb else [image_request(args.image_mb)]
    sent = sum(len(json.dumps(t, separators=(",", ":"))) for t in turns)
    with FakeOpenAI() as fake, tempfile.TemporaryDirectory() as tmp:
        env = {"OPENAI_BASE_URL": fake.url, "OPENAI_API_KEY": "sk-bench", "BIG_MODEL": "big"}
        server = start_server(Path(tmp), env)
        try:
            db = server.data_dir / "switchboard.sqlite3"
            headers = {
                "x-api-key": "k",
                "x-claude-code-session-id": "bench-session",
                "anthropic-version": "2023-06-01",
            }
            warm = {**session_turns(1)[0], "stream": False}  # the first request: migrations, caches
            httpx.post(f"{server.url}/v1/messages", json=warm, headers=headers, timeout=30)
            server.exchanges(1)  # settle
            before, cpu0 = used_bytes(db), tree_cpu_s(proc_tree(server.process.pid))
            if args.image_mb:  # a backend that takes a second, as a real model does: the row is pending first
                reply = text_stream("a picture")
                reply.first_delay_s = 1.0
                fake.script(reply)
            with httpx.Client(timeout=30) as client:
                for body in turns:
                    with client.stream("POST", f"{server.url}/v1/messages", json=body, headers=headers) as r:
                        r.read()
            server.exchanges(1)
            time.sleep(0.3)
            after, cpu1 = used_bytes(db), tree_cpu_s(proc_tree(server.process.pid))
        finally:
            stop_server(server)
    n = len(turns)
    print(f"root {args.root}: {n} turns, {sent / n / 1024:.1f} KB sent per turn on average")
    print(f"  used pages: {(after[0] - before[0]) / n / 1024:.1f} KB per exchange")
    wal_mb = after[2] / 1024 / 1024
    print(f"  file: {(after[1] - before[1]) / n / 1024:.1f} KB per exchange, WAL now {wal_mb:.1f} MB")
    print(f"  server CPU: {(cpu1 - cpu0) / n * 1000:.2f} ms per exchange (hot path + writer)")


if __name__ == "__main__":
    main()

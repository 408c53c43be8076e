"""SQLite page size for the exchange table's shape: why new databases use 16 KB pages (proxy/settings.py).

    python bench/sqlite_pages.py [--rows 600] [--repeats 3]

Writes rows shaped like recorded exchanges (two ~95 KB request bodies from a captured Claude Code turn,
a small response, indexed short columns) in batches of 25 per transaction, as the recorder does, into a
fresh WAL database per page size. Then times a feed-like query (newest 50 rows, small columns) and a
LIKE scan over a body column, as the dashboard's search does. CPU is this process's; wall includes
WAL commits and checkpoints. Plain sqlite3: no Django, no server.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

from bodies import FIXTURES

BATCH = 25


def measure(page_size: int, body: str, rows: int) -> dict[str, float]:
    path = Path(tempfile.mkdtemp()) / "bench.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(f"PRAGMA page_size={page_size}")  # before the first table, as the settings do
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(
        "CREATE TABLE exchange (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at TEXT, status TEXT,"
        " client_request TEXT, upstream_request TEXT, client_response TEXT)"
    )
    db.execute("CREATE INDEX exchange_created_at ON exchange (created_at)")
    db.execute("CREATE INDEX exchange_status ON exchange (status)")
    row_sql = "(?, ?, ?, ?, ?)"
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for start in range(0, rows, BATCH):
        values = []
        for n in range(start, start + BATCH):
            values += [f"{time.time():.6f}", "ok", body + str(n), body + str(n + 1), "x" * 2800]
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "INSERT INTO exchange (created_at, status, client_request, upstream_request, client_response)"
            " VALUES " + ", ".join([row_sql] * BATCH),
            values,
        )
        db.execute("COMMIT")
    cpu1, wall1 = time.process_time(), time.perf_counter()
    for _ in range(20):
        db.execute("SELECT id, created_at, status FROM exchange ORDER BY created_at DESC LIMIT 50").fetchall()
    feed = time.perf_counter()
    db.execute("SELECT count(*) FROM exchange WHERE client_request LIKE '%no such text here%'").fetchall()
    scan = time.perf_counter()
    db.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return {
        "insert_cpu_ms_per_row": (cpu1 - cpu0) / rows * 1e3,
        "insert_wall_ms_per_row": (wall1 - wall0) / rows * 1e3,
        "feed_query_ms": (feed - wall1) / 20 * 1e3,
        "like_scan_ms": (scan - feed) * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    body = (FIXTURES / "main_turn_interactive.json").read_text()
    print(f"rows of 2 x {len(body) / 1000:.0f} KB bodies, {args.rows} rows, batches of {BATCH}")
    for repeat in range(args.repeats):
        for page_size in (4096, 8192, 16384):
            figures = measure(page_size, body, args.rows)
            shown = "  ".join(f"{k} {v:.2f}" for k, v in figures.items())
            print(f"#{repeat + 1} page {page_size:>5}: {shown}")


if __name__ == "__main__":
    main()

"""A year of use: generate a large exchange database, then time the dashboard pages on it.

    SWITCHBOARD_DATA_DIR=/tmp/big python bench/bigdb.py make --rows 1000000
    SWITCHBOARD_DATA_DIR=/tmp/big python bench/bigdb.py time
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/switchboard_big python bench/bigdb.py make --rows 1000000

Rows look like Claude Code's traffic in shape (sessions of ~40 exchanges, subagents, tool calls, a few
per cent errors, three routes, costs) over 365 days, with ~1 KB bodies so full-text search has text to
scan. `time` asks each page in-process (Django's test client: server time, no network) and prints the
median of 5 after a warm-up: the feed, search (a rare and a common word), one session, the sessions list,
the tool-call matrix and the costs page.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, when run on its own
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proxy.settings")

WORDS = [
    "refactor", "parser", "tests", "failing", "import", "module", "config", "docker", "build", "cache",
    "query", "index", "session", "token", "stream", "retry", "timeout", "schema", "migration", "branch",
    "commit", "deploy", "logger", "metrics", "handler",
]  # fmt: skip
TOOLS = ("Read", "Edit", "Write", "Bash", "Grep", "Glob", "Agent", "TodoWrite", "WebFetch")
AGENTS = ("", "", "", "Explore", "general-purpose")
ROUTES = (("opus", "deepseek/deepseek-chat-v3.1", "claude-opus-4-8"),
          ("default", "qwen/qwen3-coder", "claude-sonnet-4-5"),
          ("haiku", "qwen/qwen3-coder-30b-a3b-instruct", "claude-haiku-4-5"))  # fmt: skip
RARE = "zebracorn"  # in one exchange in 100,000: what a search for a specific error looks like
SESSION_LEN = 40


def make(rows: int, batch_size: int = 2000) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    from proxy.models import Exchange

    call_command("migrate", interactive=False, verbosity=0)
    rng = random.Random(14)
    start = datetime.now(UTC) - timedelta(days=365)
    step = timedelta(days=365) / rows
    done = Exchange.objects.count()
    started = time.monotonic()
    while done < rows:
        batch = [
            _exchange(Exchange, rng, i, start + step * i) for i in range(done, min(rows, done + batch_size))
        ]
        Exchange.objects.bulk_create(batch)
        done += len(batch)
        if done % 50_000 < batch_size:
            print(f"{done:,} rows, {time.monotonic() - started:.0f} s", flush=True)


def _exchange(model: type, rng: random.Random, i: int, at: datetime) -> object:
    rule, backend, client_model = ROUTES[rng.randrange(3)]
    text = " ".join(rng.choice(WORDS) for _ in range(150)) + (f" {RARE}" if i % 100_000 == 7 else "")
    calls = [{"type": "tool_use", "id": f"toolu_{i}_{n}", "name": rng.choice(TOOLS), "input": {"path": "x"}}
             for n in range(rng.choice((0, 0, 1, 1, 2)))]  # fmt: skip
    error = rng.random() < 0.02
    input_tokens, output_tokens = rng.randrange(2_000, 60_000), rng.randrange(20, 2_000)
    request = {"model": client_model, "max_tokens": 32000, "messages": [{"role": "user", "content": text}]}
    answer = {"role": "assistant", "content": [{"type": "text", "text": text[:200]}, *calls]}
    return model(
        created_at=at, finished_at=at + timedelta(seconds=3), endpoint="messages",
        status="error" if error else "ok", http_status=529 if error else 200,
        error_type="overloaded_error" if error else "", stream=True,
        session_id=f"session-{i // SESSION_LEN:07d}", agent=rng.choice(AGENTS),
        user_agent="claude-cli/2.1.332", client_model=client_model, backend_model=backend,
        provider="openrouter", dialect="openai", rule=rule, route_reason=f"rule {rule}",
        client_request=request, client_headers={}, upstream_response="", changes=[],
        client_response=None if error else answer,
        upstream_first_byte_ms=400.0, first_token_ms=rng.uniform(300, 3_000),
        duration_ms=rng.uniform(1_000, 60_000),
        input_tokens=input_tokens, output_tokens=output_tokens, cache_read_tokens=input_tokens // 2,
        cost_usd=input_tokens * 2.7e-7 + output_tokens * 1.1e-6,
        claude_cost_usd=input_tokens * 3e-6 + output_tokens * 1.5e-5,
        tool_calls=len(calls), tool_call_errors=1 if calls and rng.random() < 0.05 else 0,
    )  # fmt: skip


def time_pages(rounds: int = 5) -> None:
    import django

    django.setup()
    from django.db import connection
    from django.test import Client

    from proxy.models import Exchange

    count = Exchange.objects.count()
    middle = Exchange.objects.order_by("-id").values_list("session_id", flat=True)[count // 2]
    pages = {
        "feed": "/",
        f"search (rare: {RARE})": f"/?q={RARE}",
        "search (common: parser)": "/?q=parser",
        "one session": f"/sessions/{middle}",
        "sessions list": "/sessions",
        "tool-call matrix": "/tools",
        "costs (30 days)": "/costs",
        "costs (all time)": "/costs?range=all",
    }
    client = Client(HTTP_HOST="127.0.0.1")
    print(f"{count:,} exchanges on {connection.vendor}; median of {rounds} in-process requests (ms)")
    for name, url in pages.items():
        client.get(url)  # warm-up: caches, prepared plans
        timings = []
        for _ in range(rounds):
            started = time.perf_counter()
            response = client.get(url)
            timings.append((time.perf_counter() - started) * 1000)
        print(f"  {name:28} {statistics.median(timings):8.1f}   (HTTP {response.status_code}, {url})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("make").add_argument("--rows", type=int, default=1_000_000)
    sub.add_parser("time").add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.command == "make":
        make(args.rows)
    else:
        time_pages(args.rounds)


if __name__ == "__main__":
    main()

"""Run in a process of its own against a fresh database (SQLite or PostgreSQL, by the environment):
`python -m tests.integration.rollup_scenarios costs|search`. Prints "ok" or raises.

costs: a few thousand rows over 60 days (the ORM's inserts, updates, deletes, and the recorder's own
multi-row writer), then every range of the costs page and the sessions list from the rollups compared
with the same pages adding up every row (the code the pages had before the rollups).
search: rows written by the recorder's writer (blobs split out), then the feed's search by the indexes
compared with the search that reads every row, page by page.
"""

from __future__ import annotations

import math
import os
import random
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proxy.settings")


def _setup() -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)


def _close(a: Any, b: Any, where: str) -> None:
    """Equal, floats to 1e-9 (sums added in another order differ in the last bits)."""
    if (isinstance(a, float) and isinstance(b, (float, int))) or (
        isinstance(b, float) and isinstance(a, int)
    ):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), f"{where}: {a} != {b}"
    elif isinstance(a, dict) and isinstance(b, dict):
        assert set(a) == set(b), f"{where}: keys {sorted(set(a) ^ set(b))}"
        for k in a:
            _close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{where}: {len(a)} rows != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


ROUTES = [
    ("openrouter", "deepseek-chat", "claude-opus-4-8", "opus"),
    ("local", "qwen3", "claude-haiku-4-5", "haiku"),
    ("openrouter", "unpriced-model", "claude-sonnet-4-5", "default"),
]


def _rows(n: int, rng: random.Random) -> list[Any]:
    from proxy.models import Exchange

    now = datetime.now(UTC)
    rows = []
    for i in range(n):
        provider, backend, client, rule = rng.choice(ROUTES)
        status = rng.choice(["ok"] * 8 + ["error", "cancelled", "pending"])
        tokens = 0 if status == "pending" or rng.random() < 0.05 else rng.randrange(1, 50_000)
        cost = None if backend == "unpriced-model" or not tokens else tokens * 1e-7
        rows.append(
            Exchange(
                # Sessions of ~30 in a row, so several run across each range's cutoff.
                created_at=now - timedelta(days=60) * (1 - i / n) + timedelta(seconds=rng.uniform(-600, 600)),
                endpoint="count_tokens" if rng.random() < 0.05 else "messages",
                status=status,
                session_id="" if rng.random() < 0.05 else f"s{i // 30:04d}",
                agent=rng.choice(["", "", "Explore"]),
                user_agent=f"claude-cli/2.1.{rng.randrange(190, 199)}",
                client_model=client,
                backend_model=backend,
                provider=provider,
                rule=rule,
                input_tokens=tokens,
                output_tokens=tokens // 10,
                cache_read_tokens=tokens // 2,
                cache_write_tokens=tokens // 7,
                cost_usd=cost,
                claude_cost_usd=None if rng.random() < 0.1 or not tokens else tokens * 3e-6,
                duration_ms=None if status == "pending" else rng.uniform(100, 9000),
                first_token_ms=None if status == "pending" else rng.uniform(50, 900),
                tool_calls=rng.choice([0, 0, 1, 2]),
                tool_call_errors=rng.choice([0] * 9 + [1]),
                tool_result_errors=rng.choice([0] * 9 + [1]),
            )
        )
    return rows


def costs() -> None:
    from django.db.models import F

    from dashboard import costs, sessions
    from proxy.models import Exchange
    from proxy.recording import retention, rollups

    rng = random.Random(9)
    Exchange.objects.bulk_create(_rows(3000, rng))
    ids = list(Exchange.objects.values_list("id", flat=True))
    # A pending row finishing on a fallback (another provider and model), credits of failed tool results,
    # rows changing day, rows deleted (the prune's path), and the recorder's own writer.
    for pk in rng.sample(ids, 200):
        Exchange.objects.filter(pk=pk).update(
            status="ok", provider="local", backend_model="qwen3", input_tokens=500, cost_usd=0.01
        )
    for pk in rng.sample(ids, 100):
        Exchange.objects.filter(pk=pk).update(tool_call_errors=F("tool_call_errors") + 1)
    for pk in rng.sample(ids, 50):
        Exchange.objects.filter(pk=pk).update(created_at=F("created_at") - timedelta(days=1))
    retention.prune(retention.Policy(days=45, max_gb=None, source="environment"))
    Exchange.objects.filter(pk__in=rng.sample(ids[-1000:], 100)).delete()
    rollups.refresh_sessions(Exchange.objects.values_list("session_id", flat=True).distinct())
    _write_through_recorder(rng)

    for range_key in costs.RANGES:
        _close(costs.report(range_key), costs.report_from_rows(range_key), f"costs {range_key}")
    _close(sessions._rolled_up_sessions(100), sessions.sessions_from_rows(100), "sessions")
    before = _rollup_tables()
    rollups.rebuild()
    _close(_rollup_tables(), before, "rebuilt rollups")
    print("ok")


def _rollup_tables() -> dict[str, list[dict[str, Any]]]:
    from proxy.models import DailyUsage, SessionUsage

    def rows(model: Any, order: tuple[str, ...]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "id"} for r in model.objects.order_by(*order).values()]

    return {
        "daily": rows(DailyUsage, ("day", "provider", "backend_model", "client_model", "rule", "agent")),
        "sessions": rows(SessionUsage, ("session_id", "endpoint")),
    }


def _write_through_recorder(rng: random.Random) -> None:
    """Rows as the recorder writes them: multi-row INSERTs, then a pending row's upsert on finishing."""
    from django.db import transaction
    from django.utils import timezone

    from proxy.models import Exchange
    from proxy.recording.writer import write_exchanges

    at = timezone.now()

    def fields(i: int, **more: Any) -> dict[str, Any]:
        body = {"model": "claude-opus-4-8", "system": [{"type": "text", "text": "you code. " * 80}],
                "messages": [{"role": "user", "content": f"turn {i} " + rng.choice(WORDS)}]}  # fmt: skip
        return {"created_at": at, "session_id": f"w{i // 5}", "client_model": "claude-opus-4-8",
                "backend_model": "deepseek-chat", "provider": "openrouter", "rule": "opus",
                "status": "pending",
                "client_request": body, **more}  # fmt: skip

    with transaction.atomic():
        pks = write_exchanges([fields(i) for i in range(20)], updates=[])
    finished = {"status": "ok", "input_tokens": 900, "output_tokens": 90, "cost_usd": 0.002, "tool_calls": 1}
    with transaction.atomic():
        write_exchanges(
            [fields(100 + i, **finished) for i in range(5)],
            # As the recorder's updates: everything but the request, and the created_at it had.
            updates=[(pk, {**_finish(fields(0, **finished)), "backend_model": "qwen3"}) for pk in pks[:10]],
        )
    assert Exchange.objects.filter(pk__in=pks[:10], backend_model="qwen3").count() == 10


def _finish(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "client_request"}


WORDS = ["parser fails", 'a "quoted" word', "naïve café", "zebracorn here", "path/to/file.py", "plain"]


def search() -> None:
    from django.db import transaction
    from django.utils import timezone

    from dashboard import queries
    from dashboard.queries import FeedFilters
    from proxy.models import Exchange
    from proxy.recording.writer import write_exchanges

    rng = random.Random(5)
    system = [{"type": "text", "text": "You are Claude Code. Rare system word: quokkaprompt. " * 20}]
    history: list[dict[str, Any]] = []
    rows = []
    for i in range(400):
        said = rng.choice(WORDS) if i != 123 else "the one wombatword in a turn"
        if i == 200:  # a value too large for the blobs' index (read by each search instead)
            said = "a whole file: bigblobword " + "x" * 1_100_000
        history = [*history[-6:], {"role": "user", "content": f"{said} #{i} " + "padding text " * 60}]
        body = {"model": "claude-opus-4-8", "system": system, "messages": history}
        rows.append({
            "created_at": timezone.now(), "request_id": f"req_{i:04d}", "session_id": f"sess-{i // 40:03d}",
            "status": "error" if i % 50 == 7 else "ok",
            "error_message": "upstream said: overloaded" if i % 50 == 7 else "",
            "client_request": body, "client_response": {"content": [{"type": "text", "text": f"answer {i}"}]},
            "upstream_response": f"data: chunk {i}",
        })  # fmt: skip
        history.append({"role": "assistant", "content": [{"type": "text", "text": f"answer {i}"}]})
    for start in range(0, len(rows), 50):
        with transaction.atomic():
            write_exchanges(rows[start : start + 50], updates=[])
    assert Exchange.objects.count() == 400
    from proxy.models import Blob
    from proxy.recording.fulltext import INDEXED_BLOB_BYTES

    assert Blob.objects.filter(size__gt=INDEXED_BLOB_BYTES).exists()  # the one left out of the index
    terms = ["zebracorn", "wombatword", "bigblobword", "quokkaprompt", "parser",
             'a "quoted"', "naïve", "file.py",
             "req_0042", "sess-003", "overloaded", "answer 17", "chunk 399", "pa",
             "nothing-like-this"]  # fmt: skip
    for budget in (1000, 7):  # 7: the floor below which the rows are read, on every page
        queries.SEARCH_BUDGET = budget
        for term in terms:
            _close(
                _pages(FeedFilters(q=term), indexed=True), _pages(FeedFilters(q=term), indexed=False), term
            )
    print("ok")


def _pages(f: Any, *, indexed: bool) -> list[int]:
    """Every id the feed's pages show for these filters, page after page."""
    from dashboard import queries
    from proxy.models import Exchange

    ids: list[int] = []
    before = None
    while True:
        qs = queries.filter_exchanges(Exchange.objects.only("id"), f, before=before, indexed=indexed)
        if before is not None:
            qs = qs.filter(id__lt=before)
        page = list(qs.order_by("-id").values_list("id", flat=True)[:11])
        ids += page[:10]
        if len(page) <= 10:
            return ids
        before = page[9]


if __name__ == "__main__":
    _setup()
    {"costs": costs, "search": search}[sys.argv[1]]()

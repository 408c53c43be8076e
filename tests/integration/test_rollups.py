"""The rollups (costs page, sessions list) and the full-text search, on SQLite and PostgreSQL.

Through a real server: what the recorder writes (successes, an upstream error, a client hanging up
mid-stream, count_tokens, a failed tool result credited to an earlier row), rows changing day, and a
prune, with the rollup tables compared after each with a recount of the rows done here. In a process
of its own per database (tests/integration/rollup_scenarios.py): the costs page and the sessions list
from the rollups equal to adding up every row, and search by the indexes equal to reading every row.
"""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, Server, postgres_database, server_env, start_server, stop_server
from tests.fakes.openai_upstream import FakeOpenAI, error, text_stream, tool_stream
from tests.integration.test_retention import age, manage, sql


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    if request.param == "sqlite":
        yield {}
        return
    with postgres_database("rollups") as name:
        yield {"DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{name}"}


COLUMNS = (
    "id, created_at, endpoint, status, session_id, agent, user_agent, client_model, backend_model, provider, "
    "rule, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, claude_cost_usd, "
    "tool_calls, tool_call_errors, tool_result_errors"
)


def recount(
    server: Server,
) -> tuple[dict[tuple[Any, ...], dict[str, Any]], dict[tuple[Any, ...], dict[str, Any]]]:
    """The rollups as they should be, from the exchange rows (read as another program would)."""
    daily: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    sessions: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    for row in sql(server, f"SELECT {COLUMNS} FROM proxy_exchange ORDER BY id"):
        e = dict(zip([c.strip() for c in COLUMNS.split(",")], row, strict=True))
        day = str(e["created_at"])[:10]
        sums = {
            "requests": 1,
            "errors": int(e["status"] == "error"),
            "unpriced": int(e["cost_usd"] is None
                            and bool(e["input_tokens"] or e["output_tokens"] or e["cache_read_tokens"])),
            **{k: e[k] for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")},
            **{k: e[k] for k in ("tool_calls", "tool_call_errors", "tool_result_errors")},
            "cost_usd": round(e["cost_usd"] or 0, 9),
            "priced": int(e["cost_usd"] is not None),
        }  # fmt: skip
        buckets = []
        if e["endpoint"] == "messages":
            buckets.append(
                daily[(day, e["provider"], e["backend_model"], e["client_model"], e["rule"], e["agent"])]
            )
        if e["session_id"]:
            s = sessions[(e["session_id"], e["endpoint"])]
            s["last_backend_model"] = e["backend_model"]  # rows in id order: the newest last
            s["first_id"] = s.get("first_id") or e["id"]
            s["last_id"] = e["id"]
            buckets.append(s)
        for bucket in buckets:
            for k, v in sums.items():
                bucket[k] = round(bucket[k] + v, 9) if isinstance(v, float) else bucket[k] + v
    return {k: dict(v) for k, v in daily.items()}, {k: dict(v) for k, v in sessions.items()}


def rolled_up(
    server: Server,
) -> tuple[dict[tuple[Any, ...], dict[str, Any]], dict[tuple[Any, ...], dict[str, Any]]]:
    sums = (
        "requests, errors, unpriced, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, "
        "tool_calls, tool_call_errors, tool_result_errors, cost_usd, priced"
    )
    names = [c.strip() for c in sums.split(",")]
    daily = {
        (str(r[0])[:10], *r[1:6]): {**dict(zip(names, r[6:], strict=True)), "cost_usd": round(r[16], 9)}
        for r in sql(server, "SELECT day, provider, backend_model, client_model, rule, agent, "
                     f"{sums} FROM proxy_dailyusage")
    }  # fmt: skip
    sessions = {
        (r[0], r[1]): {**dict(zip(names, r[5:], strict=True)), "cost_usd": round(r[15], 9),
                       "last_backend_model": r[2], "first_id": r[3], "last_id": r[4]}
        for r in sql(server, "SELECT session_id, endpoint, last_backend_model, first_id, last_id, "
                     f"{sums} FROM proxy_sessionusage")
    }  # fmt: skip
    return daily, sessions


def assert_rollups_right(server: Server) -> None:
    assert rolled_up(server) == recount(server)


def post(server: Server, body: dict[str, Any], session: str = "", path: str = "/v1/messages") -> int:
    headers = {"x-api-key": "k", "x-claude-code-session-id": session}
    return httpx.post(f"{server.url}{path}", json=body, headers=headers, timeout=30).status_code


def ask(text: str, *, stream: bool = False, messages: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"model": "claude-opus-4-8", "max_tokens": 100, "stream": stream,
            "messages": messages or [{"role": "user", "content": text}]}  # fmt: skip


def test_rollups_equal_a_recount_after_writes_failures_cancellations_and_prunes(
    tmp_path: Path, fake_openai: FakeOpenAI, backend: dict[str, str]
) -> None:
    server = start_server(
        tmp_path,
        {"OPENAI_BASE_URL": fake_openai.url, "OPENAI_API_KEY": "sk-up", "BIG_MODEL": "big", **backend},
    )
    try:
        for i in range(6):
            fake_openai.script(text_stream("hi", prompt=100 + i, completion=10))
            assert post(server, ask(f"turn {i}", stream=True), session=f"s{i % 2}") == 200
        fake_openai.script(error(500, "the backend broke", type_="server_error"))
        assert post(server, ask("fails"), session="s0") >= 500
        long = text_stream(*[f"word{i} " for i in range(200)])
        long.delay_s = 0.02  # outlives the pending-row delay: written pending, then finished (an update)
        fake_openai.script(long)
        headers = {"x-api-key": "k", "x-claude-code-session-id": "s1"}
        body = ask("long", stream=True)
        with httpx.stream(
            "POST", f"{server.url}/v1/messages", json=body, headers=headers, timeout=30
        ) as response:
            for line in response.iter_lines():
                if "word3" in line:
                    break  # the client hangs up: cancelled
        assert post(server, ask("count me"), session="s1", path="/v1/messages/count_tokens") == 200
        # A tool call, then the client reporting it failed: the recorder credits the earlier row.
        fake_openai.script(tool_stream([("call_1", "Read", ['{"path": 1}'])]))
        assert post(server, ask("read it", stream=True), session="s2") == 200
        answer = server.wait_for_exchange(lambda e: e["session_id"] == "s2")["client_response"]
        call = next(b["id"] for b in answer["content"] if b["type"] == "tool_use")
        refused = [
            {"role": "user", "content": "read it"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": call, "name": "Read", "input": {}},
            ]},
            {"role": "user", "content": [{
                "type": "tool_result", "tool_use_id": call, "is_error": True,
                "content": "<tool_use_error>InputValidationError: bad</tool_use_error>",
            }]},
        ]  # fmt: skip
        fake_openai.script(text_stream("sorry"))
        assert post(server, ask("", stream=True, messages=refused), session="s2") == 200
        rows = server.exchanges(50)
        assert {r["status"] for r in rows} >= {"ok", "error", "cancelled"}
        assert sum(r["tool_call_errors"] for r in rows) >= 1
        assert_rollups_right(server)

        ids = sorted(r["id"] for r in rows)
        for n, pk in enumerate(ids[:5], start=1):
            age(server, pk, n)  # to 2020: other days' buckets
        assert_rollups_right(server)
        assert "deleted 5 of" in manage(server, "prune", "--days", "30")
        assert_rollups_right(server)
        page = httpx.get(f"{server.url}/sessions", timeout=10).text
        assert 'id="session-s0"' in page and 'id="session-s2"' in page
        assert httpx.get(f"{server.url}/costs?range=all", timeout=10).status_code == 200
    finally:
        stop_server(server)


@pytest.mark.parametrize("scenario", ["costs", "search"])
def test_pages_from_rollups_and_indexes_equal_reading_every_row(
    tmp_path: Path, backend: dict[str, str], scenario: str
) -> None:
    env = server_env(tmp_path / "data", backend)
    (tmp_path / "data").mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.rollup_scenarios", scenario],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-4000:]

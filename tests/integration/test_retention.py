"""Retention over a real server and its real database (SQLite, and PostgreSQL where it runs): `manage.py
prune` by days and by size, the recorder's background prune, the dashboard's Data page, and `manage.py
exchanges export` rebuilding the whole bodies."""

from __future__ import annotations

import copy
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, Server, postgres_database, start_server, stop_server
from tests.fakes.openai_upstream import FakeOpenAI
from tests.integration.test_cli_latest_fixtures import load

MB = 1024 * 1024


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """The server's database settings: its own SQLite file, or a PostgreSQL database of its own."""
    if request.param == "sqlite":
        yield {}
        return
    with postgres_database("retention") as name:
        yield {"DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{name}"}


def own_server(tmp_path: Path, fake_openai: FakeOpenAI, **env: str) -> Server:
    return start_server(
        tmp_path,
        {"OPENAI_BASE_URL": fake_openai.url, "OPENAI_API_KEY": "sk-up", "BIG_MODEL": "big", **env},
    )


@pytest.fixture
def srv(tmp_path: Path, fake_openai: FakeOpenAI, backend: dict[str, str]) -> Iterator[Server]:
    server = own_server(tmp_path, fake_openai, **backend)
    yield server
    stop_server(server)


def turn(text: str, *, tools_note: str = "") -> dict[str, Any]:
    """A real Claude Code turn (system blocks, tools) with a message of our own."""
    body = copy.deepcopy(load("main_turn"))
    body["stream"] = False
    body["messages"] = [{"role": "user", "content": text}]
    if tools_note:
        body["tools"][0]["description"] += tools_note
    return body


def post(server: Server, body: dict[str, Any]) -> None:
    response = httpx.post(f"{server.url}/v1/messages", json=body, headers={"x-api-key": "k"}, timeout=30)
    assert response.status_code == 200, response.text


def sql(server: Server, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """A statement on the server's own database, as another program would run it."""
    url = server.env.get("DATABASE_URL")
    if url:
        import psycopg

        with psycopg.connect(url.replace("postgres://", "postgresql://"), autocommit=True) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []
    with sqlite3.connect(server.data_dir / "switchboard.sqlite3") as conn:
        return conn.execute(statement.replace("%s", "?"), params).fetchall()


def manage(server: Server, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def age(server: Server, pk: int, days: int) -> None:
    sql(
        server,
        "UPDATE proxy_exchange SET created_at = %s WHERE id = %s",
        (f"2020-01-{days:02d} 00:00:00+00", pk),
    )


def test_prune_deletes_what_is_older_than_the_days_kept_and_the_blobs_only_it_used(srv: Server) -> None:
    post(srv, turn("old one", tools_note=" (old tools)"))
    post(srv, turn("old two", tools_note=" (old tools)"))
    post(srv, turn("new", tools_note=" (new tools)"))
    old1, old2, new = sorted(r["id"] for r in srv.exchanges(10))
    age(srv, old1, 1)
    age(srv, old2, 2)
    blobs_before = sql(srv, "SELECT count(*) FROM proxy_blob")[0][0]

    out = manage(srv, "prune", "--dry-run", "--days", "30")
    assert "would delete 2 of 3 exchanges and 2 blobs" in out  # the old tool list, client and upstream side
    assert len(srv.exchanges(10)) == 3

    out = manage(srv, "prune", "--days", "30")
    assert "deleted 2 of 3 exchanges and 2 blobs" in out
    [kept] = srv.exchanges(10)
    assert kept["id"] == new
    assert kept["client_request"] == turn("new", tools_note=" (new tools)")  # its shared blobs were kept
    assert sql(srv, "SELECT count(*) FROM proxy_blob")[0][0] == blobs_before - 2


def test_prune_by_size_keeps_the_newest_within_the_limit(srv: Server) -> None:
    for i in range(24):  # each ~200 KB new: its message, and again in the upstream request
        post(srv, turn(f"turn {i} " + os.urandom(50_000).hex()))
    ids = sorted(r["id"] for r in srv.exchanges(100))
    blobs = sql(srv, "SELECT count(*) FROM proxy_blob")[0][0]
    limit = str(2 * MB / 1024**3)
    would = re.search(r"would delete (\d+) of", manage(srv, "prune", "--dry-run", "--gb", limit))
    out = manage(srv, "prune", "--gb", limit)
    assert would and f"deleted {would.group(1)} of" in out  # the dry run said what the prune did
    kept = sorted(r["id"] for r in srv.exchanges(100))
    assert kept == ids[-len(kept) :]  # the newest are kept, the oldest went
    assert 2 <= len(kept) < 20  # the search index's and the rollups' tables take ~0.3 MB of the 2
    # Each message went to a blob of its own (over 64 KB), swept with its exchange.
    assert sql(srv, "SELECT count(*) FROM proxy_blob")[0][0] <= blobs - (len(ids) - len(kept))
    sizes = json.loads(manage(srv, "shell", "-c", SIZE).splitlines()[-1])
    assert sizes["used"] <= 2.2 * MB


SIZE = (
    "import json; from proxy.recording.retention import database_size as s; "
    "print(json.dumps({'used': s().used_bytes}))"
)


def test_the_recorder_prunes_in_the_background_by_the_environments_policy(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    server = own_server(
        tmp_path, fake_openai, SWITCHBOARD_RETENTION_DAYS="7", SWITCHBOARD_PRUNE_INTERVAL="0.2"
    )
    try:
        post(server, turn("will be old"))
        [old] = [r["id"] for r in server.exchanges(10)]
        age(server, old, 3)
        post(server, turn("stays"))
        deadline = time.monotonic() + 10
        while old in [r["id"] for r in server.exchanges(10)]:
            assert time.monotonic() < deadline, "the old exchange was not pruned"
            time.sleep(0.1)
        assert [r["client_request"]["messages"][0]["content"] for r in server.exchanges(10)] == ["stays"]
    finally:
        stop_server(server)


def test_the_data_page_shows_the_size_and_saves_the_retention_policy(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    # A server of its own: the policy this test saves (and expects unset at first) is the server's.
    server = own_server(tmp_path, fake_openai)
    try:
        _data_page_scenario(server)
    finally:
        stop_server(server)


def _data_page_scenario(server: Server) -> None:
    post(server, turn("size me"))
    aged = server.last_id()
    age(server, aged, 1)  # older than the 400 days saved below
    page = httpx.get(f"{server.url}/data", timeout=10)
    assert page.status_code == 200
    assert 'id="database-size"' in page.text and "write-ahead log" in page.text
    assert "everything (no limit)" in page.text and "from the environment" in page.text
    with httpx.Client(base_url=server.url, timeout=10) as client:
        form = client.get("/data")
        token = form.text.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
        bad = client.post("/data", data={"csrfmiddlewaretoken": token, "days": "-3", "max_gb": ""})
        assert bad.status_code == 200 and "errorlist" in bad.text
        saved = client.post(
            "/data",
            data={"csrfmiddlewaretoken": token, "days": "400", "max_gb": "2.5"},
            follow_redirects=True,
        )
    assert saved.status_code == 200 and "Saved." in saved.text
    assert "400 days and 2.5 GB" in saved.text and "(set here)" in saved.text
    assert "The next prune deletes" in saved.text
    assert "policy: keep 400 days and 2.5 GB" in manage(server, "prune", "--dry-run")
    # The server applies a saved policy within seconds, not at its next hourly prune.
    deadline = time.monotonic() + 15
    while aged in [r["id"] for r in server.exchanges(50)]:
        assert time.monotonic() < deadline, "the saved policy was not applied"
        time.sleep(0.2)
    with httpx.Client(base_url=server.url, timeout=10) as client:  # back to no limit for the other tests
        token = client.get("/data").text.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
        client.post("/data", data={"csrfmiddlewaretoken": token, "days": "", "max_gb": ""})


def test_export_writes_every_exchange_as_a_json_line_with_the_whole_bodies(
    srv: Server, tmp_path: Path
) -> None:
    bodies = [turn("first"), turn("second", tools_note=" (changed)")]
    for body in bodies:
        post(srv, body)
    rows = sorted(srv.exchanges(10), key=lambda r: r["id"])
    age(srv, rows[0]["id"], 1)
    lines = [
        json.loads(line) for line in manage(srv, "exchanges", "export", "--since", "2000-01-01").splitlines()
    ]
    assert [line["id"] for line in lines] == [r["id"] for r in rows]
    assert [line["client_request"] for line in lines] == bodies
    assert [line["upstream_request"] for line in lines] == [r["upstream_request"] for r in rows]
    assert all("$blob:" not in json.dumps(line) for line in lines)
    assert "x-api-key" not in lines[1]["client_headers"]  # secrets were never stored
    recent = manage(srv, "exchanges", "export", "--since", "7d").splitlines()
    assert [json.loads(line)["id"] for line in recent] == [rows[1]["id"]]
    out = tmp_path / "export.jsonl"
    manage(srv, "exchanges", "export", "--until", "2021-01-01", "-o", str(out))
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [rows[0]["id"]]


def test_export_and_prune_refuse_bad_arguments_clearly(server: Server) -> None:
    for args, said in (
        (("exchanges", "export", "--since", "last tuesday"), "expected an ISO date or datetime"),
        (("prune", "--days", "-1"), "must not be negative"),
    ):
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=server.env, capture_output=True, text=True
        )
        assert done.returncode != 0 and said in done.stderr


def test_prune_vacuum_gives_the_freed_space_back_to_the_disk(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    server = own_server(tmp_path, fake_openai)
    try:
        for i in range(12):  # ~400 KB each: the message, on both sides
            post(server, turn(f"turn {i} " + os.urandom(100_000).hex()))
        server.exchanges(1)
        db = server.data_dir / "switchboard.sqlite3"
        # 2 MB: room for some rows beside the empty database's own pages (a page or more per table; the
        # search index's and the rollups' tables are ~20 more 16 KB pages)
        assert "deleted" in manage(server, "prune", "--gb", str(2 * MB / 1024**3))
        manage(server, "shell", "-c", CHECKPOINT)  # the file as a plain prune leaves it: pages free inside
        before = db.stat().st_size
        manage(server, "prune", "--vacuum")
        assert db.stat().st_size < 0.75 * before
        assert len(server.exchanges(50)) >= 1  # what was kept still reads
    finally:
        stop_server(server)


CHECKPOINT = "from django.db import connection as c; c.cursor().execute('PRAGMA wal_checkpoint(TRUNCATE)')"

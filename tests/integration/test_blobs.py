"""Repeated system prompt blocks and tool lists stored once (recording/blobs.py), over a real server: two real
Claude Code 2.1.332 turns POSTed as the CLI sent them, then every reader of the bodies checked."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Server
from tests.fakes.openai_upstream import FakeOpenAI
from tests.integration.test_cli_latest_fixtures import HEADERS, cli_headers, load

TURNS = ("main_turn", "tool_result_turn")


def post_turns(server: Server, session: str) -> list[dict[str, Any]]:
    """Both turns in one session, streamed to the end; their rows, oldest first."""
    before = server.last_id()
    for name in TURNS:
        headers = {**cli_headers(name), "x-claude-code-session-id": session}
        with httpx.stream(
            "POST", server.url + HEADERS[name]["path"], json=load(name), headers=headers, timeout=30
        ) as response:
            assert response.status_code == 200, response.read()
            response.read()
    rows = [r for r in server.exchanges(10, session=session) if r["id"] > before]
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)
    return sorted(rows, key=lambda r: r["id"])


def db(server: Server) -> sqlite3.Connection:
    return sqlite3.connect(Path(server.data_dir) / "switchboard.sqlite3")


def stored(server: Server, pk: int) -> tuple[str, str]:
    with db(server) as conn:
        row = conn.execute(
            "SELECT client_request, upstream_request FROM proxy_exchange WHERE id = ?", (pk,)
        ).fetchone()
    return row[0], row[1]


def test_two_turns_share_one_blob_per_repeated_system_block_and_tool_list(
    server: Server, upstream: FakeOpenAI
) -> None:
    rows = post_turns(server, str(uuid.uuid4()))
    # Readers see the whole bodies: the client's as sent, the upstream's as the backend received it.
    for row, name in zip(rows, TURNS, strict=True):
        assert row["client_request"] == load(name)
    for row, sent in zip(rows, upstream.requests[-2:], strict=True):
        assert row["upstream_request"]["body"] == sent
    # Stored: the tools and the repeated system blocks are references, the same in both turns.
    (req1, up1), (req2, up2) = stored(server, rows[0]["id"]), stored(server, rows[1]["id"])
    ref1, ref2 = json.loads(req1), json.loads(req2)
    assert ref1["tools"] == ref2["tools"] and ref1["tools"].startswith("$blob:sha256:")
    assert ref1["system"][1:] == ref2["system"][1:]
    assert all(block.startswith("$blob:sha256:") for block in ref1["system"][2:])
    # The billing line (it changes with every request in newer CLIs) is small and stays inline.
    assert isinstance(ref1["system"][0], dict) and ref1["system"][0]["text"].startswith("x-anthropic-billing")
    body1, body2 = json.loads(up1)["body"], json.loads(up2)["body"]
    assert body1["tools"] == body2["tools"] and body1["tools"].startswith("$blob:sha256:")
    assert body1["messages"][0] == {"role": "system", "content": body2["messages"][0]["content"]}
    assert body1["messages"][0]["content"].startswith("$blob:sha256:")
    # The second turn stores only what is new in it.
    full = len(json.dumps(load(TURNS[1]), separators=(",", ":")))
    assert len(req2) < full / 3
    with db(server) as conn:
        refs = [ref1["tools"], body1["tools"], body1["messages"][0]["content"], *ref1["system"][1:]]
        shas = sorted({r.removeprefix("$blob:sha256:") for r in refs if isinstance(r, str)})
        marks = ",".join("?" * len(shas))
        found = conn.execute(f"SELECT count(*) FROM proxy_blob WHERE sha256 IN ({marks})", shas).fetchone()[0]
        last = conn.execute(f"SELECT min(last_id) FROM proxy_blob WHERE sha256 IN ({marks})", shas).fetchone()
    assert found == len(shas)
    assert last[0] == rows[1]["id"]  # each turn raised them: the prune keeps them while a turn refers


def test_dashboard_readers_see_the_whole_bodies(server: Server, upstream: FakeOpenAI) -> None:
    session = str(uuid.uuid4())
    rows = post_turns(server, session)
    system_text = load("main_turn")["system"][2]["text"]
    phrase = next(line for line in system_text.splitlines() if len(line) > 40)[:40]
    tool = load("main_turn")["tools"][0]["name"]
    detail = httpx.get(f"{server.url}/exchanges/{rows[1]['id']}", timeout=10)
    assert detail.status_code == 200 and "$blob:" not in detail.text
    assert tool in detail.text
    page = httpx.get(f"{server.url}/sessions/{session}", timeout=10)
    assert page.status_code == 200 and "$blob:" not in page.text
    tools = httpx.get(f"{server.url}/tools", timeout=10)
    assert tools.status_code == 200
    # Full-text search finds text that is only inside a stored blob.
    found = httpx.get(server.url + "/", params={"q": phrase, "session": session}, timeout=10)
    assert found.status_code == 200
    assert all(f'id="exchange-{r["id"]}"' in found.text for r in rows)
    nothing = httpx.get(server.url + "/", params={"q": "no-such-phrase-zq", "session": session}, timeout=10)
    assert not any(f'id="exchange-{r["id"]}"' in nothing.text for r in rows)


def test_rows_stored_inline_before_blobs_still_read(server: Server, upstream: FakeOpenAI) -> None:
    session = str(uuid.uuid4())
    rows = post_turns(server, session)
    whole = json.dumps(load("main_turn"))
    with db(server) as conn:  # as a row written before this change: the whole body inline
        conn.execute("UPDATE proxy_exchange SET client_request = ? WHERE id = ?", (whole, rows[0]["id"]))
    [again] = [r for r in server.exchanges(10, session=session) if r["id"] == rows[0]["id"]]
    assert again["client_request"] == load("main_turn")
    assert httpx.get(f"{server.url}/exchanges/{rows[0]['id']}", timeout=10).status_code == 200


def session_turns(n: int) -> list[dict[str, Any]]:
    """A real first turn followed by n-1 more, each adding a tool call and its ~3 KB result."""
    base = load("main_turn")
    base["stream"] = False
    turns, messages = [], list(base["messages"])
    for i in range(n):
        turns.append({**base, "messages": json.loads(json.dumps(messages))})
        messages.append(
            {"role": "assistant", "content": [{"type": "tool_use", "id": f"toolu_b{i}", "name": "Read",
                                               "input": {"file_path": f"/p/f{i}.py"}}]}
        )  # fmt: skip
        result = f"result-{i}-{uuid.uuid4().hex} " + "lorem ipsum dolor " * 160
        messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"toolu_b{i}",
                                                      "content": result}]})  # fmt: skip
    return turns


def test_earlier_turns_are_stored_once_and_still_read_and_search(
    server: Server, upstream: FakeOpenAI
) -> None:
    session = str(uuid.uuid4())
    turns = session_turns(5)
    for body in turns:
        response = httpx.post(
            f"{server.url}/v1/messages",
            json=body,
            headers={"x-api-key": "k", "x-claude-code-session-id": session},
            timeout=30,
        )
        assert response.status_code == 200, response.text
    rows = sorted(server.exchanges(10, session=session), key=lambda r: r["id"])
    assert [r["client_request"] for r in rows] == turns
    assert [r["upstream_request"]["body"] for r in rows] == upstream.requests[-5:]
    # Turn 5 refers to the messages turn 4 stored: only its newest turn is inline.
    stored4, stored5 = (json.loads(stored(server, r["id"])[0])["messages"] for r in rows[3:5])
    assert stored5[: len(stored4) - 1] == stored4[:-1]
    first = len(turns[0]["messages"])
    results = stored5[first + 1 : -1 : 2]
    assert len(results) == 3 and all(m.startswith("$blob:sha256:") for m in results)
    assert isinstance(stored5[-1], dict)  # the newest tool result, inline (tool-call analysis reads it)
    sizes = [len(stored(server, r["id"])[0]) + len(stored(server, r["id"])[1]) for r in rows]
    assert sizes[4] - sizes[1] < 3 * 1200  # a few references more per turn, not the whole history again
    # Search finds a tool result in every turn that carries it, inline or stored once.
    phrase = turns[2]["messages"][-1]["content"][0]["content"].split()[0]
    found = httpx.get(server.url + "/", params={"q": phrase, "session": session}, timeout=10).text
    assert [f'id="exchange-{r["id"]}"' in found for r in rows] == [False, False, True, True, True]


def test_a_large_image_in_the_newest_turn_is_stored_apart_and_reads_whole(
    server: Server, upstream: FakeOpenAI
) -> None:
    import base64
    import os

    image = {
        "type": "base64",
        "media_type": "image/png",
        "data": base64.b64encode(os.urandom(1_500_000)).decode(),
    }
    body = {
        "model": "claude-opus-4-8",
        "max_tokens": 100,
        "messages": [
            {"role": "user", "content": [{"type": "image", "source": image}, {"type": "text", "text": "?"}]}
        ],
    }
    response = httpx.post(f"{server.url}/v1/messages", json=body, headers={"x-api-key": "k"}, timeout=30)
    assert response.status_code == 200, response.text
    row = server.wait_for_exchange(lambda e: e["client_request"] == body)
    assert row["upstream_request"]["body"] == upstream.requests[-1]
    client_text, upstream_text = stored(server, row["id"])
    # The row keeps the blocks' small fields; the 2 MB of base64 went to a blob on each side.
    assert len(client_text) < 2_000 and len(upstream_text) < 4_000
    assert '"type":"image"' in client_text.replace(" ", "")
    assert httpx.get(f"{server.url}/exchanges/{row['id']}", timeout=30).status_code == 200


def test_a_row_whose_blob_is_missing_still_reads_and_says_which(server: Server, upstream: FakeOpenAI) -> None:
    rows = post_turns(server, str(uuid.uuid4()))
    ghost = "$blob:sha256:" + "0" * 64  # as if the database had lost that value
    text = json.loads(stored(server, rows[1]["id"])[0])
    with db(server) as conn:
        conn.execute(
            "UPDATE proxy_exchange SET client_request = ? WHERE id = ?",
            (json.dumps({**text, "tools": ghost}), rows[1]["id"]),
        )
    [again] = [r for r in server.exchanges(10) if r["id"] == rows[1]["id"]]
    assert again["client_request"]["tools"] == ghost
    assert again["client_request"]["system"] == load("tool_result_turn")["system"]
    assert httpx.get(f"{server.url}/exchanges/{rows[1]['id']}", timeout=10).status_code == 200

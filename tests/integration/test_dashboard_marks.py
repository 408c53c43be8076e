"""Over real HTTP: what the feed says about requests that are not ordinary answers (issue #12): a refused
request still names the model it asked for, and the routes editor's "test" is marked as a test."""

from __future__ import annotations

import re

import httpx

from tests.conftest import Server
from tests.fakes.openai_upstream import FakeOpenAI, completion


def test_a_refused_request_still_shows_the_model_and_session_it_named(server: Server) -> None:
    session = "5e551011-0000-4000-8000-00000000abcd"
    response = httpx.post(
        f"{server.url}/v1/messages",
        json={"model": "claude-opus-4-8", "messages": [{"role": "user", "content": "hi"}]},  # no max_tokens
        headers={"x-claude-code-session-id": session},
        timeout=10,
    )
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
    (row,) = server.exchanges(1)
    assert (row["status"], row["http_status"], row["client_model"]) == ("error", 400, "claude-opus-4-8")
    assert row["session_id"] == session
    feed = httpx.get(f"{server.url}/", params={"session": session[:8]}, timeout=10).text
    (html,) = re.findall(rf'<tr id="exchange-{row["id"]}".*?</tr>', feed, re.S)
    assert "claude-opus-4-8" in html and "error 400" in html


def test_the_routes_editors_test_is_marked_as_a_test(server: Server, upstream: FakeOpenAI) -> None:
    with httpx.Client(base_url=server.url, timeout=15) as browser:
        page = browser.get("/routes").text
        pk = re.findall(r"/routes/rules/(\d+)/test", page)[0]
        upstream.script(completion("ok"))
        answer = browser.post(
            f"/routes/rules/{pk}/test",
            headers={"X-CSRFToken": browser.cookies["switchboard_csrftoken"], "HX-Request": "true"},
        )
        assert answer.status_code == 200 and "answered" in answer.text
    (row,) = server.exchanges(1)
    assert row["origin"] == "test"
    feed = httpx.get(f"{server.url}/", timeout=10).text
    (html,) = re.findall(rf'<tr id="exchange-{row["id"]}".*?</tr>', feed, re.S)
    assert "origin-test" in html
    detail = httpx.get(f"{server.url}/exchanges/{row['id']}", timeout=10).text
    assert 'class="tag origin-test"' in detail.split("</h1>", 1)[0]

"""Bad input over real HTTP (issue #17): every answer is a 200 or an Anthropic-shaped 4xx carrying the
request's id, and every request, refused or not, is recorded under that id."""

from __future__ import annotations

import json
import re
from typing import Any

import anthropic
import httpx
import pytest
from hypothesis import HealthCheck, given, settings

from tests import fuzzing
from tests.conftest import Server
from tests.fakes.openai_upstream import FakeOpenAI, Reply, chunk

HELLO = {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}


def post(server: Server, content: bytes, content_type: str | None = "application/json") -> httpx.Response:
    headers = {"content-type": content_type} if content_type else {}
    return httpx.post(f"{server.url}/v1/messages", content=content, headers=headers, timeout=30)


def assert_anthropic_error(response: httpx.Response, status: int, error_type: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == error_type
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert body["request_id"] == response.headers["request-id"]
    assert body["request_id"].startswith("req_") and len(body["request_id"]) == 28
    return body


def recorded(server: Server, request_id: str) -> dict[str, Any]:
    [row] = server.exchanges(limit=5, request_id=request_id)
    return row


# --- request-id ----------------------------------------------------------------------------------------


def test_every_answer_carries_a_request_id_the_sdk_reads_and_the_record_is_found_by_it(
    server: Server, upstream: FakeOpenAI
) -> None:
    client = anthropic.Anthropic(base_url=server.url, api_key="sk-client", max_retries=0)
    message = client.messages.create(**HELLO)  # type: ignore[arg-type]
    assert message._request_id is not None and message._request_id.startswith("req_")
    row = recorded(server, message._request_id)
    assert row["status"] == "ok" and row["client_response"]["id"] == message.id

    other = client.messages.create(**HELLO)  # type: ignore[arg-type]
    assert other._request_id != message._request_id


def test_an_error_names_its_request_id_in_the_body_the_header_and_the_sdk_exception(server: Server) -> None:
    client = anthropic.Anthropic(base_url=server.url, api_key="sk-client", max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=[{"role": "user"}])  # type: ignore[typeddict-item]
    assert info.value.request_id is not None
    assert info.value.body["request_id"] == info.value.request_id  # type: ignore[index]
    row = recorded(server, info.value.request_id)
    assert (row["status"], row["http_status"]) == ("error", 400)
    assert row["error_message"].startswith("messages.0.content")


def test_the_feed_search_finds_an_exchange_by_the_request_id_a_user_quotes_and_its_page_shows_it(
    server: Server,
) -> None:
    response = post(server, b"{broken")
    request_id = assert_anthropic_error(response, 400, "invalid_request_error")["request_id"]
    row = recorded(server, request_id)  # written
    page = httpx.get(f"{server.url}/", params={"q": request_id}, timeout=10)
    assert page.status_code == 200
    assert re.findall(r'<tr id="exchange-(\d+)"', page.text) == [str(row["id"])]
    detail = httpx.get(f"{server.url}/exchanges/{row['id']}", timeout=10)
    assert detail.status_code == 200 and request_id in detail.text


def test_models_and_unknown_paths_carry_a_request_id_too(server: Server) -> None:
    assert httpx.get(f"{server.url}/v1/models").headers["request-id"].startswith("req_")
    assert_anthropic_error(httpx.get(f"{server.url}/v1/nothing"), 404, "not_found_error")


def test_an_error_in_the_middle_of_a_stream_names_the_request_id(
    server: Server, upstream: FakeOpenAI
) -> None:
    broken = {"error": {"message": "backend fell over", "type": "server_error"}}
    upstream.script(Reply(chunks=[chunk({"role": "assistant", "content": "Hel"}), broken]))
    body = {**HELLO, "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/messages", json=body, timeout=10) as response:
        request_id = response.headers["request-id"]
        frames = response.read().decode()
    error_frame = next(f for f in frames.split("\n\n") if f.startswith("event: error"))
    data = json.loads(error_frame.split("data: ", 1)[1])
    assert data["type"] == "error" and data["request_id"] == request_id
    assert recorded(server, request_id)["status"] == "error"


def _model_not_found() -> Reply:
    message = "The model `gpt-none` does not exist or you do not have access to it."
    error = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
    return Reply(status=404, body=error)


@pytest.mark.parametrize(
    ("content", "status", "error_type"),
    [
        (b"{broken", 400, "invalid_request_error"),  # refused while reading
        (json.dumps({**HELLO, "max_tokens": -1}).encode(), 400, "invalid_request_error"),  # by validation
        (json.dumps(HELLO).encode(), 404, "not_found_error"),  # the backend knows no such model
    ],
)
def test_a_refused_request_is_recorded_with_its_duration(
    server: Server, upstream: FakeOpenAI, content: bytes, status: int, error_type: str
) -> None:
    upstream.script(_model_not_found())  # only the last case reaches the backend
    request_id = assert_anthropic_error(post(server, content), status, error_type)["request_id"]
    row = recorded(server, request_id)
    assert (row["status"], row["http_status"], row["error_type"]) == ("error", status, error_type)
    assert row["finished_at"] is not None and row["duration_ms"] > 0


# --- bodies that are not what they should be -----------------------------------------------------------


def test_a_text_plain_body_is_refused_and_recorded_with_what_it_sent(server: Server) -> None:
    response = post(server, json.dumps(HELLO).encode(), "text/plain")
    body = assert_anthropic_error(response, 400, "invalid_request_error")
    assert body["error"]["message"].startswith("content-type: text/plain is not supported")
    row = recorded(server, body["request_id"])
    assert row["http_status"] == 400 and row["client_request"] == json.dumps(HELLO)
    page = httpx.get(f"{server.url}/exchanges/{row['id']}", timeout=10)  # a request kept as text shows
    assert page.status_code == 200 and "content-type: text/plain is not supported" in page.text


@pytest.mark.parametrize("content_type", [None, "application/json; charset=utf-8", "application/vnd.x+json"])
def test_json_under_any_json_content_type_or_none_is_served(
    server: Server, upstream: FakeOpenAI, content_type: str | None
) -> None:
    assert post(server, json.dumps(HELLO).encode(), content_type).status_code == 200


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "request body: empty"),
        (b'{"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "\xff\xfe"}]}',
         "request body: not valid JSON"),
        (b"[" * 2000 + b"]" * 2000, "request body: not valid JSON"),
        (b'{"model": "claude-x", "max_tokens": 1e400, "messages": []}', "request body: not valid JSON"),
        (b'{"model": "claude-x", "max_tokens": 100000000000000000000000000000, "messages": []}',
         "max_tokens: must be a positive integer"),
        (b'{"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], '
         b'"context_management": ' + b"[" * 300 + b"]" * 300 + b"}", "request body: nested deeper than"),
        (b'"just a string"', "request body: must be a JSON object"),
    ],
)  # fmt: skip
def test_bodies_that_cannot_be_read_are_refused_naming_why_and_recorded(
    server: Server, content: bytes, message: str
) -> None:
    response = post(server, content)
    body = assert_anthropic_error(response, 400, "invalid_request_error")
    assert body["error"]["message"].startswith(message), body
    row = recorded(server, body["request_id"])
    assert (row["status"], row["http_status"], row["error_message"]) == (
        "error",
        400,
        body["error"]["message"],
    )


def test_an_unknown_block_type_is_refused_before_any_backend_is_called(
    server: Server, upstream: FakeOpenAI
) -> None:
    request = {**HELLO, "messages": [{"role": "user", "content": [{"type": "hologram", "text": "hi"}]}]}
    body = assert_anthropic_error(post(server, json.dumps(request).encode()), 400, "invalid_request_error")
    assert body["error"]["message"].startswith(
        "messages.0.content.0: Input tag 'hologram' found using 'type'"
    )
    assert upstream.requests == []


# --- the fuzz run over HTTP ---------------------------------------------------------------------------


@settings(
    max_examples=60,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=fuzzing.mutated_requests(max_mutations=3))
def test_mutated_claude_code_requests_over_http_get_a_200_or_an_anthropic_4xx_and_are_all_recorded(
    server: Server, fake_openai: FakeOpenAI, body: Any
) -> None:
    if isinstance(body, dict) and body.get("stream") is True:
        body["stream"] = False  # one SSE transcript would not say more than a 200 does here
    response = post(server, json.dumps(body).encode())
    if response.status_code != 200:
        assert 400 <= response.status_code < 500, response.text
        assert_anthropic_error(response, response.status_code, response.json()["error"]["type"])
    row = recorded(server, response.headers["request-id"])
    assert row["http_status"] == response.status_code
    # A request we translated is one OpenAI accepts: the scripted backend refused none.
    assert fake_openai.rejections == []

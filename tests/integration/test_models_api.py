"""GET /v1/models and /v1/models/{id} through the official anthropic SDK, against a real server. Issue #12."""

from __future__ import annotations

import anthropic
import httpx
import pytest

from tests.conftest import Server, without_request_id


def client(server: Server) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key="sk-client", max_retries=0)


def test_display_names_say_where_each_model_routes(server: Server) -> None:
    names = {m.id: m.display_name for m in client(server).models.list(limit=1000)}
    # the seeded rules: haiku -> SMALL_MODEL, opus -> BIG_MODEL, the default -> MIDDLE_MODEL
    assert names["claude-opus-4-8"] == "Opus 4.8 -> big-model"
    assert names["claude-haiku-4-5-20251001"] == "Haiku 4.5 -> small-model"
    assert names["claude-sonnet-5"] == "Sonnet 5 -> mid-model"


def test_every_listed_id_is_retrieved_with_the_same_info(server: Server) -> None:
    sdk = client(server)
    listed = list(sdk.models.list(limit=1000))
    assert listed
    for info in listed:
        got = sdk.models.retrieve(info.id)
        assert (got.type, got.id, got.display_name, got.created_at) == (
            "model",
            info.id,
            info.display_name,
            info.created_at,
        )


def test_an_unknown_id_is_anthropics_404(server: Server) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        client(server).models.retrieve("claude-nonexistent-1")
    assert without_request_id(caught.value.body) == {
        "type": "error",
        "error": {"type": "not_found_error", "message": "model: claude-nonexistent-1"},
    }


def test_the_sdk_pages_through_the_whole_list(server: Server) -> None:
    whole = httpx.get(f"{server.url}/v1/models", params={"limit": 1000}).json()
    assert whole["has_more"] is False and set(whole) == {"data", "has_more", "first_id", "last_id"}
    ids = [m["id"] for m in whole["data"]]
    assert len(ids) > 2 and (whole["first_id"], whole["last_id"]) == (ids[0], ids[-1])
    first = client(server).models.list(limit=2)
    assert [m.id for m in first.data] == ids[:2] and first.has_more is True
    assert [m.id for m in client(server).models.list(limit=2)] == ids  # auto-paging over after_id


def test_before_id_pages_backwards(server: Server) -> None:
    ids = [m["id"] for m in httpx.get(f"{server.url}/v1/models").json()["data"]]
    page = httpx.get(f"{server.url}/v1/models", params={"before_id": ids[-1], "limit": 2}).json()
    assert [m["id"] for m in page["data"]] == ids[-3:-1]
    assert page["has_more"] is (len(ids) > 3)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": "0"}, "limit: must be an integer from 1 to 1000, got '0'"),
        ({"limit": "abc"}, "limit: must be an integer from 1 to 1000, got 'abc'"),
        ({"after_id": "claude-nope"}, "after_id: no model 'claude-nope' in this list"),
        ({"after_id": "a", "before_id": "b"}, "after_id and before_id: give one cursor, not both"),
    ],
)
def test_bad_list_parameters_are_a_clear_400(server: Server, params: dict[str, str], message: str) -> None:
    response = httpx.get(f"{server.url}/v1/models", params=params)
    assert response.status_code == 400
    assert without_request_id(response.json()) == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": message},
    }

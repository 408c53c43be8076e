"""Anthropic Messages request -> Responses API request (translate/openai_responses/request.py, items.py).

Every translated body is also put to the scripted vendor's validator (tests/fakes/responses_upstream.py),
which refuses what the real API refuses: a translation it would reject fails here first.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from proxy.translate import ids, reasoning
from proxy.translate.base import TranslationError
from proxy.translate.openai_responses import DIALECT
from proxy.translate.openai_responses.state import ResponsesState, responses_state
from proxy.translate.types import Target, Translation
from tests.conftest import load_fixture
from tests.fakes.responses_upstream import request_problem

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "claude-code"
HEADERS = json.loads((FIXTURES / "headers.json").read_text())
CODEX = Target(
    provider="openai",
    dialect="openai_responses",
    base_url="https://api.openai.com/v1",
    model="gpt-5-codex",
    api_key="sk-x",
)
GPT41 = Target(
    provider="openai",
    dialect="openai_responses",
    base_url="https://api.openai.com/v1",
    model="gpt-4.1",
    api_key="sk-x",
)
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def build(
    request: dict[str, Any], target: Target = CODEX, headers: dict[str, str] | None = None
) -> Translation:
    translation = DIALECT.build_request(request, target, message_id="msg_01X", client_headers=headers or {})
    assert request_problem(translation.upstream.body) is None, request_problem(translation.upstream.body)
    return translation


def body(request: dict[str, Any], target: Target = CODEX) -> dict[str, Any]:
    return build(request, target).upstream.body


def kinds(translation: Translation) -> list[str]:
    return [c.kind for c in translation.changes]


def ask(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": "claude-opus-4-8", "max_tokens": 1024, "messages": list(messages), **fields}


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def assistant(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": list(blocks)}


@pytest.mark.parametrize(
    "name", sorted(p.stem for p in FIXTURES.glob("*.json") if p.stem not in ("headers", "count_tokens"))
)
def test_every_captured_claude_code_request_translates_to_a_body_the_api_accepts(name: str) -> None:
    translation = build(load_fixture(name), headers=HEADERS[name]["headers"])
    sent = translation.upstream.body
    assert translation.upstream.url == "https://api.openai.com/v1/responses"
    assert translation.upstream.headers["authorization"] == "Bearer sk-x"
    assert sent["store"] is False and sent["model"] == "gpt-5-codex"
    assert not sent.get("instructions", "").startswith("x-anthropic-billing-header")
    assert all(tool["strict"] is False for tool in sent.get("tools", []))


def test_main_turn_maps_system_session_reasoning_and_tools() -> None:
    request = load_fixture("main_turn")
    translation = build(request, headers=HEADERS["main_turn"]["headers"])
    sent = translation.upstream.body
    assert sent["prompt_cache_key"] == "00000000-0000-4000-8000-000000000000"
    assert sent["reasoning"] == {"effort": "high", "summary": "auto"}  # adaptive, output_config.effort high
    assert sent["include"] == ["reasoning.encrypted_content"]
    assert sent["stream"] is True and sent["max_output_tokens"] == request["max_tokens"]
    assert "billing_header_dropped" in kinds(translation) and "thinking_mapped" in kinds(translation)
    assert {t["name"] for t in sent["tools"]} == {t["name"] for t in request["tools"]}
    assert translation.state == ResponsesState(reasoning=True, provider="openai")


def test_the_session_id_comes_from_metadata_when_the_header_is_missing() -> None:
    metadata = {"user_id": json.dumps({"device_id": "d", "session_id": "sess-42"})}
    assert body(ask(user("hi"), metadata=metadata))["prompt_cache_key"] == "sess-42"


def test_tool_ids_map_back_to_the_call_ids_the_backend_chose() -> None:
    client_id = ids.tool_id_to_client("call_Kx81nN2b0tWZQe3")
    sent = body(
        ask(
            user("read it"),
            assistant(
                {"type": "text", "text": "Reading."},
                {"type": "tool_use", "id": client_id, "name": "Read", "input": {"file_path": "/a"}},
            ),
            user(
                [
                    {"type": "tool_result", "tool_use_id": client_id, "content": "alpha"},
                    {"type": "text", "text": "go on"},
                ]
            ),
        )
    )
    assert sent["input"] == [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "read it"}]},
        {"type": "message", "role": "assistant", "content": "Reading."},
        {
            "type": "function_call",
            "call_id": "call_Kx81nN2b0tWZQe3",
            "name": "Read",
            "arguments": '{"file_path":"/a"}',
        },
        {"type": "function_call_output", "call_id": "call_Kx81nN2b0tWZQe3", "output": "alpha"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "go on"}]},
    ]


def test_images_and_tool_results_with_images_go_as_input_images() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    sent = body(
        ask(
            user([{"type": "text", "text": "look"}, image]),
            assistant({"type": "tool_use", "id": "toolu_01A", "name": "Screenshot", "input": {}}),
            user(
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_01A",
                        "content": [{"type": "text", "text": "shot"}, image],
                    }
                ]
            ),
        )
    )
    url = f"data:image/png;base64,{PNG}"
    assert sent["input"][0]["content"][1] == {"type": "input_image", "image_url": url, "detail": "auto"}
    assert sent["input"][2]["output"] == [
        {"type": "input_text", "text": "shot"},
        {"type": "input_image", "image_url": url, "detail": "auto"},
    ]


def test_an_error_tool_result_says_so_in_its_output() -> None:
    sent = body(
        ask(
            user("x"),
            assistant({"type": "tool_use", "id": "toolu_01A", "name": "Bash", "input": {"command": "false"}}),
            user(
                [{"type": "tool_result", "tool_use_id": "toolu_01A", "content": "exit 1", "is_error": True}]
            ),
        )
    )
    assert sent["input"][2]["output"] == "Error:\nexit 1"


def test_an_unknown_tool_use_id_is_refused_before_sending() -> None:
    with pytest.raises(TranslationError, match="unknown tool_use_id"):
        build(
            ask(
                user("x"),
                assistant({"type": "text", "text": "hi"}),
                user([{"type": "tool_result", "tool_use_id": "toolu_9"}]),
            )
        )


def test_our_thinking_block_goes_back_as_its_encrypted_reasoning_item() -> None:
    signature = reasoning.mint(dialect="openai_responses", provider="openai", payload="rs_1.gAAAAenc")
    sent = body(
        ask(
            user("x"),
            assistant(
                {"type": "thinking", "thinking": "plan", "signature": signature},
                {"type": "tool_use", "id": "toolu_sb_call_1", "name": "Bash", "input": {"command": "ls"}},
            ),
            user([{"type": "tool_result", "tool_use_id": "toolu_sb_call_1", "content": "a"}]),
            thinking={"type": "adaptive"},
        )
    )
    assert sent["input"][1] == {
        "type": "reasoning",
        "id": "rs_1",
        "summary": [{"type": "summary_text", "text": "plan"}],
        "encrypted_content": "gAAAAenc",
    }
    assert sent["input"][2]["call_id"] == "call_1"


@pytest.mark.parametrize(
    "signature",
    [
        "EqQBCkgIARABGAIiQL2Anthropic",  # Anthropic's own
        reasoning.mint(dialect="gemini", provider="openai", payload="sig"),  # another dialect's
        reasoning.mint(
            dialect="openai_responses", provider="azure", payload="rs_1.enc"
        ),  # another provider's
    ],
)
def test_a_foreign_signature_is_dropped_and_recorded(signature: str) -> None:
    translation = build(
        ask(
            user("x"),
            assistant(
                {"type": "thinking", "thinking": "t", "signature": signature}, {"type": "text", "text": "y"}
            ),
            user("z"),
        )
    )
    assert all(item["type"] != "reasoning" for item in translation.upstream.body["input"])
    # The wording every dialect records foreign reasoning in (reasoning.foreign_dropped).
    assert "foreign_reasoning_dropped" in kinds(translation)


def test_max_tokens_under_the_apis_minimum_is_raised_to_16() -> None:
    translation = build(ask(user("quota"), max_tokens=1))
    assert translation.upstream.body["max_output_tokens"] == 16
    assert "max_tokens_raised" in kinds(translation)


def test_a_strict_tool_stays_strict_and_others_are_not() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    tools = [
        {"name": "loose", "input_schema": schema},
        {
            "name": "tight",
            "input_schema": {**schema, "required": ["a"], "additionalProperties": False},
            "strict": True,
        },
    ]
    sent = body(ask(user("x"), tools=tools))
    assert [(t["name"], t["strict"]) for t in sent["tools"]] == [("loose", False), ("tight", True)]
    assert sent["tools"][0] == {"type": "function", "name": "loose", "parameters": schema, "strict": False}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "any"}, {"tool_choice": "required"}),
        ({"type": "tool", "name": "Bash"}, {"tool_choice": {"type": "function", "name": "Bash"}}),
        (
            {"type": "auto", "disable_parallel_tool_use": True},
            {"tool_choice": "auto", "parallel_tool_calls": False},
        ),
        ({"type": "none"}, {"tool_choice": "none"}),
    ],
)
def test_tool_choice_maps(choice: dict[str, Any], expected: dict[str, Any]) -> None:
    tools = [{"name": "Bash", "input_schema": {"type": "object"}}]
    sent = body(ask(user("x"), tools=tools, tool_choice=choice))
    assert {k: sent[k] for k in expected} == expected


def test_output_format_goes_as_text_format_json_schema() -> None:
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}},
        "required": ["title"],
        "additionalProperties": False,
    }
    sent = body(ask(user("x"), output_config={"format": {"type": "json_schema", "schema": schema}}))
    assert sent["text"] == {
        "format": {"type": "json_schema", "name": "output", "schema": schema, "strict": True}
    }


def test_stop_sequences_are_matched_locally_never_sent() -> None:
    translation = build(ask(user("x"), stop_sequences=["###"]))
    assert "stop" not in translation.upstream.body
    assert translation.stop_sequences == ("###",) and responses_state(translation).local_stop_sequences == (
        "###",
    )
    assert "stop_sequences_local" in kinds(translation)


def test_a_model_that_does_not_reason_gets_no_reasoning_but_keeps_its_temperature() -> None:
    translation = build(
        ask(user("x"), thinking={"type": "enabled", "budget_tokens": 2048}, temperature=0.2), GPT41
    )
    sent = translation.upstream.body
    assert "reasoning" not in sent and "include" not in sent and sent["temperature"] == 0.2
    assert "thinking_dropped" in kinds(translation) and responses_state(translation).reasoning is False


def test_a_reasoning_model_gets_no_sampling_parameters() -> None:
    translation = build(ask(user("x"), temperature=1, top_p=0.9, top_k=5))
    assert not {"temperature", "top_p", "top_k"} & set(translation.upstream.body)
    assert kinds(translation).count("param_dropped") == 3


def test_budget_tokens_map_to_effort_and_a_route_override_wins() -> None:
    thinking = {"type": "enabled", "budget_tokens": 20000}
    assert body(ask(user("x"), thinking=thinking))["reasoning"]["effort"] == "high"
    low = replace(CODEX, overrides=(("reasoning_effort", "low"),))
    assert body(ask(user("x"), thinking=thinking), low)["reasoning"]["effort"] == "low"


def test_server_tools_are_dropped_and_listed() -> None:
    translation = build(ask(user("x"), tools=[{"type": "web_search_20250305", "name": "web_search"}]))
    assert "tools" not in translation.upstream.body
    assert any("server tool" in c.detail for c in translation.changes)


def test_count_tokens_goes_to_openais_input_tokens_endpoint_and_elsewhere_is_local() -> None:
    request = {"model": "claude-opus-4-8", "messages": [{"role": "user", "content": "hi"}], "system": "s"}
    outbound = DIALECT.build_count_tokens_request(request, CODEX, client_headers={})
    assert outbound is not None and outbound.url == "https://api.openai.com/v1/responses/input_tokens"
    assert set(outbound.body) == {"model", "input", "instructions"}
    local = replace(CODEX, base_url="http://127.0.0.1:8000/v1")
    assert DIALECT.build_count_tokens_request(request, local, client_headers={}) is None
    assert (
        DIALECT.build_count_tokens_request({"model": "x"}, CODEX, client_headers={}) is None
    )  # not sendable
    assert DIALECT.parse_count_tokens({"object": "response.input_tokens", "input_tokens": 7}) == {
        "input_tokens": 7
    }


def test_our_reasoning_is_not_replayed_to_a_model_that_does_not_reason() -> None:
    signature = reasoning.mint(dialect="openai_responses", provider="openai", payload="rs_1.gAAAAenc")
    thinking = {"type": "thinking", "thinking": "plan", "signature": signature}
    translation = build(ask(user("x"), assistant(thinking, {"type": "text", "text": "y"}), user("z")), GPT41)
    assert [i["type"] for i in translation.upstream.body["input"]] == ["message"] * 3
    assert "reasoning_dropped" in kinds(translation)

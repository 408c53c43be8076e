"""Anthropic request -> Gemini request (translate/gemini/request.py, contents.py, schema.py).

Every built body is also checked by the scripted server's validator (`gemini_request_problem`), which
refuses what the real API refuses: a translation the API would reject fails here first.
"""

from __future__ import annotations

from typing import Any

import pytest

from proxy.translate.base import TranslationError
from proxy.translate.gemini import DIALECT
from proxy.translate.gemini.schema import SchemaCleaner
from proxy.translate.gemini.signatures import PLACEHOLDER, carry
from proxy.translate.gemini.state import gemini_state
from proxy.translate.ids import tool_id_to_client
from proxy.translate.types import Target, Translation
from tests.conftest import load_fixture
from tests.fakes.gemini_upstream import gemini_request_problem, signature

PROVIDER = "gemini-main"


def target(model: str = "gemini-3-flash-preview", **kw: Any) -> Target:
    return Target(
        provider=PROVIDER, dialect="gemini", base_url="https://generativelanguage.googleapis.com",
        model=model, api_key="AIza-test", **kw,
    )  # fmt: skip


def build(request: dict[str, Any], model: str = "gemini-3-flash-preview", **kw: Any) -> Translation:
    t = target(model, **kw)
    translation = DIALECT.build_request(request, t, message_id="msg_1", client_headers={})
    issued = {signature(n) for n in range(10)}
    problem = gemini_request_problem(translation.upstream.body, t.model, issued)
    assert problem is None, problem
    return translation


def kinds(translation: Translation) -> list[str]:
    return [c.kind for c in translation.changes]


@pytest.mark.parametrize("model", ["gemini-3-flash-preview", "gemini-2.5-pro", "gemini-2.0-flash"])
@pytest.mark.parametrize(
    "fixture", ["main_turn", "tool_result_turn", "read_tool_result_turn", "subagent_turn", "background_title"]
)
def test_claude_code_requests_translate_to_bodies_gemini_accepts(fixture: str, model: str) -> None:
    translation = build(load_fixture(fixture), model)
    body = translation.upstream.body
    assert body["contents"] and body["generationConfig"]["maxOutputTokens"] > 0
    assert "x-anthropic-billing-header" not in str(body.get("systemInstruction"))
    declarations = [d for t in body.get("tools", []) for d in t.get("functionDeclarations", [])]
    if fixture != "background_title":
        assert declarations
        key = "parameters" if model == "gemini-2.0-flash" else "parametersJsonSchema"
        assert all(key in d or "parameters" not in d for d in declarations)


def test_url_key_and_stream_endpoint() -> None:
    request = {"model": "claude-opus-4-8", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    plain = build(request).upstream
    assert (
        plain.url
        == "https://generativelanguage.googleapis.com/v1beta/models/gemini-3-flash-preview:generateContent"
    )
    assert plain.headers["x-goog-api-key"] == "AIza-test" and "key=" not in plain.url
    streamed = build({**request, "stream": True}).upstream
    assert streamed.url.endswith("/v1beta/models/gemini-3-flash-preview:streamGenerateContent?alt=sse")
    assert streamed.stream


def test_thinking_budget_or_effort_becomes_thinking_config_per_model_generation() -> None:
    base = {"model": "claude-opus-4-8", "max_tokens": 32000, "messages": [{"role": "user", "content": "hi"}]}
    enabled = {**base, "thinking": {"type": "enabled", "budget_tokens": 10000}}
    assert build(enabled, "gemini-2.5-flash").upstream.body["generationConfig"]["thinkingConfig"] == {
        "includeThoughts": True, "thinkingBudget": 10000,
    }  # fmt: skip
    assert build(enabled, "gemini-3-flash-preview").upstream.body["generationConfig"]["thinkingConfig"] == {
        "includeThoughts": True, "thinkingLevel": "medium",
    }  # fmt: skip
    # Pro models have no "medium": the next level up.
    assert (
        build(enabled, "gemini-3-pro-preview").upstream.body["generationConfig"]["thinkingConfig"][
            "thinkingLevel"
        ]
        == "high"
    )
    adaptive = {**base, "thinking": {"type": "adaptive"}, "output_config": {"effort": "low"}}
    assert (
        build(adaptive, "gemini-3-flash-preview").upstream.body["generationConfig"]["thinkingConfig"][
            "thinkingLevel"
        ]
        == "low"
    )
    assert (
        build(adaptive, "gemini-2.5-pro").upstream.body["generationConfig"]["thinkingConfig"][
            "thinkingBudget"
        ]
        == -1
    )
    assert "thinkingConfig" not in build(base).upstream.body["generationConfig"]
    big = {**base, "thinking": {"type": "enabled", "budget_tokens": 31999}}
    config = build(big, "gemini-2.5-flash").upstream.body["generationConfig"]["thinkingConfig"]
    assert config["thinkingBudget"] == 24576  # Flash's most


def test_stop_sequences_over_five_are_matched_locally() -> None:
    request = {
        "model": "m",
        "max_tokens": 5,
        "stop_sequences": list("abcdefg"),
        "messages": [{"role": "user", "content": "x"}],
    }
    translation = build(request)
    assert translation.upstream.body["generationConfig"]["stopSequences"] == list("abcde")
    assert gemini_state(translation).local_stop_sequences == ("f", "g")
    assert "stop_sequences_local" in kinds(translation)


def tool_loop(
    *, signature_block: dict[str, Any] | None, call_id: str = "toolu_01OtherBackendCall0000"
) -> dict[str, Any]:
    assistant = [{"type": "text", "text": "Reading."}]
    if signature_block:
        assistant.append(signature_block)
    assistant += [
        {"type": "tool_use", "id": call_id, "name": "Read", "input": {"file_path": "/a"}},
        {"type": "tool_use", "id": "toolu_01Second000000000000", "name": "Bash", "input": {"command": "ls"}},
    ]
    return {
        "model": "claude-opus-4-8",
        "max_tokens": 100,
        "tools": [
            {
                "name": "Read",
                "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}},
            },
            {
                "name": "Bash",
                "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
            },
        ],
        "messages": [
            {"role": "user", "content": "read a"},
            {"role": "assistant", "content": assistant},
            {
                "role": "user",
                "content": [
                    # out of order on purpose: Gemini pairs responses with calls by order
                    {"type": "tool_result", "tool_use_id": "toolu_01Second000000000000", "content": "a\nb"},
                    {
                        "type": "tool_result",
                        "tool_use_id": call_id,
                        "content": [{"type": "text", "text": "A"}],
                        "is_error": True,
                    },
                    {"type": "text", "text": "go on"},
                ],
            },
        ],
    }


def test_a_carried_signature_goes_back_on_exactly_its_function_call_and_responses_follow_call_order() -> None:
    block = {
        "type": "thinking",
        "thinking": "",
        "signature": carry(provider=PROVIDER, where="n", signature=signature(3)),
    }
    body = build(tool_loop(signature_block=block, call_id=tool_id_to_client("fc-1"))).upstream.body
    model = body["contents"][1]
    assert model["role"] == "model"
    assert model["parts"][0] == {"text": "Reading."}
    assert model["parts"][1] == {
        "functionCall": {"name": "Read", "args": {"file_path": "/a"}, "id": "fc-1"},
        "thoughtSignature": signature(3),
    }
    assert "thoughtSignature" not in model["parts"][2]
    user = body["contents"][2]["parts"]
    assert user[0] == {"functionResponse": {"name": "Read", "response": {"error": "A"}, "id": "fc-1"}}
    assert user[1] == {"functionResponse": {"name": "Bash", "response": {"output": "a\nb"}}}
    assert user[2] == {"text": "go on"}


def test_a_call_another_model_made_gets_googles_placeholder_on_gemini_3_only() -> None:
    translation = build(tool_loop(signature_block=None))
    first_call = translation.upstream.body["contents"][1]["parts"][1]
    assert first_call["thoughtSignature"] == PLACEHOLDER
    assert "reasoning_placeholder" in kinds(translation)
    older = build(tool_loop(signature_block=None), "gemini-2.5-flash").upstream.body
    assert "thoughtSignature" not in older["contents"][1]["parts"][1]


def test_foreign_thinking_is_stripped_and_recorded() -> None:
    anthropic_block = {"type": "thinking", "thinking": "mine", "signature": "EqQBCkYIBxgCKkDanthropic"}
    other = {
        "type": "thinking",
        "thinking": "x",
        "signature": carry(provider="another-provider", where="n", signature=signature(1)),
    }
    request = tool_loop(signature_block=anthropic_block)
    request["messages"][1]["content"].insert(0, other)
    translation = build(request)
    parts = translation.upstream.body["contents"][1]["parts"]
    assert all(p.get("thoughtSignature") in (None, PLACEHOLDER) for p in parts)
    assert "foreign_reasoning_dropped" in kinds(translation)


def test_tool_result_images_ride_inside_the_response_on_gemini_3_and_move_to_the_turn_before() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    request = tool_loop(signature_block=None)
    request["messages"][2]["content"][0]["content"] = [{"type": "text", "text": "shot"}, image]
    new = build(request).upstream.body["contents"][2]["parts"]
    assert new[1]["functionResponse"]["parts"] == [
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}
    ]
    old = build(request, "gemini-2.5-flash")
    parts = old.upstream.body["contents"][2]["parts"]
    assert "parts" not in parts[1]["functionResponse"] and parts[2] == {
        "inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}
    }
    assert "tool_result_image_moved" in kinds(old)


def test_a_tool_result_for_no_call_is_refused_in_anthropics_terms() -> None:
    request = tool_loop(signature_block=None)
    request["messages"][2]["content"][0]["tool_use_id"] = "toolu_nope"
    with pytest.raises(TranslationError, match="unknown tool_use_id"):
        build(request)


def test_web_search_and_fetch_become_gemini_grounding_never_a_function() -> None:
    request = {
        "model": "claude-haiku-4-5", "max_tokens": 100, "messages": [{"role": "user", "content": "news?"}],
        "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 8},
                  {"type": "web_fetch_20250910", "name": "web_fetch"}],
    }  # fmt: skip
    body = build(request).upstream.body
    assert body["tools"] == [{"googleSearch": {}}, {"urlContext": {}}]
    with pytest.raises(TranslationError, match="no Gemini counterpart"):
        build({**request, "tools": [{"type": "code_execution_20250522", "name": "code_execution"}]})


def test_long_and_dotted_tool_names_are_sanitised_reversibly() -> None:
    name = "mcp__claude_ai_Google_Drive__google_drive_search_files_and_folders_by_query.v2"
    request = {
        "model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
        "tools": [{"name": name, "input_schema": {"type": "object", "properties": {}}}],
    }  # fmt: skip
    translation = build(request)
    (short,) = translation.tool_names
    assert translation.tool_names[short] == name and len(short) <= 64


# --- schema cleaning -----------------------------------------------------------------------------------

MESSY = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "additionalProperties": False,
    "$defs": {"Pos": {"type": "object", "properties": {"line": {"type": "integer", "format": "uint32"}}}},
    "properties": {
        "path": {"type": "string", "format": "uri", "default": "."},
        "limit": {"type": ["integer", "null"], "exclusiveMinimum": 0},
        "mode": {"enum": ["a", "b"]},
        "level": {"enum": [1, 2, 3]},
        "at": {"$ref": "#/$defs/Pos"},
        "tags": {"type": "array", "items": {"type": "string"}, "examples": [["x"]]},
        "either": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "meta": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "required": ["path", "ghost"],
}


def test_schemas_are_cleaned_to_geminis_subset_keeping_their_meaning() -> None:
    cleaner = SchemaCleaner("Tool")
    out = cleaner.to_gemini_schema(MESSY)
    props = out["properties"]
    assert out["type"] == "OBJECT" and "$schema" not in out and "additionalProperties" not in out
    assert props["path"] == {"type": "STRING", "description": 'Format: uri. Default: ".".'}
    assert (
        props["limit"]["type"] == "INTEGER"
        and props["limit"]["nullable"] is True
        and props["limit"]["minimum"] == 0
    )
    assert props["mode"] == {"type": "STRING", "enum": ["a", "b"]}
    assert "enum" not in props["level"] and "One of: 1, 2, 3." in props["level"]["description"]
    assert (
        props["at"]["properties"]["line"]["type"] == "INTEGER"
        and "format" not in props["at"]["properties"]["line"]
    )
    assert props["tags"]["example"] == ["x"]
    assert props["either"] == {"type": "STRING", "nullable": True}
    assert out["required"] == ["path"]  # "ghost" names no property
    (change,) = cleaner.changes
    assert change.kind == "schema_adapted" and "ghost" in change.detail and "$ref" in change.detail
    assert gemini_request_problem(
        {"contents": [{"role": "user", "parts": [{"text": "x"}]}],
         "tools": [{"functionDeclarations": [{"name": "Tool", "parameters": out}]}]},
        "gemini-2.0-flash", set(),
    ) is None  # fmt: skip


def test_models_that_read_json_schema_get_it_whole() -> None:
    cleaner = SchemaCleaner("Tool")
    out = cleaner.prepare_json_schema(MESSY)
    assert "$schema" not in out and out["$defs"] == MESSY["$defs"] and out["additionalProperties"] is False
    assert [c.detail for c in cleaner.changes] == ["Tool: <root>: $schema dropped"]

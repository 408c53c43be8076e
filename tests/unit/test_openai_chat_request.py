"""Anthropic Messages -> OpenAI Chat Completions, the request side (translate/openai_chat/request.py)."""

from __future__ import annotations

import ast
import copy
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy.translate import reasoning
from proxy.translate.base import TranslationError
from proxy.translate.ids import tool_id_to_client
from proxy.translate.openai_chat.request import build_request
from proxy.translate.openai_chat.state import chat_state
from proxy.translate.tool_names import shorten
from proxy.translate.types import Target, Translation

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "claude-code"
MODULE = Path(__file__).resolve().parents[2] / "proxy" / "translate" / "openai_chat" / "request.py"
REQUEST_FIXTURES = sorted(
    p.name for p in FIXTURES.glob("*.json") if p.name not in ("headers.json", "count_tokens.json")
)
TOOL = {"name": "Bash", "description": "Run a command", "input_schema": {"type": "object", "properties": {}}}


def make_target(**kwargs: Any) -> Target:
    fields: dict[str, Any] = {
        "provider": "acme",
        "dialect": "openai",
        "base_url": "https://api.example.com/v1",
        "model": "gpt-test",
        "api_key": "sk-test",
    }
    fields.update(kwargs)
    return Target(**fields)


def make_request(**kwargs: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "model": "claude-opus-4-8",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "hi"}],
    }
    request.update(kwargs)
    return request


def translate(request: dict[str, Any], target: Target | None = None) -> Translation:
    return build_request(request, target or make_target(), message_id="msg_test", client_headers={})


def kinds(translation: Translation) -> list[str]:
    return [c.kind for c in translation.changes]


def details(translation: Translation, kind: str) -> list[str]:
    return [c.detail for c in translation.changes if c.kind == kind]


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def tool_turn(result_blocks: list[dict[str, Any]], *, tool_ids: tuple[str, ...] = ("toolu_1",)) -> list[dict]:
    """user prompt, assistant calling Bash with each id, then a user message with `result_blocks`."""
    calls = [{"type": "tool_use", "id": i, "name": "Bash", "input": {"command": "ls"}} for i in tool_ids]
    return [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": calls},
        {"role": "user", "content": result_blocks},
    ]


def cli_2_1_332(body: dict[str, Any]) -> dict[str, Any]:
    """A 2.1.197 fixture reshaped the way CLI 2.1.332 sends it (fixtures README, last section)."""
    body = copy.deepcopy(body)
    body["model"] = "claude-opus-5-5"
    body["max_tokens"] = 128000
    body["thinking"] = {"type": "adaptive", "display": "updates"}
    body["output_config"] = {"effort": "medium"}
    body["safeguards"] = [{"type": "dangerous_tool_use", "classifier_context": {"cwd": "/home/user/project"}}]
    for message in body["messages"]:
        if message["role"] == "system" and isinstance(message["content"], str):
            message["content"] = [{"type": "text", "text": message["content"]}]
    empty = {"type": "object", "properties": {}}
    body["tools"] = [
        *body["tools"][:10],
        {"name": "ToolSearch", "description": "Find tools", "input_schema": empty},
        {
            "name": "DeferredToolPlaceholder",
            "description": "Later",
            "input_schema": empty,
            "defer_loading": True,
        },
    ]
    return body


def cli_2_1_332_tool_search_turn() -> dict[str, Any]:
    body = cli_2_1_332(load("tool_result_turn.json"))
    body["messages"][2]["content"][0]["name"] = "ToolSearch"
    body["messages"][3]["content"][0]["content"] = [{"type": "tool_reference", "tool_name": "NotebookEdit"}]
    return body


CASES: list[tuple[str, dict[str, Any]]] = [(name, load(name)) for name in REQUEST_FIXTURES]
CASES += [
    (f"2.1.332:{name}", cli_2_1_332(load(name))) for name in REQUEST_FIXTURES if load(name).get("tools")
]
CASES += [("2.1.332:tool_search", cli_2_1_332_tool_search_turn())]


# --- every real Claude Code body -----------------------------------------------------------------


def assert_tool_calls_answered(messages: list[dict[str, Any]]) -> None:
    for i, message in enumerate(messages):
        ids = [call["id"] for call in message.get("tool_calls") or []]
        following = [m["tool_call_id"] for m in messages[i + 1 : i + 1 + len(ids)] if m["role"] == "tool"]
        assert following == ids, f"messages.{i}: tool calls {ids} answered by {following}"


@pytest.mark.parametrize(("name", "body"), CASES, ids=[name for name, _ in CASES])
def test_claude_code_body_translates_cleanly(name: str, body: dict[str, Any]) -> None:
    original = copy.deepcopy(body)
    target = make_target(model="", max_output_tokens=None, options=frozenset({"reasoning"}))
    translation = translate(body, target)
    out = translation.upstream.body
    encoded = orjson.dumps(out).decode()

    assert body == original, "the client's request must not be mutated"
    assert out["model"] == body["model"]
    assert out["max_tokens"] == body["max_tokens"]
    assert "cache_control" not in encoded
    assert "safeguards" not in out and "context_management" not in out
    assert '"classifier_context"' not in encoded
    assert_tool_calls_answered(out["messages"])
    tool_use_ids = [
        block["id"]
        for m in body["messages"]
        if isinstance(m["content"], list)
        for block in m["content"]
        if block["type"] == "tool_use"
    ]
    assert [m["tool_call_id"] for m in out["messages"] if m["role"] == "tool"] == tool_use_ids
    schemas = {t["name"]: t["input_schema"] for t in body.get("tools", [])}
    sent = {t["function"]["name"]: t["function"]["parameters"] for t in out.get("tools", [])}
    assert sent == schemas
    assert out["messages"][0]["role"] == "system"
    assert translation.client_model == body["model"]


def test_claude_code_main_turn_records_what_it_dropped() -> None:
    translation = translate(load("main_turn.json"), make_target(max_output_tokens=16384))

    assert details(translation, "field_dropped") == ["context_management"]
    assert details(translation, "max_tokens_lowered") == ["64000 -> 16384 (model output limit)"]
    assert details(translation, "cache_control_stripped") == ["3"]
    assert details(translation, "thinking_dropped")  # no "reasoning" option on this target


# --- model, max_tokens, stream, endpoint -----------------------------------------------------------


def test_model_is_targets_model_when_set() -> None:
    assert translate(make_request()).upstream.body["model"] == "gpt-test"


def test_model_is_clients_model_when_target_model_empty() -> None:
    assert translate(make_request(), make_target(model="")).upstream.body["model"] == "claude-opus-4-8"


def test_max_tokens_passes_through_when_no_limit_known() -> None:
    translation = translate(make_request(max_tokens=64000))
    assert translation.upstream.body["max_tokens"] == 64000
    assert "max_tokens_lowered" not in kinds(translation)


def test_max_tokens_lowered_to_model_output_limit_when_smaller() -> None:
    translation = translate(make_request(max_tokens=64000), make_target(max_output_tokens=16384))
    assert translation.upstream.body["max_tokens"] == 16384
    assert details(translation, "max_tokens_lowered") == ["64000 -> 16384 (model output limit)"]


def test_max_tokens_not_raised_when_model_limit_larger() -> None:
    translation = translate(make_request(max_tokens=1000), make_target(max_output_tokens=16384))
    assert translation.upstream.body["max_tokens"] == 1000
    assert "max_tokens_lowered" not in kinds(translation)


def test_max_tokens_route_override_acts_as_ceiling() -> None:
    target = make_target(max_output_tokens=16384, overrides=(("max_tokens", 8000),))
    translation = translate(make_request(max_tokens=32000), target)
    assert translation.upstream.body["max_tokens"] == 8000
    assert details(translation, "max_tokens_lowered") == ["32000 -> 8000 (route override)"]
    assert translate(make_request(max_tokens=500), target).upstream.body["max_tokens"] == 500


def test_max_completion_tokens_sent_instead_when_option_set() -> None:
    body = translate(make_request(max_tokens=777), make_target(options=frozenset({"max_completion_tokens"})))
    assert body.upstream.body["max_completion_tokens"] == 777
    assert "max_tokens" not in body.upstream.body


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_tokens": None}, "max_tokens: required"),
        ({"max_tokens": 0}, "max_tokens: must be a positive integer"),
        ({"max_tokens": "10"}, "max_tokens: must be a positive integer"),
        ({"messages": []}, "messages: must be a non-empty list"),
        ({"messages": "hi"}, "messages: must be a non-empty list"),
        ({"model": ""}, "model: required"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages.0.role: must be"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content: must be"),
        ({"messages": [{"role": "user", "content": [{"text": "x"}]}]}, "messages.0.content.0: must be"),
        ({"temperature": "hot"}, "temperature: must be a number"),
        ({"stop_sequences": "END"}, "stop_sequences: must be a list of strings"),
        ({"tool_choice": {"type": "maybe"}, "tools": [TOOL]}, "tool_choice.type: unknown"),
        ({"thinking": {"type": "enabled"}}, "thinking.budget_tokens: must be an integer"),
        ({"tools": [{"name": "x"}]}, "tools.0.input_schema: must be an object"),
        ({"tools": [{"input_schema": {}}]}, "tools.0.name: required"),
        ({"tool_choice": {"type": "tool"}, "tools": [TOOL]}, "tool_choice.name: required"),
        ({"thinking": {"type": "sometimes"}}, "thinking.type: unknown"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64"}}]}]},
            "messages.0.content.0.source: media_type and data required",
        ),
    ],
)
def test_malformed_input_raises_translation_error_naming_the_field(change: dict, message: str) -> None:
    request = make_request()
    for key, value in change.items():
        if value is None:
            request.pop(key)
        else:
            request[key] = value
    with pytest.raises(TranslationError) as error:
        translate(request)
    assert error.value.message.startswith(message)
    assert error.value.status == 400


def test_stream_adds_include_usage_when_streaming() -> None:
    translation = translate(make_request(stream=True))
    assert translation.upstream.stream is True
    assert translation.upstream.body["stream"] is True
    assert translation.upstream.body["stream_options"] == {"include_usage": True}


def test_stream_omitted_when_not_streaming() -> None:
    translation = translate(make_request())
    assert translation.upstream.stream is False
    assert "stream" not in translation.upstream.body and "stream_options" not in translation.upstream.body


def test_upstream_endpoint_headers_and_identity_when_built() -> None:
    target = make_target(base_url="https://api.example.com/v1/", extra_headers=(("x-title", "switchboard"),))
    translation = build_request(
        make_request(), target, message_id="msg_abc", client_headers={"x-api-key": "c"}
    )
    upstream = translation.upstream
    assert (upstream.method, upstream.url) == ("POST", "https://api.example.com/v1/chat/completions")
    assert upstream.headers == {
        "authorization": "Bearer sk-test",
        "content-type": "application/json",
        "x-title": "switchboard",
    }
    assert (translation.client_model, translation.message_id) == ("claude-opus-4-8", "msg_abc")


def test_authorization_omitted_when_target_has_no_key() -> None:
    upstream = translate(make_request(), make_target(api_key="")).upstream
    assert "authorization" not in upstream.headers


# --- system -------------------------------------------------------------------------------------


def test_system_string_becomes_first_system_message() -> None:
    messages = translate(make_request(system="Be brief.")).upstream.body["messages"]
    assert messages[0] == {"role": "system", "content": "Be brief."}
    assert messages[1] == {"role": "user", "content": "hi"}


def test_system_blocks_joined_into_one_string_without_cache_control() -> None:
    system = [
        {"type": "text", "text": "billing"},
        {"type": "text", "text": "identity", "cache_control": {"type": "ephemeral"}},
    ]
    translation = translate(make_request(system=system))
    assert translation.upstream.body["messages"][0] == {"role": "system", "content": "billing\n\nidentity"}
    assert details(translation, "cache_control_stripped") == ["1"]


@pytest.mark.parametrize("folder", ["claude-code", "claude-code-2.1.332"])
def test_billing_header_is_dropped_so_two_conversations_send_the_same_prefix(folder: str) -> None:
    """Claude Code's attribution line differs between conversations (here 2.1.197.38b vs .e12): kept,
    no two conversations would share the backend's prefix cache for the ~10k-token system and tools."""
    first, other = (json.loads((FIXTURES.parent / folder / name).read_text())
                    for name in ("main_turn.json", "read_tool_result_turn.json"))  # fmt: skip
    assert first["system"][0]["text"] != other["system"][0]["text"]
    sent = [translate(r) for r in (first, other)]
    prefixes = [(t.upstream.body["messages"][0], t.upstream.body["tools"]) for t in sent]
    assert prefixes[0] == prefixes[1]
    assert "x-anthropic-billing-header" not in orjson.dumps(sent[0].upstream.body).decode()
    assert details(sent[0], "billing_header_dropped") == [first["system"][0]["text"].strip()]


def test_billing_header_line_of_a_string_system_prompt_is_dropped_and_nothing_else() -> None:
    header = "x-anthropic-billing-header: cc_version=2.1.332.8c9; cc_entrypoint=cli; cch=71fea;"
    translation = translate(make_request(system=f"{header}\nYou are a helpful agent."))
    assert translation.upstream.body["messages"][0]["content"] == "You are a helpful agent."
    assert details(translation, "billing_header_dropped") == [header]
    mentioned = "Never print the line x-anthropic-billing-header: to the user."
    assert translate(make_request(system=mentioned)).upstream.body["messages"][0]["content"] == mentioned


@pytest.mark.parametrize("content", ["Agents: a, b", [{"type": "text", "text": "Agents: a, b"}]])
def test_mid_conversation_system_message_kept_in_place(content: Any) -> None:
    messages = [
        {"role": "user", "content": "one"},
        {"role": "system", "content": content},
        {"role": "assistant", "content": "two"},
    ]
    out = translate(make_request(messages=messages)).upstream.body["messages"]
    assert out == [
        {"role": "user", "content": "one"},
        {"role": "system", "content": "Agents: a, b"},
        {"role": "assistant", "content": "two"},
    ]


def test_system_message_between_tool_call_and_result_moves_after_tool_messages() -> None:
    messages = tool_turn([{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}])
    messages.insert(2, {"role": "system", "content": "note"})
    out = translate(make_request(messages=messages)).upstream.body["messages"]
    assert [m["role"] for m in out] == ["user", "assistant", "tool", "system"]


# --- user and assistant content -------------------------------------------------------------------


def test_empty_text_blocks_dropped() -> None:
    content = [{"type": "text", "text": ""}, {"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    out = translate(make_request(messages=[{"role": "user", "content": content}])).upstream.body["messages"]
    assert out == [{"role": "user", "content": "a\n\nb"}]


def test_base64_image_becomes_data_url_part() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}}
    content = [{"type": "text", "text": "what is this?"}, image]
    out = translate(make_request(messages=[{"role": "user", "content": content}])).upstream.body["messages"]
    assert out[0]["content"] == [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
    ]


def test_url_image_becomes_image_url_part() -> None:
    image = {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}
    out = translate(make_request(messages=[{"role": "user", "content": [image]}])).upstream.body["messages"]
    assert out[0]["content"] == [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]


def test_tool_use_becomes_tool_call_with_json_arguments() -> None:
    messages = tool_turn([{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.txt"}])
    messages[1]["content"].insert(0, {"type": "text", "text": "Listing."})
    messages[1]["content"][1]["input"] = {"command": "ls", "note": "héllo"}
    assistant = translate(make_request(messages=messages)).upstream.body["messages"][1]
    assert assistant["content"] == "Listing."
    call = assistant["tool_calls"][0]
    assert (call["id"], call["type"], call["function"]["name"]) == ("toolu_1", "function", "Bash")
    assert json.loads(call["function"]["arguments"]) == {"command": "ls", "note": "héllo"}


def test_assistant_content_null_when_only_tool_calls() -> None:
    messages = tool_turn([{"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"}])
    assert translate(make_request(messages=messages)).upstream.body["messages"][1]["content"] is None


def test_backend_tool_ids_restored_exactly_when_replayed() -> None:
    kimi_id = "functions.Bash:0"
    client_id = tool_id_to_client(kimi_id)
    messages = tool_turn(
        [{"type": "tool_result", "tool_use_id": client_id, "content": "x"}], tool_ids=(client_id,)
    )
    out = translate(make_request(messages=messages)).upstream.body["messages"]
    assert out[1]["tool_calls"][0]["id"] == kimi_id
    assert out[2]["tool_call_id"] == kimi_id


def test_thinking_replayed_as_reasoning_content_when_option_set() -> None:
    messages = tool_turn([{"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"}])
    signature = reasoning.mint(dialect="openai", provider="acme", payload="reasoning_content")
    messages[1]["content"].insert(0, {"type": "thinking", "thinking": "list it", "signature": signature})
    translation = translate(
        make_request(messages=messages), make_target(options=frozenset({"replay_reasoning"}))
    )
    assert translation.upstream.body["messages"][1]["reasoning_content"] == "list it"
    assert "reasoning_dropped" not in kinds(translation)


def test_thinking_another_provider_or_anthropic_made_is_never_replayed() -> None:
    messages = tool_turn([{"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"}])
    other = reasoning.mint(dialect="openai", provider="deepseek-b", payload="reasoning_content")
    messages[1]["content"][:0] = [
        {"type": "thinking", "thinking": "from b", "signature": other},
        {"type": "thinking", "thinking": "from claude", "signature": "EqQBCkgIARABGAIiQL"},
    ]
    translation = translate(
        make_request(messages=messages), make_target(options=frozenset({"replay_reasoning"}))
    )
    # DeepSeek still gets its (empty) reasoning_content on the tool-call turn, none of the others' text.
    assert translation.upstream.body["messages"][1]["reasoning_content"] == ""
    assert details(translation, "foreign_reasoning_dropped") == [
        "1 thinking block(s) minted by openai provider 'deepseek-b'",
        "1 thinking block(s) minted by Anthropic",
    ]


def test_thinking_replayed_in_the_field_our_signature_names() -> None:
    # The response side signs thinking from OpenRouter's `reasoning` field "switchboard.openai.reasoning".
    messages = tool_turn([{"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"}])
    thinking = {"type": "thinking", "thinking": "hmm", "signature": "switchboard.openai.reasoning"}
    messages[1]["content"].insert(0, thinking)
    target = make_target(options=frozenset({"replay_reasoning"}))
    assistant = translate(make_request(messages=messages), target).upstream.body["messages"][1]
    assert assistant["reasoning"] == "hmm"
    assert "reasoning_content" not in assistant


def test_empty_reasoning_content_on_tool_call_turn_when_replaying_without_thinking() -> None:
    # DeepSeek rejects a tool-call turn without reasoning_content in thinking mode.
    messages = tool_turn([{"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"}])
    target = make_target(options=frozenset({"replay_reasoning"}))
    assert (
        translate(make_request(messages=messages), target).upstream.body["messages"][1]["reasoning_content"]
        == ""
    )


def test_thinking_dropped_once_when_not_replayed() -> None:
    def answer(thought: str, text: str) -> dict[str, Any]:
        signature = reasoning.mint(dialect="openai", provider="acme", payload="reasoning_content")
        blocks = [
            {"type": "thinking", "thinking": thought, "signature": signature},
            {"type": "text", "text": text},
        ]
        return {"role": "assistant", "content": blocks}

    messages = [
        {"role": "user", "content": "q"},
        answer("a", "A"),
        {"role": "user", "content": "q2"},
        answer("b", "B"),
        {"role": "user", "content": "q3"},
    ]
    translation = translate(make_request(messages=messages))
    assert details(translation, "reasoning_dropped") == ["2 thinking block(s)"]
    assert "reasoning_content" not in orjson.dumps(translation.upstream.body).decode()
    assert translation.upstream.body["messages"][1] == {"role": "assistant", "content": "A"}


def test_redacted_thinking_always_dropped() -> None:
    messages = [
        {"role": "user", "content": "q"},
        {
            "role": "assistant",
            "content": [{"type": "redacted_thinking", "data": "xyz"}, {"type": "text", "text": "A"}],
        },
        {"role": "user", "content": "q2"},
    ]
    translation = translate(
        make_request(messages=messages), make_target(options=frozenset({"replay_reasoning"}))
    )
    assert details(translation, "foreign_reasoning_dropped") == ["1 thinking block(s) minted by Anthropic"]
    assert "xyz" not in orjson.dumps(translation.upstream.body).decode()


def test_known_blocks_without_a_counterpart_are_dropped_and_listed_as_lost_content() -> None:
    content = [{"type": "text", "text": "hi"},
               {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []}]  # fmt: skip
    translation = translate(make_request(messages=[{"role": "user", "content": content}]))
    assert translation.upstream.body["messages"] == [{"role": "user", "content": "hi"}]
    assert details(translation, "content_dropped") == ["messages.0.content.1: web_search_tool_result block"]


# --- tool results -------------------------------------------------------------------------------


def test_tool_results_become_tool_messages_then_user_text_when_mixed() -> None:
    blocks = [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "one"},
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "two"},
        {"type": "text", "text": "and now?"},
    ]
    out = translate(make_request(messages=tool_turn(blocks, tool_ids=("toolu_1", "toolu_2")))).upstream.body
    assert out["messages"][2:] == [
        {"role": "tool", "tool_call_id": "toolu_1", "content": "one"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "two"},
        {"role": "user", "content": "and now?"},
    ]


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ({"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}, "a\nb"),
        ({"content": []}, ""),
        ({}, ""),
        ({"content": "boom", "is_error": True}, "Error: boom"),
        ({"content": [{"type": "text", "text": "boom"}], "is_error": True}, "Error: boom"),
        ({"content": "fine", "is_error": False}, "fine"),
    ],
)
def test_tool_result_content_becomes_tool_message_text(block: dict[str, Any], expected: str) -> None:
    result = {"type": "tool_result", "tool_use_id": "toolu_1", **block}
    translation = translate(make_request(messages=tool_turn([result])))
    assert translation.upstream.body["messages"][2] == {
        "role": "tool",
        "tool_call_id": "toolu_1",
        "content": expected,
    }
    assert translation.changes == []


def test_tool_result_images_moved_to_user_message_after_tool_messages() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "AAAA"}}
    client_id = tool_id_to_client("functions.Screenshot:0")
    result = {
        "type": "tool_result",
        "tool_use_id": client_id,
        "content": [{"type": "text", "text": "shot"}, image],
    }
    messages = tool_turn([result, {"type": "text", "text": "look"}], tool_ids=(client_id,))
    translation = translate(make_request(messages=messages))
    out = translation.upstream.body["messages"]
    assert out[2] == {"role": "tool", "tool_call_id": "functions.Screenshot:0", "content": "shot"}
    assert out[3] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "Image from tool result functions.Screenshot:0:"},
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}},
            {"type": "text", "text": "look"},
        ],
    }
    assert len(out) == 4
    assert kinds(translation) == ["tool_result_image_moved"]


def test_tool_reference_becomes_tool_loaded_text() -> None:
    reference = {"type": "tool_reference", "tool_name": "NotebookEdit"}
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": [reference]}
    translation = translate(make_request(messages=tool_turn([result])))
    assert translation.upstream.body["messages"][2]["content"] == "Tool loaded: NotebookEdit"
    assert kinds(translation) == ["tool_reference_converted"]


def test_unknown_tool_use_id_raises_naming_the_block() -> None:
    blocks = [
        {"type": "text", "text": "x"},
        {"type": "tool_result", "tool_use_id": "toolu_9", "content": "x"},
    ]
    with pytest.raises(TranslationError, match=r"^messages\.2\.content\.1: unknown tool_use_id$"):
        translate(make_request(messages=tool_turn(blocks)))


def test_tool_use_without_result_raises_naming_the_tool_use() -> None:
    messages = tool_turn([{"type": "text", "text": "never mind"}])
    with pytest.raises(
        TranslationError, match=r"^messages\.1\.content\.0: tool_use toolu_1 has no tool_result"
    ):
        translate(make_request(messages=messages))


# --- tools and tool_choice ------------------------------------------------------------------------


def test_tools_become_functions_with_schema_unchanged() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"command": {"type": "string"}},
        "required": ["command"],
        "additionalProperties": False,
    }
    tool = {
        "name": "Bash",
        "description": "Run",
        "input_schema": schema,
        "cache_control": {"type": "ephemeral"},
    }
    translation = translate(make_request(tools=[tool]))
    assert translation.upstream.body["tools"] == [
        {"type": "function", "function": {"name": "Bash", "description": "Run", "parameters": schema}}
    ]
    assert details(translation, "cache_control_stripped") == ["1"]


def test_long_tool_names_shortened_consistently_in_tools_history_and_choice() -> None:
    long_name = "mcp__github_enterprise_server__create_pull_request_review_comment_reply"
    dotted = "mcp__files.read"
    tools = [{**TOOL, "name": long_name}, {**TOOL, "name": dotted}, TOOL]
    messages = tool_turn([{"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"}])
    messages[1]["content"][0]["name"] = long_name
    request = make_request(tools=tools, messages=messages, tool_choice={"type": "tool", "name": long_name})
    translation = translate(request)
    body = translation.upstream.body
    short, short_dotted = shorten(long_name), shorten(dotted)
    assert len(short) <= 64 and short != long_name
    assert [t["function"]["name"] for t in body["tools"]] == [short, short_dotted, "Bash"]
    assert body["messages"][1]["tool_calls"][0]["function"]["name"] == short
    assert body["tool_choice"] == {"type": "function", "function": {"name": short}}
    assert translation.tool_names == {short: long_name, short_dotted: dotted}
    assert details(translation, "tool_renamed") == [f"{long_name} -> {short}", f"{dotted} -> {short_dotted}"]


def test_defer_loading_tool_still_sent() -> None:
    translation = translate(make_request(tools=[{**TOOL, "defer_loading": True}]))
    assert translation.upstream.body["tools"][0]["function"]["name"] == "Bash"
    assert "defer_loading" not in orjson.dumps(translation.upstream.body).decode()
    assert details(translation, "defer_loading_ignored") == ["Bash"]


def test_server_tools_dropped_and_listed() -> None:
    web = {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
    translation = translate(make_request(tools=[web, TOOL]))
    assert [t["function"]["name"] for t in translation.upstream.body["tools"]] == ["Bash"]
    assert details(translation, "field_dropped") == ["tools.0: server tool web_search_20250305 (web_search)"]


def test_empty_tools_sends_no_tools_key() -> None:
    assert "tools" not in translate(make_request(tools=[])).upstream.body


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "any"}, {"tool_choice": "required"}),
        ({"type": "none"}, {"tool_choice": "none"}),
        (
            {"type": "tool", "name": "Bash"},
            {"tool_choice": {"type": "function", "function": {"name": "Bash"}}},
        ),
        (
            {"type": "auto", "disable_parallel_tool_use": True},
            {"tool_choice": "auto", "parallel_tool_calls": False},
        ),
        ({"type": "any", "disable_parallel_tool_use": False}, {"tool_choice": "required"}),
    ],
)
def test_tool_choice_mapped(choice: dict[str, Any], expected: dict[str, Any]) -> None:
    body = translate(make_request(tools=[TOOL], tool_choice=choice)).upstream.body
    assert {k: body[k] for k in ("tool_choice", "parallel_tool_calls") if k in body} == expected


def test_tool_choice_not_forwarded_when_no_tools() -> None:
    translation = translate(make_request(tool_choice={"type": "any"}))
    assert "tool_choice" not in translation.upstream.body
    assert details(translation, "field_dropped") == ["tool_choice: no tools sent"]


# --- thinking -------------------------------------------------------------------------------------

REASONING = make_target(options=frozenset({"reasoning"}))


@pytest.mark.parametrize(
    ("budget", "effort"), [(1024, "low"), (4095, "low"), (4096, "medium"), (16383, "medium"), (16384, "high")]
)
def test_thinking_budget_mapped_to_reasoning_effort_bucket(budget: int, effort: str) -> None:
    translation = translate(make_request(thinking={"type": "enabled", "budget_tokens": budget}), REASONING)
    assert translation.upstream.body["reasoning_effort"] == effort
    assert chat_state(translation).reasoning is True
    assert kinds(translation) == ["thinking_mapped"]


@pytest.mark.parametrize(
    ("output_config", "effort"),
    [
        ({"effort": "low"}, "low"),
        ({"effort": "medium"}, "medium"),
        ({"effort": "high"}, "high"),
        ({"effort": "max"}, "high"),
        ({"effort": "xhigh"}, "high"),
        (None, "medium"),
    ],
)
def test_adaptive_thinking_uses_output_config_effort(output_config: dict | None, effort: str) -> None:
    request = make_request(thinking={"type": "adaptive", "display": "updates"})
    if output_config is not None:
        request["output_config"] = output_config
    translation = translate(request, REASONING)
    assert translation.upstream.body["reasoning_effort"] == effort
    assert "display" not in orjson.dumps(translation.upstream.body).decode()


def test_thinking_disabled_sends_nothing() -> None:
    request = make_request(thinking={"type": "disabled"}, output_config={"effort": "high"})
    translation = translate(request, REASONING)
    assert "reasoning_effort" not in translation.upstream.body
    assert chat_state(translation).reasoning is False
    assert translation.changes == []


def test_thinking_dropped_when_target_does_not_reason() -> None:
    translation = translate(make_request(thinking={"type": "enabled", "budget_tokens": 5000}))
    assert "reasoning_effort" not in translation.upstream.body
    assert kinds(translation) == ["thinking_dropped"]
    assert chat_state(translation).reasoning is True


def test_thinking_route_override_reasoning_effort_wins() -> None:
    target = make_target(options=frozenset({"reasoning"}), overrides=(("reasoning_effort", "low"),))
    request = make_request(thinking={"type": "adaptive"}, output_config={"effort": "max"})
    assert translate(request, target).upstream.body["reasoning_effort"] == "low"


# --- output format, stop sequences, sampling, metadata ---------------------------------------------


def test_output_format_becomes_strict_response_format_when_schema_closed() -> None:
    request = load("background_title.json")
    schema = request["output_config"]["format"]["schema"]
    translation = translate(request)
    assert translation.upstream.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": True},
    }
    # The effort beside it is dropped quietly.
    assert kinds(translation) == ["billing_header_dropped", "response_format"]


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
        {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False},
        {
            "type": "object",
            "properties": {"a": {"type": "array", "items": {"type": "object", "properties": {"b": {}}}}},
            "required": ["a"],
            "additionalProperties": False,
        },
    ],
)
def test_output_format_not_strict_when_schema_open(schema: dict[str, Any]) -> None:
    request = make_request(output_config={"format": {"type": "json_schema", "schema": schema}})
    response_format = translate(request).upstream.body["response_format"]
    assert response_format["json_schema"]["strict"] is False
    assert response_format["json_schema"]["schema"] == schema


def test_stop_sequences_beyond_limit_matched_locally() -> None:
    stops = ["A", "B", "C", "D", "E", "F"]
    request = make_request(stop_sequences=stops)
    translation = translate(request)
    assert translation.upstream.body["stop"] == ["A", "B", "C", "D"]
    assert chat_state(translation).local_stop_sequences == ("E", "F")
    assert translation.stop_sequences == tuple(stops)
    assert kinds(translation) == ["stop_sequences_local"]
    # Kept to estimate the usage of a stream we may cut before the backend reports it.
    assert chat_state(translation).request is request


def test_stop_sequences_limit_from_target_option() -> None:
    target = make_target(options=frozenset({"max_stop_sequences=1"}))
    translation = translate(make_request(stop_sequences=["A", "B"]), target)
    assert translation.upstream.body["stop"] == ["A"]
    assert chat_state(translation).local_stop_sequences == ("B",)


def test_stop_sequences_default_limit_when_option_malformed() -> None:
    target = make_target(options=frozenset({"max_stop_sequences=lots"}))
    translation = translate(make_request(stop_sequences=["A", "B", "C", "D", "E"]), target)
    assert translation.upstream.body["stop"] == ["A", "B", "C", "D"]


def test_stop_sequences_all_sent_when_within_limit() -> None:
    translation = translate(make_request(stop_sequences=["END"]))
    assert translation.upstream.body["stop"] == ["END"]
    assert chat_state(translation).local_stop_sequences == ()
    assert chat_state(translation).request is None  # nothing to cut: nothing kept
    assert translation.changes == []


def test_temperature_and_top_p_passed_through() -> None:
    body = translate(make_request(temperature=0.3, top_p=0.9)).upstream.body
    assert (body["temperature"], body["top_p"]) == (0.3, 0.9)


def test_temperature_route_override_wins() -> None:
    target = make_target(overrides=(("temperature", 0.0),))
    assert translate(make_request(temperature=1), target).upstream.body["temperature"] == 0.0


def test_top_k_dropped_unless_target_accepts_it() -> None:
    translation = translate(make_request(top_k=40))
    assert "top_k" not in translation.upstream.body
    assert details(translation, "param_dropped") == ["top_k"]
    kept = translate(make_request(top_k=40), make_target(options=frozenset({"top_k"})))
    assert kept.upstream.body["top_k"] == 40
    assert kept.changes == []


def test_user_is_session_id_from_claude_code_metadata() -> None:
    body = translate(load("main_turn.json")).upstream.body
    assert body["user"] == "00000000-0000-4000-8000-000000000000"


def test_user_is_raw_user_id_truncated_when_not_json() -> None:
    body = translate(make_request(metadata={"user_id": "u" * 100})).upstream.body
    assert body["user"] == "u" * 64


def test_prompt_cache_key_sent_instead_of_user_when_option_set() -> None:
    target = make_target(options=frozenset({"prompt_cache_key"}))
    body = translate(
        make_request(metadata={"user_id": json.dumps({"session_id": "s-1"})}), target
    ).upstream.body
    assert body["prompt_cache_key"] == "s-1"
    assert "user" not in body


# --- Anthropic-only fields and cache_control ------------------------------------------------------


def test_anthropic_only_fields_dropped_and_listed() -> None:
    extra = {
        "context_management": {"edits": []},
        "safeguards": [{"type": "dangerous_tool_use"}],
        "container": "c1",
        "mcp_servers": [],
        "service_tier": "auto",
        "brand_new_field": 1,
    }
    translation = translate(make_request(**extra))
    assert not set(extra) & set(translation.upstream.body)
    assert details(translation, "field_dropped") == list(extra)


def test_cache_control_stripped_everywhere_with_one_change() -> None:
    ephemeral = {"type": "ephemeral"}
    messages = tool_turn(
        [
            {
                "type": "tool_result",
                "tool_use_id": "toolu_1",
                "cache_control": ephemeral,
                "content": [{"type": "text", "text": "x", "cache_control": ephemeral}],
            }
        ]
    )
    messages[0]["content"] = [{"type": "text", "text": "go", "cache_control": ephemeral}]
    request = make_request(
        messages=messages,
        system=[{"type": "text", "text": "s", "cache_control": ephemeral}],
        tools=[{**TOOL, "cache_control": ephemeral}],
        cache_control=ephemeral,
    )
    translation = translate(request)
    assert "cache_control" not in orjson.dumps(translation.upstream.body).decode()
    assert details(translation, "cache_control_stripped") == ["6"]


def test_module_imports_nothing_from_django_or_httpx() -> None:
    tree = ast.parse(MODULE.read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "json", "dataclasses", "typing", "orjson"}
    assert not imported & {"django", "httpx"}

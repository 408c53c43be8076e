"""Opaque reasoning per dialect: the openai dialect's tagged signatures and Gemini thought signatures,
the passthrough's foreign-thinking filter, tags and capability-profile quirks (anthropic_profile.py)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from proxy.translate import anthropic_profile, reasoning
from proxy.translate.accumulate import accumulate
from proxy.translate.anthropic import DIALECT as ANTHROPIC
from proxy.translate.base import UpstreamError
from proxy.translate.openai_chat import DIALECT as OPENAI
from proxy.translate.types import Change, SSEEvent, Target

GEMINI = Target(
    provider="gem",
    dialect="openai",
    base_url="https://generativelanguage.googleapis.com/v1beta/openai",
    model="gemini-3-pro-preview",
    api_key="k",
)
COMPAT = Target(provider="ds", dialect="anthropic", base_url="https://api.deepseek.com/anthropic", model="m")
OFFICIAL = Target(provider="claude", dialect="anthropic", base_url="https://api.anthropic.com", model="")
TOOLS = [{"name": "Bash", "input_schema": {"type": "object"}}]


def _chunk(delta: dict[str, Any], finish: str | None = None) -> SSEEvent:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return SSEEvent(
        data=orjson.dumps({"id": "c", "object": "chat.completion.chunk", "choices": [choice]}).decode()
    )


def _request(messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"model": "claude-x", "max_tokens": 100, "messages": messages, "tools": TOOLS, **extra}


def _gemini_stream_turn() -> list[dict[str, Any]]:
    """A streamed Gemini (OpenAI endpoint) tool call with its thought signature, as the client keeps it."""
    translation = OPENAI.build_request(
        _request([{"role": "user", "content": "ls"}], stream=True),
        GEMINI,
        message_id="msg_1",
        client_headers={},
    )
    translator = OPENAI.stream_translator(translation)
    call = {
        "index": 0,
        "id": "call_a",
        "type": "function",
        "function": {"name": "Bash", "arguments": "{}"},
        "extra_content": {"google": {"thought_signature": "CvYBAQ=="}},
    }
    events = []
    for event in (
        _chunk({"role": "assistant", "tool_calls": [call]}),
        _chunk({}, "tool_calls"),
        SSEEvent("[DONE]"),
    ):
        events += translator.feed(event)
    events += translator.finish()
    return accumulate(events)["content"]  # type: ignore[return-value]


def test_a_streamed_gemini_thought_signature_rides_a_thinking_block_before_its_call() -> None:
    content = _gemini_stream_turn()
    assert [b["type"] for b in content] == ["thinking", "tool_use"]
    assert content[0]["thinking"] == "" and reasoning.read(content[0]["signature"]).provider == "gem"  # type: ignore[union-attr]


def test_the_thought_signature_goes_back_on_its_call_and_only_to_its_provider() -> None:
    content = _gemini_stream_turn()
    call_id = content[1]["id"]
    messages = [
        {"role": "user", "content": "ls"},
        {"role": "assistant", "content": content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call_id, "content": "a"}]},
    ]
    sent = OPENAI.build_request(_request(messages), GEMINI, message_id="m", client_headers={}).upstream.body
    assert sent["messages"][1]["tool_calls"][0]["extra_content"] == {
        "google": {"thought_signature": "CvYBAQ=="}
    }
    other = Target(**{**_fields(GEMINI), "provider": "gem-2"})
    translation = OPENAI.build_request(_request(messages), other, message_id="m", client_headers={})
    call = translation.upstream.body["messages"][1]["tool_calls"][0]
    assert call["extra_content"]["google"]["thought_signature"] == "skip_thought_signature_validator"
    assert "CvYBAQ" not in orjson.dumps(translation.upstream.body).decode()


def _fields(target: Target) -> dict[str, Any]:
    return {name: getattr(target, name) for name in target.__slots__}  # type: ignore[attr-defined]


def test_a_legacy_switchboard_mark_is_still_replayed_to_a_replaying_backend() -> None:
    # Sessions recorded before tagged signatures: their blocks name no provider, and stay readable.
    messages = [
        {"role": "user", "content": "q"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "old", "signature": "switchboard.openai.reasoning_content"},
                {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a"}]},
    ]
    target = Target(
        provider="ds",
        dialect="openai",
        base_url="https://api.deepseek.com",
        model="deepseek-reasoner",
        options=frozenset({"replay_reasoning"}),
    )
    body = OPENAI.build_request(_request(messages), target, message_id="m", client_headers={}).upstream.body
    assert body["messages"][1]["reasoning_content"] == "old"


# --- the passthrough ------------------------------------------------------------------------------


def _thinking(signature: str) -> dict[str, Any]:
    return {"type": "thinking", "thinking": "t", "signature": signature}


def test_a_compatible_servers_signature_is_tagged_out_and_unwrapped_back_to_it_only() -> None:
    tagged = anthropic_profile.tag_signature("ds-own", provider="ds")
    assert isinstance(tagged, str) and tagged != "ds-own"
    assert anthropic_profile.tag_signature(tagged, provider="ds") == tagged  # never tagged twice
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [_thinking(tagged), {"type": "text", "text": "a"}]},
        {"role": "user", "content": "q2"},
    ]
    changes: list[Change] = []
    back, _ = anthropic_profile.without_foreign_thinking(
        messages, target=COMPAT, official=False, changes=changes
    )
    assert back[1]["content"][0]["signature"] == "ds-own" and changes == []  # type: ignore[index]
    to_claude, _ = anthropic_profile.without_foreign_thinking(
        messages, target=OFFICIAL, official=True, changes=changes
    )
    assert to_claude[1]["content"] == [{"type": "text", "text": "a"}]  # type: ignore[index]
    assert changes == [
        Change("foreign_reasoning_dropped", "1 thinking block(s) minted by anthropic provider 'ds'")
    ]
    assert messages[1]["content"][0]["signature"] == tagged  # the client's request is never edited


def test_anthropics_own_thinking_goes_to_anthropic_only() -> None:
    messages = [
        {
            "role": "assistant",
            "content": [
                _thinking("EqQBAnthropic"),
                {"type": "redacted_thinking", "data": "Zm9v"},
                {"type": "text", "text": "a"},
            ],
        }
    ]
    same, _ = anthropic_profile.without_foreign_thinking(messages, target=OFFICIAL, official=True, changes=[])
    assert same is messages
    changes: list[Change] = []
    out, _ = anthropic_profile.without_foreign_thinking(
        messages, target=COMPAT, official=False, changes=changes
    )
    assert out[0]["content"] == [{"type": "text", "text": "a"}]  # type: ignore[index]
    assert changes[0].detail == "2 thinking block(s) minted by Anthropic"


def test_an_assistant_turn_of_only_foreign_thinking_is_left_out() -> None:
    legacy = _thinking("switchboard.openai.reasoning_content")
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [legacy]},
        {"role": "user", "content": "q2"},
    ]
    out, _ = anthropic_profile.without_foreign_thinking(messages, target=OFFICIAL, official=True, changes=[])
    assert [m["role"] for m in out] == ["user", "user"]  # type: ignore[index]


def test_the_compatible_servers_stream_gets_its_signatures_tagged_and_tool_ids_made_valid() -> None:
    translation = ANTHROPIC.build_request(
        _request([{"role": "user", "content": "q"}], stream=True), COMPAT, message_id="m", client_headers={}
    )
    translator = ANTHROPIC.stream_translator(translation)
    delta = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "signature_delta", "signature": "ds-1"},
    }
    start = {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "functions.Bash:0", "name": "Bash", "input": {}},
    }
    out = translator.feed(SSEEvent(orjson.dumps(delta).decode())) + translator.feed(
        SSEEvent(orjson.dumps(start).decode())
    )
    assert reasoning.minted_by(out[0]["delta"]["signature"], dialect="anthropic", provider="ds") == "ds-1"
    assert out[1]["content_block"]["id"].startswith("toolu_")
    official = ANTHROPIC.stream_translator(
        ANTHROPIC.build_request(
            _request([{"role": "user", "content": "q"}]), OFFICIAL, message_id="m", client_headers={}
        )
    )
    assert official.feed(SSEEvent(orjson.dumps(delta).decode())) == [delta]  # Anthropic's stay as they are


def test_a_bare_error_in_the_stream_becomes_an_upstream_error() -> None:
    translator = ANTHROPIC.stream_translator(
        ANTHROPIC.build_request(
            _request([{"role": "user", "content": "q"}]), COMPAT, message_id="m", client_headers={}
        )
    )
    with pytest.raises(UpstreamError, match="runner stopped"):
        translator.feed(SSEEvent('{"error": "runner stopped"}'))
    assert translator.finish() == []


@pytest.mark.parametrize(
    ("quirk", "choice", "tools", "sent", "instruction"),
    [
        ("tool_choice_any_is_auto", {"type": "any"}, TOOLS, {"type": "tool", "name": "Bash"}, None),
        ("tool_choice_any_is_auto", {"type": "auto"}, TOOLS, {"type": "auto"}, None),
        (
            "tool_choice_any_is_auto",
            {"type": "any"},
            [*TOOLS, {"name": "Read", "input_schema": {}}],
            None,
            "You must call one of the tools",
        ),
        ("no_tool_choice", {"type": "tool", "name": "Bash"}, TOOLS, None, "You must call the tool Bash"),
        ("no_tool_choice", {"type": "auto"}, TOOLS, None, None),
    ],
)
def test_tool_choice_is_emulated_where_the_server_lacks_it(
    quirk: str, choice: dict[str, Any], tools: list[dict[str, Any]], sent: Any, instruction: str | None
) -> None:
    target = Target(**{**_fields(COMPAT), "options": frozenset({quirk})})
    body = {"system": "be brief", "tools": tools, "tool_choice": choice, "messages": []}
    anthropic_profile.apply_profile(body, target=target, changes=[])
    assert body.get("tool_choice") == sent
    assert (instruction in body["system"]) if instruction else body["system"] == "be brief"


def test_kimi_tool_ids_are_numbered_through_the_conversation_and_kimis_own_kept() -> None:
    kimi_own = "toolu_sb64_" + "ZnVuY3Rpb25zLlJlYWQ6Nw"  # ids.py's encoding of functions.Read:7
    messages = [
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_a", "name": "Bash", "input": {}},
                {"type": "tool_use", "id": kimi_own, "name": "Read", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": ""},
                {"type": "tool_result", "tool_use_id": kimi_own, "content": ""},
            ],
        },
    ]
    target = Target(**{**_fields(COMPAT), "options": frozenset({"tool_ids=functions"})})
    body: dict[str, Any] = {"messages": messages}
    anthropic_profile.apply_profile(body, target=target, changes=[])
    assert [b["id"] for b in body["messages"][0]["content"]] == ["functions.Bash:0", "functions.Read:7"]
    assert [b["tool_use_id"] for b in body["messages"][1]["content"]] == [
        "functions.Bash:0",
        "functions.Read:7",
    ]

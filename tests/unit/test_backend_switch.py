"""Reasoning that survives a change of backend: every pair of backends, in a conversation that switches.

Turn 1 goes to backend A, which answers with opaque reasoning (an Anthropic signature, DeepSeek's
reasoning_content, Gemini's thought signature, ...) and a tool call; turn 2 (the tool result) goes to
backend B; turn 3 back to A. What each backend receives is checked: a backend gets back only what it
minted itself, never another's, and every foreign block left out is recorded as a change.

A new dialect joins by adding a `Backend` (how its reply looks on the wire, and how to find opaque
reasoning in a request it is sent) to BACKENDS; it runs once its dialect is in the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from proxy.translate.dialects import DIALECTS
from proxy.translate.types import Target, Translation

TOOLS = [{"name": "Bash", "description": "run", "input_schema": {"type": "object", "properties": {}}}]


@dataclass(frozen=True)
class Backend:
    id: str
    target: Target
    reply: Callable[[], dict[str, Any]]  # the backend's non-streaming answer: reasoning + a Bash call
    marker: str  # the opaque value its reply carries (unique to it)
    sent: Callable[[dict[str, Any]], list[str]]  # opaque reasoning values in a request body sent to it
    foreign_change: str  # how a request elsewhere names it in `foreign_reasoning_dropped`

    @property
    def dialect(self) -> Any:
        return DIALECTS[self.target.dialect]


def _target(provider: str, dialect: str, base_url: str, model: str, *options: str) -> Target:
    return Target(
        provider=provider, dialect=dialect, base_url=base_url, model=model, api_key="k",
        options=frozenset(options),
    )  # fmt: skip


# --- Anthropic Messages --------------------------------------------------------------------------


def _anthropic_reply(signature: str) -> Callable[[], dict[str, Any]]:
    return lambda: {
        "id": "msg_up",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [
            {"type": "thinking", "thinking": "I should list.", "signature": signature},
            {"type": "tool_use", "id": f"toolu_{signature[-6:]}", "name": "Bash", "input": {}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 5},
    }


def _anthropic_sent(body: dict[str, Any]) -> list[str]:
    return [
        block.get("signature") or block.get("data")
        for message in body["messages"]
        if isinstance(message.get("content"), list)
        for block in message["content"]
        if block.get("type") in ("thinking", "redacted_thinking")
    ]


# --- OpenAI Chat Completions ---------------------------------------------------------------------


def _chat_reply(*, reasoning: str = "", thought_signature: str = "") -> Callable[[], dict[str, Any]]:
    call: dict[str, Any] = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "Bash", "arguments": "{}"},
    }
    if thought_signature:
        call["extra_content"] = {"google": {"thought_signature": thought_signature}}
    message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [call]}
    if reasoning:
        message["reasoning_content"] = reasoning
    return lambda: {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 5},
    }


def _chat_sent(body: dict[str, Any]) -> list[str]:
    found = [m["reasoning_content"] for m in body["messages"] if m.get("reasoning_content")]
    for message in body["messages"]:
        for call in message.get("tool_calls") or ():
            signature = (call.get("extra_content") or {}).get("google", {}).get("thought_signature")
            if signature and signature != "skip_thought_signature_validator":
                found.append(signature)
    return found


# --- Gemini generateContent (joins when the gemini dialect is on main) ----------------------------


def _gemini_reply() -> dict[str, Any]:
    call = {"functionCall": {"name": "Bash", "args": {}}, "thoughtSignature": "gemini-native-sig"}
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": "I should list.", "thought": True}, call]},
                "finishReason": "STOP",
            }
        ],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 5, "totalTokenCount": 10},
    }


def _gemini_sent(body: dict[str, Any]) -> list[str]:
    return [
        part["thoughtSignature"]
        for content in body.get("contents", [])
        for part in content.get("parts", [])
        if part.get("thoughtSignature")
        # Google's documented placeholders for calls another model made
        and part["thoughtSignature"]
        not in ("skip_thought_signature_validator", "context_engineering_is_the_way_to_go")
    ]


# --- OpenAI Responses (joins when the openai_responses dialect is on main) ------------------------


def _responses_reply() -> dict[str, Any]:
    return {
        "id": "resp_1",
        "object": "response",
        "status": "completed",
        "model": "m",
        "output": [
            {
                "type": "reasoning",
                "id": "rs_1",
                "summary": [{"type": "summary_text", "text": "I should list."}],
                "encrypted_content": "responses-encrypted",
            },
            {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_1",
                "name": "Bash",
                "arguments": "{}",
                "status": "completed",
            },
        ],
        "usage": {"input_tokens": 5, "output_tokens": 5, "total_tokens": 10},
    }


def _responses_sent(body: dict[str, Any]) -> list[str]:
    return [i["encrypted_content"] for i in body.get("input", []) if i.get("encrypted_content")]


BACKENDS = [
    Backend(
        id="anthropic",
        target=_target("anthropic", "anthropic", "https://api.anthropic.com", ""),
        reply=_anthropic_reply("EqQBCkgIARABGAIiQLanthr"),
        marker="EqQBCkgIARABGAIiQLanthr",
        sent=_anthropic_sent,
        foreign_change="Anthropic",
    ),
    Backend(
        id="deepseek-anthropic",  # Anthropic-compatible: its signatures are its own, not Anthropic's
        target=_target("ds-anthropic", "anthropic", "https://api.deepseek.com/anthropic", "deepseek-chat"),
        reply=_anthropic_reply("deepseek-compat-sig"),
        marker="deepseek-compat-sig",
        sent=_anthropic_sent,
        foreign_change="anthropic provider 'ds-anthropic'",
    ),
    Backend(
        id="deepseek",
        target=_target(
            "deepseek",
            "openai",
            "https://api.deepseek.com",
            "deepseek-reasoner",
            "reasoning",
            "replay_reasoning",
        ),
        reply=_chat_reply(reasoning="deepseek thought"),
        marker="deepseek thought",
        sent=_chat_sent,
        foreign_change="openai provider 'deepseek'",
    ),
    Backend(
        id="kimi",  # a second openai provider: the same dialect, still not each other's reasoning
        target=_target(
            "moonshot",
            "openai",
            "https://api.moonshot.ai/v1",
            "kimi-k2-thinking",
            "reasoning",
            "replay_reasoning",
        ),
        reply=_chat_reply(reasoning="kimi thought"),
        marker="kimi thought",
        sent=_chat_sent,
        foreign_change="openai provider 'moonshot'",
    ),
    Backend(
        id="gemini-openai",  # Gemini's OpenAI-compatible endpoint: thought signatures on tool calls
        target=_target(
            "gemini-compat",
            "openai",
            "https://generativelanguage.googleapis.com/v1beta/openai",
            "gemini-3-pro",
        ),
        reply=_chat_reply(thought_signature="gemini-compat-sig"),
        marker="gemini-compat-sig",
        sent=_chat_sent,
        foreign_change="openai provider 'gemini-compat'",
    ),
    Backend(
        id="gemini",
        target=_target(
            "gemini",
            "gemini",
            "https://generativelanguage.googleapis.com",
            "gemini-3-pro-preview",
            "reasoning",
        ),
        reply=_gemini_reply,
        marker="gemini-native-sig",
        sent=_gemini_sent,
        foreign_change="gemini provider 'gemini'",
    ),
    Backend(
        id="openai-responses",
        target=_target("openai", "openai_responses", "https://api.openai.com/v1", "gpt-5-codex", "reasoning"),
        reply=_responses_reply,
        marker="responses-encrypted",
        sent=_responses_sent,
        foreign_change="openai_responses provider 'openai'",
    ),
]
AVAILABLE = [b for b in BACKENDS if b.target.dialect in DIALECTS]
PAIRS = [pytest.param(a, b, id=f"{a.id}->{b.id}") for a in AVAILABLE for b in AVAILABLE]


def _request(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "messages": messages,
        "tools": TOOLS,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
    }


def _turn(backend: Backend, messages: list[dict[str, Any]]) -> tuple[Translation, list[dict[str, Any]]]:
    """One request to `backend`: its translation, and the assistant content the client got back."""
    translation = backend.dialect.build_request(
        _request(messages), backend.target, message_id="msg_sb", client_headers={}
    )
    message = backend.dialect.parse_response(backend.reply(), translation)
    # The client keeps the blocks as it received them, as JSON (what the SDK sends back next turn).
    return translation, orjson.loads(orjson.dumps(message["content"]))


def _tool_result(content: list[dict[str, Any]]) -> dict[str, Any]:
    call = next(b for b in content if b["type"] == "tool_use")
    return {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "a b"}]}


def _dropped(translation: Translation) -> list[str]:
    return [c.detail for c in translation.changes if c.kind == "foreign_reasoning_dropped"]


@pytest.mark.parametrize(("first", "second"), PAIRS)
def test_each_backend_gets_back_only_the_reasoning_it_minted(first: Backend, second: Backend) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "list the files"}]
    _, content_a = _turn(first, messages)
    messages += [{"role": "assistant", "content": content_a}, _tool_result(content_a)]

    to_b, content_b = _turn(second, messages)
    sent_to_b = second.sent(to_b.upstream.body)
    if first is second:
        assert first.marker in sent_to_b  # its own reasoning goes back to it, as it needs
    else:
        assert first.marker not in orjson.dumps(to_b.upstream.body).decode()  # nothing of A's reaches B
        assert sent_to_b == []
        assert any(first.foreign_change in d for d in _dropped(to_b)), to_b.changes

    messages += [{"role": "assistant", "content": content_b}, _tool_result(content_b)]
    back_to_a, _ = _turn(first, messages)
    sent_to_a = first.sent(back_to_a.upstream.body)
    assert first.marker in sent_to_a or not _replays_everything(first), sent_to_a
    if first is not second:
        assert second.marker not in orjson.dumps(back_to_a.upstream.body).decode()
        assert any(second.foreign_change in d for d in _dropped(back_to_a)), back_to_a.changes


def _replays_everything(backend: Backend) -> bool:
    """Backends that get all their earlier reasoning back (Chat Completions without replay_reasoning, and
    thought signatures only on a turn's first call, do not)."""
    return backend.target.dialect != "openai" or "replay_reasoning" in backend.target.options


def test_anthropic_gets_thinking_turned_off_when_the_loops_turn_was_another_backends() -> None:
    anthropic, deepseek = BACKENDS[0], BACKENDS[2]
    messages: list[dict[str, Any]] = [{"role": "user", "content": "list the files"}]
    _, content = _turn(deepseek, messages)
    messages += [{"role": "assistant", "content": content}, _tool_result(content)]
    translation, _ = _turn(anthropic, messages)
    body = translation.upstream.body
    # Its turn starts with a tool_use now; Anthropic refuses that with thinking on, so it is off, said so.
    assert body["messages"][1]["content"][0]["type"] == "tool_use"
    assert body["thinking"] == {"type": "disabled"}
    assert "thinking_disabled" in [c.kind for c in translation.changes]


def test_gemini_openai_endpoint_gets_the_placeholder_on_a_call_another_model_made() -> None:
    deepseek, gemini = BACKENDS[2], BACKENDS[4]
    messages: list[dict[str, Any]] = [{"role": "user", "content": "list the files"}]
    _, content = _turn(deepseek, messages)
    messages += [{"role": "assistant", "content": content}, _tool_result(content)]
    translation, _ = _turn(gemini, messages)
    call = translation.upstream.body["messages"][1]["tool_calls"][0]
    assert call["extra_content"] == {"google": {"thought_signature": "skip_thought_signature_validator"}}
    assert "reasoning_placeholder" in [c.kind for c in translation.changes]

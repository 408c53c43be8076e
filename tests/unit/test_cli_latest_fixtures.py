"""The real request bodies of Claude Code 2.1.332 (tests/fixtures/claude-code-2.1.332/) through the pure core:
the OpenAI Chat translation, the Anthropic passthrough, routing detection and the token estimate."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy.routing.detect import claude_code_agent, detect_tasks, is_background, request_facts
from proxy.routing.rules import ProviderSpec, RuleSpec, choose_target, compile_config
from proxy.translate.anthropic import DIALECT as ANTHROPIC
from proxy.translate.openai_chat.request import build_request
from proxy.translate.tokens import count_tokens
from proxy.translate.types import Target, Translation

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "claude-code-2.1.332"
HEADERS: dict[str, dict[str, Any]] = json.loads((FIXTURES / "headers.json").read_text())
ALL = sorted(p.stem for p in FIXTURES.glob("*.json") if p.name != "headers.json")
# Bodies for POST /v1/messages (count_tokens.json is the only other endpoint's body).
MESSAGES = [n for n in ALL if HEADERS[n]["path"].split("?")[0] == "/v1/messages"]
WITH_SAFEGUARDS = [n for n in MESSAGES if "safeguards" in json.loads((FIXTURES / f"{n}.json").read_text())]
# The main thread's own turns (not a subagent, not a side call).
MAIN_THREAD = [
    "main_turn",
    "tool_result_turn",
    "agent_turn",
    "subagent_result_turn",
    "read_tool_result_turn",
    "main_turn_interactive",
    "tool_result_turn_interactive",
]
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def openai_target(**kwargs: Any) -> Target:
    fields: dict[str, Any] = {
        "provider": "acme",
        "dialect": "openai",
        "base_url": "https://api.example.com/v1",
        "model": "",
        "api_key": "sk-test",
        "options": frozenset({"reasoning"}),
    }
    return Target(**(fields | kwargs))


def to_openai(body: dict[str, Any]) -> Translation:
    return build_request(body, openai_target(), message_id="msg_test", client_headers={})


def anthropic_target(base_url: str) -> Target:
    return Target(provider="compat", dialect="anthropic", base_url=base_url, model="", api_key="sk-test")


# --- the fixtures themselves -------------------------------------------------------------------------


def test_fixture_folder_holds_every_call_the_brief_asks_for() -> None:
    wanted = {
        "main_turn",
        "tool_result_turn",
        "subagent_turn",
        "main_turn_interactive",
        "background_title",
        "count_tokens",
    }
    assert wanted <= set(ALL)
    assert set(HEADERS) == set(ALL), "headers.json must describe exactly the bodies in the folder"
    for name in ALL:
        assert HEADERS[name]["headers"]["user-agent"].startswith("claude-cli/2.1.332 "), name


@pytest.mark.parametrize("name", [*ALL, "headers"])
def test_fixture_is_sanitized_when_read_back(name: str) -> None:
    text = (FIXTURES / f"{name}.json").read_text()
    assert "/tmp/" not in text and "/root" not in text
    assert not re.search(r"Linux \d+\.\d+\.\d+", text.replace("Linux 6.8.0-generic", ""))
    assert set(UUID.findall(text)) <= {"00000000-0000-4000-8000-000000000000"}
    assert not re.search(r"sk-ant-[\w-]{6,}", text)
    if name == "headers":
        for entry in HEADERS.values():
            assert entry["headers"]["host"] == "127.0.0.1:8000"
            assert entry["headers"].get("x-api-key", "<redacted>") == "<redacted>"
    else:
        user_id = (load(name).get("metadata") or {}).get("user_id")
        if user_id:
            assert json.loads(user_id)["device_id"] == "0" * 64


# --- OpenAI Chat Completions -------------------------------------------------------------------------


def assert_tool_calls_answered(messages: list[dict[str, Any]]) -> None:
    """Every assistant tool call is answered by tool messages right after that assistant message."""
    for i, message in enumerate(messages):
        ids = [call["id"] for call in message.get("tool_calls") or []]
        following = [m.get("tool_call_id") for m in messages[i + 1 : i + 1 + len(ids)]]
        assert following == ids, f"messages.{i}: tool calls {ids} answered by {following}"


@pytest.mark.parametrize("name", MESSAGES)
def test_cli_latest_body_translates_to_openai_chat_cleanly(name: str) -> None:
    body = load(name)
    original = copy.deepcopy(body)
    translation = to_openai(body)
    out = translation.upstream.body
    encoded = orjson.dumps(out).decode()

    assert body == original, "the client's request must not be mutated"
    assert out["model"] == body["model"] and out["max_tokens"] == body["max_tokens"]
    for word in ("cache_control", "safeguards", "classifier_context", "context_management", "defer_loading"):
        assert word not in encoded, word
    assert_tool_calls_answered(out["messages"])
    tool_use_ids = [
        block["id"]
        for m in body["messages"]
        if isinstance(m["content"], list)
        for block in m["content"]
        if block.get("type") == "tool_use"
    ]
    calling = [
        m
        for m in body["messages"]
        if m["role"] == "assistant" and any(b.get("type") == "tool_use" for b in m["content"])
    ]
    assert len([m for m in out["messages"] if m.get("tool_calls")]) == len(calling)
    assert len([m for m in out["messages"] if m["role"] == "tool"]) == len(tool_use_ids)
    schemas = [(t["name"], t["input_schema"]) for t in body.get("tools", [])]
    sent = [(t["function"]["name"], t["function"]["parameters"]) for t in out.get("tools", [])]
    assert sent == schemas
    assert translation.client_model == body["model"]


@pytest.mark.parametrize("name", WITH_SAFEGUARDS)
def test_safeguards_is_listed_as_dropped_when_translating_to_openai_chat(name: str) -> None:
    changes = [(c.kind, c.detail) for c in to_openai(load(name)).changes]
    assert ("field_dropped", "safeguards") in changes


def test_the_interactive_main_turn_carries_safeguards_with_local_paths() -> None:
    # Guards the fixtures: without a body carrying `safeguards` the two tests around would test nothing.
    assert "main_turn_interactive" in WITH_SAFEGUARDS
    (guard,) = load("main_turn_interactive")["safeguards"]
    assert guard["type"] == "dangerous_tool_use"
    assert guard["classifier_context"]["live_cwd"] == "/home/user/project"


def test_deferred_placeholder_tool_is_recorded_when_translating_to_openai_chat() -> None:
    changes = [(c.kind, c.detail) for c in to_openai(load("main_turn")).changes]
    assert ("defer_loading_ignored", "DeferredToolPlaceholder") in changes


# --- Anthropic passthrough ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", WITH_SAFEGUARDS)
@pytest.mark.parametrize("base_url", ["https://openrouter.ai/api", "http://127.0.0.1:4000"])
def test_passthrough_to_a_compatible_host_drops_safeguards(name: str, base_url: str) -> None:
    body = load(name)
    translation = ANTHROPIC.build_request(
        body, anthropic_target(base_url), message_id="msg_test", client_headers={}
    )
    sent = translation.upstream.body
    assert "safeguards" not in sent
    assert "classifier_context" not in orjson.dumps(sent).decode()
    assert ("field_dropped", "safeguards") in [(c.kind, c.detail) for c in translation.changes]
    assert "safeguards" in body, "the client's request must not be mutated"


@pytest.mark.parametrize("name", WITH_SAFEGUARDS)
def test_passthrough_to_anthropic_itself_keeps_safeguards(name: str) -> None:
    body = load(name)
    translation = ANTHROPIC.build_request(
        body, anthropic_target("https://api.anthropic.com"), message_id="msg_test", client_headers={}
    )
    assert translation.upstream.body["safeguards"] == body["safeguards"]


# --- routing detection -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MAIN_THREAD)
def test_main_thread_turn_is_not_background_nor_a_subagent(name: str) -> None:
    body = load(name)
    headers = HEADERS[name]["headers"]
    assert not is_background(body)
    assert "background" not in detect_tasks(body)
    assert claude_code_agent(body) == ""
    assert request_facts(body, headers).agent == ""


def test_subagent_turn_is_recognised_as_the_general_purpose_subagent() -> None:
    body = load("subagent_turn")
    assert claude_code_agent(body) == "general-purpose"
    assert request_facts(body, HEADERS["subagent_turn"]["headers"]).agent == "general-purpose"
    assert not is_background(body)


def test_only_the_subagent_turn_carries_the_agent_id_header() -> None:
    # 2.1.332 names the subagent in a header too: routing could key on it without reading the prompt.
    assert [n for n in ALL if "x-claude-code-agent-id" in HEADERS[n]["headers"]] == ["subagent_turn"]


def test_subagent_turn_is_still_a_subagent_when_its_prompt_is_unknown() -> None:
    # 2.1.332 marks subagents in the billing block: a user-defined agent has its own prompt.
    body = load("subagent_turn")
    body["system"][2]["text"] = "You review pull requests for style."
    assert claude_code_agent(body) == "subagent"


def test_title_call_is_background() -> None:
    assert is_background(load("background_title"))


def test_a_rule_on_the_agent_routes_the_subagent_turn_but_not_the_main_turn() -> None:
    providers = [
        ProviderSpec(name="cheap", dialect="openai", base_url="http://127.0.0.1:11434/v1"),
        ProviderSpec(name="anthropic", dialect="anthropic", base_url="https://api.anthropic.com"),
    ]
    rules = [
        RuleSpec(name="agents", provider="cheap", model="qwen", conditions={"agent": "general-purpose"}),
        RuleSpec(name="default", provider="anthropic", is_default=True),
    ]
    snap = compile_config(providers, rules)
    sub = choose_target(snap, load("subagent_turn"), HEADERS["subagent_turn"]["headers"])
    main = choose_target(snap, load("main_turn"), HEADERS["main_turn"]["headers"])
    assert sub is not None and (sub.rule, sub.agent) == ("agents", "general-purpose")
    assert main is not None and main.rule == "default"


# --- token estimate ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_count_tokens_estimates_every_body(name: str) -> None:
    body = load(name)
    tokens = count_tokens(body)
    # A rough floor: one token per ~8 bytes of JSON at the very least (English runs ~4 bytes a token).
    assert tokens > len(orjson.dumps(body)) // 8


def test_count_tokens_grows_with_the_big_read_result() -> None:
    assert count_tokens(load("read_tool_result_turn")) > count_tokens(load("main_turn")) + 15000


# --- the capture tool's sanitizer (tests/fixtures/capture.py) ----------------------------------------


def test_capture_sanitize_replaces_paths_ids_and_kernel_when_given_a_raw_body() -> None:
    from tests.fixtures.capture import sanitize

    workdir, home = "/tmp/cc-capture-x1/tui/project", "/tmp/cc-capture-x1/tui/home"
    raw = json.dumps(
        {
            "cwd": workdir + "/hello.txt",
            "memory": home + "/.claude/projects/-tmp-cc-capture-x1-tui-project/memory/",
            "home": home,
            "user_id": json.dumps(
                {"device_id": "ab" * 32, "session_id": "5ae34526-e582-4a0f-ad5b-66e2be334592"}
            ),
            "os": "OS Version: Linux 6.18.44-fc-v782",
        }
    )
    clean = json.loads(sanitize(raw, workdir, home))
    assert clean == {
        "cwd": "/home/user/project/hello.txt",
        "memory": "/home/user/.claude/projects/-home-user-project/memory/",
        "home": "/home/user",
        "user_id": json.dumps({"device_id": "0" * 64, "session_id": "00000000-0000-4000-8000-000000000000"}),
        "os": "OS Version: Linux 6.8.0-generic",
    }

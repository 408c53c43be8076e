"""Through a real server, with the anthropic SDK: a session that changes backend between turns, and the
capability profiles of Anthropic-compatible servers, each against a scripted server that checks what it
receives the way that server does (tests/fakes/compatible_upstream.py). Issue #16.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from proxy.routing.presets import BY_KEY
from tests.conftest import ROOT, Server, start_server, stop_server
from tests.fakes.compatible_upstream import FakeCompatible
from tests.fakes.gemini_upstream import FakeGemini, response, signature
from tests.fakes.openai_upstream import FakeOpenAI, completion

KINDS = ("anthropic", "ollama", "deepseek", "minimax", "kimi")
TOOLS = [
    {"name": "Bash", "description": "run a command", "input_schema": {"type": "object", "properties": {}}}
]
THINKING = {"type": "enabled", "budget_tokens": 2048}


GEMINI_KEY = "gemini-test-key"


def _config(fakes: dict[str, FakeCompatible], chat: FakeOpenAI, gemini: FakeGemini) -> str:
    quirks = {"anthropic": ("anthropic_api",)} | {
        k: BY_KEY[k].quirks for k in ("ollama", "deepseek", "minimax")
    }
    quirks["kimi"] = BY_KEY["moonshot"].quirks
    lines = []
    for kind, fake in fakes.items():
        listed = ", ".join(f'"{q}"' for q in quirks[kind])
        lines += ["[[providers]]", f'name = "{kind}"', 'dialect = "anthropic"', f'base_url = "{fake.url}"',
                  f"quirks = [{listed}]", ""]  # fmt: skip
        if kind != "anthropic":
            lines += ["[[rules]]", f'name = "{kind}"', f'provider = "{kind}"', f'model = "{kind}-model"',
                      f'conditions = {{ model = "claude-{kind}-*" }}', ""]  # fmt: skip
    lines += ["[[providers]]", 'name = "gemini"', 'dialect = "gemini"', f'base_url = "{gemini.url}"',
              'api_key_env = "GEMINI_API_KEY"', "",
              "[[rules]]", 'name = "gemini"', 'provider = "gemini"', 'model = "gemini-3-pro-preview"',
              'conditions = { model = "claude-gemini-*" }', ""]  # fmt: skip
    lines += ["[[providers]]", 'name = "chat"', 'dialect = "openai"', f'base_url = "{chat.url}"', "",
              "[[rules]]", 'name = "chat"', 'provider = "chat"', 'model = "deepseek-reasoner"',
              'conditions = { model = "claude-chat-*" }', "",
              "[[rules]]", 'name = "default"', 'provider = "anthropic"', "default = true", ""]  # fmt: skip
    return "\n".join(lines)


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeCompatible]]:
    made = {kind: FakeCompatible(kind) for kind in KINDS}
    for fake in made.values():
        fake.__enter__()
    yield made
    for fake in made.values():
        fake.__exit__()


@pytest.fixture(scope="module")
def chat() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="module")
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini(key=GEMINI_KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def server(
    fakes: dict[str, FakeCompatible],
    chat: FakeOpenAI,
    gemini: FakeGemini,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("switch")
    data = tmp / "data"
    srv = start_server(tmp, {"SWITCHBOARD_DATA_DIR": str(data), "GEMINI_API_KEY": GEMINI_KEY})
    try:
        path = tmp / "routes.toml"
        path.write_text(_config(fakes, chat, gemini))
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SWITCHBOARD_", "OPENAI_", "DATABASE_URL"))
        }
        env["SWITCHBOARD_DATA_DIR"] = str(data)
        done = subprocess.run(
            [sys.executable, "manage.py", "routes", "import", str(path)], cwd=ROOT, env=env,
            capture_output=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr.decode()
        yield srv
    finally:
        stop_server(srv)


@pytest.fixture
def reset(fakes: dict[str, FakeCompatible], chat: FakeOpenAI, gemini: FakeGemini) -> Iterator[None]:
    for fake in [*fakes.values(), chat, gemini]:
        fake.reset()
    yield


def client(server: Server) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key="sk-ant-client", max_retries=0)


def ask(server: Server, model: str, messages: list[dict[str, Any]], **extra: Any) -> anthropic.types.Message:
    return client(server).messages.create(
        model=model,
        max_tokens=4096,
        messages=messages,
        tools=TOOLS,
        thinking=THINKING,
        **extra,  # type: ignore[arg-type]
    )


def blocks(message: anthropic.types.Message) -> list[dict[str, Any]]:
    return [b.model_dump(exclude_none=True) for b in message.content]


def tool_result(content: list[dict[str, Any]]) -> dict[str, Any]:
    call = next(b for b in content if b["type"] == "tool_use")
    return {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "a b"}]}


def changes(server: Server, provider: str) -> list[str]:
    row = server.wait_for_exchange(lambda e: e["provider"] == provider)
    return [f"{c['kind']}: {c['detail']}" for c in row["changes"]]


def test_a_session_that_changes_backend_sends_each_backend_only_its_own_reasoning(
    server: Server, fakes: dict[str, FakeCompatible], chat: FakeOpenAI, reset: None
) -> None:
    deepseek, claude = fakes["deepseek"], fakes["anthropic"]
    messages: list[dict[str, Any]] = [{"role": "user", "content": "list the files"}]
    # Turn 1, DeepSeek (Anthropic-compatible): thinking and a call. The client sees its signature tagged.
    first = blocks(ask(server, "claude-deepseek-1", messages))
    assert first[0]["type"] == "thinking" and first[0]["signature"].startswith("sb1.anthropic.")
    messages += [{"role": "assistant", "content": first}, tool_result(first)]

    # Turn 2, the tool result goes to Anthropic (/model, a fallback): DeepSeek's thinking would be an
    # "Invalid signature"; the loop's turn then lacks its thinking block, so thinking is off for it.
    second = blocks(ask(server, "claude-sonnet-4-5", messages))
    assert claude.rejections == [] and second[-1]["text"] == "done"
    sent = claude.requests[-1]
    assert [b["type"] for b in sent["messages"][1]["content"]] == ["tool_use"]
    assert sent["thinking"] == {"type": "disabled"}
    recorded = changes(server, "anthropic")
    assert (
        "foreign_reasoning_dropped: 1 thinking block(s) minted by anthropic provider 'deepseek'" in recorded
    )
    assert any(c.startswith("thinking_disabled:") for c in recorded)

    # Turn 3, back to DeepSeek: its own thinking goes back to it as it minted it.
    messages += [{"role": "assistant", "content": second}, {"role": "user", "content": "and now?"}]
    ask(server, "claude-deepseek-1", messages)
    assert deepseek.rejections == []
    assert deepseek.requests[-1]["messages"][1]["content"][0]["signature"] == "deepseek-sig-0"

    # Turn 4, a Chat Completions backend (DeepSeek's reasoner): no one else's reasoning reaches it.
    chat.script(completion("chat answer", extra={"reasoning_content": "chat thought"}))
    fourth = blocks(ask(server, "claude-chat-1", [*messages[:-1], {"role": "user", "content": "again"}]))
    assert "deepseek-sig" not in str(chat.requests[-1]) and "Let me see." not in str(chat.requests[-1])
    assert any("minted by anthropic provider 'deepseek'" in c for c in changes(server, "chat"))

    # Turn 5, Anthropic again, with the chat backend's thinking in the history: left out, recorded.
    history = [*messages[:-1], {"role": "user", "content": "again"}, {"role": "assistant", "content": fourth},
               {"role": "user", "content": "thanks"}]  # fmt: skip
    ask(server, "claude-sonnet-4-5", history)
    assert claude.rejections == []
    assert "chat thought" not in str(claude.requests[-1])
    assert any("minted by openai provider 'chat'" in c for c in changes(server, "anthropic"))


def test_gemini_gets_the_placeholder_for_another_models_call_and_nobody_gets_its_signatures(
    server: Server, fakes: dict[str, FakeCompatible], gemini: FakeGemini, reset: None
) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "list the files"}]
    first = blocks(ask(server, "claude-deepseek-1", messages))  # DeepSeek's call, DeepSeek's thinking
    messages += [{"role": "assistant", "content": first}, tool_result(first)]
    # Gemini 3 refuses a function-call turn without a signature, and a signature it never issued.
    call = {"functionCall": {"name": "Bash", "args": {"command": "ls -a"}}, "thoughtSignature": signature(1)}
    gemini.script(response([call]))
    second = blocks(ask(server, "claude-gemini-1", messages))
    assert gemini.rejections == []
    sent = str(gemini.requests[-1])
    assert "skip_thought_signature_validator" in sent and "deepseek-sig" not in sent
    assert any("minted by anthropic provider 'deepseek'" in c for c in changes(server, "gemini"))
    # Back on Anthropic: Gemini's signature stays out (it would be an "Invalid signature" there).
    messages += [{"role": "assistant", "content": second}, tool_result(second)]
    ask(server, "claude-sonnet-4-5", messages)
    assert fakes["anthropic"].rejections == []
    assert signature(1) not in str(fakes["anthropic"].requests[-1])


def test_deepseek_gets_thinking_off_for_a_tool_loop_turn_anthropic_made(
    server: Server, fakes: dict[str, FakeCompatible], reset: None
) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "list the files"}]
    first = blocks(ask(server, "claude-sonnet-4-5", messages))  # Anthropic thinks and calls a tool
    messages += [{"role": "assistant", "content": first}, tool_result(first)]
    ask(server, "claude-deepseek-1", messages)  # the loop goes on on DeepSeek (a fallback, /model)
    deepseek = fakes["deepseek"]
    assert deepseek.rejections == []
    assert deepseek.requests[-1]["thinking"] == {"type": "disabled"}
    assert "anthropic-sig" not in str(deepseek.requests[-1])


def test_ollama_without_count_tokens_tool_choice_or_stream_errors(
    server: Server, fakes: dict[str, FakeCompatible], reset: None
) -> None:
    ollama = fakes["ollama"]
    counted = client(server).messages.count_tokens(
        model="claude-ollama-1", messages=[{"role": "user", "content": "count me"}]
    )
    assert counted.input_tokens > 0 and ollama.requests == []  # counted here: Ollama would 404
    ask(server, "claude-ollama-1", [{"role": "user", "content": "x"}], tool_choice={"type": "any"})
    sent = ollama.requests[-1]
    assert "tool_choice" not in sent and "You must call one of the tools" in str(sent["system"])
    ollama.script(ollama.bare_stream_error("model runner has unexpectedly stopped"))
    stream = client(server).messages.stream(
        model="claude-ollama-1", max_tokens=50, messages=[{"role": "user", "content": "x"}]
    )
    with (
        pytest.raises(anthropic.APIStatusError, match="model runner has unexpectedly stopped"),
        stream as events,
    ):
        events.get_final_message()
    row = server.wait_for_exchange(lambda e: e["provider"] == "ollama" and e["stream"])
    assert row["status"] == "error"


def test_deepseek_gets_the_one_tool_by_name_for_tool_choice_any(
    server: Server, fakes: dict[str, FakeCompatible], reset: None
) -> None:
    message = client(server).messages.create(
        model="claude-deepseek-1",
        max_tokens=100,
        messages=[{"role": "user", "content": "list"}],
        tools=TOOLS,  # type: ignore[arg-type]
        tool_choice={"type": "any"},
    )
    assert fakes["deepseek"].requests[-1]["tool_choice"] == {"type": "tool", "name": "Bash"}
    assert message.stop_reason == "tool_use"  # with `any` as sent, DeepSeek would have answered in text


PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()


@pytest.mark.parametrize("kind", ["minimax", "deepseek"])
def test_text_only_servers_get_a_note_instead_of_images_and_documents(
    server: Server, fakes: dict[str, FakeCompatible], reset: None, kind: str
) -> None:
    content = [
        {"type": "text", "text": "what is in it?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
    ]
    client(server).messages.create(
        model=f"claude-{kind}-1", max_tokens=50, messages=[{"role": "user", "content": content}]
    )
    assert fakes[kind].rejections == []
    sent = fakes[kind].requests[-1]["messages"][0]["content"]
    assert [b["type"] for b in sent] == ["text", "text"] and "image left out" in sent[1]["text"]
    assert any(c.startswith("content_dropped: image") for c in changes(server, kind))


def test_kimi_gets_tool_ids_in_its_own_shape_and_the_client_keeps_valid_ids(
    server: Server, fakes: dict[str, FakeCompatible], reset: None
) -> None:
    kimi = fakes["kimi"]
    # A call Anthropic made (toolu_ id) in the history: Kimi wants functions.<name>:<n>.
    history = [
        {"role": "user", "content": "list"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_01abc", "name": "Bash", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01abc", "content": "a"}]},
        {"role": "user", "content": "now again"},
    ]
    answer = client(server).messages.create(
        model="claude-kimi-1", max_tokens=50, messages=history, tools=TOOLS
    )  # type: ignore[arg-type]
    assert kimi.rejections == []
    sent = kimi.requests[-1]["messages"]
    assert sent[1]["content"][0]["id"] == "functions.Bash:0" == sent[2]["content"][0]["tool_use_id"]
    # Kimi's own call id is not a valid Anthropic id: the client gets one that maps back exactly.
    call = next(b for b in blocks(answer) if b["type"] == "tool_use")
    assert call["id"].startswith("toolu_")
    history += [{"role": "assistant", "content": [call]}, tool_result([call])]
    client(server).messages.create(model="claude-kimi-1", max_tokens=50, messages=history, tools=TOOLS)  # type: ignore[arg-type]
    assert kimi.rejections == []
    assert kimi.requests[-1]["messages"][4]["content"][0]["id"].startswith("functions.Bash:")


def test_count_tokens_is_asked_of_anthropic_itself(
    server: Server, fakes: dict[str, FakeCompatible], reset: None
) -> None:
    response = httpx.post(
        f"{server.url}/v1/messages/count_tokens",
        json={"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-api-key": "sk-ant-client", "anthropic-version": "2023-06-01"},
    )
    assert response.json() == {"input_tokens": 4242}

"""The launcher's and the status line's pure parts: option parsing, settings merging, the line itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from proxy.cli import launcher, statusline


@pytest.mark.parametrize(
    ("argv", "port", "print_env", "rest"),
    [
        ([], 8082, False, []),
        (["--port", "9000", "-p", "hi"], 9000, False, ["-p", "hi"]),
        (["--port=9001", "--print-env"], 9001, True, []),
        (["--print-env", "--port", "9002"], 9002, True, []),
        (["--", "--port", "1"], 8082, False, ["--port", "1"]),  # after --: Claude Code's
        (["-p", "x", "--port", "1"], 8082, False, ["-p", "x", "--port", "1"]),  # ours come first only
    ],
)
def test_own_options_are_taken_before_claudes(
    argv: list[str], port: int, print_env: bool, rest: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SWITCHBOARD_PORT", raising=False)
    assert launcher._own_options(argv) == (port, print_env, rest)


def test_settings_merge_keeps_the_users_and_adds_the_status_line(tmp_path: Path) -> None:
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"model": "opus", "statusLine": {"type": "command", "command": "mine"}}))
    for args in (["--settings", str(path), "-p", "x"], [f"--settings={path}", "-p", "x"]):
        rest, merged = launcher._with_settings(args, "http://127.0.0.1:1")
        assert rest == ["-p", "x"]
        assert merged == {"model": "opus", "statusLine": {"type": "command", "command": "mine"}}  # theirs win
    rest, merged = launcher._with_settings(["--settings", '{"theme": "dark"}'], "http://127.0.0.1:1")
    assert rest == [] and merged["theme"] == "dark"
    assert merged["statusLine"]["command"].endswith("statusline.py --url http://127.0.0.1:1")


def test_claude_env_leaves_the_users_anthropic_key_when_no_client_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-mine")
    assert "ANTHROPIC_AUTH_TOKEN" not in launcher.claude_env("http://x", "", None)
    assert launcher.claude_env("http://x", "client-key", 64000)["ANTHROPIC_AUTH_TOKEN"] == "client-key"
    assert launcher.claude_env("http://x", "", 64000)["CLAUDE_CODE_AUTO_COMPACT_WINDOW"] == "64000"
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    assert launcher.claude_env("http://x", "", None)["ANTHROPIC_AUTH_TOKEN"] == "switchboard"


def test_client_token_prefers_switchboard_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_API_KEYS", " a , b ")
    monkeypatch.delenv("SWITCHBOARD_API_KEY", raising=False)
    assert launcher.client_token() == "a"
    monkeypatch.setenv("SWITCHBOARD_API_KEY", "b")
    assert launcher.client_token() == "b"


def test_status_line_text() -> None:
    summary = {"exchanges": 3, "cost_usd": 0.01234, "claude_cost_usd": 1.5, "last": {
        "backend_model": "qwen3-coder", "rule": "default", "client_model": "claude-sonnet-4-5"}}  # fmt: skip
    assert (
        statusline.line(summary) == "⇄ qwen3-coder (default) · session $0.0123 · on claude-sonnet-4-5 $1.50"
    )
    assert statusline.line({**summary, "cost_usd": None}, "claude-opus-4-8").endswith(
        "on claude-opus-4-8 $1.50"
    )
    assert "session $?" in statusline.line({**summary, "cost_usd": None})


@pytest.mark.parametrize("stdin", ["", "[]", "null", '{"session_id": 5}', "{not json"])
def test_status_line_without_a_session_is_a_fallback(stdin: str) -> None:
    assert statusline.render(stdin, "http://127.0.0.1:1", "") == "switchboard: no session yet"

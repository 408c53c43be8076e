"""The passthrough dialect (translate/anthropic.py): request edits, headers, stream relay, errors."""

from __future__ import annotations

import ast
import copy
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy.translate.anthropic import DIALECT, AnthropicStreamTranslator
from proxy.translate.base import UpstreamError
from proxy.translate.sse import SSEDecoder
from proxy.translate.types import SSEEvent, Target, Translation

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
MODULE = Path(__file__).resolve().parents[2] / "proxy" / "translate" / "anthropic.py"
CLIENT_HEADERS = {
    "anthropic-version": "2023-06-01",
    "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
    "x-api-key": "sk-ant-client",
    "x-claude-code-session-id": "00000000-0000-4000-8000-000000000000",
    "user-agent": "claude-cli/2.1.197 (external, sdk-cli)",
    "x-stainless-os": "Linux",
    ":query": "beta=true",
}
REQUEST: dict[str, Any] = {
    "model": "claude-opus-4-8",
    "max_tokens": 64000,
    "stream": True,
    "messages": [{"role": "user", "content": "hi"}],
}


def make_target(**kwargs: Any) -> Target:
    fields: dict[str, Any] = {
        "provider": "anthropic",
        "dialect": "anthropic",
        "base_url": "https://api.anthropic.com",
        "model": "",
    }
    return Target(**(fields | kwargs))


def build(request: dict[str, Any] | None = None, headers: dict[str, str] | None = None, **target: Any):
    return DIALECT.build_request(
        request if request is not None else copy.deepcopy(REQUEST),
        make_target(**target),
        message_id="msg_test",
        client_headers=CLIENT_HEADERS if headers is None else headers,
    )


def translation(client_model: str = "claude-opus-4-8") -> Translation:
    return build(dict(REQUEST, model=client_model))


def sse_events(name: str) -> list[SSEEvent]:
    """The recorded stream as the relay sees it: bytes through SSEDecoder.feed (no flush)."""
    return SSEDecoder().feed((FIXTURES / "anthropic" / f"{name}.sse").read_bytes())


def relay(name: str, client_model: str = "claude-opus-4-8") -> tuple[AnthropicStreamTranslator, list[dict]]:
    translator = DIALECT.stream_translator(translation(client_model))
    out: list[dict] = []
    for event in sse_events(name):
        out += translator.feed(event)
    out += translator.finish()
    return translator, out


# build_request: body


def test_build_request_keeps_body_when_target_is_official_and_has_no_limits():
    result = build()
    assert result.upstream.body == REQUEST
    assert result.changes == []
    assert result.upstream.stream is True
    assert result.client_model == "claude-opus-4-8"
    assert result.message_id == "msg_test"


def test_build_request_does_not_mutate_the_client_body():
    request = copy.deepcopy(REQUEST) | {"safeguards": [{"type": "dangerous_tool_use"}]}
    before = copy.deepcopy(request)
    build(request, base_url="http://localhost:11434", max_output_tokens=100, model="qwen3-coder")
    assert request == before


def test_build_request_maps_model_when_target_names_one():
    result = build(model="claude-sonnet-4-5")
    assert result.upstream.body["model"] == "claude-sonnet-4-5"
    assert result.client_model == "claude-opus-4-8"
    assert [c.as_dict() for c in result.changes] == [
        {"kind": "model_mapped", "detail": "claude-opus-4-8 -> claude-sonnet-4-5", "loss": False}
    ]


def test_build_request_lowers_max_tokens_to_model_limit_when_above():
    result = build(max_output_tokens=32000)
    assert result.upstream.body["max_tokens"] == 32000
    assert [c.kind for c in result.changes] == ["max_tokens_lowered"]
    assert result.changes[0].detail == "64000 -> 32000"


def test_build_request_lowers_max_tokens_to_the_smaller_of_limit_and_override():
    result = build(max_output_tokens=32000, overrides=(("max_tokens", 8192),))
    assert result.upstream.body["max_tokens"] == 8192


def test_build_request_applies_route_override_when_model_limit_unknown():
    result = build(overrides=(("max_tokens", 4096),))
    assert result.upstream.body["max_tokens"] == 4096


def test_build_request_keeps_max_tokens_when_below_ceiling():
    result = build(dict(REQUEST, max_tokens=1000), max_output_tokens=32000)
    assert result.upstream.body["max_tokens"] == 1000
    assert result.changes == []


def test_build_request_lowers_thinking_budget_when_it_reaches_new_max_tokens():
    request = dict(REQUEST, thinking={"type": "enabled", "budget_tokens": 31999})
    result = build(request, max_output_tokens=16000)
    assert result.upstream.body["thinking"] == {"type": "enabled", "budget_tokens": 15999}
    assert [c.kind for c in result.changes] == ["max_tokens_lowered", "thinking_budget_lowered"]
    assert request["thinking"]["budget_tokens"] == 31999


def test_build_request_disables_thinking_when_ceiling_leaves_no_room_for_minimum_budget():
    request = dict(REQUEST, thinking={"type": "enabled", "budget_tokens": 2048})
    result = build(request, overrides=(("max_tokens", 1000),))
    assert result.upstream.body["max_tokens"] == 1000
    assert result.upstream.body["thinking"] == {"type": "disabled"}
    assert [c.kind for c in result.changes] == ["max_tokens_lowered", "thinking_disabled"]


def test_build_request_keeps_adaptive_thinking_when_lowering_max_tokens():
    request = dict(REQUEST, thinking={"type": "adaptive"})
    result = build(request, max_output_tokens=32000)
    assert result.upstream.body["thinking"] == {"type": "adaptive"}


@pytest.mark.parametrize("field", ["safeguards", "context_management", "container", "mcp_servers"])
def test_build_request_drops_anthropic_only_field_when_target_is_compatible(field):
    request = dict(REQUEST, **{field: {"x": "/home/user/project"}})
    result = build(request, base_url="https://api.deepseek.com/anthropic")
    assert field not in result.upstream.body
    expected = [{"kind": "field_dropped", "detail": field, "loss": False}]
    assert [c.as_dict() for c in result.changes] == expected


def test_build_request_keeps_anthropic_only_fields_when_target_is_official():
    request = dict(REQUEST, context_management={"edits": []}, safeguards=[{"type": "dangerous_tool_use"}])
    result = build(request)
    assert result.upstream.body["context_management"] == {"edits": []}
    assert result.upstream.body["safeguards"] == [{"type": "dangerous_tool_use"}]


def test_build_request_drops_fields_when_official_host_is_marked_compatible():
    request = dict(REQUEST, context_management={"edits": []})
    result = build(request, options=frozenset({"anthropic_compatible"}))
    assert "context_management" not in result.upstream.body


def test_build_request_passes_real_claude_code_turn_through_unchanged():
    body = json.loads((FIXTURES / "claude-code" / "main_turn.json").read_text())
    headers = json.loads((FIXTURES / "claude-code" / "headers.json").read_text())["main_turn"]["headers"]
    result = build(copy.deepcopy(body), headers=headers)
    assert orjson.dumps(result.upstream.body) == orjson.dumps(body)
    assert result.upstream.headers["anthropic-beta"] == headers["anthropic-beta"]


def test_build_request_strips_context_management_from_real_turn_for_ollama():
    body = json.loads((FIXTURES / "claude-code" / "main_turn.json").read_text())
    result = build(copy.deepcopy(body), base_url="http://127.0.0.1:11434", model="qwen3-coder:30b")
    assert "context_management" not in result.upstream.body
    assert result.upstream.body["model"] == "qwen3-coder:30b"
    assert result.upstream.body["messages"] == body["messages"]


@pytest.mark.parametrize("folder", ["claude-code", "claude-code-2.1.332"])
def test_build_request_drops_the_billing_line_for_a_compatible_server_only(folder: str):
    body = json.loads((FIXTURES / folder / "main_turn.json").read_text())
    billing, *rest = body["system"]
    result = build(copy.deepcopy(body), base_url="https://api.deepseek.com/anthropic", model="deepseek-chat")
    assert result.upstream.body["system"] == rest  # cache_control on the remaining blocks kept
    assert ("billing_header_dropped", billing["text"]) in [(c.kind, c.detail) for c in result.changes]
    official = build(copy.deepcopy(body))
    assert official.upstream.body["system"] == body["system"]
    assert "billing_header_dropped" not in [c.kind for c in official.changes]


# build_request: URL and headers


@pytest.mark.parametrize(
    ("base_url", "url"),
    [
        ("https://api.anthropic.com", "https://api.anthropic.com/v1/messages?beta=true"),
        ("https://api.anthropic.com/", "https://api.anthropic.com/v1/messages?beta=true"),
        ("https://openrouter.ai/api/v1", "https://openrouter.ai/api/v1/messages?beta=true"),
        ("https://api.deepseek.com/anthropic", "https://api.deepseek.com/anthropic/v1/messages?beta=true"),
        ("http://localhost:11434/v1/", "http://localhost:11434/v1/messages?beta=true"),
    ],
)
def test_build_request_url_appends_messages_path_and_client_query(base_url, url):
    assert build(base_url=base_url).upstream.url == url


def test_build_request_url_has_no_query_when_client_sent_none():
    headers = {k: v for k, v in CLIENT_HEADERS.items() if k != ":query"}
    assert build(headers=headers).upstream.url == "https://api.anthropic.com/v1/messages"


def test_build_request_forwards_version_betas_session_and_sets_our_user_agent():
    headers = build().upstream.headers
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["anthropic-beta"] == CLIENT_HEADERS["anthropic-beta"]
    assert headers["x-claude-code-session-id"] == CLIENT_HEADERS["x-claude-code-session-id"]
    assert headers["user-agent"] == "switchboard/0.1"
    assert headers["content-type"] == "application/json"
    assert "x-stainless-os" not in headers
    assert ":query" not in headers


def test_build_request_defaults_anthropic_version_when_client_sent_none():
    assert build(headers={}).upstream.headers["anthropic-version"] == "2023-06-01"


def test_build_request_forwards_client_key_when_target_has_none():
    headers = build().upstream.headers
    assert headers["x-api-key"] == "sk-ant-client"
    assert "authorization" not in headers


def test_build_request_forwards_client_bearer_token_when_target_has_no_key():
    headers = build(headers={"authorization": "Bearer tok"}).upstream.headers
    assert headers["authorization"] == "Bearer tok"
    assert "x-api-key" not in headers


def test_build_request_uses_target_key_instead_of_client_key_when_configured():
    headers = build(api_key="sk-ant-ours").upstream.headers
    assert headers["x-api-key"] == "sk-ant-ours"
    assert "authorization" not in headers


def test_build_request_sends_key_both_ways_when_target_is_compatible():
    headers = build(api_key="sk-ds", base_url="https://api.deepseek.com/anthropic").upstream.headers
    assert headers["x-api-key"] == "sk-ds"
    assert headers["authorization"] == "Bearer sk-ds"


def test_build_request_adds_target_extra_headers():
    headers = build(extra_headers=(("HTTP-Referer", "https://example.org"),)).upstream.headers
    assert headers["http-referer"] == "https://example.org"


# count_tokens passthrough


def test_build_count_tokens_request_targets_count_endpoint_with_query():
    body = json.loads((FIXTURES / "claude-code" / "count_tokens.json").read_text())
    upstream = DIALECT.build_count_tokens_request(
        body, make_target(api_key="sk-ant-ours"), client_headers=CLIENT_HEADERS
    )
    assert upstream is not None
    assert upstream.url == "https://api.anthropic.com/v1/messages/count_tokens?beta=true"
    assert upstream.body == body
    assert upstream.headers["x-api-key"] == "sk-ant-ours"
    assert upstream.stream is False


def test_build_count_tokens_request_maps_model_for_official_target():
    body = {"model": "claude-opus-4-8", "messages": []}
    upstream = DIALECT.build_count_tokens_request(
        body, make_target(model="claude-sonnet-5"), client_headers={}
    )
    assert upstream is not None and upstream.body == {"model": "claude-sonnet-5", "messages": []}
    assert body["model"] == "claude-opus-4-8"


def test_build_count_tokens_request_is_none_for_compatible_target_so_it_is_counted_locally():
    body = {"model": "claude-opus-4-8", "messages": [], "context_management": {"edits": []}}
    target = make_target(base_url="https://openrouter.ai/api/v1", model="x/y")
    assert DIALECT.build_count_tokens_request(body, target, client_headers={}) is None


# parse_response


def test_parse_response_echoes_client_model_and_keeps_everything_else():
    body = {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "qwen3-coder:30b",
        "content": [{"type": "text", "text": "hi"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 1},
    }
    message = DIALECT.parse_response(body, translation("claude-opus-4-8"))
    assert message == body | {"model": "claude-opus-4-8"}
    assert body["model"] == "qwen3-coder:30b"


# stream_translator over recorded streams


@pytest.mark.parametrize("name", ["text", "tool_use", "thinking"])
def test_stream_relays_every_event_unchanged_except_message_start_model(name):
    translator, out = relay(name)
    upstream = [orjson.loads(e.data) for e in sse_events(name)]
    assert len(out) == len(upstream)
    assert out[0]["message"]["model"] == "claude-opus-4-8"
    upstream[0]["message"]["model"] = "claude-opus-4-8"
    assert out == upstream
    assert out[-1] == {"type": "message_stop"}
    assert translator.done is True


@pytest.mark.parametrize("name", ["text", "tool_use", "thinking"])
def test_stream_block_starts_and_stops_pair_up_with_contiguous_indices(name):
    _, out = relay(name)
    starts = [e["index"] for e in out if e["type"] == "content_block_start"]
    stops = [e["index"] for e in out if e["type"] == "content_block_stop"]
    assert starts == stops == list(range(len(starts)))


def test_stream_returns_parsed_event_itself_when_nothing_to_rewrite():
    translator = DIALECT.stream_translator(translation())
    event = SSEEvent(data='{"type":"content_block_stop","index":0}', event="content_block_stop")
    out = translator.feed(event)
    assert out == [{"type": "content_block_stop", "index": 0}]


def test_stream_keeps_message_start_as_is_when_model_already_matches():
    _, out = relay("text", client_model="claude-sonnet-4-5-20250929")
    assert out[0] == orjson.loads(sse_events("text")[0].data)


def test_stream_passes_ping_events_through():
    _, out = relay("text")
    assert {"type": "ping"} in out


def test_stream_tracks_stop_reason_and_merged_usage():
    translator, _ = relay("text")
    assert translator.stop_reason == "end_turn"
    assert translator.usage == {
        "input_tokens": 472,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 11800,
        "output_tokens": 19,
    }


def test_stream_usage_keeps_input_tokens_when_message_delta_has_only_output():
    translator, _ = relay("tool_use")
    assert translator.usage == {"input_tokens": 472, "output_tokens": 89}
    assert translator.stop_reason == "tool_use"


def test_stream_tool_input_json_chunks_join_into_the_tool_input():
    _, out = relay("tool_use")
    partial = "".join(
        e["delta"]["partial_json"]
        for e in out
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta"
    )
    assert json.loads(partial) == {"file_path": "/home/user/project/hello.txt", "content": "hi from proxy\n"}


def test_stream_relays_thinking_signature_delta():
    _, out = relay("thinking")
    signatures = [e["delta"]["signature"] for e in out if e.get("delta", {}).get("type") == "signature_delta"]
    assert len(signatures) == 1 and signatures[0].startswith("EqQBCgIYAh")


def test_stream_raises_overloaded_with_status_529_when_error_event_arrives():
    translator = DIALECT.stream_translator(translation())
    events = sse_events("error_midstream")
    relayed = []
    with pytest.raises(UpstreamError) as info:
        for event in events:
            relayed += translator.feed(event)
    assert info.value.error_type == "overloaded_error"
    assert info.value.status == 529
    assert info.value.message == "Overloaded"
    assert [e["type"] for e in relayed] == ["message_start", "content_block_start", "content_block_delta"]
    assert translator.finish() == []  # the error was reported already


def test_stream_finish_raises_when_stream_ends_before_message_stop():
    translator = DIALECT.stream_translator(translation())
    for event in sse_events("truncated"):
        translator.feed(event)
    assert translator.done is False
    with pytest.raises(UpstreamError, match="ended before message_stop"):
        translator.finish()


def test_stream_cut_mid_event_ends_as_an_error_not_a_clean_end():
    decoder = SSEDecoder()
    translator = DIALECT.stream_translator(translation())
    for event in decoder.feed((FIXTURES / "anthropic" / "truncated.sse").read_bytes()):
        translator.feed(event)
    assert decoder.flush() == []  # the half frame is discarded (WHATWG: pending data at EOF is dropped)
    with pytest.raises(UpstreamError, match="ended before message_stop"):
        translator.finish()


def test_stream_finish_is_idempotent_after_message_stop():
    translator, _ = relay("text")
    assert translator.finish() == []
    assert translator.finish() == []


def test_stream_relays_unknown_event_types():
    translator = DIALECT.stream_translator(translation())
    event = SSEEvent(data='{"type":"future_event","x":1}', event="future_event")
    assert translator.feed(event) == [{"type": "future_event", "x": 1}]


def test_stream_ignores_done_sentinel_from_compatible_servers():
    translator, _ = relay("text")
    assert translator.feed(SSEEvent(data="[DONE]")) == []


# parse_error


def test_parse_error_keeps_anthropic_type_and_529_status():
    body = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    error = DIALECT.parse_error(529, body, {"retry-after": "7"})
    assert (error.status, error.error_type, error.message) == (529, "overloaded_error", "Overloaded")
    assert error.retry_after == "7"
    assert error.upstream_status == 529


def test_parse_error_reads_retry_after_case_insensitively():
    body = b'{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}'
    error = DIALECT.parse_error(429, body, {"Retry-After": "30"})
    assert (error.error_type, error.retry_after) == ("rate_limit_error", "30")


def test_parse_error_returns_api_error_with_text_when_body_is_not_json():
    error = DIALECT.parse_error(502, b"<html>Bad Gateway</html>", {})
    assert (error.status, error.error_type, error.message) == (502, "api_error", "<html>Bad Gateway</html>")
    assert error.retry_after is None


def test_parse_error_maps_status_when_body_has_a_plain_string_error():
    error = DIALECT.parse_error(404, b'{"error": "model \'qwen9\' not found"}', {})
    assert (error.status, error.error_type) == (404, "not_found_error")
    assert error.message == "model 'qwen9' not found"


def test_parse_error_names_status_when_body_is_empty():
    error = DIALECT.parse_error(503, b"", {})
    assert (error.error_type, error.status) == ("api_error", 503)
    assert "503" in error.message


# purity


def test_module_imports_neither_django_nor_httpx():
    tree = ast.parse(MODULE.read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not {n for n in names if n.split(".")[0] in {"django", "httpx"}}

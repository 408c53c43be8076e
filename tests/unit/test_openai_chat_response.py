"""Non-streaming Chat Completions replies and upstream errors -> Anthropic (openai_chat/response.py)."""

from __future__ import annotations

import ast
import copy
import re
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy.translate import ids, reasoning
from proxy.translate.base import UpstreamError
from proxy.translate.openai_chat import DIALECT
from proxy.translate.openai_chat.response import parse_error, parse_response
from proxy.translate.openai_chat.state import ChatState
from proxy.translate.openai_chat.wire import thinking_signature
from proxy.translate.stops import find_stop_sequence, held_back_length
from proxy.translate.tool_names import shorten
from proxy.translate.types import Target, Translation, UpstreamRequest

ROOT = Path(__file__).resolve().parents[2]
CLIENT_MODEL = "claude-opus-4-8"
MESSAGE_ID = "msg_01ResponseTest00000000"


def make_translation(
    *,
    tool_names: dict[str, str] | None = None,
    stop_sequences: tuple[str, ...] = (),
    state: ChatState | None = None,
) -> Translation:
    return Translation(
        upstream=UpstreamRequest(
            method="POST", url="http://upstream/v1/chat/completions", headers={}, body={}, stream=False
        ),
        client_model=CLIENT_MODEL,
        message_id=MESSAGE_ID,
        tool_names=tool_names or {},
        stop_sequences=stop_sequences,
        state=state if state is not None else ChatState(),
    )


def completion(message: dict, finish: str | None = "stop", usage: dict | None = None, **choice: Any) -> dict:
    """A chat.completion body as OpenAI sends it."""
    return {
        "id": "chatcmpl-CXbResp000000000001",
        "object": "chat.completion",
        "created": 1764078000,
        "model": "gpt-4.1-2025-04-14",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", **message},
                "logprobs": None,
                "finish_reason": finish,
                **choice,
            }
        ],
        "usage": usage
        if usage is not None
        else {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
        "system_fingerprint": "fp_b1442291a8",
    }


def call(call_id: str | None, name: str, arguments: Any) -> dict:
    found: dict[str, Any] = {"type": "function", "function": {"name": name, "arguments": arguments}}
    if call_id is not None:
        found["id"] = call_id
    return found


# --- message shape -----------------------------------------------------------------------------------


def test_text_reply_becomes_an_anthropic_message_echoing_the_client_model() -> None:
    body = completion({"content": "Hello there.", "refusal": None, "annotations": []})
    assert parse_response(body, make_translation()) == {
        "id": MESSAGE_ID,
        "type": "message",
        "role": "assistant",
        "model": CLIENT_MODEL,
        "content": [{"type": "text", "text": "Hello there."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 10,
            "output_tokens": 3,
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 0,
        },
    }


def test_empty_text_is_skipped_when_the_reply_is_only_tool_calls() -> None:
    for content in ("", None):
        body = completion({"content": content, "tool_calls": [call("call_1", "Read", "{}")]}, "tool_calls")
        assert [b["type"] for b in parse_response(body, make_translation())["content"]] == ["tool_use"]


def test_content_given_as_parts_keeps_the_text_parts() -> None:
    body = completion(
        {"content": [{"type": "text", "text": "a"}, {"type": "image_url"}, {"type": "text", "text": "b"}]}
    )
    assert parse_response(body, make_translation())["content"] == [{"type": "text", "text": "ab"}]


def test_empty_reply_has_no_content_blocks() -> None:
    assert parse_response(completion({"content": ""}), make_translation())["content"] == []


# --- usage -------------------------------------------------------------------------------------------


def test_openai_cached_tokens_become_cache_reads_and_leave_input_tokens() -> None:
    usage = {
        "prompt_tokens": 12873,
        "completion_tokens": 19,
        "total_tokens": 12892,
        "prompt_tokens_details": {"cached_tokens": 11776, "audio_tokens": 0},
    }
    got = parse_response(completion({"content": "x"}, usage=usage), make_translation())["usage"]
    assert got == {
        "input_tokens": 1097,
        "output_tokens": 19,
        "cache_read_input_tokens": 11776,
        "cache_creation_input_tokens": 0,
    }


def test_deepseek_prompt_cache_hit_tokens_become_cache_reads() -> None:
    usage = {
        "prompt_tokens": 2048,
        "completion_tokens": 64,
        "total_tokens": 2112,
        "prompt_cache_hit_tokens": 1920,
        "prompt_cache_miss_tokens": 128,
    }
    got = parse_response(completion({"content": "x"}, usage=usage), make_translation())["usage"]
    assert (got["input_tokens"], got["cache_read_input_tokens"]) == (128, 1920)


def test_moonshot_top_level_cached_tokens_become_cache_reads() -> None:
    usage = {"prompt_tokens": 700, "completion_tokens": 25, "total_tokens": 725, "cached_tokens": 512}
    got = parse_response(completion({"content": "x"}, usage=usage), make_translation())["usage"]
    assert (got["input_tokens"], got["cache_read_input_tokens"]) == (188, 512)


def test_missing_usage_counts_zero() -> None:
    body = completion({"content": "x"})
    del body["usage"]
    assert parse_response(body, make_translation())["usage"] == {
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
    }


# --- reasoning -----------------------------------------------------------------------------------------


def test_deepseek_reasoning_content_becomes_a_signed_thinking_block_first() -> None:
    body = completion({"content": "42.", "reasoning_content": "Six times seven."})
    assert parse_response(body, make_translation())["content"] == [
        {
            "type": "thinking",
            "thinking": "Six times seven.",
            "signature": thinking_signature("reasoning_content"),
        },
        {"type": "text", "text": "42."},
    ]


def test_openrouter_reasoning_becomes_a_thinking_block_signed_with_its_field() -> None:
    body = completion({"content": "42.", "reasoning": "Hmm.", "reasoning_details": []})
    thinking = parse_response(body, make_translation())["content"][0]
    assert thinking["signature"] == thinking_signature("reasoning")
    assert reasoning.read(thinking["signature"]) == reasoning.Minted("openai", "", "reasoning")
    assert thinking["thinking"] == "Hmm."


def test_reasoning_is_dropped_when_the_client_did_not_ask_for_thinking() -> None:
    body = completion({"content": "42.", "reasoning_content": "Six times seven."})
    content = parse_response(body, make_translation(state=ChatState(reasoning=False)))["content"]
    assert content == [{"type": "text", "text": "42."}]


# --- tool calls ----------------------------------------------------------------------------------------


def test_tool_calls_become_tool_use_blocks_with_client_ids_and_parsed_input() -> None:
    body = completion(
        {
            "content": "Reading both.",
            "tool_calls": [
                call("call_Qm3kX1bYp2VZ8nT4dR6sL0aE", "Read", '{"file_path": "/a.py"}'),
                call("functions.Bash:1", "Bash", '{"command": "ls"}'),
            ],
        },
        "tool_calls",
    )
    message = parse_response(body, make_translation())
    assert message["content"] == [
        {"type": "text", "text": "Reading both."},
        {
            "type": "tool_use",
            "id": "toolu_sb_call_Qm3kX1bYp2VZ8nT4dR6sL0aE",
            "name": "Read",
            "input": {"file_path": "/a.py"},
        },
        {
            "type": "tool_use",
            "id": ids.tool_id_to_client("functions.Bash:1"),
            "name": "Bash",
            "input": {"command": "ls"},
        },
    ]
    assert ids.tool_id_to_upstream(message["content"][2]["id"]) == "functions.Bash:1"
    assert message["stop_reason"] == "tool_use"


def test_tool_call_without_id_gets_a_deterministic_synthetic_id() -> None:
    body = completion({"tool_calls": [call("call_a", "Read", "{}"), call(None, "Glob", "{}")]}, "tool_calls")
    content = parse_response(body, make_translation())["content"]
    assert content[1]["id"] == ids.synthetic_tool_id(MESSAGE_ID, 1)
    assert parse_response(body, make_translation())["content"][1]["id"] == content[1]["id"]


def test_shortened_tool_name_is_restored_and_unknown_names_pass_unchanged() -> None:
    long_name = "mcp__claude_ai_Google_Drive__google_drive_search_files_and_folders_by_query"
    body = completion(
        {"tool_calls": [call("c1", shorten(long_name), "{}"), call("c2", "Bash", "{}")]}, "tool_calls"
    )
    content = parse_response(body, make_translation(tool_names={shorten(long_name): long_name}))["content"]
    assert [b["name"] for b in content] == [long_name, "Bash"]


@pytest.mark.parametrize("arguments", ["", "  ", None])
def test_tool_call_with_empty_arguments_has_empty_input(arguments: Any) -> None:
    body = completion({"tool_calls": [call("c1", "EnterPlanMode", arguments)]}, "tool_calls")
    assert parse_response(body, make_translation())["content"][0]["input"] == {}


def test_tool_arguments_sent_as_an_object_are_kept() -> None:
    body = completion({"tool_calls": [call("c1", "Bash", {"command": "ls"})]}, "tool_calls")
    assert parse_response(body, make_translation())["content"][0]["input"] == {"command": "ls"}


def test_invalid_tool_arguments_raise_api_error_naming_the_tool_with_the_first_200_chars() -> None:
    arguments = '{"command": "' + "x" * 300
    body = completion({"tool_calls": [call("c1", "Bash", arguments)]}, "tool_calls")
    with pytest.raises(UpstreamError) as caught:
        parse_response(body, make_translation())
    assert (caught.value.error_type, caught.value.status) == ("api_error", 500)
    assert "'Bash'" in caught.value.message
    assert arguments[:200] in caught.value.message and arguments[:201] not in caught.value.message


@pytest.mark.parametrize("arguments", ["[1, 2]", '"ls"', "null"])
def test_tool_arguments_that_are_json_but_not_an_object_raise(arguments: str) -> None:
    body = completion({"tool_calls": [call("c1", "Bash", arguments)]}, "tool_calls")
    with pytest.raises(UpstreamError, match="invalid JSON arguments for tool 'Bash'"):
        parse_response(body, make_translation())


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [('{"command": "ls', '{"command": "ls'), ("[1, 2]", "[1, 2]"), ('{"command": "ls"}', {"command": "ls"})],
)
def test_lenient_tool_input_keeps_the_parsed_object_else_the_raw_arguments(
    arguments: str, expected: Any
) -> None:
    body = completion({"tool_calls": [call("c1", "Bash", arguments)]}, "tool_calls")
    translation = make_translation()
    translation.lenient_tool_input = True
    assert parse_response(body, translation)["content"][0]["input"] == expected


def test_legacy_function_call_becomes_a_tool_use_with_a_synthetic_id() -> None:
    body = completion(
        {"content": None, "function_call": {"name": "Read", "arguments": '{"file_path": "/x"}'}},
        "function_call",
    )
    message = parse_response(body, make_translation())
    assert message["content"] == [
        {
            "type": "tool_use",
            "id": ids.synthetic_tool_id(MESSAGE_ID, 0),
            "name": "Read",
            "input": {"file_path": "/x"},
        }
    ]
    assert message["stop_reason"] == "tool_use"


# --- stop reasons --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("finish", "expected"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("content_filter", "refusal"),
        (None, "end_turn"),
        ("eos", "end_turn"),
    ],
)
def test_finish_reason_maps_to_stop_reason(finish: str | None, expected: str) -> None:
    message = parse_response(completion({"content": "x"}, finish), make_translation())
    assert (message["stop_reason"], message["stop_sequence"]) == (expected, None)


@pytest.mark.parametrize(
    ("finish", "expected"), [("stop", "tool_use"), ("tool_calls", "tool_use"), ("length", "max_tokens")]
)
def test_finish_reason_with_tool_calls_maps_to_stop_reason(finish: str, expected: str) -> None:
    body = completion({"tool_calls": [call("c1", "Read", "{}")]}, finish)
    assert parse_response(body, make_translation())["stop_reason"] == expected


def test_finish_reason_error_raises() -> None:
    with pytest.raises(UpstreamError, match="finish_reason 'error'"):
        parse_response(completion({"content": "x"}, "error"), make_translation())


def test_refusal_becomes_text_with_stop_reason_refusal() -> None:
    body = completion({"content": None, "refusal": "I can't help with that."})
    message = parse_response(body, make_translation())
    assert message["content"] == [{"type": "text", "text": "I can't help with that."}]
    assert message["stop_reason"] == "refusal"


def test_vllm_stop_reason_string_becomes_the_stop_sequence() -> None:
    body = completion({"content": "SELECT 1;"}, "stop", stop_reason="</sql>")
    message = parse_response(body, make_translation(stop_sequences=("</sql>",)))
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "</sql>")


def test_sglang_matched_stop_string_becomes_the_stop_sequence() -> None:
    body = completion({"content": "a"}, "stop", matched_stop="\n\nHuman:")
    assert parse_response(body, make_translation())["stop_sequence"] == "\n\nHuman:"


@pytest.mark.parametrize("field", ["stop_reason", "matched_stop"])
def test_stop_token_ids_are_not_stop_sequences(field: str) -> None:
    body = completion({"content": "a"}, "stop", **{field: 151645})
    message = parse_response(body, make_translation())
    assert (message["stop_reason"], message["stop_sequence"]) == ("end_turn", None)


def test_local_stop_sequence_cuts_the_text_and_drops_later_tool_calls() -> None:
    translation = make_translation(
        stop_sequences=("a", "b", "c", "d", "STOP"),
        state=ChatState(local_stop_sequences=("STOP",)),
    )
    body = completion(
        {"content": "Answer: yes STOP and more", "tool_calls": [call("c1", "Bash", "{}")]}, "tool_calls"
    )
    message = parse_response(body, translation)
    assert message["content"] == [{"type": "text", "text": "Answer: yes "}]
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "STOP")


def test_local_stop_sequence_at_the_very_start_leaves_no_text_block() -> None:
    translation = make_translation(state=ChatState(local_stop_sequences=("###",)))
    message = parse_response(completion({"content": "###rest"}), translation)
    assert message["content"] == [] and message["stop_sequence"] == "###"


def test_find_stop_sequence_picks_the_one_generation_would_reach_first() -> None:
    assert find_stop_sequence("xxabcx", ["abc", "b"]) == (3, "b")  # "b" completes before "abc" does
    assert find_stop_sequence("xxabcx", ["bc", "abc"]) == (2, "abc")  # same end: the longer one
    assert find_stop_sequence("xxabcx", ["zz", ""]) is None


def test_held_back_length_is_the_longest_suffix_that_could_start_a_sequence() -> None:
    assert held_back_length("Done ##", ["###END"]) == 2
    assert held_back_length("Done ###EN", ["###END", "NOPE"]) == 5
    assert held_back_length("Done.", ["###END"]) == 0


# --- bodies that are errors ----------------------------------------------------------------------------


def test_error_object_in_a_200_body_raises_with_its_status() -> None:
    body = {"error": {"message": "Rate limit exceeded: free-models-per-day", "code": 429}, "user_id": "u1"}
    with pytest.raises(UpstreamError) as caught:
        parse_response(body, make_translation())
    assert (caught.value.error_type, caught.value.status, caught.value.upstream_status) == (
        "rate_limit_error",
        429,
        429,
    )
    assert "free-models-per-day" in caught.value.message


def test_reply_without_choices_raises() -> None:
    with pytest.raises(UpstreamError, match="no choices"):
        parse_response({"id": "x", "object": "chat.completion", "choices": []}, make_translation())


def test_parse_response_leaves_the_body_untouched() -> None:
    body = completion({"content": "x", "tool_calls": [call("c1", "Bash", {"command": "ls"})]}, "tool_calls")
    before = copy.deepcopy(body)
    parse_response(body, make_translation())
    assert body == before


# --- parse_error ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type", "client_status"),
    [
        (400, "invalid_request_error", 400),
        (422, "invalid_request_error", 400),
        (401, "authentication_error", 401),
        (403, "permission_error", 403),
        (404, "not_found_error", 404),
        (413, "request_too_large", 413),
        (429, "rate_limit_error", 429),
        (500, "api_error", 500),
        (502, "api_error", 500),
        (504, "api_error", 500),
        (503, "overloaded_error", 529),
        (529, "overloaded_error", 529),
        (402, "invalid_request_error", 400),
        (520, "api_error", 500),
    ],
)
def test_upstream_status_maps_to_anthropic_error_type_and_status(
    status: int, error_type: str, client_status: int
) -> None:
    body = orjson.dumps({"error": {"message": "boom", "type": "some_error", "param": None, "code": None}})
    error = parse_error(status, body, {})
    assert (error.error_type, error.status, error.upstream_status) == (error_type, client_status, status)
    assert error.message == f"upstream {status}: boom"


def test_rate_limit_error_carries_retry_after() -> None:
    message = "Rate limit reached for gpt-4.1 in organization org-x on tokens per min (TPM): Limit 30000."
    body = orjson.dumps(
        {"error": {"message": message, "type": "tokens", "param": None, "code": "rate_limit_exceeded"}}
    )
    error = parse_error(429, body, {"Retry-After": "7", "x-ratelimit-remaining-tokens": "0"})
    assert error.retry_after == "7"
    assert error.message.startswith("upstream 429: Rate limit reached for gpt-4.1")


def test_retry_after_is_none_when_absent() -> None:
    assert parse_error(429, b"{}", {}).retry_after is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'{"error":"model \\"llama9\\" not found, try pulling it first"}',
            'upstream 404: model "llama9" not found, try pulling it first',
        ),  # Ollama
        (
            b'{"object":"error","message":"max_tokens is too large","type":"BadRequestError","code":400}',
            "upstream 404: max_tokens is too large",
        ),  # vLLM
        (b'{"detail":"Not Found"}', "upstream 404: Not Found"),  # FastAPI
        (
            b'[{"error":{"code":404,"message":"models/x is not found","status":"NOT_FOUND"}}]',
            "upstream 404: models/x is not found",
        ),  # Gemini's OpenAI endpoint
        (b"model not found\n", "upstream 404: model not found"),  # plain text
        (b"", "upstream 404: Not Found"),  # empty body: the status phrase
        (
            b"<html><head><title>404 Not Found</title></head><body><center>nginx</center></body></html>",
            "upstream 404: 404 Not Found",
        ),  # a gateway's HTML page
    ],
)
def test_error_message_is_read_from_each_backend_body_format(body: bytes, message: str) -> None:
    assert parse_error(404, body, {}).message == message


def test_html_error_page_without_title_is_reduced_to_its_text() -> None:
    body = b"<html><body><h1>502 Bad Gateway</h1>\n<p>cloudflare</p></body></html>"
    assert parse_error(502, body, {}).message == "upstream 502: 502 Bad Gateway cloudflare"


def test_long_error_bodies_are_truncated() -> None:
    assert len(parse_error(500, b"x" * 10_000, {}).message) < 600


# --- the dialect ----------------------------------------------------------------------------------------


def test_dialect_delegates_to_the_response_functions() -> None:
    body = completion({"content": "hi"})
    assert DIALECT.parse_response(body, make_translation()) == parse_response(body, make_translation())
    assert DIALECT.parse_error(503, b"busy", {}).error_type == "overloaded_error"


def test_dialect_builds_requests_with_the_request_module() -> None:
    request = orjson.loads((ROOT / "tests" / "fixtures" / "claude-code" / "main_turn.json").read_bytes())
    target = Target(
        provider="openai",
        dialect="openai",
        base_url="https://api.openai.com/v1",
        model="gpt-4.1",
        api_key="sk-test",
    )
    translation = DIALECT.build_request(request, target, message_id=MESSAGE_ID, client_headers={})
    assert translation.upstream.url == "https://api.openai.com/v1/chat/completions"
    assert translation.client_model == request["model"] and translation.message_id == MESSAGE_ID


@pytest.mark.parametrize(
    "module", ["__init__.py", "response.py", "stream.py", "wire.py", "tool_calls.py", "../accumulate.py"]
)
def test_module_imports_only_the_stdlib_and_orjson(module: str) -> None:
    path = ROOT / "proxy" / "translate" / "openai_chat" / module
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    assert imported - set(sys.stdlib_module_names) <= {"orjson"}


def test_tool_call_without_a_name_raises() -> None:
    body = completion({"tool_calls": [call("c1", "", "{}")]}, "tool_calls")
    with pytest.raises(UpstreamError, match="without a name"):
        parse_response(body, make_translation())


@pytest.mark.parametrize(
    "body",
    [
        {"choices": "x"},
        {"choices": ["x"]},
        {"choices": [{"message": "hi"}]},
        {"choices": [{"message": {"tool_calls": {"id": "c1"}}}]},
        {"choices": [{"message": {"tool_calls": [{"id": "c1", "function": "Bash"}]}}]},
        {"choices": [{"message": {"content": "x"}}], "usage": "lots"},
    ],
)
def test_malformed_replies_raise_upstream_error(body: dict) -> None:
    with pytest.raises(UpstreamError, match="malformed"):
        parse_response(body, make_translation())


def test_registry_lists_this_dialect_under_openai() -> None:
    from proxy.translate.dialects import DIALECTS

    assert DIALECTS["openai"] is DIALECT


@pytest.mark.parametrize(
    "body",
    [
        b'{"error": {"message": "This model\'s maximum context length is 128000 tokens. However, your '
        b'messages resulted in 130000 tokens.", "type": "invalid_request_error", '
        b'"code": "context_length_exceeded"}}',
        b'{"object": "error", "message": "This model\'s maximum context length is 32768 tokens.", '
        b'"code": 400}',
        b'{"error": "the input exceeds the context window of this model"}',
        b'{"error": {"code": 400, "message": "the request exceeds the available context size, try increasing '
        b'it", "type": "exceed_context_size_error"}}',  # llama.cpp's server
    ],
)
def test_context_overflow_is_worded_as_anthropic_does_so_claude_code_compacts(body: bytes) -> None:
    error = DIALECT.parse_error(400, body, {})
    assert error.error_type == "invalid_request_error" and error.status == 400
    assert error.message.startswith("prompt is too long")


# What Claude Code 2.1.332 matches in an API error (read from its binary): any message containing the
# phrase starts a compaction, and the second takes the figures out of it to size a compaction retry.
# (Its anchored `^prompt is too long: \d+ tokens > \d+ maximum$` only tells Anthropic's own errors from
# others'; with the backend's words after it, ours rightly counts as another's.)
CLAUDE_CODE_PROMPT_TOO_LONG = re.compile(r"prompt is too long", re.IGNORECASE)
CLAUDE_CODE_GAP = re.compile(r"prompt is too long[^0-9]*(\d+)\s*tokens?\s*>\s*(\d+)", re.IGNORECASE)


@pytest.mark.parametrize(
    ("message", "actual", "limit"),
    [
        ("This model's maximum context length is 128000 tokens. However, your messages resulted in "
         "130000 tokens. Please reduce the length of the messages.", 130000, 128000),
        ("This model's maximum context length is 65536 tokens. However, you requested 70000 tokens "
         "(60000 in the messages, 10000 in the completion). Please reduce the length of the messages or "
         "completion.", 70000, 65536),
        ("This endpoint's maximum context length is 163,840 tokens. However, you requested about 170,213 "
         "tokens (150,213 of text input, 20,000 in the output). Please reduce the length of either one.",
         170213, 163840),
        ("This model's maximum context length is 32768 tokens and your request has 40000 input tokens. "
         "Please reduce the length of the input messages.", 40000, 32768),
        ("request (40000 tokens) exceeds the available context size (32768 tokens), try increasing it",
         40000, 32768),
    ],
)  # fmt: skip
def test_context_overflow_with_figures_is_said_exactly_as_anthropic_says_it(
    message: str, actual: int, limit: int
) -> None:
    body = orjson.dumps({"error": {"message": message, "code": "context_length_exceeded"}})
    error = DIALECT.parse_error(400, body, {})
    # Anthropic's words first, then the backend's own, so nothing it said is lost.
    assert error.message == f"prompt is too long: {actual} tokens > {limit} maximum (upstream 400: {message})"
    assert CLAUDE_CODE_PROMPT_TOO_LONG.search(error.message)
    gap = CLAUDE_CODE_GAP.search(error.message)
    assert gap is not None and (int(gap[1]), int(gap[2])) == (actual, limit)


# Claude Code 2.1.332 resends with max_tokens lowered to the limit this names (from its binary).
CLAUDE_CODE_OUTPUT_LIMIT = re.compile(
    r"^max_tokens: \d+ > (\d+), which is the maximum allowed number of output tokens for .+$"
)


@pytest.mark.parametrize(
    ("message", "asked", "limit"),
    [
        ("max_tokens is too large: 64000. This model supports at most 16384 completion tokens, whereas you "
         "provided 64000.", 64000, 16384),  # OpenAI
        ("'max_tokens' or 'max_completion_tokens' is too large: 64000. This model's maximum context length "
         "is 64001 tokens and your request has 24235 input tokens (64000 > 64001 - 24235). None",
         64000, 64001 - 24235),  # vLLM: the room the prompt leaves
        ("The parameter `max_completion_tokens` specified in the request are not valid: integer above "
         "maximum value, expected a value <= 12288, but got 32000 instead.", 32000, 12288),  # Volcengine
    ],
)  # fmt: skip
def test_max_tokens_over_the_models_limit_is_said_as_anthropic_says_it(
    message: str, asked: int, limit: int
) -> None:
    refusal = {"message": message, "type": "invalid_request_error", "param": "max_tokens"}
    error = DIALECT.parse_error(400, orjson.dumps({"error": refusal}), {})
    assert (error.error_type, error.status) == ("invalid_request_error", 400)
    assert not error.message.startswith("prompt is too long")  # vLLM's wording names the context length
    match = CLAUDE_CODE_OUTPUT_LIMIT.match(error.message)
    assert match is not None and int(match[1]) == limit
    assert error.message.startswith(f"max_tokens: {asked} > {limit}, ")


def test_context_overflow_without_figures_keeps_the_backends_words() -> None:
    words = "This model's maximum context length is 32768 tokens."
    error = DIALECT.parse_error(400, orjson.dumps({"object": "error", "message": words, "code": 400}), {})
    assert error.message == f"prompt is too long: upstream 400: {words}"


def test_other_400s_are_not_mistaken_for_context_overflow() -> None:
    error = DIALECT.parse_error(400, b'{"error": {"message": "Invalid tool schema"}}', {})
    assert not error.message.startswith("prompt is too long")

"""Fuzzing the request path and the translators with hypothesis: one harness for the bounded run in the
suite (tests/unit/test_fuzz.py, tests/integration/test_fuzz_http.py) and the long run (bench/fuzz.py).

Inputs are real Claude Code requests (tests/fixtures/claude-code*/) mutated at random places: a value
replaced by any JSON, a key deleted or added, a block's type changed, a string made huge or a number
out of range. The contract checked on each (`check_request`): validation refuses it with a 400
`invalid_request_error` whose message starts with the field's path, or every step after it (routing's
inspection, the token count, every dialect's translation and the encoding of what it sends) returns a
result or refuses with a 400. Anything else raised is a failure, and hypothesis shrinks it.
"""

from __future__ import annotations

import copy
import re
from functools import cache
from pathlib import Path
from typing import Any

import orjson
from hypothesis import strategies as st

from proxy.http.validation import MESSAGE_BLOCK_TYPES, TOOL_RESULT_BLOCK_TYPES, validate_messages_request
from proxy.recording.rows import failed_tool_results
from proxy.routing.rules import ProviderSpec, RuleSpec, Snapshot, choose_target, compile_config
from proxy.translate import tokens
from proxy.translate.base import TranslationError, UpstreamError
from proxy.translate.dialects import DIALECTS
from proxy.translate.openai_chat.response import parse_error
from proxy.translate.sse import SSEDecoder
from proxy.translate.types import JSONDict, SSEEvent, Target, Translation
from tests.pdfs import pdf_block

FIXTURES = Path(__file__).resolve().parent / "fixtures"
HEADERS = {"user-agent": "claude-cli/2.1.332 (external, cli)", "x-claude-code-session-id": "fuzz"}
# A field path as the validator and the translators name it: `messages.3.content.0.text: ...`.
_FIELD_MESSAGE = re.compile(r"^[A-Za-z_][\w.]*(?: [^:]*)?: ")


@cache
def claude_code_requests() -> tuple[bytes, ...]:
    """Every captured Claude Code Messages request, as bytes (each example parses its own copy)."""
    out = []
    for folder in sorted(FIXTURES.glob("claude-code*")):
        for path in sorted(folder.glob("*.json")):
            body = orjson.loads(path.read_bytes())
            if isinstance(body, dict) and "messages" in body:
                out.append(orjson.dumps(body))
    return tuple(out)


# --- strategies --------------------------------------------------------------------------------------

_KEYS = st.sampled_from(
    ["type", "text", "content", "source", "id", "name", "input", "tool_use_id", "is_error", "role",
     "model", "max_tokens", "cache_control", "title", "data", "media_type", "strict", "thinking",
     "signature", "format", "schema", "properties", "required", "user_id", "budget_tokens"]
) | st.text(max_size=8)  # fmt: skip
_TYPES = st.sampled_from(sorted(MESSAGE_BLOCK_TYPES | TOOL_RESULT_BLOCK_TYPES)) | st.text(max_size=12)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)  # what JSON parsers hand on (orjson: 64 bits)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(
        [
            "",
            "<switchboard-agent>x</switchboard-agent>",
            "{",
            '{"session_id": 5}',
            "\x00",
            "<switchboard-agent>" + " " * 5000,
        ]
    )  # a pattern that backtracks hangs on this
)
JSON_VALUES = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_KEYS, children, max_size=4),
    max_leaves=12,
)


def _containers(value: Any) -> list[Any]:
    """Every dict and list in a JSON value: the places a mutation can land."""
    found: list[Any] = []
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            found.append(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            found.append(node)
            stack.extend(node)
    return found


_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
_IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": _PNG}}
# Blocks the captured requests lack, added at random before mutating, so mutations reach their fields.
EXOTIC_BLOCKS = (
    pdf_block("Invoice 42", title="invoice.pdf"),
    {"type": "document", "title": "notes", "context": "wiki",
     "source": {"type": "text", "media_type": "text/plain", "data": "a note"}},
    {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "p"}, _IMAGE]}},
    {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}},
    {"type": "search_result", "source": "https://example.com", "title": "Example",
     "content": [{"type": "text", "text": "a result"}]},
    _IMAGE,
    {"type": "tool_result", "tool_use_id": "toolu_missing", "content": [pdf_block("in a tool result")]},
    {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "q"}},
    {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
    {"type": "redacted_thinking", "data": "opaque"},
)  # fmt: skip


def _add_exotic_block(body: Any, block: JSONDict) -> None:
    messages = body.get("messages") if isinstance(body, dict) else None
    users = [m for m in messages or [] if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        return
    message = users[-1]
    if isinstance(message.get("content"), str):
        message["content"] = [{"type": "text", "text": message["content"]}]
    if isinstance(message.get("content"), list):
        message["content"].insert(0, copy.deepcopy(block))


@st.composite
def mutated_requests(draw: st.DrawFn, max_mutations: int = 4) -> Any:
    """A captured Claude Code request with 1..max_mutations random changes."""
    body = orjson.loads(draw(st.sampled_from(claude_code_requests())))
    if draw(st.booleans()):
        _add_exotic_block(body, draw(st.sampled_from(EXOTIC_BLOCKS)))
    for _ in range(draw(st.integers(1, max_mutations))):
        places = _containers(body)
        node = places[draw(st.integers(0, len(places) - 1))]
        if isinstance(node, dict):
            keys = sorted(node, key=str)
            op = draw(st.sampled_from(["replace", "delete", "add", "retype"] if keys else ["add"]))
            if op == "add":
                node[draw(_KEYS)] = draw(JSON_VALUES)
                continue
            key = draw(st.sampled_from(keys))
            if op == "delete":
                del node[key]
            elif op == "retype" and "type" in node:
                node["type"] = draw(_TYPES)
            else:
                node[key] = draw(JSON_VALUES | st.just("x" * draw(st.integers(0, 70_000))))
        else:
            op = draw(st.sampled_from(["replace", "delete", "append", "nest"] if node else ["append"]))
            if op == "append":
                node.append(draw(JSON_VALUES))
                continue
            i = draw(st.integers(0, len(node) - 1))
            if op == "delete":
                del node[i]
            elif op == "nest":  # deep nesting, within what a JSON parser accepts
                value: Any = node[i]
                for _ in range(draw(st.integers(1, 200))):
                    value = [value]
                node[i] = value
            else:
                node[i] = draw(JSON_VALUES)
    if draw(st.booleans()):  # the top level replaced too, sometimes
        body = draw(st.sampled_from([body, body, body, [], "x", 0, None, {}]))
    return body


def random_requests() -> st.SearchStrategy[Any]:
    """Bodies from scratch: mostly well-formed at the top, anything below."""
    block = st.dictionaries(_KEYS, JSON_VALUES, max_size=5) | st.fixed_dictionaries(
        {"type": _TYPES}, optional={"text": JSON_VALUES, "content": JSON_VALUES, "source": JSON_VALUES}
    )
    message = st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "system"]) | JSON_VALUES},
        optional={"content": st.text(max_size=20) | st.lists(block, max_size=4) | JSON_VALUES},
    )
    anything = {
        k: JSON_VALUES
        for k in ("system", "tools", "tool_choice", "thinking", "metadata", "stream", "output_config",
                  "stop_sequences", "temperature", "top_k")
    }  # fmt: skip
    return st.fixed_dictionaries(
        {"model": st.just("claude-sonnet-4-5") | JSON_VALUES, "messages": st.lists(message, max_size=4)},
        optional={"max_tokens": st.integers(-5, 2**40) | JSON_VALUES, **anything},
    )


# --- the contract --------------------------------------------------------------------------------------


def _targets() -> list[Target]:
    openai = "https://api.openai.com/v1"
    gemini = "https://generativelanguage.googleapis.com"
    return [
        Target(provider="openai", dialect="openai", base_url=openai, model="gpt-4o", api_key="k"),
        Target(
            provider="local",
            dialect="openai",
            base_url="http://127.0.0.1:11434/v1",
            model="qwen3",
            max_output_tokens=8192,
            options=frozenset({"reasoning", "replay_reasoning", "top_k", "max_completion_tokens"}),
        ),
        Target(provider="anthropic", dialect="anthropic", base_url="https://api.anthropic.com", model=""),
        Target(provider="compat", dialect="anthropic", base_url="http://127.0.0.1:9/anthropic", model="m"),
        Target(provider="gemini", dialect="gemini", base_url=gemini, model="gemini-3-flash", api_key="k"),
        # An older model: tool schemas rewritten into Gemini's OpenAPI subset, budget-based thinking.
        Target(provider="gemini2", dialect="gemini", base_url=gemini, model="gemini-2.0-flash", api_key=""),
    ]


@cache
def _snapshot() -> Snapshot:
    providers = [ProviderSpec(name="openai", dialect="openai", base_url="https://api.openai.com/v1")]
    conditions: list[dict[str, Any]] = [
        {"task": "background"}, {"task": "think"}, {"task": "image"}, {"task": "web_search"},
        {"task": "long_context"}, {"agent": "Explore"}, {"model": "*opus*"}, {"client": "claude-cli"},
    ]  # fmt: skip
    rules = [
        RuleSpec(name=f"r{i}", provider="openai", model="m", conditions=c) for i, c in enumerate(conditions)
    ]
    rules.append(RuleSpec(name="default", provider="openai", model="m", is_default=True))
    return compile_config(providers, rules)


def _is_field_refusal(exc: TranslationError) -> bool:
    return (
        exc.status == 400
        and exc.error_type == "invalid_request_error"
        and bool(_FIELD_MESSAGE.match(exc.message))
    )


def check_request(body: Any, *, endpoint: str = "messages") -> str:
    """ "refused" or "translated"; raises AssertionError (or whatever broke) when the contract is broken."""
    try:
        request = validate_messages_request(body, needs_max_tokens=endpoint == "messages")
    except TranslationError as exc:
        assert _is_field_refusal(exc), f"refusal does not name a field: {exc.status} {exc.message!r}"
        return "refused"
    failed_tool_results(request)
    decision = choose_target(_snapshot(), request, HEADERS, count_tokens=tokens.count_tokens)
    assert decision is not None
    tokens.count_tokens(decision.body)
    for target in _targets():
        try:
            translation = DIALECTS[target.dialect].build_request(
                decision.body, target, message_id="msg_fuzz", client_headers=HEADERS
            )
        except TranslationError as exc:
            assert _is_field_refusal(exc), f"{target.provider}: refusal names no field: {exc.message!r}"
            continue
        orjson.dumps(translation.upstream.body, option=orjson.OPT_PASSTHROUGH_DATACLASS)
    return "translated"


# --- the response side -------------------------------------------------------------------------------------


@cache
def upstream_streams() -> tuple[tuple[str, bytes], ...]:
    """(dialect, raw SSE) for every recorded upstream stream."""
    out = [("openai", p.read_bytes()) for p in sorted((FIXTURES / "openai").glob("*.sse"))]
    out += [("anthropic", p.read_bytes()) for p in sorted((FIXTURES / "anthropic").glob("*.sse"))]
    out += [("gemini", p.read_bytes()) for p in sorted((FIXTURES / "gemini").glob("*.sse"))]
    return tuple(out)


def _translation(dialect: str) -> Translation:
    target = next(t for t in _targets() if t.dialect == dialect)
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "stream": True,
        "stop_sequences": list("abcde"),  # over the backend's limit: some matched locally
        "messages": [{"role": "user", "content": "hi"}],
        "thinking": {"type": "enabled", "budget_tokens": 2000},
    }
    return DIALECTS[dialect].build_request(body, target, message_id="msg_fuzz", client_headers=HEADERS)


@st.composite
def mutated_streams(draw: st.DrawFn) -> tuple[str, list[SSEEvent]]:
    """A recorded upstream stream with events dropped, duplicated or their JSON mutated."""
    dialect, raw = draw(st.sampled_from(upstream_streams()))
    decoder = SSEDecoder()
    events = [*decoder.feed(raw), *decoder.flush()]
    out: list[SSEEvent] = []
    for event in events:
        op = draw(st.sampled_from(["keep", "keep", "keep", "drop", "twice", "mutate", "garbage"]))
        if op == "drop":
            continue
        if op == "garbage":
            out.append(SSEEvent(data=draw(st.text(max_size=30)), event=event.event))
            continue
        if op == "mutate":
            try:
                data = orjson.loads(event.data)
            except orjson.JSONDecodeError:
                data = event.data
            places = _containers(data)
            if places:
                node = places[draw(st.integers(0, len(places) - 1))]
                if isinstance(node, dict) and node:
                    node[draw(st.sampled_from(sorted(node, key=str)))] = draw(JSON_VALUES)
                elif isinstance(node, list) and node:
                    node[draw(st.integers(0, len(node) - 1))] = draw(JSON_VALUES)
            event = SSEEvent(data=orjson.dumps(data).decode(), event=event.event)
        out.append(event)
        if op == "twice":
            out.append(event)
    return dialect, out


def check_stream(dialect: str, events: list[SSEEvent]) -> str:
    """Translated events or an UpstreamError (an Anthropic error frame for the client); nothing else."""
    translator = DIALECTS[dialect].stream_translator(_translation(dialect))
    try:
        for event in events:
            translator.feed(event)
        translator.finish()
    except UpstreamError:
        return "upstream_error"
    return "translated"


def check_reply(dialect: str, body: Any) -> str:
    """A non-streaming reply: a Message, or an UpstreamError."""
    translation = _translation(dialect)
    try:
        if isinstance(body, dict):
            DIALECTS[dialect].parse_response(body, translation)
        parse_error(400, orjson.dumps(body), {})
    except UpstreamError:
        return "upstream_error"
    return "translated"

"""Readable model scripts for the scripted upstreams, and what the upstream reads from a request.

A scenario is the list of turns the "model" plays, one per request of the main conversation:

    Scenario("write", [
        call("Write", file_path=in_cwd("hello.txt"), content="hi\n"),
        say("Wrote hello.txt."),
    ])

The upstream never hard-codes Claude Code's wire details. It reads them from each request:
- which scenario: the `[e2e:NAME]` marker in the first user message (the test's prompt);
- which turn: how many assistant messages the conversation already holds;
- which tool: the request's own tool list (exact name, else case-insensitively, else a known rename);
- which argument keys: the tool's own input schema (`file_path` still lands if it became `path`);
- the working directory, from the system prompt; the last tool result, from the last tool message.
Requests without a marker are Claude Code's side calls (titles, summaries): see `side_answer`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

JSON = dict[str, Any]
MARKER = re.compile(r"\[e2e:([\w./-]+)\]")
# Renames seen in Claude Code's history: the subagent tool was "Task" before it was "Agent".
TOOL_ALIASES = {"agent": ("Task",), "task": ("Agent",)}


class ScriptError(Exception):
    """The request does not fit the script: Claude Code changed something the script relies on."""


@dataclass
class Context:
    """What the upstream read from one request, in vendor-neutral form."""

    model: str
    tools: dict[str, JSON]  # tool name -> JSON schema of its arguments
    cwd: str
    prompt: str  # text of the first user message
    turn: int  # assistant messages already in the conversation
    tool_results: list[str]  # text of every tool result, oldest first
    wants_json: JSON | None = None  # the JSON schema of a structured-output request

    @property
    def last_result(self) -> str:
        if not self.tool_results:
            raise ScriptError("the script reads a tool result but the request holds none")
        return self.tool_results[-1]


Value = Any  # a plain value, or a Callable[[Context], Any] resolved per request


@dataclass(frozen=True)
class ToolCall:
    tool: str
    args: dict[str, Value]
    chunk: int = 0  # >0: stream the arguments JSON in pieces of this many characters
    # The arguments' JSON text as the "model" botches it (fences, a trailing comma, a field left out):
    # tool-call healing (issue #15) has to mend it before Claude Code sees it.
    mangle: Callable[[str], str] | None = None


@dataclass(frozen=True)
class Turn:
    """One model reply: optional thinking, optional text, then tool calls (all in parallel)."""

    text: Value = ""
    thinking: str = ""
    calls: tuple[ToolCall, ...] = ()
    fail_after: str | None = None  # stream this text, then break the stream with a backend error...
    hang_up: bool = False  # ...or by dropping the connection mid-body
    stream_only: bool = False  # the failure hits streaming requests only: a non-streaming retry succeeds
    text_chunk: int = 8  # characters per streamed text delta
    # Played for the proxy's retry of this turn's broken call (a request ending in its error feedback).
    retry: Turn | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    turns: list[Turn]
    # Played for requests past the script's end: newer Claude Code versions come back for another turn
    # (e.g. when a background subagent's result arrives), and the model has nothing more to do.
    after: Turn | None = None
    # The backend model's output limit: a request asking for more is refused, as the vendor words it.
    max_output: int | None = None


def call(tool: str, chunk: int = 0, **args: Value) -> Turn:
    return Turn(calls=(ToolCall(tool, args, chunk),))


def parallel(*calls: Turn) -> Turn:
    """Several tool calls in one assistant message."""
    return Turn(calls=tuple(c for turn in calls for c in turn.calls))


def broken_stream(turn: Turn, after: str, hang_up: bool = False) -> Turn:
    """`turn`, but every streaming attempt breaks after `after`: only a non-streaming retry gets it."""
    return replace(turn, fail_after=after, hang_up=hang_up, stream_only=True)


def botched(turn: Turn, mangle: Callable[[str], str], retry: Turn | None = None) -> Turn:
    """`turn` with its calls' arguments botched by `mangle`; `retry` answers the proxy's retry."""
    calls = tuple(replace(c, mangle=mangle) for c in turn.calls)
    return replace(turn, calls=calls, retry=retry)


# How Switchboard words the error of a call it retries (proxy/translate/healing/feedback.py).
RETRY_FEEDBACK = "could not be used, nothing was run"


def say(text: Value, thinking: str = "") -> Turn:
    return Turn(text=text, thinking=thinking)


def fail(after: str, hang_up: bool = False) -> Turn:
    """Stream `after`, then fail: an error event, or (hang_up) a dropped connection."""
    return Turn(fail_after=after, hang_up=hang_up)


def in_cwd(name: str) -> Callable[[Context], str]:
    """An absolute path in Claude Code's working directory (its file tools want absolute paths)."""
    return lambda ctx: f"{ctx.cwd.rstrip('/')}/{name}"


def last_result(transform: Callable[[str], str] = str.strip) -> Callable[[Context], str]:
    return lambda ctx: transform(ctx.last_result)


def resolve(value: Value, ctx: Context) -> Any:
    return value(ctx) if callable(value) else value


@dataclass(frozen=True)
class ResolvedCall:
    name: str
    arguments: JSON
    chunk: int
    mangle: Callable[[str], str] | None = None

    def arguments_text(self) -> str:
        text = json.dumps(self.arguments)
        return self.mangle(text) if self.mangle else text


def resolve_call(tc: ToolCall, ctx: Context) -> ResolvedCall:
    """Pick the request's tool for `tc.tool` and map each argument onto that tool's schema."""
    name = _find_tool(tc.tool, ctx.tools)
    props = ctx.tools[name].get("properties", {}) or {}
    arguments = {_find_property(key, props, name): resolve(v, ctx) for key, v in tc.args.items()}
    missing = [r for r in ctx.tools[name].get("required", []) if r not in arguments]
    if missing:
        raise ScriptError(f"tool {name} now requires {missing}; the script gives {sorted(arguments)}")
    return ResolvedCall(name, arguments, tc.chunk, tc.mangle)


def _find_tool(wanted: str, tools: dict[str, JSON]) -> str:
    if wanted in tools:
        return wanted
    lowered = {name.lower(): name for name in tools}
    for candidate in (wanted, *TOOL_ALIASES.get(wanted.lower(), ())):
        if candidate.lower() in lowered:
            return lowered[candidate.lower()]
    raise ScriptError(f"no tool {wanted!r} in the request; it offers {sorted(tools)}")


def _norm(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


def _find_property(key: str, props: JSON, tool: str) -> str:
    if key in props or not props:
        return key
    by_norm = {_norm(p): p for p in props}
    if _norm(key) in by_norm:  # file_path -> filePath
        return by_norm[_norm(key)]
    # file_path -> path: the property named by the key's last word, if exactly one fits.
    tail = [p for p in props if _norm(key).endswith(_norm(p)) or _norm(p).endswith(_norm(key))]
    if len(tail) == 1:
        return tail[0]
    raise ScriptError(f"tool {tool} has no argument like {key!r}; its schema has {sorted(props)}")


def scenario_name(prompt: str) -> str | None:
    match = MARKER.search(prompt)
    return match.group(1) if match else None


def working_directory(system_text: str) -> str:
    match = re.search(r"(?:Primary working directory|Working directory|cwd):\s*(\S+)", system_text)
    return match.group(1) if match else "."


def side_answer(ctx: Context) -> str:
    """Claude Code's side calls (title, summary, classifier): valid JSON when a schema is asked for."""
    if ctx.wants_json is not None:
        return json.dumps(_fill_schema(ctx.wants_json))
    return "Switchboard e2e"


def _fill_schema(schema: JSON) -> Any:
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {k: _fill_schema(v) for k, v in props.items() if k in schema.get("required", props)}
    if kind == "array":
        return []
    if kind == "boolean":
        return False
    if kind in ("integer", "number"):
        return 0
    if "enum" in schema:
        return schema["enum"][0]
    return "Switchboard e2e"


def plan_turn(scenarios: dict[str, Scenario], ctx: Context) -> Turn:
    """The turn to play for this request; side calls get a short text answer."""
    name = scenario_name(ctx.prompt)
    # Side calls may quote the prompt, but they offer no tools or ask for JSON: never the script's turn.
    if name is None or not ctx.tools or ctx.wants_json is not None:
        return say(side_answer(ctx))
    if name not in scenarios:
        raise ScriptError(f"no scenario {name!r} registered")
    scenario = scenarios[name]
    if ctx.tool_results and RETRY_FEEDBACK in ctx.tool_results[-1][:300]:
        # The proxy's retry of the previous turn's broken call: one assistant message more than the turn.
        retried = scenario.turns[ctx.turn - 1].retry if 0 < ctx.turn <= len(scenario.turns) else None
        if retried is None:
            raise ScriptError(f"scenario {name}: a retry of turn {ctx.turn - 1}, which has no retry answer")
        return retried
    if ctx.turn >= len(scenario.turns):
        if scenario.after is not None:
            return scenario.after
        raise ScriptError(f"scenario {name}: turn {ctx.turn} asked, the script has {len(scenario.turns)}")
    return scenario.turns[ctx.turn]

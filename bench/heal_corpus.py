"""The tool-call healing corpus (issue #15): `python bench/heal_corpus.py --cases 300`.

Generates `cases` broken tool calls across the repair kinds and the kinds that need a retry, plus as
many valid ones, for the tools Claude Code really sends (tests/fixtures/claude-code/main_turn.json),
and plays each through a real Switchboard process against the scripted OpenAI server: the arguments
streamed in small fragments, a retry answered with the fixed call. Prints healed / broken, valid
untouched / valid, the extra backend calls, and the microseconds healing adds per valid call, measured
in-process (the stage over one call's events, with and without healing) and through the proxy (median
latency, healing on vs off: noisy on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, when run on its own

import httpx

from proxy.translate.healing.decide import ToolSet
from proxy.translate.healing.stream import ToolCallHealer
from tests.conftest import ROOT, load_fixture, start_server, stop_server
from tests.fakes.openai_upstream import FakeOpenAI, completion, tool_stream

REQUEST = load_fixture("main_turn")
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "src",
    "tests",
    "main",
    "util",
    "config",
    "data",
    "build",
    "cache",
    "index",
    "notes",
]


def word(rng: random.Random) -> str:
    return rng.choice(WORDS)


def path(rng: random.Random) -> str:
    return (
        "/work/" + "/".join(word(rng) for _ in range(rng.randint(1, 3))) + rng.choice([".py", ".md", ".txt"])
    )


# tool -> a valid input, made up from the rng
VALID: dict[str, Callable[[random.Random], dict[str, Any]]] = {
    "Bash": lambda r: {
        "command": f"ls {path(r)} | head -{r.randint(1, 50)}",
        "description": f"List {word(r)}",
    },
    "Write": lambda r: {"file_path": path(r), "content": "\n".join(word(r) for _ in range(r.randint(1, 30)))},
    "Edit": lambda r: {"file_path": path(r), "old_string": word(r), "new_string": word(r) + " " + word(r)},
    "Read": lambda r: {"file_path": path(r)},
    "WebSearch": lambda r: {"query": f"{word(r)} {word(r)}"},
}


def _dumps(value: Any) -> str:
    return json.dumps(value)


# kind -> (tool, make(rng) -> (raw arguments, name sent, expected input, fixed input for a retry or None))
Case = tuple[str, str, str, dict[str, Any], dict[str, Any] | None]


def _repair(tool: str, mangle: Callable[[dict[str, Any], random.Random], tuple[str, dict[str, Any]]]):  # type: ignore[no-untyped-def]
    def make(rng: random.Random) -> Case:
        good = VALID[tool](rng)
        raw, expected = mangle(good, rng)
        return tool, tool, raw, expected, None

    return make


def _retry(tool: str, mangle: Callable[[dict[str, Any], random.Random], str]):  # type: ignore[no-untyped-def]
    def make(rng: random.Random) -> Case:
        good = VALID[tool](rng)
        return tool, tool, mangle(good, rng), good, good

    return make


def _renamed(rng: random.Random) -> Case:
    good = VALID["Bash"](rng)
    return "Bash", rng.choice(["bash", "BASH"]), _dumps(good), good, None


def _python(good: dict[str, Any], rng: random.Random) -> tuple[str, dict[str, Any]]:
    value = {**good, "replace_all": True}
    return _dumps(value).replace("true", "True"), value


def _control(good: dict[str, Any], rng: random.Random) -> tuple[str, dict[str, Any]]:
    value = {**good, "content": good["content"] + "\n\tend"}
    return _dumps(value).replace("\\n", "\n").replace("\\t", "\t"), value


BROKEN: dict[str, Callable[[random.Random], Case]] = {
    "fence": _repair("Write", lambda g, r: (f"```json\n{_dumps(g)}\n```", g)),
    "prose": _repair("Bash", lambda g, r: (f"Here is the call: {_dumps(g)} I will run it.", g)),
    "trailing_comma": _repair("Edit", lambda g, r: (_dumps(g)[:-1] + ",}", g)),
    "double_encoded": _repair("Read", lambda g, r: (_dumps(_dumps(g)), g)),
    "python_literal": _repair("Edit", _python),
    "control_chars": _repair("Write", _control),
    "missing_brackets": _repair("Bash", lambda g, r: (_dumps(g)[:-1], g)),
    "string_to_integer": _repair("Read", lambda g, r: (_dumps({**g, "offset": "10"}), {**g, "offset": 10})),
    "string_to_number": _repair(
        "Bash", lambda g, r: (_dumps({**g, "timeout": "60000"}), {**g, "timeout": 60000})
    ),
    "string_to_boolean": _repair(
        "Edit", lambda g, r: (_dumps({**g, "replace_all": "true"}), {**g, "replace_all": True})
    ),
    "null_dropped": _repair("Bash", lambda g, r: (_dumps({**g, "timeout": None}), g)),
    "string_to_array": _repair(
        "WebSearch",
        lambda g, r: (
            _dumps({**g, "allowed_domains": _dumps(["a.com"])}),
            {**g, "allowed_domains": ["a.com"]},
        ),
    ),
    "tool_name": _renamed,
    # still invalid after every repair: a retry, answered with the fixed call
    "missing_required": _retry("Write", lambda g, r: _dumps({"file_path": g["file_path"]})),
    "extra_property": _retry("Bash", lambda g, r: _dumps({**g, "force": True})),
    "single_quotes": _retry("Read", lambda g, r: _dumps(g).replace('"', "'")),
    "not_json": _retry("Bash", lambda g, r: f"command={g['command']}"),
    "empty": _retry("Edit", lambda g, r: ""),
}
RETRY_KINDS = {"missing_required", "extra_property", "single_quotes", "not_json", "empty"}


def pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def fixed_reply(name: str, arguments: dict[str, Any]) -> Any:
    call = {
        "id": "call_fixed",
        "type": "function",
        "function": {"name": name, "arguments": _dumps(arguments)},
    }
    return completion(None, tool_calls=[call], finish="tool_calls")


def play(
    url: str, fake: FakeOpenAI, case: Case, rng: random.Random
) -> tuple[dict[str, Any] | None, str, int, float]:
    """One case through the proxy: (input the client got, its raw JSON, backend requests, seconds)."""
    tool, name, raw, _expected, fixed = case
    fake.reset()
    fake.script(tool_stream([("call_1", name, pieces(raw, rng.randint(2, 12)))]))
    if fixed is not None:
        fake.script(fixed_reply(tool, fixed))
    body = {**REQUEST, "stream": True, "model": "claude-opus-4-8"}
    started = time.perf_counter()
    with httpx.stream("POST", f"{url}/v1/messages", json=body, timeout=30) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    seconds = time.perf_counter() - started
    events = [json.loads(line[6:]) for line in lines]
    sent = "".join(e["delta"].get("partial_json", "") for e in events if e["type"] == "content_block_delta")
    try:
        got = json.loads(sent)
    except json.JSONDecodeError:
        got = None
    return got, sent, len(fake.requests), seconds


def in_process_us(rng: random.Random, n: int) -> tuple[float, float]:
    """Microseconds per valid call: the stage over one call's events, and `decide` alone (warm cache)."""
    tools = ToolSet(REQUEST["tools"])
    calls = [(tool, _dumps(VALID[tool](rng))) for tool in rng.choices(list(VALID), k=n)]

    def events(tool: str, raw: str) -> list[dict[str, Any]]:
        start = {"type": "tool_use", "id": "toolu_1", "name": tool, "input": {}}
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces(raw, 8)]
        return [
            {"type": "content_block_start", "index": 0, "content_block": start},
            *({"type": "content_block_delta", "index": 0, "delta": d} for d in deltas),
            {"type": "content_block_stop", "index": 0},
            {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {}},
        ]

    prepared = [events(tool, raw) for tool, raw in calls]
    for evs in prepared[:50]:  # warm the validator cache, as the second turn of a session finds it
        healer = ToolCallHealer(tools, retries=1)
        for e in evs:
            healer.feed(e)
    started = time.perf_counter()
    for evs in prepared:
        healer = ToolCallHealer(tools, retries=1)
        for e in evs:
            healer.feed(e)
        healer.finish()
    stage = (time.perf_counter() - started) / n * 1e6
    from proxy.translate.healing.decide import decide

    started = time.perf_counter()
    for tool, raw in calls:
        decide(tool, raw, tools, finished=True)
    alone = (time.perf_counter() - started) / n * 1e6
    return stage, alone


def configured_server(tmp: Path, fake: FakeOpenAI, *, heal: bool) -> Any:
    import subprocess

    data_dir = tmp / ("on" if heal else "off")
    config = tmp / f"routes-{heal}.toml"
    config.write_text(
        f'[[providers]]\nname = "bench"\nbase_url = "{fake.url}"\napi_key_env = "OPENAI_API_KEY"\n'
        f"heal_tool_calls = {'true' if heal else 'false'}\n\n"
        '[[rules]]\nname = "default"\nprovider = "bench"\nmodel = "bench-model"\ndefault = true\n'
    )
    env = {**os.environ, "SWITCHBOARD_DATA_DIR": str(data_dir), "OPENAI_API_KEY": "sk-bench"}
    for command in (["migrate", "-v", "0"], ["routes", "import", str(config)]):
        subprocess.run(
            [sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True
        )
    return start_server(tmp, {"SWITCHBOARD_DATA_DIR": str(data_dir), "OPENAI_API_KEY": "sk-bench"})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=300, help="broken calls (and as many valid ones)")
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    kinds = list(BROKEN)
    broken = [(kinds[i % len(kinds)], BROKEN[kinds[i % len(kinds)]](rng)) for i in range(args.cases)]
    valid = []
    for _ in range(args.cases):
        tool = rng.choice(list(VALID))
        good = VALID[tool](rng)
        # As a backend writes it: its own spacing, kept byte for byte by the proxy.
        raw = json.dumps(good, separators=rng.choice([(",", ":"), (", ", ": "), (",  ", ":  ")]))
        valid.append((tool, tool, raw, good, None))

    stage_us, decide_us = in_process_us(rng, 5000)
    with FakeOpenAI() as fake, tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        on = configured_server(tmp, fake, heal=True)
        off = configured_server(tmp, fake, heal=False)
        try:
            healed, by_kind, total_kind = 0, Counter[str](), Counter[str]()
            extra, wrong = 0, []
            for kind, case in broken:
                got, _sent, requests, _s = play(on.url, fake, case, rng)
                total_kind[kind] += 1
                extra += requests - 1
                if got == case[3]:
                    healed += 1
                    by_kind[kind] += 1
                elif len(wrong) < 5:
                    wrong.append((kind, case[2][:80], got))
            untouched, valid_extra = 0, 0
            seconds_on, seconds_off = [], []
            for case in valid:
                got, sent, requests, s_on = play(on.url, fake, case, rng)
                untouched += sent == case[2]
                valid_extra += requests - 1
                seconds_on.append(s_on)
                seconds_off.append(play(off.url, fake, case, rng)[3])
        finally:
            stop_server(on)
            stop_server(off)
    retried = sum(total_kind[k] for k in RETRY_KINDS)
    print(f"broken calls healed: {healed}/{len(broken)} ({100 * healed / len(broken):.1f} %)")
    for kind in kinds:
        print(
            f"  {kind:18} {by_kind[kind]}/{total_kind[kind]}{'  (by a retry)' if kind in RETRY_KINDS else ''}"
        )
    print(f"extra backend calls: {extra} for {len(broken)} broken calls ({retried} needed a retry)")
    print(
        f"valid calls untouched (byte for byte): {untouched}/{len(valid)}; extra backend calls: {valid_extra}"
    )
    print(
        f"added per valid call, in-process: {stage_us:.1f} us (the stage), {decide_us:.1f} us (decide alone)"
    )
    on_ms, off_ms = statistics.median(seconds_on) * 1000, statistics.median(seconds_off) * 1000
    print(f"through the proxy, median per valid call: {on_ms:.2f} ms healing on, {off_ms:.2f} ms off")
    for sample in wrong:
        print("  not healed:", sample)
    return 0 if healed == len(broken) and untouched == len(valid) else 1


if __name__ == "__main__":
    sys.exit(main())

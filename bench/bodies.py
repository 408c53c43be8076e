"""Request bodies: captured Claude Code requests, and the same conversation as an OpenAI Chat body.

The OpenAI body is what the direct baseline sends to the fake upstream: about the same size and shape as
what the proxy forwards, built here by a few lines of our own so the baseline does not use the proxy's
translator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "claude-code"


def fixture(name: str) -> dict[str, Any]:
    return orjson.loads((FIXTURES / f"{name}.json").read_bytes())


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(b.get("text", "") for b in content if b.get("type") == "text")


def anthropic_to_openai(body: dict[str, Any]) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    if body.get("system"):
        messages.append({"role": "system", "content": _text(body["system"])})
    for m in body["messages"]:
        content = m["content"]
        blocks = content if isinstance(content, list) else []
        for b in blocks:
            if b.get("type") == "tool_result":
                messages.append(
                    {"role": "tool", "tool_call_id": b["tool_use_id"], "content": _text(b["content"])}
                )
        msg: dict[str, Any] = {"role": m["role"], "content": _text(content)}
        calls = [b for b in blocks if b.get("type") == "tool_use"]
        if calls:
            msg["tool_calls"] = [
                {
                    "id": b["id"],
                    "type": "function",
                    "function": {"name": b["name"], "arguments": orjson.dumps(b["input"]).decode()},
                }
                for b in calls
            ]
        messages.append(msg)
    out: dict[str, Any] = {
        "model": "gpt-bench",
        "messages": messages,
        "max_tokens": body.get("max_tokens"),
        "stream": bool(body.get("stream")),
    }
    if body.get("tools"):
        out["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t["name"],
                    "description": t.get("description", ""),
                    "parameters": t.get("input_schema", {}),
                },
            }
            for t in body["tools"]
        ]
    if out["stream"]:
        out["stream_options"] = {"include_usage": True}
    return out

"""Scripted Anthropic Messages servers that behave like the real ones and their compatible imitations.

Each checks what it receives the way that server does and answers with reasoning of its own:

- "anthropic": Anthropic's API. Every thinking block must carry a signature it minted ("Invalid
  `signature` in `thinking` block"), and with thinking on, the tool loop's assistant turn must start with
  one. Serves count_tokens.
- "ollama": no count_tokens endpoint (404), tool_choice ignored, and a failure written into the stream
  as a bare `{"error": "..."}` (what `no_stream_errors` covers).
- "deepseek": no images or documents (400), `tool_choice: any` treated as auto (it answers in text), and
  a tool-call turn must bring back DeepSeek's own thinking when thinking is on.
- "minimax": text only: images and documents are refused.
- "kimi": tool ids must be shaped `functions.<name>:<n>`; its own calls come back with such ids.

Reference: each vendor's Anthropic-compatibility page (see proxy/routing/presets.py's docstring).
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from tests.fakes.anthropic_upstream import FakeAnthropic, anthropic_error
from tests.fakes.openai_upstream import Reply

_KIMI_ID = re.compile(r"functions\.[^:]+:\d+")


class FakeCompatible(FakeAnthropic):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.minted: set[str] = set()
        self._serial = itertools.count()
        if kind != "anthropic":
            self.paths = ("/v1/messages",)  # no count_tokens: a 404

    # -- what the server refuses ------------------------------------------------------------------

    def problem(self, body: Any) -> str | None:
        if "max_tokens" not in body:
            return None
        messages = body.get("messages") or []
        blocks = [
            (i, j, b)
            for i, m in enumerate(messages)
            if isinstance(m.get("content"), list)
            for j, b in enumerate(m["content"])
        ]
        for i, j, block in blocks:
            kind = block.get("type")
            if kind in ("image", "document") and self.kind in ("deepseek", "minimax"):
                return f"messages.{i}.content.{j}: {kind} is not supported"
            signed = block.get("signature") in self.minted
            if kind == "thinking" and self.kind in ("anthropic", "deepseek") and not signed:
                return f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
            if self.kind == "kimi" and kind == "tool_use" and not _KIMI_ID.fullmatch(str(block.get("id"))):
                return f"messages.{i}.content.{j}.id: tool call id must be functions.<name>:<index>"
        thinking_on = (body.get("thinking") or {}).get("type") in ("enabled", "adaptive")
        if thinking_on and self.kind in ("anthropic", "deepseek") and _in_tool_loop(messages):
            last = next(m for m in reversed(messages) if m.get("role") == "assistant")
            if not isinstance(last.get("content"), list) or last["content"][0].get("type") != "thinking":
                return (
                    "Expected `thinking` or `redacted_thinking`, but found `tool_use`. When `thinking` is "
                    "enabled, a final `assistant` message must start with a thinking block"
                )
        return None

    def default_reply(self, body: dict[str, Any]) -> Reply:
        if "max_tokens" not in body:
            return Reply(body={"input_tokens": 4242})
        choice = (body.get("tool_choice") or {}).get("type")
        if self.kind == "deepseek" and choice == "any":
            return self.answer(body, text="I will not call a tool.")  # `any` is auto here
        if body.get("tools") and not _in_tool_loop(body.get("messages") or []):
            return self.answer(body, tool="Bash")
        return self.answer(body, text="done")

    # -- answers -----------------------------------------------------------------------------------

    def answer(self, body: dict[str, Any], *, text: str = "", tool: str = "") -> Reply:
        n = next(self._serial)
        signature = f"{self.kind}-sig-{n}"
        self.minted.add(signature)
        content: list[dict[str, Any]] = []
        if body.get("thinking", {}).get("type") in ("enabled", "adaptive"):
            content.append({"type": "thinking", "thinking": "Let me see.", "signature": signature})
        if text:
            content.append({"type": "text", "text": text})
        if tool:
            tool_id = f"functions.{tool}:{n}" if self.kind == "kimi" else f"toolu_{self.kind}{n:04d}"
            content.append({"type": "tool_use", "id": tool_id, "name": tool, "input": {"command": "ls"}})
        reply = {
            "id": f"msg_{self.kind}{n}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "m"),
            "content": content,
            "stop_reason": "tool_use" if tool else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 5},
        }
        return Reply(chunks=_as_stream(reply)) if body.get("stream") else Reply(body=reply)

    def bare_stream_error(self, message: str) -> Reply:
        """Ollama's way of failing mid-stream: a data line holding only an error."""
        return Reply(
            chunks=[
                b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_o",'
                b'"type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,'
                b'"usage":{"input_tokens":3,"output_tokens":0}}}\n\n',
                b'data: {"error": "' + message.encode() + b'"}\n\n',
            ]
        )


def _in_tool_loop(messages: list[dict[str, Any]]) -> bool:
    last = messages[-1] if messages else {}
    content = last.get("content") if last.get("role") == "user" else None
    return isinstance(content, list) and any(b.get("type") == "tool_result" for b in content)


def _as_stream(message: dict[str, Any]) -> list[bytes]:
    """A whole Message as Anthropic's event stream (the signature in its own signature_delta)."""
    import json

    def frame(event: dict[str, Any]) -> bytes:
        return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()

    start = {**message, "content": [], "stop_reason": None}
    frames = [frame({"type": "message_start", "message": start})]
    for index, block in enumerate(message["content"]):
        if block["type"] == "thinking":
            frames.append(
                frame(
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "thinking", "thinking": "", "signature": ""},
                    }
                )
            )
            frames.append(
                frame(
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "thinking_delta", "thinking": block["thinking"]},
                    }
                )
            )
            frames.append(
                frame(
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "signature_delta", "signature": block["signature"]},
                    }
                )
            )
        elif block["type"] == "text":
            frames.append(
                frame(
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "text", "text": ""},
                    }
                )
            )
            frames.append(
                frame(
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "text_delta", "text": block["text"]},
                    }
                )
            )
        else:
            frames.append(
                frame(
                    {"type": "content_block_start", "index": index, "content_block": {**block, "input": {}}}
                )
            )
            frames.append(
                frame(
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": json.dumps(block["input"])},
                    }
                )
            )
        frames.append(frame({"type": "content_block_stop", "index": index}))
    frames.append(
        frame(
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": 5},
            }
        )
    )
    frames.append(frame({"type": "message_stop"}))
    return frames  # fmt: skip


__all__ = ["FakeCompatible", "anthropic_error"]

"""Anthropic stream events -> the final Message, as the anthropic SDK's accumulator builds it.

Used for the record (the dashboard shows exactly what the client received) and by tests.
Follows `anthropic.lib.streaming._messages.accumulate_event`, with two deliberate differences:
- tool_use input is parsed once, from the whole concatenated `partial_json`, at the end. When that text
  is not a JSON object (a stream cut off mid-call, or a backend that sent broken arguments) the input is
  the raw text itself, a `str`: nothing is lost, and a str input marks the failed call for the dashboard.
  The SDK raises there instead, which would lose the record.
- a stream cut short (no message_delta / message_stop) still yields what was received, stop_reason None.
"""

from __future__ import annotations

import copy

import orjson

from .types import JSONDict, Message, StreamEvent

_USAGE_KEYS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def accumulate(events: list[StreamEvent]) -> Message:
    """Rebuild the Message a client assembles from these events. ValueError if message_start is not first."""
    if not events or events[0].get("type") != "message_start":
        raise ValueError("an Anthropic stream starts with message_start")
    message: Message = copy.deepcopy(events[0]["message"])
    content: list[JSONDict] = message.setdefault("content", [])
    partial_json: dict[int, list[str]] = {}
    for event in events[1:]:
        match event.get("type"):
            case "content_block_start":
                content.append(copy.deepcopy(event["content_block"]))
            case "content_block_delta":
                _apply_delta(
                    content[event["index"]], event["delta"], partial_json.setdefault(event["index"], [])
                )
            case "message_delta":
                _apply_message_delta(message, event)
            case _:
                # content_block_stop / message_stop / ping carry nothing to merge; an error frame ends the
                # stream as it stands; event types newer than this code are skipped, as the SDK does.
                pass
    for index, parts in partial_json.items():
        text = "".join(parts)
        # No argument text at all: the {} from content_block_start stands (as in the SDK).
        if text.strip() and content[index].get("type") in ("tool_use", "server_tool_use"):
            content[index]["input"] = _tool_input(text)
    return message


def _apply_delta(block: JSONDict, delta: JSONDict, json_parts: list[str]) -> None:
    match delta.get("type"):
        case "text_delta" if block.get("type") == "text":
            block["text"] = block.get("text", "") + delta["text"]
        case "thinking_delta" if block.get("type") == "thinking":
            block["thinking"] = block.get("thinking", "") + delta["thinking"]
        case "signature_delta" if block.get("type") == "thinking":
            block["signature"] = delta["signature"]  # replaced, not appended, as in the SDK
        case "input_json_delta":
            json_parts.append(delta["partial_json"])
        case "citations_delta" if block.get("type") == "text":
            block["citations"] = [*(block.get("citations") or []), delta["citation"]]
        case _:
            pass  # a delta that does not fit its block: the SDK skips it the same way


def _apply_message_delta(message: Message, event: JSONDict) -> None:
    delta = event.get("delta") or {}
    message["stop_reason"] = delta.get("stop_reason")
    message["stop_sequence"] = delta.get("stop_sequence")
    for key in ("stop_details", "container"):
        if delta.get(key) is not None:
            message[key] = delta[key]  # type: ignore[literal-required,typeddict-unknown-key]
    usage = event.get("usage") or {}
    merged = message.setdefault("usage", {"input_tokens": 0, "output_tokens": 0})
    merged["output_tokens"] = usage.get("output_tokens", merged.get("output_tokens", 0))
    # Totals on message_delta are cumulative and overwrite; absent ones keep the message_start value.
    for key in _USAGE_KEYS:
        if usage.get(key) is not None:
            merged[key] = usage[key]  # type: ignore[literal-required]


def _tool_input(text: str) -> object:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    return value if isinstance(value, dict) else text

"""The retry request: the original request, plus the failed call and why it failed, as a model reads it.

Written in Anthropic terms, so every dialect translates it like any request: the call as the assistant's
turn, the validation error as the `is_error` tool_result a client would have sent, and `tool_choice`
forced to the tool meant (the dialect maps it, or drops it where the backend has none).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import orjson

from ..types import JSONDict, Message, MessagesRequest, StreamEvent
from .decide import ToolSet, Verdict, decide


def retry_request(
    request: MessagesRequest, *, call_id: str, name: str, raw_arguments: str, error: str, intended: str
) -> MessagesRequest:
    """`request` with the failed call and its error appended, not streamed, the intended tool forced."""
    try:
        parsed = orjson.loads(raw_arguments)
    except orjson.JSONDecodeError:
        parsed = None
    # The call as written where it is an object; else its text inside one (an input must be an object).
    tool_input = parsed if isinstance(parsed, dict) else {"raw_arguments": raw_arguments}
    tool = intended or name
    text = (
        f"The call to {name} could not be used, nothing was run. {error}\n"
        f"The arguments sent were: {raw_arguments[:4000]}\n"
        f"Call {tool} again now, with arguments that are one JSON object matching its input schema."
    )
    retry: dict[str, Any] = {**request}
    retry["messages"] = [
        *request.get("messages", []),
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": call_id, "name": name, "input": tool_input}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call_id, "is_error": True, "content": text}],
        },
    ]
    retry["stream"] = False
    if intended:
        retry["tool_choice"] = {"type": "tool", "name": intended}
        # Anthropic refuses a forced tool with thinking on; a retry of one call has no use for it either.
        retry.pop("thinking", None)
    return retry  # type: ignore[return-value]


def malformed_retry_request(request: MessagesRequest, *, error: str, intended: str) -> MessagesRequest:
    """`request` again after a call the backend failed to write (no call to show it): the error, with what
    the backend said about it, as text after the last user turn; not streamed, the tool forced if known."""
    tool = f"Call {intended}" if intended else "Make the tool call"
    text = (
        f"Your previous answer could not be used, nothing was run: {error}\n"
        f"{tool} again now, with arguments that are one JSON object matching its input schema."
    )
    messages = list(request.get("messages", []))
    last = messages[-1] if messages else None
    if last is not None and last.get("role") == "user":  # one user turn: some backends refuse two in a row
        content = last.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
        messages[-1] = {**last, "content": [*blocks, {"type": "text", "text": text}]}
    else:
        messages.append({"role": "user", "content": [{"type": "text", "text": text}]})
    retry: dict[str, Any] = {**request, "messages": messages, "stream": False}
    if intended:
        retry["tool_choice"] = {"type": "tool", "name": intended}
        retry.pop("thinking", None)
    return retry  # type: ignore[return-value]


def feedback_of(retry: MessagesRequest) -> str:
    """The text a retry request added (what the record shows as its feedback)."""
    block = retry["messages"][-1]["content"][-1]
    assert isinstance(block, Mapping)
    return str(block.get("content") if block.get("type") == "tool_result" else block.get("text"))


def retried_call(message: Message, *, intended: str, tools: ToolSet) -> Verdict | None:
    """The retry's answer -> its call to the intended tool (or, with none intended, its first call),
    judged like any; None when it holds no usable call (text only, the token limit, still invalid)."""
    finished = message.get("stop_reason") != "max_tokens"
    for block in message.get("content") or []:
        if not isinstance(block, Mapping) or block.get("type") != "tool_use":
            continue
        name = str(block.get("name") or "")
        if intended and tools.match_name(name) != intended:
            continue
        arguments = block.get("input")
        if not isinstance(arguments, str | Mapping):
            continue
        verdict = decide(name, arguments, tools, finished=finished)
        return verdict if verdict.input is not None else None
    return None


def message_events(message: Message) -> list[StreamEvent]:
    """A whole message as the stream events that would have carried it (for healing a plain reply
    with the stream's own stage)."""
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    events: list[JSONDict] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(message.get("content") or []):
        if block.get("type") == "tool_use":
            arguments = block.get("input")
            raw = arguments if isinstance(arguments, str) else orjson.dumps(arguments or {}).decode()
            events.append(
                {"type": "content_block_start", "index": index, "content_block": {**block, "input": {}}}
            )
            events.append(
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": raw},
                }
            )
        else:
            events.append({"type": "content_block_start", "index": index, "content_block": block})
        events.append({"type": "content_block_stop", "index": index})
    delta = {"stop_reason": message.get("stop_reason"), "stop_sequence": message.get("stop_sequence")}
    events.append({"type": "message_delta", "delta": delta, "usage": dict(message.get("usage") or {})})
    events.append({"type": "message_stop"})
    return cast(list[StreamEvent], events)

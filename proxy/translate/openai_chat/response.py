"""OpenAI Chat Completions -> Anthropic: a non-streaming reply, and an error reply."""

from __future__ import annotations

from .. import upstream_errors
from ..base import UpstreamError
from ..stops import find_stop_sequence
from ..types import JSONDict, Message, StopReason, Translation
from .signatures import thought_signature_block, tool_call_thought_signature
from .state import chat_state
from .wire import (
    parse_tool_input,
    reasoning_of,
    shape,
    stop_reason_for,
    thinking_signature,
    tool_use_block,
    usage_from_openai,
)


def parse_response(body: JSONDict, translation: Translation) -> Message:
    """A non-streaming Chat Completions reply (2xx) -> Anthropic Message."""
    if body.get("error"):  # OpenRouter and others may answer 200 with an error object
        raise upstream_errors.from_error_object(body["error"])
    choices = shape(body.get("choices"), list, "choices")
    if not choices:
        raise UpstreamError("upstream reply has no choices", error_type="api_error", status=500)
    choice = shape(choices[0], dict, "choice")
    message = shape(choice.get("message"), dict, "message")
    content: list[JSONDict] = []

    field, reasoning = reasoning_of(message)
    state = chat_state(translation)
    if reasoning and state.reasoning:
        signature = thinking_signature(field, translation.provider)
        content.append({"type": "thinking", "thinking": reasoning, "signature": signature})

    text = _message_text(message.get("content"))
    refusal = message.get("refusal") if isinstance(message.get("refusal"), str) else ""
    text += refusal
    calls = _tool_calls(message)
    hit = find_stop_sequence(text, state.local_stop_sequences)
    if hit is not None:
        # The model went past a stop sequence the backend could not enforce: cut there, as Anthropic would.
        text, calls = text[: hit[0]], []
    if text:
        content.append({"type": "text", "text": text})
    for ordinal, call in enumerate(calls):
        function = shape(call.get("function"), dict, "tool call")
        name = str(function.get("name") or "")
        if not name:
            raise UpstreamError(f"upstream sent a tool call without a name: {str(function)[:200]!r}")
        block = tool_use_block(
            upstream_id=call.get("id"), name=name, ordinal=ordinal, translation=translation
        )
        block["input"] = parse_tool_input(
            function.get("arguments"), name=name, lenient=translation.lenient_tool_input
        )
        if thought := tool_call_thought_signature(call):  # Gemini's: back on this call next turn
            content.append(thought_signature_block(block["id"], thought, provider=translation.provider))
        content.append(block)

    stop_reason: StopReason
    stop_sequence: str | None
    if hit is not None:
        stop_reason, stop_sequence = "stop_sequence", hit[1]
    else:
        stop_reason, stop_sequence = stop_reason_for(
            choice, choice.get("finish_reason"), has_tool_calls=bool(calls), refused=bool(refusal)
        )
    return {
        "id": translation.message_id,
        "type": "message",
        "role": "assistant",
        "model": translation.client_model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage_from_openai(body.get("usage")),
    }


def parse_error(status: int, body: bytes, headers: dict[str, str]) -> UpstreamError:
    """A non-2xx upstream reply -> the Anthropic error type and status the client gets."""
    return upstream_errors.from_reply(status, body, headers)


def _message_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones
        return "".join(
            p.get("text") or "" for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def _tool_calls(message: JSONDict) -> list[JSONDict]:
    calls = [shape(c, dict, "tool call") for c in shape(message.get("tool_calls"), list, "tool_calls")]
    legacy = message.get("function_call")
    if not calls and isinstance(legacy, dict):  # the deprecated single `function_call` has no id
        calls = [{"function": legacy}]
    return calls

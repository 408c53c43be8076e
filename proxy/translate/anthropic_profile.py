"""What the passthrough changes for one Anthropic-compatible endpoint: foreign reasoning, capability gaps.

Reasoning (reasoning.py): the official API verifies every thinking block's signature ("Invalid signature
in thinking block"), so blocks another backend minted (our `sb1.` tags, the openai dialect's older
`switchboard.openai.` marks) never reach it: they are dropped and recorded. A compatible server's own
signatures are tagged with its provider on the way out (`tag_signature`) and unwrapped when they come back
to it, so they too go only where they were made; untagged ones are Anthropic's and go to Anthropic only.

Capability profiles: the quirks of a compatible endpoint, as Target.options (from the provider's preset
or its settings), each a gap Switchboard covers instead of passing it on to the client:

- `no_tool_choice` (Ollama): tool_choice is dropped; `any`/`tool` become an instruction in the system
  prompt, which is what the server would otherwise silently ignore.
- `tool_choice_any_is_auto` (DeepSeek): `any` with a single tool is sent as that tool by name, which
  the server does honour; with several, the same system instruction.
- `no_images`, `no_documents` (MiniMax): those blocks become a short text saying what was left out.
- `tool_ids=functions` (Kimi): tool ids sent as `functions.<name>:<n>`, the shape its models were trained
  on; the client keeps its own `toolu_` ids (the answer's ids are mapped by ids.py as for any backend).
- `no_count_tokens` (Ollama and most compatible servers): count_tokens is answered locally.
- `no_stream_errors` (Ollama): an error the server writes into the stream as a bare `{"error": ...}` is
  turned into Anthropic's `event: error` (done for every stream: see AnthropicStreamTranslator).
Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import ids, reasoning
from .types import Change, JSONDict, Target

DIALECT = "anthropic"
_THINKING = ("thinking", "redacted_thinking")
_FUNCTIONS_ID = re.compile(r"functions\.[^:]+:\d+")


# --- reasoning -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tagging:
    """Translation.state of a compatible server's request: its reply's signatures are tagged with it."""

    provider: str


def tag_signature(signature: object, *, provider: str) -> object:
    """A compatible server's signature, tagged with its provider (the official API's stay untagged)."""
    if not isinstance(signature, str) or not signature or reasoning.read(signature) is not None:
        return signature
    return reasoning.mint(dialect=DIALECT, provider=provider, payload=signature)


def _sendable(block: JSONDict, *, target: Target, official: bool) -> JSONDict | None:
    """The thinking block as this target may receive it, or None when another backend minted it."""
    field = "signature" if block.get("type") == "thinking" else "data"
    value = block.get(field)
    if isinstance(value, str) and value.startswith(reasoning.LEGACY_OPENAI_PREFIX):
        return None
    minted = reasoning.read(value)
    if minted is None:
        # Anthropic's own: for Anthropic only. (A compatible server's from before the tags looks the
        # same: it loses that thinking once, which it does not check.)
        return block if official else None
    if not official and minted.dialect == DIALECT and minted.provider == target.provider:
        return {**block, field: minted.payload}
    return None


def without_foreign_thinking(
    messages: object, *, target: Target, official: bool, changes: list[Change]
) -> tuple[object, bool]:
    """Messages with other backends' thinking blocks removed (and this provider's unwrapped).

    Returns the messages (the same list when nothing changed; the client's are never mutated) and
    whether the assistant turn of an open tool loop lost its leading thinking block: the official API
    then refuses a request with thinking on ("a final assistant message must start with a thinking
    block"), so the caller turns thinking off for it."""
    if not isinstance(messages, list):
        return messages, False
    out: list[object] = []
    dropped: dict[str, int] = {}
    lost_lead = False
    last = max((i for i, m in enumerate(messages) if _is_assistant(m)), default=-1)
    for i, message in enumerate(messages):
        content = message.get("content") if _is_assistant(message) else None
        if not isinstance(content, list):
            out.append(message)
            continue
        kept = []
        for block in content:
            sendable = _sendable(block, target=target, official=official) if _is_thinking(block) else block
            if sendable is None:
                who = reasoning.minter(
                    block.get("signature") if block.get("type") == "thinking" else block.get("data")
                )
                dropped[who] = dropped.get(who, 0) + 1
            else:
                kept.append(sendable)
        if kept == content:
            out.append(message)
            continue
        if i == last and _in_tool_loop(messages):
            lost_lead = _is_thinking(content[0]) and not (kept and _is_thinking(kept[0]))
        if kept:  # an assistant turn left empty goes: Anthropic joins the user turns around it
            out.append({**message, "content": kept})
    changes += reasoning.foreign_dropped(dropped)
    return (out if dropped or out != messages else messages), lost_lead


def _is_assistant(message: object) -> bool:
    return isinstance(message, dict) and message.get("role") == "assistant"


def _is_thinking(block: object) -> bool:
    return isinstance(block, dict) and block.get("type") in _THINKING


def _in_tool_loop(messages: list[object]) -> bool:
    """The request answers tool calls: its last message is a user turn holding tool results."""
    final = messages[-1] if messages else None
    content = final.get("content") if isinstance(final, dict) and final.get("role") == "user" else None
    return isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content
    )


# --- capability profiles ---------------------------------------------------------------------------


def apply_profile(body: JSONDict, *, target: Target, changes: list[Change]) -> None:
    """Cover the target's known gaps in `body` (a shallow copy of the client's: nested values are
    replaced, never edited in place)."""
    options = target.options
    if "no_tool_choice" in options or "tool_choice_any_is_auto" in options:
        _tool_choice(body, options=options, changes=changes)
    media = {
        kind for kind, option in (("image", "no_images"), ("document", "no_documents")) if option in options
    }
    if media and isinstance(body.get("messages"), list):
        body["messages"] = [
            _without_media(m, media=media, target=target, changes=changes) for m in body["messages"]
        ]
    if target.option_value("tool_ids") == "functions" and isinstance(body.get("messages"), list):
        body["messages"] = _functions_ids(body["messages"])


def counts_tokens(target: Target, *, official: bool) -> bool:
    """Whether the endpoint has count_tokens: the official API does; a compatible one only if marked."""
    if "no_count_tokens" in target.options:
        return False
    return official or "count_tokens" in target.options


def _tool_choice(body: JSONDict, *, options: frozenset[str], changes: list[Change]) -> None:
    choice = body.get("tool_choice")
    if not isinstance(choice, dict):
        return
    kind = choice.get("type")
    tools = [t for t in body.get("tools") or () if isinstance(t, dict) and isinstance(t.get("name"), str)]
    if "no_tool_choice" not in options:  # tool_choice_any_is_auto: only `any` is weak
        if kind != "any":
            return
        if len(tools) == 1:  # the one tool by name is honoured where `any` is not
            body["tool_choice"] = {**choice, "type": "tool", "name": tools[0]["name"]}
            changes.append(Change("tool_choice_emulated", f"any -> tool {tools[0]['name']} (the only tool)"))
            return
    del body["tool_choice"]
    match kind:
        case "any":
            rule = "You must call one of the tools in this answer."
        case "tool":
            rule = f"You must call the tool {choice.get('name')} in this answer."
        case "none":
            rule = "Do not call any tool in this answer."
        case _:
            changes.append(Change("field_dropped", f"tool_choice {kind} (the server takes none)"))
            return
    body["system"] = _with_instruction(body.get("system"), rule)
    changes.append(Change("tool_choice_emulated", f"tool_choice {kind} -> system instruction"))


def _with_instruction(system: object, rule: str) -> object:
    if isinstance(system, list):
        return [*system, {"type": "text", "text": rule}]
    if isinstance(system, str) and system:
        return f"{system}\n\n{rule}"
    return rule


def _without_media(message: object, *, media: set[str], target: Target, changes: list[Change]) -> object:
    if not isinstance(message, dict) or not isinstance(message.get("content"), list):
        return message
    content = [_media_block(b, media=media, target=target, changes=changes) for b in message["content"]]
    return {**message, "content": content} if content != message["content"] else message


def _media_block(block: object, *, media: set[str], target: Target, changes: list[Change]) -> object:
    if not isinstance(block, dict):
        return block
    kind = block.get("type")
    if kind in media:
        changes.append(Change("content_dropped", f"{kind}: {target.provider} takes no {kind}s"))
        return {"type": "text", "text": f"[{kind} left out: this model cannot read {kind}s]"}
    if kind == "tool_result" and isinstance(block.get("content"), list):
        inner = [_media_block(b, media=media, target=target, changes=changes) for b in block["content"]]
        return {**block, "content": inner} if inner != block["content"] else block
    return block


def _functions_ids(messages: list[object]) -> list[object]:
    """Kimi's tool ids (`functions.<name>:<n>`, n counting calls through the conversation), both ways."""
    mapping: dict[str, str] = {}
    for message in messages:
        content = message.get("content") if isinstance(message, dict) and _is_assistant(message) else None
        for block in content if isinstance(content, list) else ():
            if (
                isinstance(block, dict)
                and block.get("type") == "tool_use"
                and isinstance(block.get("id"), str)
            ):
                # One Kimi made keeps its own id (ids.py encoded it for the client); others get one.
                original = ids.tool_id_to_upstream(block["id"])
                shaped = _FUNCTIONS_ID.fullmatch(original)
                mapping[block["id"]] = original if shaped else f"functions.{block.get('name')}:{len(mapping)}"
    if not mapping:
        return messages
    out: list[object] = []
    for message in messages:
        if isinstance(message, dict) and isinstance(message.get("content"), list):
            message = {**message, "content": [_renamed(b, mapping) for b in message["content"]]}
        out.append(message)
    return out


def _renamed(block: object, mapping: dict[str, str]) -> object:
    if not isinstance(block, dict):
        return block
    if block.get("type") == "tool_use" and block.get("id") in mapping:
        return {**block, "id": mapping[block["id"]]}
    if block.get("type") == "tool_result" and block.get("tool_use_id") in mapping:
        return {**block, "tool_use_id": mapping[block["tool_use_id"]]}
    return block


def adapt_request(body: JSONDict, *, target: Target, official: bool, changes: list[Change]) -> None:
    """Everything this module does to an outgoing passthrough body (a shallow copy of the client's)."""
    messages, lost_lead = without_foreign_thinking(
        body.get("messages"), target=target, official=official, changes=changes
    )
    if messages is not body.get("messages"):
        body["messages"] = messages
    thinking = body.get("thinking")
    # Anthropic refuses the request then; DeepSeek (replay_reasoning) wants its thinking on such a turn.
    strict = official or "replay_reasoning" in target.options
    if lost_lead and strict and isinstance(thinking, dict) and thinking.get("type") != "disabled":
        body["thinking"] = {"type": "disabled"}
        changes.append(
            Change("thinking_disabled", "the tool loop's turn was another backend's: its thinking cannot go")
        )
    if not official:
        apply_profile(body, target=target, changes=changes)


def tag_content(content: object, *, provider: str) -> object:
    """A compatible server's reply content: signatures tagged with it, tool ids made client-safe."""
    if not isinstance(content, list):
        return content
    return [_tagged_block(b, provider=provider) for b in content]


def _tagged_block(block: object, *, provider: str) -> object:
    if not isinstance(block, dict):
        return block
    if block.get("type") == "thinking" and block.get("signature"):
        return {**block, "signature": tag_signature(block["signature"], provider=provider)}
    if block.get("type") == "tool_use" and isinstance(block.get("id"), str):
        return {**block, "id": ids.tool_id_to_client(block["id"])}
    return block

"""What this dialect's request side hands its response side, on `Translation.state`."""

from __future__ import annotations

from dataclasses import dataclass

from ..types import MessagesRequest, Translation


@dataclass(frozen=True, slots=True)
class ChatState:
    # False when the client did not ask for thinking: reasoning the backend sends anyway is not shown.
    reasoning: bool = True
    # Stop sequences the backend never saw (over its limit): matched in the text here.
    local_stop_sequences: tuple[str, ...] = ()
    # A stream cut at a local stop ends before the backend's usage chunk: the request is kept (a
    # reference) to estimate the usage then, and only then.
    request: MessagesRequest | None = None


_DEFAULT = ChatState()


def chat_state(translation: Translation) -> ChatState:
    """The state build_request left; the defaults for a translation made elsewhere (e.g. in a test)."""
    state = translation.state
    return state if isinstance(state, ChatState) else _DEFAULT

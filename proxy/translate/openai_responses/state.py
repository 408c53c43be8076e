"""What this dialect's request side hands its response side, on `Translation.state`."""

from __future__ import annotations

from dataclasses import dataclass

from ..types import MessagesRequest, Translation


@dataclass(frozen=True, slots=True)
class ResponsesState:
    # True when the client asked for thinking and the model reasons: reasoning items become blocks.
    reasoning: bool = False
    # The provider the reasoning signatures are minted for (reasoning.py): only it gets them back.
    provider: str = ""
    # Every stop sequence: the Responses API has no stop parameter, so all are matched here.
    local_stop_sequences: tuple[str, ...] = ()
    # A stream cut at a local stop ends before the usage report: the request (a reference) is kept to
    # estimate the usage then, and only then.
    request: MessagesRequest | None = None


_DEFAULT = ResponsesState()


def responses_state(translation: Translation) -> ResponsesState:
    """The state build_request left; the defaults for a translation made elsewhere (e.g. in a test)."""
    state = translation.state
    return state if isinstance(state, ResponsesState) else _DEFAULT

"""What this dialect's request side hands its response side, on `Translation.state`."""

from __future__ import annotations

from dataclasses import dataclass

from ..types import MessagesRequest, Translation


@dataclass(frozen=True, slots=True)
class GeminiState:
    # The provider's name: the thought signatures of this reply are minted for it.
    provider: str = ""
    # False when the client did not ask for thinking: thought text Gemini sends anyway is not shown.
    reasoning: bool = False
    # Stop sequences over Gemini's five: matched in the text here.
    local_stop_sequences: tuple[str, ...] = ()
    # Kept only with local stop sequences, to estimate the usage of a stream cut at one.
    request: MessagesRequest | None = None


_DEFAULT = GeminiState()


def gemini_state(translation: Translation) -> GeminiState:
    """The state build_request left; the defaults for a translation made elsewhere (e.g. in a test)."""
    state = translation.state
    return state if isinstance(state, GeminiState) else _DEFAULT

"""A model's quirks, compiled once from its `Target.options` strings into one small value.

The strings come from the model table (proxy/data/model_limits.json) and the provider's settings;
this dialect reads these ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ..types import Target

DEFAULT_MAX_STOP_SEQUENCES = 4  # OpenAI's documented limit for `stop`


@dataclass(frozen=True, slots=True)
class Quirks:
    max_completion_tokens: bool = False  # OpenAI's reasoning models: max_completion_tokens, not max_tokens
    reasoning: bool = False  # the model reasons: reasoning_effort is sent when the client asks for thinking
    replay_reasoning: bool = False  # earlier turns' reasoning goes back with their tool calls (DeepSeek)
    no_temperature: bool = False  # temperature is refused (e.g. OpenAI reasoning models)
    top_k: bool = False  # top_k is accepted as an extension (vLLM and some others)
    prompt_cache_key: bool = False  # the session id goes as prompt_cache_key instead of `user`
    max_stop_sequences: int = DEFAULT_MAX_STOP_SEQUENCES  # the rest are matched locally


def quirks_of(target: Target) -> Quirks:
    return _compile(target.options)


@lru_cache(maxsize=512)
def _compile(options: frozenset[str]) -> Quirks:
    stops = next((o.split("=", 1)[1] for o in options if o.startswith("max_stop_sequences=")), "")
    return Quirks(
        max_completion_tokens="max_completion_tokens" in options,
        reasoning="reasoning" in options,
        replay_reasoning="replay_reasoning" in options,
        no_temperature="no_temperature" in options,
        top_k="top_k" in options,
        prompt_cache_key="prompt_cache_key" in options,
        max_stop_sequences=int(stops) if stops.isdigit() else DEFAULT_MAX_STOP_SEQUENCES,
    )

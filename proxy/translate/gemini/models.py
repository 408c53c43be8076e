"""What the Gemini model id says about the model: its generation, and the features that follow from it.

Decided from the id because Gemini's API says nothing about a model's features in its replies. A
provider's options override each decision (`Target.options`), for ids this cannot read (tuned models,
aliases): "gemini_json_schema" / "gemini_schema_subset", "thought_signatures", "thinking_level".
"""

from __future__ import annotations

import re

from ..types import Target

_GENERATION = re.compile(r"gemini-(\d+)(?:\.(\d+))?")


def generation(model: str) -> tuple[int, int]:
    """(major, minor) of a `gemini-X.Y-…` id; (0, 0) when the id does not say (then: the oldest rules)."""
    match = _GENERATION.search(model.lower())
    if match is None:
        return (0, 0)
    return (int(match.group(1)), int(match.group(2) or 0))


def takes_json_schema(target: Target, model: str) -> bool:
    """`parametersJsonSchema` (the tool's schema as it is) instead of the OpenAPI subset `parameters`.

    Gemini 2.5 and later read full JSON Schema for function parameters (anyOf, $ref, additionalProperties
    included), so nothing of a tool's schema is lost; older models only know the subset."""
    if "gemini_schema_subset" in target.options:
        return False
    return "gemini_json_schema" in target.options or generation(model) >= (2, 5)


def checks_thought_signatures(target: Target, model: str) -> bool:
    """Gemini 3 rejects a function-call turn whose first call lacks its thought signature."""
    return "thought_signatures" in target.options or generation(model) >= (3, 0)


def thinks_in_levels(target: Target, model: str) -> bool:
    """Gemini 3 takes `thinkingLevel`; 2.5 takes `thinkingBudget` (a request with both is a 400)."""
    return "thinking_level" in target.options or generation(model) >= (3, 0)


def takes_media_in_function_responses(model: str) -> bool:
    """Gemini 3 reads images inside a functionResponse (`parts`); older models only in a user turn."""
    return generation(model) >= (3, 0)


def thinking_levels(model: str) -> tuple[str, ...]:
    """The thinkingLevel values a Gemini 3 model accepts (Pro models: low and high only)."""
    if "pro" in model.lower():
        return ("low", "high")
    return ("minimal", "low", "medium", "high")


def thinking_budget_range(model: str) -> tuple[int, int]:
    """The thinkingBudget a Gemini 2.5 model accepts (ai.google.dev/gemini-api/docs/thinking): Pro
    128-32768, Flash 0-24576, Flash-Lite 512-24576; outside it the request is refused."""
    lowered = model.lower()
    if "pro" in lowered:
        return (128, 32768)
    if "lite" in lowered:
        return (512, 24576)
    return (1, 24576)

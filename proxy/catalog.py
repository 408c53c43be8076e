"""What we know about models: output limits, context windows, quirks, and prices.

Plain Python (no Django): the hot path and the dashboard both call it. User overrides are passed in as
dicts by the caller. Limits come from `proxy/data/model_limits.json` (ours, with a source per entry);
prices from genai-prices, which ships its data and never needs the network.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from fnmatch import fnmatchcase
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from genai_prices import Usage, calc_price

LIMITS_PATH = Path(__file__).parent / "data" / "model_limits.json"

Table = dict[str, dict[str, Any]]

_OVERRIDE_PRICE_KEYS = ("input_price", "output_price", "cache_read_price", "cache_write_price")
_FAMILIES = ("opus", "sonnet", "haiku")
_MILLION = Decimal(1_000_000)


@cache
def limits_table() -> Table:
    """The shipped table, without its `_about`/`_options` notes."""
    with LIMITS_PATH.open("rb") as f:
        raw: Table = json.load(f)
    return {key.lower(): value for key, value in raw.items() if not key.startswith("_")}


def lookup(model: str, table: Table) -> dict[str, Any] | None:
    """The entry for `model`: exact id, then the longest matching glob; then both without a vendor prefix."""
    for candidate in _candidates(model):
        entry = table.get(candidate)
        if entry is not None and "*" not in candidate:
            return entry
        best: str | None = None
        for pattern in table:
            if (
                "*" in pattern
                and fnmatchcase(candidate, pattern)
                and (best is None or len(pattern) > len(best))
            ):
                best = pattern
        if best is not None:
            return table[best]
    return None


def _candidates(model: str) -> list[str]:
    """`openrouter/openai/gpt-4o` -> itself then `gpt-4o`: routers prefix the vendor's id."""
    model = model.strip().lower()
    candidates = [model]
    if "/" in model:
        candidates.append(model.rsplit("/", 1)[1])
    return candidates


def _entry(model: str, overrides: Table | None) -> dict[str, Any] | None:
    if overrides:
        entry = lookup(model, {k.lower(): v for k, v in overrides.items()})
        if entry is not None:
            return entry
    return _shipped_entry(model)


@lru_cache(maxsize=1024)
def _shipped_entry(model: str) -> dict[str, Any] | None:
    # The hot path asks for the same few models on every request: skip the glob scan.
    return lookup(model, limits_table())


def max_output_tokens(model: str, overrides: Table | None = None) -> int | None:
    """The model's real output limit; None = unknown (the proxy then passes max_tokens through)."""
    entry = _entry(model, overrides)
    value = entry.get("max_output_tokens") if entry else None
    return int(value) if value else None


def context_window(model: str, overrides: Table | None = None) -> int | None:
    """The model's context window: our table, then genai-prices' model data; None = unknown."""
    entry = _entry(model, overrides)
    value = entry.get("context_window") if entry else None
    if value:
        return int(value)
    return _library_context_window(model)


@lru_cache(maxsize=512)
def _library_context_window(model: str) -> int | None:
    try:
        result = calc_price(Usage(), model)
    except LookupError:
        return None
    return result.model.context_window


def model_options(model: str, overrides: Table | None = None) -> frozenset[str]:
    """Known quirks of a model, as Target.options strings ("max_completion_tokens", "reasoning", ...)."""
    entry = _entry(model, overrides)
    return frozenset(entry.get("options", ())) if entry else frozenset()


# Prices


def cost_usd(
    *,
    model: str,
    usage: dict[str, Any],
    provider: str | None = None,
    overrides: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> float | None:
    """Cost in US dollars of one exchange from an Anthropic usage dict; None when the price is unknown.

    `at` is when the request was made (default now): some prices depend on it (DeepSeek's off-peak
    hours, price changes on a date). `overrides` ({"input_price", "output_price", "cache_read_price",
    "cache_write_price"} in $ per million tokens) win over the library; input and output prices are
    required, cache prices default to input.
    """
    tokens = _anthropic_tokens(usage)
    if overrides and overrides.get("input_price") is not None and overrides.get("output_price") is not None:
        return _cost_from_overrides(tokens, overrides)
    ref = _resolve(model, provider)
    if ref is None:
        return None
    return _library_cost(ref, tokens, at)


def claude_equivalent_cost(
    *, client_model: str, usage: dict[str, Any], at: datetime | None = None
) -> float | None:
    """What the same tokens would have cost on the Claude model the client asked for.

    Ids genai-prices doesn't know (claude-opus-5-5 before the data has it, env-haiku-model) fall back by
    family: the newest Opus, Sonnet or Haiku it knows. Other ids: None.
    """
    ref = _claude_ref(client_model)
    if ref is None:
        return None
    return _library_cost(ref, _anthropic_tokens(usage), at)


def _anthropic_tokens(usage: dict[str, Any]) -> dict[str, int]:
    def read(key: str) -> int:
        value = usage.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0

    return {
        "input": read("input_tokens"),  # Anthropic: excludes cache reads and writes
        "cache_read": read("cache_read_input_tokens"),
        "cache_write": read("cache_creation_input_tokens"),
        "output": read("output_tokens"),
    }


# Below this many input tokens every known price is flat per token; above it some models switch tier.
_FLAT_PRICE_BELOW = 128_000
_PROBE = 1000  # tokens per probe when deriving per-token rates


def _library_cost(ref: tuple[str, str | None], tokens: dict[str, int], at: datetime | None) -> float | None:
    # Prices that depend on time change on a minute at the finest (off-peak hours like 16:30-00:30 UTC).
    minute = (at or datetime.now(UTC)).astimezone(UTC).replace(second=0, microsecond=0)
    total_input = tokens["input"] + tokens["cache_read"] + tokens["cache_write"]
    if total_input < _FLAT_PRICE_BELOW:
        # calc_price costs ~0.4 ms a call (validation); per-token rates derived once per model and minute
        # make the per-exchange cost a few multiplications. Exact as long as the price is flat (see above).
        rates = _flat_rates(ref, minute)
        if rates is None:
            return None
        return sum(tokens[kind] * rate for kind, rate in rates.items())
    return _calc(ref, tokens, minute)


@lru_cache(maxsize=512)
def _flat_rates(ref: tuple[str, str | None], minute: datetime) -> dict[str, float] | None:
    """$ per token of each kind at that minute, from a small probe of each (within the flat tier)."""
    rates: dict[str, float] = {}
    for kind in ("input", "cache_read", "cache_write", "output"):
        probe = {"input": 0, "cache_read": 0, "cache_write": 0, "output": 0, kind: _PROBE}
        cost = _calc(ref, probe, minute)
        if cost is None:
            return None
        rates[kind] = cost / _PROBE
    return rates


def _calc(ref: tuple[str, str | None], tokens: dict[str, int], at: datetime) -> float | None:
    model_ref, provider_id = ref
    # genai-prices' input_tokens INCLUDES cache reads and writes (it subtracts them to price the rest).
    usage = Usage(
        input_tokens=tokens["input"] + tokens["cache_read"] + tokens["cache_write"],
        cache_read_tokens=tokens["cache_read"],
        cache_write_tokens=tokens["cache_write"],
        output_tokens=tokens["output"],
    )
    try:
        result = calc_price(usage, model_ref, provider_id=provider_id, genai_request_timestamp=at)
    except LookupError:
        return None
    return float(result.total_price)


def _cost_from_overrides(tokens: dict[str, int], overrides: dict[str, Any]) -> float:
    prices = {
        key: Decimal(str(overrides[key])) for key in _OVERRIDE_PRICE_KEYS if overrides.get(key) is not None
    }
    input_price = prices["input_price"]
    total = (
        tokens["input"] * input_price
        + tokens["cache_read"] * prices.get("cache_read_price", input_price)
        + tokens["cache_write"] * prices.get("cache_write_price", input_price)
        + tokens["output"] * prices["output_price"]
    )
    return float(total / _MILLION)


@lru_cache(maxsize=512)
def _resolve(model: str, provider: str | None) -> tuple[str, str | None] | None:
    """A (model_ref, provider_id) genai-prices can price, trying the id without a router's vendor prefix."""
    # Ollama-style `model:tag` ids are deliberately not stripped: a local model is not billed at cloud rates
    # (give a local provider zero-price overrides to show $0).
    refs = [model]
    if "/" in model:
        refs.append(model.rsplit("/", 1)[1])  # openrouter-style vendor/model
    # Our provider names are user-chosen ("my-deepseek"): try them as genai-prices ids, then without.
    providers: list[str | None] = [provider.lower(), None] if provider else [None]
    for provider_id in providers:
        for ref in refs:
            if _known(ref, provider_id):
                return ref, provider_id
    return None


def _known(model_ref: str, provider_id: str | None) -> bool:
    try:
        calc_price(Usage(), model_ref, provider_id=provider_id)
    except LookupError:
        return False
    return True


@lru_cache(maxsize=256)
def _claude_ref(client_model: str) -> tuple[str, str | None] | None:
    if _known(client_model, "anthropic"):
        return client_model, "anthropic"
    lowered = client_model.lower()
    for family in _FAMILIES:
        if family in lowered:
            newest = newest_claude(family)
            return (newest, "anthropic") if newest else None
    return None


@cache
def newest_claude(family: str) -> str | None:
    """The id of the newest Claude model of a family ("opus", "sonnet", "haiku") genai-prices prices."""
    from genai_prices import data_snapshot  # the public API has no model listing

    best: tuple[tuple[int, ...], str] | None = None
    for provider in data_snapshot.get_snapshot().providers:
        if provider.id != "anthropic":
            continue
        for model in provider.models:
            if family not in model.id or model.deprecated:
                continue
            version = _version(model.id)
            if best is None or version > best[0]:
                best = (version, model.id)
    return best[1] if best else None


def _version(model_id: str) -> tuple[int, ...]:
    """claude-opus-4-8 -> (4, 8); claude-3-5-haiku-latest -> (3, 5); dates (20251001) are not versions."""
    return tuple(int(n) for n in re.findall(r"\d+", model_id) if len(n) <= 3)

"""What we know about models (proxy/catalog.py): limits table lookups, quirks, prices."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from proxy import catalog
from proxy.catalog import (
    claude_equivalent_cost,
    context_window,
    cost_usd,
    lookup,
    max_output_tokens,
    model_options,
    newest_claude,
)

USAGE = {"input_tokens": 1_000, "output_tokens": 2_000}


# the table itself


def test_every_table_entry_has_a_source_and_positive_integer_limits():
    raw = json.loads(catalog.LIMITS_PATH.read_text())
    for key, entry in raw.items():
        if key.startswith("_"):
            continue
        assert entry.get("_source"), key
        assert isinstance(entry["max_output_tokens"], int) and entry["max_output_tokens"] > 0, key
        window = entry["context_window"]
        assert isinstance(window, int) and window > entry["max_output_tokens"], key
        assert set(entry.get("options", [])) <= {"max_completion_tokens", "reasoning", "replay_reasoning"}


# lookups


def test_max_output_tokens_matches_exact_id():
    assert max_output_tokens("deepseek-chat") == 8192
    assert max_output_tokens("deepseek-reasoner") == 65536


def test_max_output_tokens_matches_prefix_glob_for_dated_ids():
    assert max_output_tokens("gpt-4o-2024-08-06") == 16384
    assert max_output_tokens("gpt-4.1-nano") == 32768
    assert max_output_tokens("claude-sonnet-4-5-20250929") == 64000


def test_max_output_tokens_prefers_longest_matching_glob():
    assert max_output_tokens("o1-mini-2024-09-12") == 65536  # o1-mini* over o1*
    assert max_output_tokens("o1-2024-12-17") == 100000
    assert max_output_tokens("gpt-5-chat-latest") == 16384  # gpt-5-chat* over gpt-5*
    assert max_output_tokens("gpt-5-mini") == 128000


def test_max_output_tokens_matches_ollama_tags_and_is_case_insensitive():
    assert max_output_tokens("qwen3-coder:30b") == 65536
    assert max_output_tokens("qwen3:8b") == 32768
    assert max_output_tokens("GLM-4.6") == 131072


def test_max_output_tokens_retries_without_vendor_prefix():
    assert max_output_tokens("openai/gpt-4o-mini") == 16384
    assert max_output_tokens("deepseek/deepseek-reasoner") == 65536


def test_exact_entry_does_not_match_as_prefix():
    assert max_output_tokens("deepseek-chat-v9") is None


@pytest.mark.parametrize("model", ["env-haiku-model", "claude-opus-4-8", "my-local-model", ""])
def test_max_output_tokens_is_none_when_model_unknown(model):
    assert max_output_tokens(model) is None


def test_max_output_tokens_override_wins_over_table():
    overrides = {"deepseek-chat": {"max_output_tokens": 4096}}
    assert max_output_tokens("deepseek-chat", overrides) == 4096
    assert max_output_tokens("deepseek-reasoner", overrides) == 65536


def test_max_output_tokens_override_glob_covers_unknown_models():
    overrides = {"env-*": {"max_output_tokens": 12000, "context_window": 100000}}
    assert max_output_tokens("env-haiku-model", overrides) == 12000
    assert context_window("env-haiku-model", overrides) == 100000


def test_context_window_from_table():
    assert context_window("gemini-2.5-flash") == 1048576
    assert context_window("kimi-k2-0905-preview") == 262144
    assert context_window("kimi-k2-0711-preview") == 131072


def test_context_window_falls_back_to_genai_prices_when_table_lacks_model():
    assert max_output_tokens("claude-opus-4-8") is None
    assert context_window("claude-opus-4-8") == 1_000_000


def test_context_window_is_none_when_nobody_knows_model():
    assert context_window("env-main-model") is None


def test_lookup_returns_none_for_empty_table():
    assert lookup("gpt-4o", {}) is None


# quirks


@pytest.mark.parametrize("model", ["o1", "o3-mini", "o4-mini-2025-04-16", "gpt-5", "gpt-5-nano"])
def test_model_options_flags_max_completion_tokens_and_reasoning_for_openai_reasoners(model):
    assert {"max_completion_tokens", "reasoning"} <= model_options(model)


def test_model_options_flags_replay_reasoning_for_deepseek_reasoner():
    assert model_options("deepseek-reasoner") == frozenset({"reasoning", "replay_reasoning"})


def test_model_options_has_no_reasoning_for_chat_models():
    assert model_options("gpt-4o") == frozenset()
    assert model_options("deepseek-chat") == frozenset()
    assert model_options("qwen3-coder:30b") == frozenset()  # Qwen3-Coder is non-thinking only
    assert "reasoning" not in model_options("gpt-5-chat-latest")


def test_model_options_flags_reasoning_for_qwen3_hybrid_models():
    assert "reasoning" in model_options("qwen3:32b")


def test_model_options_is_empty_when_model_unknown():
    assert model_options("env-main-model") == frozenset()


# prices


def test_cost_usd_is_none_when_model_unknown():
    assert cost_usd(model="env-main-model", usage=USAGE) is None
    assert cost_usd(model="my-finetune:7b", usage=USAGE, provider="ollama") is None


def test_cost_usd_prices_known_model():
    # gpt-4o: $2.50 in / $10 out per million tokens
    assert cost_usd(model="gpt-4o", usage=USAGE) == pytest.approx((1_000 * 2.5 + 2_000 * 10) / 1e6)


def test_cost_usd_prices_cache_reads_and_writes_separately_from_fresh_input():
    # claude-sonnet-4-5 (under 200k tokens): $3 in, $0.30 cache read, $3.75 cache write, $15 out.
    usage = {
        "input_tokens": 100,  # Anthropic's input_tokens excludes the cached tokens
        "cache_read_input_tokens": 50_000,
        "cache_creation_input_tokens": 2_000,
        "output_tokens": 500,
    }
    expected = (100 * 3 + 50_000 * 0.3 + 2_000 * 3.75 + 500 * 15) / 1e6
    assert cost_usd(model="claude-sonnet-4-5", usage=usage, provider="anthropic") == pytest.approx(expected)


def test_cost_usd_uses_provider_price_when_provider_is_known():
    usage = {"input_tokens": 1_000_000, "output_tokens": 0}
    at = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert cost_usd(model="deepseek-chat", usage=usage, provider="deepseek", at=at) == pytest.approx(0.27)


def test_cost_usd_prices_at_the_time_of_the_request_not_at_the_first_price_looked_up():
    # DeepSeek halves its prices from 16:30 to 00:30 UTC: a rate derived once must not stick all day.
    usage = {"input_tokens": 1_000_000, "output_tokens": 0}
    peak, off_peak = datetime(2026, 11, 25, 10, 0, tzinfo=UTC), datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
    assert cost_usd(model="deepseek-chat", usage=usage, provider="deepseek", at=peak) == pytest.approx(0.27)
    assert cost_usd(model="deepseek-chat", usage=usage, provider="deepseek", at=off_peak) == pytest.approx(
        0.135
    )
    assert cost_usd(model="deepseek-chat", usage=usage, provider="deepseek", at=peak) == pytest.approx(0.27)


def test_cost_usd_falls_back_to_any_provider_when_provider_name_is_ours():
    expected = cost_usd(model="gpt-4o", usage=USAGE)
    assert expected is not None
    assert cost_usd(model="gpt-4o", usage=USAGE, provider="my-openai") == expected


def test_cost_usd_strips_router_vendor_prefix():
    assert cost_usd(model="openai/gpt-4o", usage=USAGE) == cost_usd(model="gpt-4o", usage=USAGE)


def test_cost_usd_is_none_for_local_ollama_tag_ids():
    assert cost_usd(model="gpt-4o:latest", usage=USAGE, provider="ollama") is None


def test_cost_usd_override_prices_local_model_at_zero():
    overrides = {"input_price": 0, "output_price": 0}
    assert cost_usd(model="qwen3-coder:30b", usage=USAGE, overrides=overrides) == 0.0


def test_cost_usd_override_wins_over_library():
    overrides = {"input_price": 1.0, "output_price": 2.0}
    assert cost_usd(model="gpt-4o", usage=USAGE, overrides=overrides) == pytest.approx((1_000 + 4_000) / 1e6)


def test_cost_usd_override_prices_unknown_model_and_defaults_cache_to_input_price():
    usage = {"input_tokens": 1_000, "cache_read_input_tokens": 3_000, "output_tokens": 0}
    overrides = {"input_price": 2.0, "output_price": 8.0}
    assert cost_usd(model="env-main-model", usage=usage, overrides=overrides) == pytest.approx(8_000 / 1e6)


def test_cost_usd_override_cache_read_price_applies_to_cached_tokens():
    usage = {"input_tokens": 1_000, "cache_read_input_tokens": 10_000, "output_tokens": 1_000}
    overrides = {"input_price": 1.0, "output_price": 4.0, "cache_read_price": 0.1}
    expected = (1_000 * 1.0 + 10_000 * 0.1 + 1_000 * 4.0) / 1e6
    assert cost_usd(model="anything", usage=usage, overrides=overrides) == pytest.approx(expected)


def test_cost_usd_ignores_incomplete_override():
    overrides = {"cache_read_price": 0.1}
    assert cost_usd(model="gpt-4o", usage=USAGE, overrides=overrides) == cost_usd(model="gpt-4o", usage=USAGE)


def test_cost_usd_is_zero_for_empty_usage():
    assert cost_usd(model="gpt-4o", usage={}) == 0.0


# what Claude would have cost


def test_claude_equivalent_cost_uses_the_exact_model_when_known():
    # claude-haiku-4-5: $1 in / $5 out
    cost = claude_equivalent_cost(client_model="claude-haiku-4-5-20251001", usage=USAGE)
    assert cost == pytest.approx((1_000 * 1 + 2_000 * 5) / 1e6)


@pytest.mark.parametrize(
    ("client_model", "family"),
    [("env-haiku-model", "haiku"), ("claude-opus-9-9", "opus"), ("my-sonnet", "sonnet")],
)
def test_claude_equivalent_cost_falls_back_to_newest_of_family_when_id_unknown(client_model, family):
    newest = newest_claude(family)
    assert newest is not None
    expected = cost_usd(model=newest, usage=USAGE, provider="anthropic")
    assert expected is not None
    assert claude_equivalent_cost(client_model=client_model, usage=USAGE) == expected


def test_claude_equivalent_cost_is_none_when_no_claude_family_in_name():
    assert claude_equivalent_cost(client_model="env-main-model", usage=USAGE) is None
    assert claude_equivalent_cost(client_model="gpt-4o", usage=USAGE) is None


def test_newest_claude_picks_highest_version_of_the_family():
    newest = newest_claude("opus")
    assert newest is not None and "opus" in newest
    assert catalog._version(newest) >= catalog._version("claude-opus-4-8")
    assert catalog._version("claude-haiku-4-5-20251001") == (4, 5)
    assert catalog._version("claude-3-5-haiku-latest") == (3, 5)


@pytest.mark.parametrize("model", ["gpt-4o", "deepseek-chat", "gemini-2.5-pro", "claude-sonnet-4-5"])
def test_per_token_rates_price_exactly_as_the_library_does(model: str) -> None:
    usage = {
        "input_tokens": 12000,
        "output_tokens": 900,
        "cache_read_input_tokens": 50000,
        "cache_creation_input_tokens": 3000,
    }
    at = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
    exact = catalog._calc(catalog._resolve(model, None), catalog._anthropic_tokens(usage), at)
    assert catalog.cost_usd(model=model, usage=usage, at=at) == pytest.approx(exact, rel=1e-9)


def test_long_prompts_are_priced_by_the_library_for_tiered_models() -> None:
    # gemini-2.5-pro charges more per token above 200k input tokens: the flat rate would undercount.
    usage = {"input_tokens": 300_000, "output_tokens": 1000}
    flat = sum(
        catalog._flat_rates(catalog._resolve("gemini-2.5-pro", None), datetime(2026, 11, 25, tzinfo=UTC))[k]
        * v
        for k, v in {"input": 300_000, "output": 1000}.items()
    )
    cost = catalog.cost_usd(model="gemini-2.5-pro", usage=usage, at=datetime(2026, 11, 25, tzinfo=UTC))
    assert cost is not None and cost > flat

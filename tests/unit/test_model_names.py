"""Display names for GET /v1/models: the Claude model an id is, and where it routes. Issue #12."""

from __future__ import annotations

import pytest

from proxy.http.model_names import claude_name
from proxy.routing.rules import ProviderSpec, RuleSpec, compile_config

OPENAI = ProviderSpec(name="openai", dialect="openai", base_url="https://api.openai.com/v1")
ANTHROPIC = ProviderSpec(name="anthropic", dialect="anthropic", base_url="https://api.anthropic.com")


@pytest.mark.parametrize(
    ("model_id", "name"),
    [
        ("claude-sonnet-5", "Sonnet 5"),
        ("claude-opus-4-8", "Opus 4.8"),
        ("claude-opus-5-5", "Opus 5.5"),
        ("claude-haiku-4-5-20251001", "Haiku 4.5"),
        ("claude-3-5-haiku-20241022", "Haiku 3.5"),
        ("claude-fast-gpt", "claude-fast-gpt"),  # an alias someone made: shown as it is
    ],
)
def test_claude_name_reads_the_family_and_version(model_id: str, name: str) -> None:
    assert claude_name(model_id) == name


def test_each_listed_id_names_the_model_a_plain_request_for_it_reaches() -> None:
    snapshot = compile_config(
        [OPENAI, ANTHROPIC],
        [
            RuleSpec(name="bg", provider="openai", model="gpt-mini", conditions={"task": "background"}),
            RuleSpec(name="fast", provider="openai", model="gpt-fast", aliases=("claude-fast",)),
            RuleSpec(name="explore", provider="openai", model="gpt-x", conditions={"agent": "Explore"}),
            RuleSpec(name="default", provider="openai", model="deepseek-chat", is_default=True),
        ],
    )
    names = snapshot.model_names
    assert names["claude-sonnet-5"] == "Sonnet 5 -> deepseek-chat"
    assert names["claude-haiku-4-5-20251001"] == "Haiku 4.5 -> gpt-mini"  # haiku ids are background
    assert names["claude-fast"] == "claude-fast -> gpt-fast"
    assert list(names) == list(snapshot.model_ids)


def test_a_passthrough_names_its_provider() -> None:
    snapshot = compile_config([ANTHROPIC], [RuleSpec(name="d", provider="anthropic", is_default=True)])
    assert snapshot.model_names["claude-opus-4-8"] == "Opus 4.8 -> anthropic"

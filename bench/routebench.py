"""Micro-benchmark of the per-request route decision: proxy.routing.rules.choose_target over 100 rules."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, when run on its own
from bodies import fixture

from proxy.routing.rules import ProviderSpec, RuleSpec, choose_target, compile_config


def route_decision_us(rounds: int = 2000) -> float:
    """Per-decision microseconds on the ~80 KB main turn, where none of 99 rules matches and the default
    answers: the worst case, as every rule is tried. Best of 3 batches, to skip noise from other work."""
    providers = [
        ProviderSpec(
            name="openai", dialect="openai", base_url="https://api.openai.com/v1", api_key_env="OAI_KEY"
        ),
        ProviderSpec(name="anthropic", dialect="anthropic", base_url="https://api.anthropic.com"),
    ]
    kinds = [
        lambda i: {"model": f"*nomatch-{i}*"},  # a glob
        lambda i: {"model": f"nomatch-{i}"},  # a substring
        lambda i: {"agent": f"agent-{i}"},
        lambda i: {"client": f"client-{i}", "task": "background"},
        lambda i: {"session": f"session-{i}"},
    ]
    rules = [
        RuleSpec(name=f"r{i}", provider="openai", model="gpt-4o", conditions=kinds[i % len(kinds)](i))
        for i in range(99)
    ]
    rules.append(RuleSpec(name="default", provider="anthropic", model="", is_default=True))
    snap = compile_config(providers, rules)
    body = fixture("main_turn")
    headers = {"user-agent": "claude-cli/2.1.197 (external, cli)", "x-api-key": "sk-bench"}
    assert choose_target(snap, body, headers).rule == "default"  # type: ignore[union-attr]
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(rounds):
            choose_target(snap, body, headers)
        best = min(best, (time.perf_counter() - t0) / rounds)
    return best * 1e6


if __name__ == "__main__":
    print(f"choose_target, 100 rules: {route_decision_us():.1f} us per decision")

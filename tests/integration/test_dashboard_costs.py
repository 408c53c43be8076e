"""Costs and usage: per-rule savings next to failure rates and latency, SVG charts, escaping."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from dashboard.costs import percentile, report
from proxy.models import Exchange

pytestmark = pytest.mark.django_db


def make(days_ago: int = 0, **fields: Any) -> Exchange:
    when = timezone.now() - timedelta(days=days_ago)
    defaults = {"created_at": when, "status": "ok", "client_model": "claude-opus-4-8"}
    defaults |= {"backend_model": "gpt-5", "rule": "opus"}
    return Exchange.objects.create(**{**defaults, **fields})


def test_percentile_interpolates() -> None:
    assert percentile([], 0.5) is None
    assert percentile([10.0, 20.0, 30.0, 40.0], 0.5) == 25.0
    assert percentile(list(map(float, range(1, 101))), 0.95) == pytest.approx(95.05)


def test_report_shows_saving_failure_rate_and_p95_per_rule() -> None:
    for ms in (100, 200, 300, 400, 1000):
        make(
            cost_usd=0.01,
            claude_cost_usd=0.05,
            duration_ms=ms,
            tool_calls=2,
            tool_call_errors=1 if ms == 1000 else 0,
        )
    make(
        rule="haiku",
        backend_model="small",
        cost_usd=0.001,
        claude_cost_usd=0.002,
        duration_ms=50,
        status="error",
    )
    make(days_ago=40, cost_usd=99.0)  # outside the 30-day window
    data = report("30d")
    rules = {r["rule"]: r for r in data["rules"]}
    assert rules["opus"]["requests"] == 5
    assert rules["opus"]["saving"] == pytest.approx(0.20)
    assert rules["opus"]["failure_rate"] == pytest.approx(0.1)
    assert rules["opus"]["p95"] == pytest.approx(880.0)
    assert rules["haiku"]["error_rate"] == 1.0
    assert data["totals"]["cost"] == pytest.approx(0.051)
    assert report("all")["totals"]["cost"] == pytest.approx(99.051)


def test_costs_page_renders_svg_charts_with_escaped_labels() -> None:
    make(cost_usd=0.5, claude_cost_usd=2.0, input_tokens=1000, output_tokens=300)
    make(days_ago=2, cost_usd=0.2, claude_cost_usd=1.0, backend_model='<img src=x onerror="alert(1)">')
    html = Client().get("/costs?range=7d").content.decode()
    assert html.count("<svg viewBox=") >= 2
    assert 'class="s0"' in html and 'class="s1"' in html
    assert "<img src=x" not in html and "&lt;img src=x" in html
    assert "$2.30" in html or "$2.300" in html  # the saving, 3.0 - 0.7


def test_rule_failure_rate_counts_schema_failures_the_row_does_not_record() -> None:
    tools = [{"name": "Write", "input_schema": {"type": "object", "required": ["file_path"]}}]
    for args in ({"file_path": "/a"}, {"content": "no path"}):
        make(
            rule="cheap",
            tool_calls=1,
            client_request={"model": "m", "messages": [], "tools": tools},
            client_response={"content": [{"type": "tool_use", "id": "t", "name": "Write", "input": args}]},
        )
    (rule,) = [r for r in report("30d")["rules"] if r["rule"] == "cheap"]
    assert (rule["tool_calls"], rule["tool_failures"], rule["failure_rate"]) == (2, 1, 0.5)


def test_unknown_prices_stay_unknown_and_claim_no_saving() -> None:
    # Issue #12: the costs page showed "cost $0, saved $0.72" for a model with no known price.
    from proxy.models import Provider

    local = Provider.objects.create(name="local", base_url="http://127.0.0.1:11434/v1")
    make(rule="local", provider="local", backend_model="qwen3-coder", input_tokens=5000, output_tokens=300,
         cost_usd=None, claude_cost_usd=0.72)  # fmt: skip
    make(rule="local", provider="local", backend_model="qwen3-coder", status="error")  # no tokens: no cost
    data = report("30d")
    totals = data["totals"]
    assert (totals["cost"], totals["saving"], totals["unpriced"]) == (None, None, 1)
    (rule,) = data["rules"]
    assert (rule["cost"], rule["saving"], rule["unpriced"]) == (None, None, 1)
    (model,) = data["unpriced_models"]
    assert model["price_link"] == f"/routes/providers/{local.pk}"

    # Priced traffic beside it: saved covers that traffic only, and the unpriced rest is said.
    make(rule="opus", cost_usd=0.01, claude_cost_usd=0.05, input_tokens=100)
    totals = report("30d")["totals"]
    assert totals["cost"] == pytest.approx(0.01) and totals["saving"] == pytest.approx(0.04)
    html = Client().get("/costs").content.decode()
    assert "saved" in html and "$0.720" not in html.split("saved", 1)[1].split("</dd>", 1)[0]
    assert "+1 unpriced" in html and f'href="/routes/providers/{local.pk}"' in html
    assert "Models with no known price" in html

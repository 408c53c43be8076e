"""Prometheus metrics, counted off the hot path: the writer thread observes each finished row it wrote.

In memory (the official `prometheus_client`). A finished exchange is counted once, after its row is
committed, from the same fields the row got: the metrics and the dashboard agree. The recorder's own
state (queue depth, dropped rows, exchanges in flight) is read when /metrics is scraped.

Behind `switchboard serve --workers N` a scrape reaches one worker, so the workers share their numbers
through prometheus_client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set by the parent): each
/metrics then sums every worker's counters, and the recorder's state is published by each writer after
every batch (once per batch, never per request).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

_ROUTE = ("route", "provider", "model")

REQUESTS = Counter(
    "switchboard_requests",
    "Client requests answered, by endpoint, outcome and route.",
    ["endpoint", "status", *_ROUTE],
)
ERRORS = Counter(
    "switchboard_errors",
    "Requests that ended in an error, by Anthropic error type.",
    ["endpoint", "type", *_ROUTE],
)
LATENCY = Histogram(
    "switchboard_request_duration_seconds",
    "From request received to the last byte sent.",
    ["endpoint", *_ROUTE],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600),
)
TTFT = Histogram(
    "switchboard_time_to_first_token_seconds",
    "From request received to the first token of the answer.",
    _ROUTE,
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60),
)
TOKENS = Counter(
    "switchboard_tokens",
    "Tokens billed by the backend (kind: input, output, cache_read, cache_write).",
    ["kind", *_ROUTE],
)
COST = Counter("switchboard_cost_usd", "Estimated cost on the backend model, in US dollars.", _ROUTE)
CLAUDE_COST = Counter(
    "switchboard_claude_cost_usd",
    "What the same tokens would have cost on the Claude model the client asked for, in US dollars.",
    _ROUTE,
)
TOOL_CALLS = Counter("switchboard_tool_calls", "Tool calls in the answers.", _ROUTE)
TOOL_CALLS_FAILED = Counter(
    "switchboard_tool_calls_failed", "Tool calls whose arguments are not a JSON object.", _ROUTE
)
# Calls healed before the client saw them, counted from the row's changes (how: repair | retry).
TOOL_CALLS_HEALED = Counter(
    "switchboard_tool_calls_healed", "Broken tool calls the proxy healed before the client saw them.", ["how"]
)
for _how in ("repair", "retry"):
    TOOL_CALLS_HEALED.labels(how=_how)

_HEALED = {"tool_call_repaired": "repair", "tool_call_retried": "retry"}

_TOKEN_FIELDS = (
    ("input", "input_tokens"),
    ("output", "output_tokens"),
    ("cache_read", "cache_read_tokens"),
    ("cache_write", "cache_write_tokens"),
)


def observe(fields: dict[str, Any]) -> None:
    """Count one finished exchange from its row's fields (writer thread; ~10 us)."""
    endpoint = fields.get("endpoint") or "messages"
    route = (fields.get("rule") or "", fields.get("provider") or "", fields.get("backend_model") or "")
    status = fields.get("status") or ""
    REQUESTS.labels(endpoint, status, *route).inc()
    if status == "error":
        ERRORS.labels(endpoint, fields.get("error_type") or "api_error", *route).inc()
    if (duration := fields.get("duration_ms")) is not None:
        LATENCY.labels(endpoint, *route).observe(duration / 1000)
    if (first_token := fields.get("first_token_ms")) is not None:
        TTFT.labels(*route).observe(first_token / 1000)
    for kind, name in _TOKEN_FIELDS:
        if value := fields.get(name):
            TOKENS.labels(kind, *route).inc(value)
    if cost := fields.get("cost_usd"):
        COST.labels(*route).inc(cost)
    if claude_cost := fields.get("claude_cost_usd"):
        CLAUDE_COST.labels(*route).inc(claude_cost)
    if calls := fields.get("tool_calls"):
        TOOL_CALLS.labels(*route).inc(calls)
    if failed := fields.get("tool_call_errors"):
        TOOL_CALLS_FAILED.labels(*route).inc(failed)
    for change in fields.get("changes") or ():
        how = _HEALED.get(str(change.get("kind"))) if isinstance(change, dict) else None
        if how is not None:
            TOOL_CALLS_HEALED.labels(how=how).inc()


class RecorderCollector(Collector):
    """The recorder's state, read at scrape time (nothing is updated per request)."""

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        from proxy.recording.writer import recorder

        return self._families(recorder.backlog(), recorder.dropped + recorder.lost, recorder.in_flight())

    def describe(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        """The names, for the registry (without reading the recorder, which imports this module)."""
        return self._families(0, 0, 0)

    @staticmethod
    def _families(
        backlog: int, dropped: int, in_flight: int
    ) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        yield GaugeMetricFamily(
            "switchboard_recorder_queue_depth", "Exchanges waiting for the database writer.", value=backlog
        )
        # What the recorder could not keep: the queue was full (dropped) or the database refused a row (lost).
        yield CounterMetricFamily(
            "switchboard_recorder_dropped",
            "Exchanges the recorder dropped (queue full, or a row the database refused).",
            value=dropped,
        )
        yield GaugeMetricFamily(
            "switchboard_open_streams",
            "Messages requests being answered right now (streams open).",
            value=in_flight,
        )


MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
if MULTIPROCESS:
    _QUEUE = Gauge("switchboard_recorder_queue_depth", "Exchanges waiting for the database writer.",
                   multiprocess_mode="livesum")  # fmt: skip
    _DROPPED = Gauge(
        "switchboard_recorder_dropped_total", "Exchanges the recorder dropped.", multiprocess_mode="sum"
    )
    _OPEN = Gauge("switchboard_open_streams", "Messages requests being answered right now (streams open).",
                  multiprocess_mode="livesum")  # fmt: skip
else:
    REGISTRY.register(RecorderCollector())


def publish_recorder_state(backlog: int, dropped: int, in_flight: int) -> None:
    """Multiprocess mode: the recorder's state for the other workers' scrapes (after each batch)."""
    if MULTIPROCESS:
        _QUEUE.set(backlog)
        _DROPPED.set(dropped)
        _OPEN.set(in_flight)


def registry() -> CollectorRegistry:
    """What /metrics shows: this process's registry, or every worker's numbers in multiprocess mode."""
    if not MULTIPROCESS:
        return REGISTRY
    combined = CollectorRegistry()
    multiprocess.MultiProcessCollector(combined)
    return combined

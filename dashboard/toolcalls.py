"""Tool-call outcomes: which agent x routed model x tool calls fail, and how, grouped by error.

A call fails (the model's failure) when its arguments are not valid JSON or do not validate against the
tool's input_schema, when it names a tool the request did not offer, when the client refuses to run it
(an `is_error` tool_result in Claude Code's own words, joined by tool_use id in a later request of the
session), or when the upstream errored or the stream broke while the call was being written. A tool that
ran and reported an error (a failing test run, a missing file) is counted apart: that is its result.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import orjson
from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast

from dashboard import shapes
from proxy.models import Exchange
from proxy.recording import blobs
from proxy.recording.rows import last_tool_results
from proxy.translate.claude_code import is_call_failure

WINDOW = 1500  # newest exchanges analysed per page view: bodies are big, this keeps the page under a second
_TAG = re.compile(r"</?tool_use_error>")
_QUOTED = re.compile(r"(\"[^\"]{0,200}\"|'[^']{0,200}'|`[^`]{0,200}`)")
_PATH = re.compile(r"(/[\w.\-]+){2,}")
_NUMBER = re.compile(r"\d+")


@dataclass(slots=True)
class Failure:
    exchange_id: int
    tool: str
    group: str
    args: str
    detail: str = ""
    by_tool: bool = False  # the tool ran and reported an error (its result), not a failed call


@dataclass(slots=True)
class Cell:
    calls: int = 0
    failures: int = 0  # calls that failed through the model (arguments, unknown tool, broken stream)
    tool_errors: int = 0  # calls whose tool ran and reported an error (a failing test run)

    @property
    def rate(self) -> float:
        return self.failures / self.calls if self.calls else 0.0

    @property
    def level(self) -> int:
        """0 fine, 1 some failures, 2 bad: drives the cell colour."""
        return 0 if not self.failures else (1 if self.rate < 0.1 else 2)


@dataclass(slots=True)
class HealCell:
    """Tool-call healing per provider x model x tool (issue #15): what the backend sent, and what we did."""

    calls: int = 0
    valid: int = 0  # valid as sent
    repaired: int = 0  # healed without another request
    retried: int = 0  # healed by a retry
    failed: int = 0  # still failed: unrepairable, or the client refused it

    @property
    def healed_rate(self) -> float:
        broken = self.repaired + self.retried + self.failed
        return (self.repaired + self.retried) / broken if broken else 0.0


@dataclass(slots=True)
class Report:
    cells: dict[tuple[str, str, str], Cell] = field(default_factory=lambda: defaultdict(Cell))
    failures: dict[tuple[str, str, str], list[Failure]] = field(default_factory=lambda: defaultdict(list))
    # The same counts per rule, agent and session (and "" -> all), for the costs page.
    by: dict[str, dict[str, Cell]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(Cell)))
    healing: dict[tuple[str, str, str], HealCell] = field(default_factory=lambda: defaultdict(HealCell))
    analysed: int = 0

    def healing_rows(self) -> list[tuple[str, str, str, HealCell]]:
        """(provider, model, tool, counts), most calls first: the evidence for choosing a model."""
        rows = [(*key, cell) for key, cell in self.healing.items()]
        return sorted(rows, key=lambda r: (-r[3].calls, r[0], r[1], r[2]))

    def matrix(self, max_tools: int = 16) -> dict[str, Any]:
        tool_calls: dict[str, int] = defaultdict(int)
        for (_, _, tool), cell in self.cells.items():
            tool_calls[tool] += cell.calls
        tools = sorted(tool_calls, key=lambda t: (-tool_calls[t], t))[:max_tools]
        rows = sorted({(agent, model) for agent, model, _ in self.cells})
        return {
            "tools": tools,
            "rows": [
                {"agent": a, "model": m, "cells": [(t, self.cells.get((a, m, t))) for t in tools]}
                for a, m in rows
            ],
        }

    def groups(
        self, agent: str, model: str, tool: str, *, by_tool: bool = False
    ) -> list[tuple[str, list[Failure]]]:
        """Failed calls (or, by_tool, error results the tool reported) grouped by error, largest first."""
        by_group: dict[str, list[Failure]] = defaultdict(list)
        for f in self.failures.get((agent, model, tool), []):
            if f.by_tool == by_tool:
                by_group[f.group].append(f)
        return sorted(by_group.items(), key=lambda kv: (-len(kv[1]), kv[0]))


def normalize_error(text: str) -> str:
    """A tool error message -> a group name: first line, quotes/paths/numbers elided."""
    line = _TAG.sub("", text).strip().split("\n", 1)[0]
    line = _QUOTED.sub("…", _PATH.sub("<path>", line))
    line = _NUMBER.sub("N", line)
    return line[:100] or "error (no message)"


def _schema_errors(schema: dict[str, Any], value: Any, cache: dict[str, Any]) -> list[str]:
    key = hashlib.sha1(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)).hexdigest()
    if key not in cache:
        try:
            cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
            cache[key] = cls(schema)
        except Exception:  # a schema we cannot compile validates nothing
            cache[key] = None
    validator = cache[key]
    if validator is None:
        return []
    try:
        errors = list(validator.iter_errors(value))
    except Exception:  # a schema that is not one (`{"type": 5}`) raises only when used: it validates nothing
        return []
    out = []
    for err in errors:
        where = ".".join(str(p) for p in err.absolute_path)
        match err.validator:
            case "required":
                missing = [r for r in err.validator_value if not (isinstance(value, dict) and r in value)]
                out.append(f"missing required {', '.join(missing) or '?'}")
            case "additionalProperties":
                out.append("unexpected property")
            case "type":
                out.append(f"{where or 'value'} should be {err.validator_value}")
            case _:
                out.append(f"{where or 'value'}: {err.validator} failed")
    return out


def call_problem(
    call: dict[str, Any], offered: dict[str, Any], cache: dict[str, Any]
) -> tuple[str, str] | None:
    name = str(call.get("name", ""))
    raw = call.get("input")
    if isinstance(raw, str):
        try:
            raw = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return "not valid JSON", ""
    if not isinstance(raw, dict):
        return "arguments are not a JSON object", ""
    if offered and name not in offered:
        return "tool not offered", name
    schema = offered.get(name)
    if isinstance(schema, dict):
        errors = _schema_errors(schema, raw, cache)
        if errors:
            return errors[0], "; ".join(errors)
    return None


@dataclass(frozen=True, slots=True)
class Summary:
    """What one finished exchange contributes, parsed once: its calls (with any problem found in the
    call itself) and the tool results its request brings. Cached per process by exchange id."""

    calls: tuple[tuple[str, str, tuple[str, str] | None, str], ...]  # (tool_use id, name, problem, args)
    results: tuple[tuple[str, bool, str], ...]  # (tool_use id, is_error, text)
    healed: tuple[tuple[str, str], ...] = ()  # (tool_use id, recorded healing kind)


# Keyed by (id, created_at): an id alone could come back after a database is reset.
_SUMMARIES: OrderedDict[tuple[int, Any], Summary] = OrderedDict()
_SUMMARY_LIMIT = 50_000
_SUMMARY_FIELDS = (
    "id",
    "created_at",
    "agent",
    "rule",
    "session_id",
    "backend_model",
    "client_model",
    "status",
    "provider",
)


def _indented(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode()


def summarize(request: Any, response: Any, schema_cache: dict[str, Any], changes: Any = None) -> Summary:
    request = shapes.request(request)  # recorded bodies can hold any JSON: read them in known shapes
    blocks = [b for b in shapes.answer_blocks(response) if b.get("type") == "tool_use"]
    offered = {shapes.text(t.get("name")): t.get("input_schema") for t in request.get("tools") or []}
    calls = []
    for call in blocks:
        args = call.get("input")
        args_text = (
            args
            if isinstance(args, str)
            else orjson.dumps(args, option=orjson.OPT_INDENT_2, default=str).decode()
        )
        problem = call_problem(call, offered, schema_cache)
        calls.append((shapes.text(call.get("id")), shapes.text(call.get("name", "?")), problem, args_text))
    results = tuple((k, v[0], v[1]) for k, v in last_tool_results(request).items())
    healed = tuple(
        (shapes.text(c.get("tool_use_id")), str(c["kind"]))
        for c in (changes if isinstance(changes, list) else ())
        if isinstance(c, dict) and str(c.get("kind", "")).startswith("tool_call_")
    )
    return Summary(calls=tuple(calls), results=results, healed=healed)


def _dimension_cells(report: Report, e: Exchange) -> list[Cell]:
    return [report.by["rule"][e.rule], report.by["agent"][e.agent], report.by["session_id"][e.session_id],
            report.by["all"][""]]  # fmt: skip


def analyse(exchanges: list[Exchange], summaries: dict[int, Summary] | None = None) -> Report:
    """Exchanges in any order -> the report. Results are joined to calls by tool_use id."""
    schema_cache: dict[str, Any] = {}
    if summaries is None:
        summaries = {
            e.pk: summarize(e.client_request, e.client_response, schema_cache, getattr(e, "changes", None))
            for e in exchanges
        }
    report = Report(analysed=len(exchanges))
    results = {
        tool_id: (is_error, text) for e in exchanges for tool_id, is_error, text in summaries[e.pk].results
    }
    for e in exchanges:
        key_base = (e.agent or "main", e.backend_model or e.client_model)
        healed = dict(summaries[e.pk].healed)
        broke = e.status in ("error", "cancelled")
        for tool_id, name, problem, args_text in summaries[e.pk].calls:
            key = (*key_base, name)
            report.cells[key].calls += 1
            for cell in _dimension_cells(report, e):
                cell.calls += 1
            if problem is None and broke:
                problem = (
                    "stream broke during the call" if e.status == "cancelled" else "upstream error",
                    "",
                )
            by_tool = False
            if problem is None:
                is_error, text = results.get(tool_id, (False, ""))
                if is_error:
                    problem = (normalize_error(text), text[:2000])
                    by_tool = not is_call_failure(text)
            _count_healing(report, e, name, healed.get(tool_id), failed=problem is not None and not by_tool)
            if problem is None:
                continue
            for cell in (report.cells[key], *_dimension_cells(report, e)):
                if by_tool:
                    cell.tool_errors += 1
                else:
                    cell.failures += 1
            report.failures[key].append(Failure(exchange_id=e.pk, tool=name, group=problem[0], args=args_text,
                                                detail=problem[1], by_tool=by_tool))  # fmt: skip
    return report


def _count_healing(report: Report, e: Exchange, tool: str, kind: str | None, *, failed: bool) -> None:
    cell = report.healing[(e.provider or "?", e.backend_model or e.client_model, tool)]
    cell.calls += 1
    if failed:  # the model's failure in the end (an unrepairable call is refused by its tool's schema)
        cell.failed += 1
    elif kind == "tool_call_repaired":
        cell.repaired += 1
    elif kind == "tool_call_retried":
        cell.retried += 1
    else:
        cell.valid += 1


def _loads(text: str | None) -> Any:
    try:
        return blobs.loads(text)  # a request's tools may be stored once, in a blob
    except orjson.JSONDecodeError:
        return None


def answer_outcomes(e: Exchange) -> dict[str, tuple[str, str]]:
    """tool_use id -> (problem, detail) for each failed call in this exchange's answer: the call's own
    problems, and the client refusing the call in the next request of the session."""
    summary = summarize(e.client_request, e.client_response, {})
    outcomes = {tool_id: problem for tool_id, _, problem, _ in summary.calls if problem is not None}
    pending = [tool_id for tool_id, _, problem, _ in summary.calls if problem is None and tool_id]
    if pending and e.session_id:
        later = (
            Exchange.objects.filter(
                session_id=e.session_id, id__gt=e.pk, client_request__icontains=pending[0]
            )
            .order_by("id")
            .values_list("client_request", flat=True)
            .first()
        )
        if isinstance(later, dict):
            for tool_id, (is_error, text) in last_tool_results(shapes.request(later)).items():
                # A tool that ran and reported an error is its result, not a failed call (issue #12).
                if is_error and tool_id in pending and is_call_failure(text):
                    outcomes[tool_id] = (normalize_error(text), text[:2000])
    return outcomes


def recent_report(window: int = WINDOW, base: QuerySet[Exchange] | None = None) -> Report:
    """The report over the newest exchanges (of `base`) that made or answered tool calls.

    Bodies are read and parsed only for exchanges not summarized before in this process: a finished
    exchange never changes, so the page costs one small query once it is warm.
    """
    qs = (
        (Exchange.objects.all() if base is None else base)
        .filter(endpoint="messages")
        .filter(
            Q(tool_calls__gt=0)
            | Q(status__in=("error", "cancelled"))
            | Q(client_request__icontains="tool_result")
        )
        .only(*_SUMMARY_FIELDS)
        .order_by("-id")
    )
    rows = list(qs[:window])
    missing = [e.pk for e in rows if (e.pk, e.created_at) not in _SUMMARIES]
    schema_cache: dict[str, Any] = {}
    fresh: dict[int, Summary] = {}
    for start in range(0, len(missing), 200):
        # Raw JSON text parsed with orjson: several times faster than model instances + stdlib json.
        batch = (
            Exchange.objects.filter(pk__in=missing[start : start + 200])
            .annotate(req=Cast("client_request", TextField()), resp=Cast("client_response", TextField()))
            .values_list("id", "created_at", "status", "req", "resp", "changes")
        )
        for pk, created_at, status, req, resp, changes in batch:
            fresh[pk] = summarize(_loads(req), _loads(resp), schema_cache, changes)
            if status != "pending":  # a pending exchange's answer is not complete yet
                _SUMMARIES[(pk, created_at)] = fresh[pk]
    while len(_SUMMARIES) > _SUMMARY_LIMIT:
        _SUMMARIES.popitem(last=False)
    summaries = {e.pk: fresh.get(e.pk) or _SUMMARIES[(e.pk, e.created_at)] for e in rows}
    return analyse(rows, summaries)

"""One tool call -> valid (untouched) | repaired (with its edits) | needs a retry (with the error text).

The order of the checks is the contract of issue #15: a call that validates as sent is never touched;
then the tool's name, the syntax of its arguments, the schema's unambiguous coercions; whatever is
still wrong goes to a retry, never to the bin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from ..types import JSONDict
from .schema import VALIDATORS, Edit, ValidatorCache, coerce, describe, first_errors
from .syntax import Unrepairable, parse_arguments

Outcome = Literal["valid", "repaired", "needs_retry"]


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    name: str  # the tool's name as the client offered it (after a name repair)
    input: JSONDict | None  # the input to send (None when a retry is needed)
    edits: tuple[Edit, ...] = ()
    error: str = ""  # needs_retry: what is wrong, in words the model reads
    intended: str = ""  # needs_retry: the tool it meant ("" when no offered tool is unambiguous)


class ToolSet:
    """The tools one request offers: name -> input_schema, checked with the process's validator cache."""

    __slots__ = ("_cache", "schemas")

    def __init__(self, tools: Sequence[object], *, cache: ValidatorCache = VALIDATORS) -> None:
        self.schemas: dict[str, object] = {}
        for tool in tools:
            if isinstance(tool, dict) and isinstance(tool.get("name"), str):
                # Server tools (web_search, bash_2025…) have no input_schema: their calls are not checked.
                self.schemas[tool["name"]] = tool.get("input_schema")
        self._cache = cache

    def __bool__(self) -> bool:
        return bool(self.schemas)

    def match_name(self, name: str) -> str | None:
        """The offered tool `name` means: itself, or the one tool equal to it once case, `_` and `-` are
        ignored (`bash` -> `Bash`, `todo_write` -> `TodoWrite`)."""
        if name in self.schemas:
            return name
        key = _loose(name)
        found = [offered for offered in self.schemas if _loose(offered) == key]
        return found[0] if len(found) == 1 else None


def decide(name: str, arguments: str | Mapping[str, Any], tools: ToolSet, *, finished: bool) -> Verdict:
    """Check one call. `arguments` is the text the backend sent (or an object it sent as one);
    `finished`: the backend ended the turn itself (not at its token limit)."""
    tool = tools.match_name(name)
    if tool is None:
        offered = ", ".join(sorted(tools.schemas)[:40])
        return Verdict("needs_retry", name, None, error=f"there is no tool named {name!r} (tools: {offered})")
    edits: list[Edit] = [] if tool == name else [Edit("tool_name", "name", name, tool)]
    validator = tools._cache.validator(tools.schemas[tool])
    if isinstance(arguments, Mapping):
        value: JSONDict = dict(arguments)
    elif not arguments.strip():
        schema = tools.schemas[tool]
        if isinstance(schema, dict) and not schema.get("properties"):
            value = {}
            edits.append(Edit("empty_arguments", "", arguments, {}))
        else:  # empty arguments for a tool that takes some: they may have been lost, not meant
            return _retry(tool, name, "the call came with no arguments at all", edits)
    else:
        try:
            value, kinds = parse_arguments(arguments, finished=finished)
        except Unrepairable as exc:
            return _retry(tool, name, str(exc), edits)
        if kinds:
            after = orjson.dumps(value).decode()
            edits += [Edit(kind, "", arguments, after) for kind in kinds]
    if validator is None:
        return _verdict(tool, value, edits)
    if validator.is_valid(value):  # the hot path: one compiled check
        return _verdict(tool, value, edits)
    value, coerced, errors = coerce(validator, value)
    edits += coerced
    if errors:
        return _retry(tool, name, describe(first_errors(validator, value)), edits)
    return _verdict(tool, value, edits)


def _verdict(tool: str, value: JSONDict, edits: list[Edit]) -> Verdict:
    return Verdict("repaired" if edits else "valid", tool, value, tuple(edits))


def _retry(tool: str, name: str, error: str, edits: list[Edit]) -> Verdict:
    del edits  # partial repairs are not kept: the retry starts from what the backend sent
    return Verdict("needs_retry", tool or name, None, error=error, intended=tool)


def _loose(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")

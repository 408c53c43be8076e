"""Tool arguments that are not a JSON object as sent -> the object they meant, or why not.

json-repair does the repairing. It repairs far more than we may (single quotes, unquoted keys, values it
makes up for a key left without one), so its result is taken only when a scan of our own found nothing
but the kinds issue #15 allows, and the scalars of its result are exactly the ones written, in order:
a repair moves no value and invents none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import orjson
from json_repair import repair_json

from ..types import JSONDict

# Repair kinds, as recorded in an edit's `repair`.
FENCE = "fence_stripped"
PROSE = "prose_stripped"
DOUBLE_ENCODED = "double_encoded"
TRAILING_COMMA = "trailing_comma"
PYTHON_LITERAL = "python_literal"
CONTROL_CHAR = "control_character_escaped"
MISSING_BRACKETS = "closing_brackets_added"

_PYTHON_LITERALS = {"True": True, "False": False, "None": None}
_JSON_LITERALS = {"true": True, "false": False, "null": None}
_NUMBER_CHARS = frozenset("0123456789+-.eE")


class Unrepairable(Exception):
    """Why the arguments cannot be repaired without guessing: the text the model reads on a retry."""


@dataclass(slots=True)
class Scan:
    """What a pass over the text outside its strings found."""

    kinds: list[str] = field(default_factory=list)  # allowed problems, in the order first seen
    scalars: list[Any] = field(default_factory=list)  # keys and values as written, in order
    other: str = ""  # the first problem no allowed repair covers
    in_string: bool = False
    open_brackets: int = 0

    def note(self, kind: str) -> None:
        if kind not in self.kinds:
            self.kinds.append(kind)


def parse_arguments(raw: str, *, finished: bool) -> tuple[JSONDict, list[str]]:
    """`raw` arguments -> (object, repair kinds applied). `finished`: the backend ended its turn on its
    own (tool_calls / stop), so closing brackets it forgot may be added. Raises Unrepairable."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = _NOT_JSON
    if isinstance(value, dict):
        return value, []
    if isinstance(value, str):  # an object sent as a JSON string of itself
        inner, kinds = parse_arguments(value, finished=finished) if value.strip() else ({}, [])
        if value.strip() and isinstance(inner, dict):
            return inner, [DOUBLE_ENCODED, *kinds]
    if value is not _NOT_JSON:
        raise Unrepairable(f"the arguments are JSON but not an object: {_clip(raw)}")
    core, kinds = _unwrap(raw)
    try:
        value = orjson.loads(core)
    except orjson.JSONDecodeError:
        value = _NOT_JSON
    if isinstance(value, dict):
        return value, kinds
    scan = scan_text(core)
    if scan.other:
        raise Unrepairable(f"the arguments are not valid JSON ({scan.other}): {_clip(raw)}")
    if scan.in_string:
        raise Unrepairable(f"the arguments end inside a string (they were cut off): {_clip(raw, tail=True)}")
    if scan.open_brackets and not finished:
        raise Unrepairable(
            f"the arguments end before their closing brackets (the answer stopped at its token limit): "
            f"{_clip(raw, tail=True)}"
        )
    repaired = repair_json(core, return_objects=True, skip_json_loads=True)
    if not isinstance(repaired, dict) or not _same_scalars(_flatten(repaired), scan.scalars):
        raise Unrepairable(f"the arguments are not valid JSON: {_clip(raw)}")
    return repaired, kinds + scan.kinds


def _unwrap(raw: str) -> tuple[str, list[str]]:
    """The object inside ``` fences or prose: from the first `{` to the last `}` (or the end)."""
    text = raw.strip()
    start = text.find("{")
    if start < 0:
        return text, []
    end = text.rfind("}")
    core = text[start : end + 1] if end > start else text[start:]
    outside = text[:start] + (text[end + 1 :] if end > start else "")
    if not outside.strip():
        return core, []
    return core, [FENCE if "```" in outside else PROSE]


def scan_text(text: str) -> Scan:
    """One pass over `text` as JSON, noting the allowed problems and the scalars as written."""
    scan = Scan()
    stack: list[str] = []
    last = ""  # the last significant character outside strings
    i, n = 0, len(text)
    while i < n and not scan.other:
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
            continue
        if ch == '"':
            i = _string(text, i, scan)
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
            i += 1
        elif ch in "}]":
            if not stack or stack.pop() != ch:
                scan.other = f"an unmatched {ch!r}"
            elif last == ",":
                scan.note(TRAILING_COMMA)
            i += 1
        elif ch in ",:":
            i += 1
        elif ch in _NUMBER_CHARS:
            j = i
            while j < n and text[j] in _NUMBER_CHARS:
                j += 1
            number = _number(text[i:j])
            if number is None:
                scan.other = f"{text[i:j]!r} is not a number"
            scan.scalars.append(number)
            i = j
        elif ch.isalpha():
            j = i
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            word = text[i:j]
            if word in _JSON_LITERALS:
                scan.scalars.append(_JSON_LITERALS[word])
            elif word in _PYTHON_LITERALS:
                scan.note(PYTHON_LITERAL)
                scan.scalars.append(_PYTHON_LITERALS[word])
            else:
                scan.other = f"an unquoted {word[:40]!r}"
            i = j
        else:
            scan.other = f"an unexpected {ch!r}"
        last = ch
    if stack and not scan.in_string and not scan.other:
        scan.note(MISSING_BRACKETS)
    scan.open_brackets = len(stack)
    return scan


def _string(text: str, start: int, scan: Scan) -> int:
    """Scan the string opening at `start`; its decoded value goes to `scan.scalars`. Returns the index
    past its closing quote (len(text) when it never closes: `scan.in_string`)."""
    i, n = start + 1, len(text)
    control = False
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == '"':
            body = text[start + 1 : i]
            if control:  # a raw newline or tab inside a string: escaped, as the writer meant
                scan.note(CONTROL_CHAR)
                body = "".join(_ESCAPES.get(c, c) for c in body)
            try:
                scan.scalars.append(orjson.loads(f'"{body}"'))
            except orjson.JSONDecodeError:
                scan.other = f"a string with a bad escape: {body[:40]!r}"
            return i + 1
        if ch < " ":
            control = True
        i += 1
    scan.in_string = True
    return n


_ESCAPES = {chr(c): f"\\u{c:04x}" for c in range(32)} | {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _number(text: str) -> int | float | None:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _flatten(value: Any) -> list[Any]:
    out: list[Any] = []
    if isinstance(value, dict):
        for key, item in value.items():
            out.append(key)
            out.extend(_flatten(item))
    elif isinstance(value, list):
        for item in value:
            out.extend(_flatten(item))
    else:
        out.append(value)
    return out


def _same_scalars(got: list[Any], written: list[Any]) -> bool:
    if len(got) != len(written):
        return False
    for a, b in zip(got, written, strict=True):
        if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None or isinstance(a, str):
            if type(a) is not type(b) or a != b:
                return False
        elif not isinstance(b, int | float) or a != b:
            return False
    return True


def _clip(text: str, *, tail: bool = False, limit: int = 300) -> str:
    if len(text) <= limit:
        return repr(text)
    return repr("…" + text[-limit:]) if tail else repr(text[:limit] + "…")


_NOT_JSON = object()

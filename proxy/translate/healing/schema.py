"""Tools' input schemas: validators compiled once, and the coercions a schema makes unambiguous.

Claude Code sends the same tools every turn, so a validator is compiled once per distinct schema (keyed
by the schema's JSON bytes, a few microseconds for one tool) and kept in a bounded LRU shared by every
request of the process: checking a valid call then costs one `is_valid`.
"""

from __future__ import annotations

import copy
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

from ..types import JSONDict

_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_MAX_ROUNDS = 16  # coercion rounds per call: each fixes at least one error or stops


@dataclass(frozen=True, slots=True)
class Edit:
    """One change a repair made: which repair, where (a JSON pointer into the input, or `name`), what."""

    repair: str
    path: str
    before: Any
    after: Any

    def as_dict(self) -> JSONDict:
        return {"repair": self.repair, "path": self.path, "before": self.before, "after": self.after}


class ValidatorCache:
    """Compiled validators by schema bytes, least recently used dropped past `size`."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._validators: OrderedDict[bytes, Validator | None] = OrderedDict()
        self.compiled = 0  # how many were compiled (the tests count cache misses with it)

    def validator(self, schema: object) -> Validator | None:
        """The validator for `schema`; None when it is not a usable schema (such a tool is not checked)."""
        if not isinstance(schema, dict):
            return None
        key = orjson.dumps(schema)
        if key in self._validators:
            self._validators.move_to_end(key)
            return self._validators[key]
        self.compiled += 1
        compiled: Validator | None
        try:
            cls = validator_for(schema, default=Draft202012Validator)
            cls.check_schema(schema)
            compiled = cls(schema)
        except (SchemaError, Exception):  # a schema we cannot compile checks nothing
            compiled = None
        self._validators[key] = compiled
        if len(self._validators) > self.size:
            self._validators.popitem(last=False)
        return compiled

    def __len__(self) -> int:
        return len(self._validators)


VALIDATORS = ValidatorCache()


def first_errors(validator: Validator, value: Any, limit: int = 3) -> list[ValidationError]:
    """The validation errors of `value`, most relevant first (jsonschema's own ranking), at most `limit`."""
    try:
        errors = sorted(validator.iter_errors(value), key=lambda e: e.path)
    except Exception:  # a schema that only fails when used (`{"type": 5}`): nothing to say
        return []
    return errors[:limit]


def describe(errors: Sequence[ValidationError]) -> str:
    """Validation errors as one sentence a model can act on."""
    parts = []
    for err in errors:
        where = "/" + "/".join(str(p) for p in err.absolute_path)
        message = err.message if len(err.message) <= 300 else err.message[:300] + "…"
        parts.append(f"at {where}: {message}")
    return "; ".join(parts)


def coerce(validator: Validator, value: JSONDict) -> tuple[JSONDict, list[Edit], list[ValidationError]]:
    """Fix, error by error, what the schema makes unambiguous: (value, edits, errors left). `value` is
    not modified (a copy is, once there is something to fix)."""
    edits: list[Edit] = []
    errors = first_errors(validator, value, limit=50)
    if not errors:
        return value, edits, []
    value = copy.deepcopy(value)
    for _ in range(_MAX_ROUNDS):
        edit = next((e for e in (_fix(validator, err, value) for err in errors) if e is not None), None)
        if edit is None:
            return value, edits, errors
        edits.append(edit)
        errors = first_errors(validator, value, limit=50)
        if not errors:
            return value, edits, []
    return value, edits, errors


def _fix(validator: Validator, err: ValidationError, root: JSONDict) -> Edit | None:
    """Apply the one coercion that resolves `err`, if there is exactly one; the edit made, or None."""
    path = list(err.absolute_path)
    if not path:
        return None  # the whole input: only the syntax repairs touch that
    instance = err.instance
    pointer = "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in path)
    parent = _at(root, path[:-1])
    match err.validator:
        case "type":
            if instance is None and isinstance(parent, dict) and not _is_required(validator, root, path):
                del parent[path[-1]]
                return Edit("null_dropped", pointer, None, "(removed)")
            wanted = err.validator_value
            types = [wanted] if isinstance(wanted, str) else list(wanted) if isinstance(wanted, list) else []
            for kind, candidate in _candidates(instance):
                if _type_name(candidate) in types or (kind == "string_to_integer" and "number" in types):
                    parent[path[-1]] = candidate
                    return Edit(kind, pointer, instance, candidate)
            return None
        case "anyOf" | "oneOf":
            branches = err.validator_value if isinstance(err.validator_value, list) else []
            accepted = [
                (kind, candidate)
                for kind, candidate in _candidates(instance)
                for branch in branches
                if isinstance(branch, dict) and validator.evolve(schema=branch).is_valid(candidate)
            ]
            if len(accepted) != 1:
                return None  # none, or more than one branch takes a coercion: not ours to choose
            kind, candidate = accepted[0]
            parent[path[-1]] = candidate
            return Edit(kind, pointer, instance, candidate)
        case _:
            return None


def _candidates(instance: object) -> list[tuple[str, Any]]:
    """Each reading of `instance` as another JSON type that is written in it (never made up)."""
    out: list[tuple[str, Any]] = []
    if isinstance(instance, str):
        text = instance.strip()
        if _INTEGER.fullmatch(text):
            out.append(("string_to_integer", int(text)))
        elif _NUMBER.fullmatch(text):
            out.append(("string_to_number", float(text)))
        if text in ("true", "false"):
            out.append(("string_to_boolean", text == "true"))
        if text[:1] in ("[", "{"):
            try:
                parsed = orjson.loads(text)
            except orjson.JSONDecodeError:
                parsed = None
            if isinstance(parsed, list | dict):
                out.append(("string_to_" + ("array" if isinstance(parsed, list) else "object"), parsed))
    elif isinstance(instance, int | float) and not isinstance(instance, bool):
        out.append(("number_to_string", orjson.dumps(instance).decode()))
    return out


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _at(root: Any, path: Sequence[Any]) -> Any:
    node = root
    for part in path:
        node = node[part]
    return node


def _is_required(validator: Validator, root: JSONDict, path: Sequence[Any]) -> bool:
    """Whether the property at `path` is required by the schema of the object holding it. Only plain
    `properties`/`items` nesting is followed; anything else counts as required (the null stays)."""
    schema: Any = validator.schema
    for part in path[:-1]:
        if not isinstance(schema, dict):
            return True
        properties = schema.get("properties") or {}
        schema = schema.get("items") if isinstance(part, int) else properties.get(part)
    if not isinstance(schema, dict) or "properties" not in schema:
        return True
    return path[-1] in (schema.get("required") or ())

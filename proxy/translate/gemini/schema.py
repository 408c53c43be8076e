"""JSON Schema (a tool's input_schema) -> what Gemini's `FunctionDeclaration` accepts, keeping its meaning.

Gemini takes either `parameters`, a Schema object (a subset of OpenAPI 3.0: an unknown keyword is a 400
"Unknown name ... Cannot find field"), or `parametersJsonSchema`, JSON Schema as it is, which Gemini 2.5
and later models read. `prepare_json_schema` readies a schema for the latter; `to_gemini_schema`
rewrites it into the former. Every change is recorded, so the exchange shows what the model saw.

Schema fields: https://ai.google.dev/api/caching#Schema (googleapis/python-genai `types.Schema`).
"""

from __future__ import annotations

import copy
from typing import Any

from ..types import Change, JSONDict

# The Schema fields the Gemini API reads (camelCase, as on the wire).
SCHEMA_FIELDS = frozenset(
    {
        "type", "format", "title", "description", "nullable", "enum", "items", "minItems", "maxItems",
        "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern",
        "example", "anyOf", "propertyOrdering", "minimum", "maximum",
    }
)  # fmt: skip
SCHEMA_TYPES = frozenset({"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT"})
# `format`s Gemini accepts per type (the Gemini API fails on any other string format).
FORMATS = {
    "STRING": frozenset({"enum", "date-time"}),
    "NUMBER": frozenset({"float", "double"}),
    "INTEGER": frozenset({"int32", "int64"}),
}
_RENAMED = {"oneOf": "anyOf"}  # "exactly one" read as "at least one": the model still picks one shape
_MAX_DEPTH = 32  # recursive $refs are cut here (Gemini's own nesting limit is lower)


class SchemaCleaner:
    """One tool's schema cleaning: the result, and every change made on the way (`changes`)."""

    def __init__(self, tool: str) -> None:
        self.tool = tool
        self.notes: list[str] = []
        self._defs: JSONDict = {}

    @property
    def changes(self) -> list[Change]:
        """One change per tool, naming every adaptation (a request resends the same tools each turn)."""
        if not self.notes:
            return []
        return [Change("schema_adapted", f"{self.tool}: " + "; ".join(self.notes)[:1000])]

    def note(self, path: str, what: str) -> None:
        self.notes.append(f"{path or '<root>'}: {what}")

    # -- parametersJsonSchema ----------------------------------------------------------------------

    def prepare_json_schema(self, schema: JSONDict) -> JSONDict:
        """The schema for `parametersJsonSchema`: itself, without the `$schema` tag Gemini does not read."""
        out = dict(schema)
        if out.pop("$schema", None) is not None:
            self.note("", "$schema dropped")
        if out.get("type") is None and "properties" in out:
            out["type"] = "object"
        return out

    # -- parameters (Schema) -----------------------------------------------------------------------

    def to_gemini_schema(self, schema: JSONDict, *, root_object: bool = True) -> JSONDict:
        """The schema as a Gemini Schema object, meaning kept where a field can say it."""
        defs = {}
        for key in ("$defs", "definitions"):
            if isinstance(schema.get(key), dict):
                defs.update({f"#/{key}/{name}": value for name, value in schema[key].items()})
        self._defs = defs
        out = self._node(copy.deepcopy(schema), "", 0)
        if root_object and out.get("type") != "OBJECT":  # a function's parameters are always an object
            self.note("", f"root type {out.get('type')} -> OBJECT")
            out = {"type": "OBJECT", "properties": out.get("properties", {})}
        return out

    def _node(self, node: Any, path: str, depth: int) -> JSONDict:
        if not isinstance(node, dict):
            self.note(path, f"schema {node!r} -> any string")  # `true`/`false` schemas have no Schema form
            return {"type": "STRING"}
        node = self._inline(node, path, depth)
        if depth > _MAX_DEPTH:
            self.note(path, "nested too deep (recursive $ref): cut to an object")
            return {"type": "OBJECT"}
        out: JSONDict = {}
        self._type(node, out, path)
        for key, value in node.items():
            key = _RENAMED.get(key, key)
            sub = f"{path}.{key}" if path else key
            match key:
                case "type" | "$schema" | "$defs" | "definitions" | "$id" | "$comment":
                    if key in ("$schema", "$defs", "definitions") and path:
                        self.note(sub, "dropped")
                case "properties" if isinstance(value, dict):
                    out["properties"] = {
                        name: self._node(prop, f"{sub}.{name}", depth + 1) for name, prop in value.items()
                    }
                case "items":
                    if isinstance(value, list):  # tuple form: Gemini has one item schema
                        self.note(sub, "tuple items -> the first item's schema")
                        value = value[0] if value else {}
                    out["items"] = self._node(value, sub, depth + 1)
                case "anyOf" if isinstance(value, list):
                    self._any_of(value, out, sub, depth)
                case "allOf" if isinstance(value, list):
                    self._all_of(value, out, sub, depth)
                case "enum" if isinstance(value, list):
                    self._enum(value, out, sub)
                case "const":
                    self.note(sub, "const -> a one-value enum")
                    self._enum([value], out, sub)
                case "format":
                    allowed = FORMATS.get(str(out.get("type")), frozenset())
                    if isinstance(value, str) and value in allowed:
                        out["format"] = value
                    else:
                        self.note(sub, f"format {value!r} dropped")
                        _describe(out, f"Format: {value}.")
                case (
                    "default" | "examples" | "additionalProperties" | "exclusiveMinimum" | "exclusiveMaximum"
                ):
                    self._described(key, value, out, sub)
                case "required" if isinstance(value, list):
                    out["required"] = [r for r in value if isinstance(r, str)]
                case _ if key in SCHEMA_FIELDS:
                    out[key] = value
                case _:
                    self.note(sub, "dropped (Gemini has no such field)")
        self._fix_required(out, path)
        if out.get("type") == "OBJECT" and not out.get("properties"):
            out.pop("properties", None)  # Gemini rejects an empty properties map on some models
        return out

    def _inline(self, node: JSONDict, path: str, depth: int) -> JSONDict:
        ref = node.get("$ref")
        if not isinstance(ref, str):
            return node
        target = self._defs.get(ref)
        if target is None or depth > _MAX_DEPTH:
            self.note(path, f"$ref {ref} unresolved: any object")
            return {k: v for k, v in node.items() if k != "$ref"} or {"type": "object"}
        self.note(path, f"$ref {ref} inlined")
        merged = dict(target) if isinstance(target, dict) else {}
        merged.update({k: v for k, v in node.items() if k != "$ref"})
        return merged

    def _type(self, node: JSONDict, out: JSONDict, path: str) -> None:
        kind = node.get("type")
        if kind is None:
            if "properties" in node:
                out["type"] = "OBJECT"
            elif "items" in node:
                out["type"] = "ARRAY"
            return
        kinds = kind if isinstance(kind, list) else [kind]
        names = [str(k).upper() for k in kinds]
        if "NULL" in names:
            out["nullable"] = True
            names = [n for n in names if n != "NULL"]
        names = [n for n in names if n in SCHEMA_TYPES] or ["STRING"]
        if len(names) > 1:  # ["string", "number"]: one of several types is anyOf in Gemini's terms
            self.note(f"{path}.type" if path else "type", f"{kinds} -> anyOf")
            out["anyOf"] = [{"type": n} for n in names]
            return
        if isinstance(kind, list):
            self.note(f"{path}.type" if path else "type", f"{kinds} -> {names[0]}, nullable")
        out["type"] = names[0]

    def _any_of(self, options: list[Any], out: JSONDict, path: str, depth: int) -> None:
        cleaned = []
        for i, option in enumerate(options):
            if isinstance(option, dict) and option.get("type") == "null":
                out["nullable"] = True  # `anyOf: [X, {type: null}]` is X, nullable
                continue
            cleaned.append(self._node(option, f"{path}.{i}", depth + 1))
        if len(cleaned) == 1 and not out.get("type"):
            self.note(path, "anyOf of one schema and null -> that schema, nullable")
            nullable = out.get("nullable")
            out.update(cleaned[0])
            if nullable:
                out["nullable"] = True
        elif cleaned:
            out["anyOf"] = cleaned

    def _all_of(self, parts: list[Any], out: JSONDict, path: str, depth: int) -> None:
        """allOf has no Schema form: its objects are merged into one (properties and required joined)."""
        self.note(path, "allOf merged")
        for i, part in enumerate(parts):
            cleaned = self._node(part, f"{path}.{i}", depth + 1)
            props = cleaned.pop("properties", {})
            required = cleaned.pop("required", [])
            for key, value in cleaned.items():
                out.setdefault(key, value)
            if props:
                out.setdefault("properties", {}).update(props)
            if required:
                out["required"] = [
                    *out.get("required", []),
                    *(r for r in required if r not in out.get("required", [])),
                ]

    def _enum(self, values: list[Any], out: JSONDict, path: str) -> None:
        if all(isinstance(v, str) for v in values):
            out["enum"] = values
            if out.get("type") in (None, "STRING"):
                out["type"] = "STRING"
            return
        # Gemini's enum holds strings only: other values are said in the description instead.
        self.note(path, "non-string enum -> description")
        _describe(out, "One of: " + ", ".join(_json_text(v) for v in values) + ".")

    def _described(self, key: str, value: Any, out: JSONDict, path: str) -> None:
        """A keyword Gemini has no field for, whose meaning fits in the description."""
        match key:
            case "default":
                _describe(out, f"Default: {_json_text(value)}.")
            case "examples" if isinstance(value, list) and value:
                out.setdefault("example", value[0])
            case "exclusiveMinimum" if isinstance(value, int | float) and not isinstance(value, bool):
                out.setdefault("minimum", value)
                _describe(out, f"Must be greater than {value}.")
            case "exclusiveMaximum" if isinstance(value, int | float) and not isinstance(value, bool):
                out.setdefault("maximum", value)
                _describe(out, f"Must be less than {value}.")
            case "additionalProperties" if isinstance(value, dict) and value:
                _describe(out, "Further keys allowed, each value: " + _json_text(value) + ".")
        self.note(path, "dropped" if key == "additionalProperties" else f"{key} -> description/example")

    def _fix_required(self, out: JSONDict, path: str) -> None:
        required = out.get("required")
        if not isinstance(required, list):
            return
        props = out.get("properties") or {}
        present = [r for r in required if r in props]
        if len(present) != len(required):
            missing = [r for r in required if r not in props]
            self.note(
                f"{path}.required" if path else "required", f"names absent properties {missing}: dropped"
            )
        if present:
            out["required"] = list(dict.fromkeys(present))
        else:
            out.pop("required", None)


def _describe(out: JSONDict, text: str) -> None:
    current = out.get("description")
    out["description"] = f"{current} {text}" if isinstance(current, str) and current else text


def _json_text(value: Any) -> str:
    import json

    try:
        return json.dumps(value, ensure_ascii=False)[:200]
    except (TypeError, ValueError):
        return repr(value)[:200]

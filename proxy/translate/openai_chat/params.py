"""The request's parameters -> Chat Completions: max_tokens, thinking, output format, stop, sampling, user.

Where the model differs (its quirks, compiled from Target.options) the parameter is renamed, mapped,
matched locally or dropped, and the change recorded.
"""

from __future__ import annotations

import json
from typing import Any

from .. import messages_request as read
from ..base import TranslationError
from ..types import Change, JSONDict, MessagesRequest
from .context import Context

_USER_ID_LIMIT = 64  # OpenAI rejects a longer `user`


def _budget_effort(budget: int) -> str:
    # Buckets for budget_tokens -> reasoning_effort: < 4096 "low", < 16384 "medium", else "high".
    if budget < 4096:
        return "low"
    if budget < 16384:
        return "medium"
    return "high"


def reasoning_effort(request: MessagesRequest, *, overrides: JSONDict, body: JSONDict, ctx: Context) -> bool:
    """Sets reasoning_effort when the client asked for thinking and the target reasons; True if asked."""
    thinking = request.get("thinking")
    if thinking is None:
        return False
    if not isinstance(thinking, dict):
        raise TranslationError("thinking: must be an object")
    output_config = request.get("output_config")
    match thinking.get("type"):
        case "disabled":
            return False
        case "enabled":
            budget = thinking.get("budget_tokens")
            if isinstance(budget, bool) or not isinstance(budget, int):
                raise TranslationError("thinking.budget_tokens: must be an integer")
            effort, source = _budget_effort(budget), f"budget_tokens {budget}"
        case "adaptive":
            asked = output_config.get("effort") if isinstance(output_config, dict) else None
            # Chat Completions' scale tops out at "high"; Anthropic's goes on to xhigh and max.
            effort = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}.get(
                asked if isinstance(asked, str) else "", "medium"
            )
            source = f"adaptive, effort {asked or 'default'}"
        case other:
            raise TranslationError(f"thinking.type: unknown {other!r}")
    if not ctx.quirks.reasoning:
        ctx.changes.append(Change("thinking_dropped", f"{source}: model has no reasoning option"))
        return True
    override = overrides.get("reasoning_effort")
    if isinstance(override, str) and override:
        effort, source = override, f"{source}, route override"
    body["reasoning_effort"] = effort
    ctx.changes.append(Change("thinking_mapped", f"{source} -> reasoning_effort {effort}"))
    return True


def response_format(output_config: Any, ctx: Context) -> JSONDict:
    if output_config is None:
        return {}
    if not isinstance(output_config, dict):
        raise TranslationError("output_config: must be an object")
    out: JSONDict = {}
    for key, value in output_config.items():
        if key == "effort":
            continue  # read by reasoning_effort; without thinking it has no counterpart, dropped quietly
        if key != "format":
            ctx.drop(f"output_config.{key}")
            continue
        if not isinstance(value, dict) or value.get("type") != "json_schema":
            ctx.drop(f"output_config.format: type {value.get('type') if isinstance(value, dict) else value}")
            continue
        schema = value.get("schema")
        if not isinstance(schema, dict):
            raise TranslationError("output_config.format.schema: must be an object")
        strict = strict_compatible(schema)
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": schema, "strict": strict},
        }
        ctx.changes.append(Change("response_format", f"output_config.format json_schema (strict: {strict})"))
    return out


def strict_compatible(schema: Any) -> bool:
    """OpenAI strict mode needs every object closed (additionalProperties false), all properties required."""
    if isinstance(schema, list):
        return all(strict_compatible(item) for item in schema)
    if not isinstance(schema, dict):
        return True
    kind = schema.get("type")
    if kind == "object" or (isinstance(kind, list) and "object" in kind) or "properties" in schema:
        properties = schema.get("properties") or {}
        required = schema.get("required") or []
        if schema.get("additionalProperties") is not False:
            return False
        if not isinstance(properties, dict) or not isinstance(required, list):
            return False
        if not all(isinstance(r, str) for r in required) or set(required) != set(properties):
            return False
        if not all(strict_compatible(sub) for sub in properties.values()):
            return False
    for key in ("items", "prefixItems", "anyOf", "oneOf", "allOf", "not"):
        if key in schema and not strict_compatible(schema[key]):
            return False
    for key in ("$defs", "definitions"):
        defs = schema.get(key)
        if isinstance(defs, dict) and not all(strict_compatible(sub) for sub in defs.values()):
            return False
    return True


def stop_param(value: Any, *, body: JSONDict, ctx: Context) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Sends what the backend accepts as `stop`; the rest are matched locally by the response side."""
    if value is None:
        return (), ()
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise TranslationError("stop_sequences: must be a list of strings")
    limit = ctx.quirks.max_stop_sequences
    sent, local = value[:limit], value[limit:]
    if sent:
        body["stop"] = sent
    if local:
        ctx.changes.append(
            Change("stop_sequences_local", f"{len(local)} of {len(value)} matched locally (limit {limit})")
        )
    return tuple(value), tuple(s for s in local if s)


def sampling(request: MessagesRequest, *, overrides: JSONDict, body: JSONDict, ctx: Context) -> None:
    temperature = overrides.get("temperature", read.number(request, "temperature"))
    if temperature is not None:
        if ctx.quirks.no_temperature:  # e.g. OpenAI reasoning models reject it
            ctx.changes.append(Change("param_dropped", "temperature"))
        else:
            body["temperature"] = temperature
    top_p = read.number(request, "top_p")
    if top_p is not None:
        body["top_p"] = top_p
    top_k = request.get("top_k")
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int):
            raise TranslationError("top_k: must be an integer")
        if ctx.quirks.top_k:  # vLLM and some others accept it as an extension
            body["top_k"] = top_k
        else:
            ctx.changes.append(Change("param_dropped", "top_k"))


def user(metadata: Any, ctx: Context) -> JSONDict:
    """metadata.user_id -> `user` (or `prompt_cache_key`): the session id keeps a backend's cache warm."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise TranslationError("metadata: must be an object")
    for key in metadata:
        if key != "user_id":
            ctx.drop(f"metadata.{key}")
    user_id = metadata.get("user_id")
    if not isinstance(user_id, str) or not user_id:
        return {}
    value = user_id
    try:
        # Claude Code sends {"device_id", "account_uuid", "session_id"} as a JSON string.
        parsed = json.loads(user_id)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("session_id"), str) and parsed["session_id"]:
        value = parsed["session_id"]
    key = "prompt_cache_key" if ctx.quirks.prompt_cache_key else "user"
    return {key: value[:_USER_ID_LIMIT]}

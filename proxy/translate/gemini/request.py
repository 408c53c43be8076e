"""Anthropic Messages request -> Gemini `generateContent` / `streamGenerateContent?alt=sse` request.

Pure. Every change or drop is recorded as a `Change`. The key goes in `x-goog-api-key` (never in the URL,
so the recorded URL holds no secret). Wire format: https://ai.google.dev/api/generate-content
(googleapis/python-genai `types.GenerateContentConfig`, `GenerationConfig`, `ThinkingConfig`, `Tool`).
"""

from __future__ import annotations

from typing import Any

from ..base import TranslationError
from ..claude_code import without_billing_header
from ..messages_request import KNOWN_FIELDS, TOOL_KEYS, max_tokens, number, required, text_of
from ..reasoning import foreign_dropped
from ..types import Change, JSONDict, MessagesRequest, Target, Translation, UpstreamRequest
from . import models
from .contents import Context, build_contents
from .schema import SchemaCleaner
from .signatures import DIALECT
from .state import GeminiState

_MAX_STOP_SEQUENCES = 5  # GenerationConfig.stopSequences: "up to 5"
# Anthropic server tools -> Gemini's own grounding tools (Gemini runs them, as Anthropic would have).
_GROUNDING = {"web_search": "googleSearch", "web_fetch": "urlContext"}


def build_request(
    request: MessagesRequest, target: Target, *, message_id: str, client_headers: dict[str, str]
) -> Translation:
    """The Gemini request for `request` on `target`, with every change it made."""
    model, messages = required(request)
    upstream_model = target.model or model
    ctx = Context(target=target, model=upstream_model)
    if "cache_control" in request:
        ctx.cache_controls += 1
    for key in request:
        if key not in KNOWN_FIELDS:
            ctx.drop(key)

    body: JSONDict = {}
    tools = _tools(request.get("tools"), ctx)  # first: tool names registered in a stable order
    body["contents"] = build_contents(messages, ctx)
    system = _system(request.get("system"), ctx)
    if system:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    if tools:
        body["tools"] = tools
    has_functions = any("functionDeclarations" in t for t in tools)
    if config := _tool_config(request.get("tool_choice"), has_functions=has_functions, ctx=ctx):
        body["toolConfig"] = config
    generation: JSONDict = {}
    overrides = dict(target.overrides)
    generation["maxOutputTokens"] = max_tokens(
        request.get("max_tokens"), target=target, overrides=overrides, changes=ctx.changes
    )
    local_stops = _stop(request.get("stop_sequences"), generation)
    if local_stops:
        ctx.changes.append(Change("stop_sequences_local", f"{len(local_stops)} matched locally (limit 5)"))
    _sampling(request, overrides=overrides, generation=generation)
    wants_thinking = _thinking(request, overrides=overrides, generation=generation, ctx=ctx)
    _output_format(request.get("output_config"), generation, ctx)
    body["generationConfig"] = generation
    if isinstance(request.get("metadata"), dict):
        for key in request["metadata"]:
            if key != "user_id":
                ctx.drop(f"metadata.{key}")
    _note_summary(ctx)

    stream = bool(request.get("stream"))
    headers = {"content-type": "application/json"}
    if target.api_key:
        headers["x-goog-api-key"] = target.api_key
    headers.update(dict(target.extra_headers))
    return Translation(
        upstream=UpstreamRequest(
            method="POST",
            url=endpoint(target.base_url, upstream_model, stream=stream),
            headers=headers,
            body=body,
            stream=stream,
        ),
        client_model=model,
        message_id=message_id,
        changes=ctx.changes,
        tool_names=ctx.names.renamed(),
        stop_sequences=tuple(request.get("stop_sequences") or ()),
        state=GeminiState(
            provider=target.provider,
            reasoning=wants_thinking,
            local_stop_sequences=tuple(local_stops),
            request=request if local_stops else None,
        ),
    )


def endpoint(base_url: str, model: str, *, stream: bool) -> str:
    """`{base}/v1beta/models/{model}:generateContent` (or the SSE stream); a base with a version is kept."""
    base = base_url.rstrip("/")
    if not base.rsplit("/", 1)[-1].startswith("v1"):
        base += "/v1beta"
    model = model.removeprefix("models/")
    return (
        f"{base}/models/{model}:streamGenerateContent?alt=sse"
        if stream
        else f"{base}/models/{model}:generateContent"
    )


def _note_summary(ctx: Context) -> None:
    for short, original in ctx.names.renamed().items():
        ctx.changes.append(Change("tool_renamed", f"{original} -> {short}"))
    ctx.changes += foreign_dropped(ctx.foreign_reasoning)
    if ctx.placeholders:
        ctx.changes.append(
            Change(
                "reasoning_placeholder",
                f"{ctx.placeholders} function-call turn(s) without a Gemini signature",
            )
        )
    if ctx.cache_controls:
        ctx.changes.append(Change("cache_control_stripped", str(ctx.cache_controls)))


def _system(system: Any, ctx: Context) -> str:
    if system is None:
        return ""
    system, dropped = without_billing_header(system)  # it would defeat Gemini's implicit prefix cache
    for header in dropped:
        ctx.changes.append(Change("billing_header_dropped", header[:200]))
    return text_of(system, path="system", notes=ctx)


# --- tools -------------------------------------------------------------------------------------------


def _tools(tools: Any, ctx: Context) -> list[JSONDict]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise TranslationError("tools: must be a list")
    declarations: list[JSONDict] = []
    grounding: list[JSONDict] = []
    json_schema = models.takes_json_schema(ctx.target, ctx.model)
    for i, tool in enumerate(tools):
        path = f"tools.{i}"
        if not isinstance(tool, dict):
            raise TranslationError(f"{path}: must be an object")
        ctx.see(tool)
        kind = tool.get("type")
        if "input_schema" not in tool and kind not in (None, "custom"):
            grounding.append(_grounding(tool, path=path, ctx=ctx))
            continue
        declarations.append(_declaration(tool, path=path, json_schema=json_schema, ctx=ctx))
    if grounding and declarations and models.generation(ctx.model) < (3, 0):
        # Gemini before 3 cannot ground and call functions in one request.
        raise TranslationError(
            f"tools: {ctx.model} cannot combine Gemini's search/fetch grounding with function tools; "
            "send the server tool in a request of its own"
        )
    out: list[JSONDict] = [{"functionDeclarations": declarations}] if declarations else []
    return out + grounding


def _grounding(tool: JSONDict, *, path: str, ctx: Context) -> JSONDict:
    kind = str(tool.get("type"))
    family = next((name for prefix, name in _GROUNDING.items() if kind.startswith(prefix)), None)
    if family is None:
        raise TranslationError(
            f"{path}: server tool {kind} ({tool.get('name')}) has no Gemini counterpart: "
            "Gemini grounds with web search and URL fetching only"
        )
    for key in tool:
        if key not in ("type", "name", "cache_control"):
            ctx.drop(f"{path}.{key}")  # allowed_domains, max_uses…: Gemini's grounding takes no options
    ctx.changes.append(Change("server_tool_mapped", f"{path}: {kind} -> Gemini {family}"))
    return {family: {}}


def _declaration(tool: JSONDict, *, path: str, json_schema: bool, ctx: Context) -> JSONDict:
    name, schema = tool.get("name"), tool.get("input_schema")
    if not isinstance(name, str) or not name:
        raise TranslationError(f"{path}.name: required")
    if not isinstance(schema, dict):
        raise TranslationError(f"{path}.input_schema: must be an object")
    declaration: JSONDict = {"name": ctx.names.upstream(name)}
    if isinstance(tool.get("description"), str):
        declaration["description"] = tool["description"]
    cleaner = SchemaCleaner(name)
    if json_schema:
        declaration["parametersJsonSchema"] = cleaner.prepare_json_schema(schema)
    elif schema.get("properties"):
        declaration["parameters"] = cleaner.to_gemini_schema(schema)
    ctx.changes.extend(cleaner.changes)
    if tool.get("defer_loading"):
        ctx.changes.append(Change("defer_loading_ignored", name))
    for key in tool:
        if key not in TOOL_KEYS:
            ctx.drop(f"{path}.{key}")
    return declaration


def _tool_config(choice: Any, *, has_functions: bool, ctx: Context) -> JSONDict:
    if choice is None:
        return {}
    if not isinstance(choice, dict):
        raise TranslationError("tool_choice: must be an object")
    if not has_functions:
        ctx.drop("tool_choice: no function tools sent")
        return {}
    if choice.get("disable_parallel_tool_use") is True:
        ctx.drop("tool_choice.disable_parallel_tool_use: Gemini has no such setting")
    match choice.get("type"):
        case "auto":
            mode: JSONDict = {"mode": "AUTO"}
        case "any":
            mode = {"mode": "ANY"}
        case "none":
            mode = {"mode": "NONE"}
        case "tool":
            name = choice.get("name")
            if not isinstance(name, str) or not name:
                raise TranslationError("tool_choice.name: required")
            mode = {"mode": "ANY", "allowedFunctionNames": [ctx.names.upstream(name)]}
        case other:
            raise TranslationError(f"tool_choice.type: unknown {other!r}")
    return {"functionCallingConfig": mode}


# --- generation config -----------------------------------------------------------------------------


def _stop(value: Any, generation: JSONDict) -> list[str]:
    """Sends the first five as stopSequences; the rest are matched locally by the response side."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise TranslationError("stop_sequences: must be a list of strings")
    if value[:_MAX_STOP_SEQUENCES]:
        generation["stopSequences"] = value[:_MAX_STOP_SEQUENCES]
    return value[_MAX_STOP_SEQUENCES:]


def _sampling(request: MessagesRequest, *, overrides: JSONDict, generation: JSONDict) -> None:
    for key, wire in (("temperature", "temperature"), ("top_p", "topP")):
        value = overrides.get(key, number(request, key))
        if value is not None:
            generation[wire] = value
    top_k = request.get("top_k")
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int):
            raise TranslationError("top_k: must be an integer")
        generation["topK"] = top_k


_BUDGET_LEVELS = ((4096, "low"), (16384, "medium"))  # budget_tokens below each bound -> that level
_EFFORT_LEVELS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}


def _thinking(request: MessagesRequest, *, overrides: JSONDict, generation: JSONDict, ctx: Context) -> bool:
    """thinkingConfig from the client's budget or effort; True when the client asked for thinking."""
    thinking = request.get("thinking")
    if thinking is None:
        return False
    if not isinstance(thinking, dict):
        raise TranslationError("thinking: must be an object")
    output_config = request.get("output_config")
    effort = output_config.get("effort") if isinstance(output_config, dict) else None
    budget: int | None = None
    match thinking.get("type"):
        case "disabled":
            return False
        case "enabled":
            budget = thinking.get("budget_tokens")
            if isinstance(budget, bool) or not isinstance(budget, int):
                raise TranslationError("thinking.budget_tokens: must be an integer")
            level = next((name for bound, name in _BUDGET_LEVELS if budget < bound), "high")
            source = f"budget_tokens {budget}"
        case "adaptive":
            level = _EFFORT_LEVELS.get(effort if isinstance(effort, str) else "", "high")
            source = f"adaptive, effort {effort or 'default'}"
        case other:
            raise TranslationError(f"thinking.type: unknown {other!r}")
    override = overrides.get("reasoning_effort")
    if isinstance(override, str) and override in _EFFORT_LEVELS:
        level, budget, source = _EFFORT_LEVELS[override], None, f"{source}, route override"
    config: JSONDict = {"includeThoughts": True}
    if models.thinks_in_levels(ctx.target, ctx.model):
        allowed = models.thinking_levels(ctx.model)
        if level not in allowed:  # e.g. Pro models have no "medium": the next level up
            order = ("minimal", "low", "medium", "high")
            level = next((lv for lv in order[order.index(level) :] if lv in allowed), "high")
        config["thinkingLevel"] = level
        mapped = f"thinkingLevel {level}"
    elif budget is None:
        config["thinkingBudget"] = -1  # the model decides
        mapped = "thinkingBudget -1 (dynamic)"
    else:
        low, high = models.thinking_budget_range(ctx.model)
        config["thinkingBudget"] = min(max(budget, low), high)
        mapped = f"thinkingBudget {config['thinkingBudget']}"
        if config["thinkingBudget"] != budget:
            mapped += f" (the model takes {low}-{high})"
    generation["thinkingConfig"] = config
    ctx.changes.append(Change("thinking_mapped", f"{source} -> {mapped}"))
    return True


def _output_format(output_config: Any, generation: JSONDict, ctx: Context) -> None:
    if output_config is None:
        return
    if not isinstance(output_config, dict):
        raise TranslationError("output_config: must be an object")
    for key, value in output_config.items():
        if key == "effort":
            continue  # read by _thinking
        if key != "format" or not isinstance(value, dict) or value.get("type") != "json_schema":
            ctx.drop(f"output_config.{key}")
            continue
        schema = value.get("schema")
        if not isinstance(schema, dict):
            raise TranslationError("output_config.format.schema: must be an object")
        cleaner = SchemaCleaner("output_config.format")
        generation["responseMimeType"] = "application/json"
        if models.takes_json_schema(ctx.target, ctx.model):
            generation["responseJsonSchema"] = cleaner.prepare_json_schema(schema)
        else:
            generation["responseSchema"] = cleaner.to_gemini_schema(schema, root_object=False)
        ctx.changes.extend(cleaner.changes)
        ctx.changes.append(
            Change("response_format", "output_config.format json_schema -> responseMimeType JSON")
        )


__all__ = ["DIALECT", "build_request", "endpoint"]

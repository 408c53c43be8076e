"""Anthropic Messages request -> OpenAI Responses API request (`POST {base_url}/responses`).

Stateless by design: `store: false`, the whole conversation in `input` every turn, and a reasoning
model's encrypted reasoning asked for (`include: ["reasoning.encrypted_content"]`) and carried back
inside the thinking block's signature. The Responses API has no stop parameter: every stop sequence is
matched locally by the response side. Every change or drop is recorded as a `Change`.
Wire format: openai-python `types/responses/response_create_params.py`.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from .. import messages_request as read
from ..base import TranslationError
from ..claude_code import session_id
from ..openai_chat.params import strict_compatible  # both OpenAI APIs share strict mode's rules
from ..reasoning import foreign_dropped
from ..types import Change, JSONDict, MessagesRequest, Target, Translation, UpstreamRequest
from .items import Context, input_items, instructions
from .state import ResponsesState

MIN_OUTPUT_TOKENS = 16  # the API refuses less: "integer below minimum value. Expected a value >= 16"
_PROMPT_CACHE_KEY_LIMIT = 64
# Model ids that reason (and so take `reasoning` and refuse temperature/top_p): o-series, GPT-5, Codex.
_REASONING_MODEL = re.compile(r"^(?:[\w.-]+/)?(?:o\d|gpt-5|codex)", re.IGNORECASE)
# Anthropic's effort scale -> the Responses API's (`reasoning.effort`: none…xhigh; not every model has
# xhigh, so Anthropic's top two go as high; a route override may ask for more).
_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}


def reasons(target: Target) -> bool:
    """Whether the target model reasons: its `reasoning` option, else its id (o1/o3/o4, gpt-5, codex)."""
    if "no_reasoning" in target.options:
        return False
    return "reasoning" in target.options or bool(_REASONING_MODEL.match(target.model))


def build_request(
    request: MessagesRequest, target: Target, *, message_id: str, client_headers: dict[str, str]
) -> Translation:
    """The Responses API request for `request` on `target`, with every change it made."""
    model, messages = read.required(request)
    ctx = Context(target=target, replay_reasoning=reasons(target))
    if "cache_control" in request:  # top-level automatic caching
        ctx.cache_controls += 1
    for key in request:
        if key not in read.KNOWN_FIELDS:
            ctx.drop(key)
    overrides = dict(target.overrides)
    body: JSONDict = {"model": target.model or model}
    tools = _tools(request.get("tools"), ctx)  # first, so tool names are registered in a stable order
    if system := instructions(request.get("system"), ctx):
        body["instructions"] = system
    body["input"] = input_items(messages, ctx)
    body["max_output_tokens"] = _max_output_tokens(request.get("max_tokens"), overrides=overrides, ctx=ctx)
    body["store"] = False  # stateless: nothing kept at OpenAI, the next turn sends everything again
    stream = bool(request.get("stream"))
    if stream:
        body["stream"] = True
    if tools:
        body["tools"] = tools
    body.update(_tool_choice(request.get("tool_choice"), has_tools=bool(tools), ctx=ctx))
    thinking = _reasoning(request, overrides=overrides, body=body, ctx=ctx)
    body.update(_text_format(request.get("output_config"), ctx))
    stops = _stop_sequences(request.get("stop_sequences"), ctx)
    _sampling(request, overrides=overrides, body=body, ctx=ctx)
    _metadata(request.get("metadata"), ctx)
    if session := session_id(request, client_headers):
        # Claude Code's session: requests of one conversation land on the same cache.
        body["prompt_cache_key"] = session[:_PROMPT_CACHE_KEY_LIMIT]

    for short, original in ctx.names.renamed().items():
        ctx.changes.append(Change("tool_renamed", f"{original} -> {short}"))
    if ctx.reasoning_dropped:
        ctx.changes.append(
            Change(
                "reasoning_dropped", f"{ctx.reasoning_dropped} thinking block(s) this model cannot take back"
            )
        )
    ctx.changes += foreign_dropped(ctx.foreign_reasoning)
    if ctx.cache_controls:
        ctx.changes.append(Change("cache_control_stripped", str(ctx.cache_controls)))

    headers = {"content-type": "application/json"}
    if target.api_key:
        headers["authorization"] = f"Bearer {target.api_key}"
    headers.update(dict(target.extra_headers))
    upstream = UpstreamRequest(
        method="POST",
        url=f"{target.base_url.rstrip('/')}/responses",
        headers=headers,
        body=body,
        stream=stream,
    )
    return Translation(
        upstream=upstream,
        client_model=model,
        message_id=message_id,
        changes=ctx.changes,
        tool_names=ctx.names.renamed(),
        stop_sequences=stops,
        state=ResponsesState(
            reasoning=thinking,
            provider=target.provider,
            local_stop_sequences=stops,
            request=request if stops else None,
        ),
    )


def _max_output_tokens(value: Any, *, overrides: JSONDict, ctx: Context) -> int:
    asked = read.max_tokens(value, target=ctx.target, overrides=overrides, changes=ctx.changes)
    if asked < MIN_OUTPUT_TOKENS:  # Claude Code's one-token probes: the API's floor is 16
        ctx.changes.append(Change("max_tokens_raised", f"{asked} -> {MIN_OUTPUT_TOKENS} (the API's minimum)"))
        return MIN_OUTPUT_TOKENS
    return asked


def _tools(tools: Any, ctx: Context) -> list[JSONDict]:
    out: list[JSONDict] = []
    for found in read.client_tools(tools, ctx):
        function: JSONDict = {"type": "function", "name": ctx.names.upstream(found.name)}
        if isinstance(found.tool.get("description"), str):
            function["description"] = found.tool["description"]
        function["parameters"] = found.schema
        # Omitted, the API goes strict and makes every optional parameter required: only on request.
        function["strict"] = found.tool.get("strict") is True
        out.append(function)
        if found.tool.get("defer_loading"):
            ctx.changes.append(Change("defer_loading_ignored", found.name))
    return out


def _tool_choice(choice: Any, *, has_tools: bool, ctx: Context) -> JSONDict:
    if choice is None:
        return {}
    if not isinstance(choice, dict):
        raise TranslationError("tool_choice: must be an object")
    if not has_tools:
        ctx.drop("tool_choice: no tools sent")
        return {}
    out: JSONDict = {}
    match choice.get("type"):
        case "auto":
            out["tool_choice"] = "auto"
        case "any":
            out["tool_choice"] = "required"
        case "tool":
            name = choice.get("name")
            if not isinstance(name, str) or not name:
                raise TranslationError("tool_choice.name: required")
            out["tool_choice"] = {"type": "function", "name": ctx.names.upstream(name)}
        case "none":
            return {"tool_choice": "none"}
        case other:
            raise TranslationError(f"tool_choice.type: unknown {other!r}")
    if choice.get("disable_parallel_tool_use") is True:
        out["parallel_tool_calls"] = False
    return out


def _effort(thinking: JSONDict, output_config: Any) -> tuple[str, str]:
    """(effort, what it came from) for a thinking request that is not disabled."""
    match thinking.get("type"):
        case "enabled":
            budget = thinking.get("budget_tokens")
            if isinstance(budget, bool) or not isinstance(budget, int):
                raise TranslationError("thinking.budget_tokens: must be an integer")
            effort = "low" if budget < 4096 else "medium" if budget < 16384 else "high"
            return effort, f"budget_tokens {budget}"
        case "adaptive":
            asked = output_config.get("effort") if isinstance(output_config, dict) else None
            effort = _EFFORTS.get(asked if isinstance(asked, str) else "", "medium")
            return effort, f"adaptive, effort {asked or 'default'}"
        case other:
            raise TranslationError(f"thinking.type: unknown {other!r}")


def _reasoning(request: MessagesRequest, *, overrides: JSONDict, body: JSONDict, ctx: Context) -> bool:
    """`reasoning` and the encrypted-content include when the client asked for thinking and the model
    reasons; True when its reasoning comes back as thinking blocks."""
    thinking = request.get("thinking")
    if thinking is None:
        return False
    if not isinstance(thinking, dict):
        raise TranslationError("thinking: must be an object")
    if thinking.get("type") == "disabled":
        return False
    effort, source = _effort(thinking, request.get("output_config"))
    if not reasons(ctx.target):
        ctx.changes.append(Change("thinking_dropped", f"{source}: model has no reasoning option"))
        return False
    override = overrides.get("reasoning_effort")
    if isinstance(override, str) and override:
        effort, source = override, f"{source}, route override"
    body["reasoning"] = {"effort": effort, "summary": "auto"}
    body["include"] = ["reasoning.encrypted_content"]  # with store false, the only way to replay it
    ctx.changes.append(Change("thinking_mapped", f"{source} -> reasoning.effort {effort}"))
    return True


def _text_format(output_config: Any, ctx: Context) -> JSONDict:
    if output_config is None:
        return {}
    if not isinstance(output_config, dict):
        raise TranslationError("output_config: must be an object")
    out: JSONDict = {}
    for key, value in output_config.items():
        if key == "effort":
            continue  # read by _reasoning
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
        out["text"] = {
            "format": {"type": "json_schema", "name": "output", "schema": schema, "strict": strict}
        }
        ctx.changes.append(
            Change("response_format", f"output_config.format -> text.format (strict: {strict})")
        )
    return out


def _stop_sequences(value: Any, ctx: Context) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise TranslationError("stop_sequences: must be a list of strings")
    stops = tuple(s for s in value if s)
    if stops:
        ctx.changes.append(
            Change("stop_sequences_local", f"{len(stops)} matched locally (no stop parameter)")
        )
    return stops


def _sampling(request: MessagesRequest, *, overrides: JSONDict, body: JSONDict, ctx: Context) -> None:
    # Reasoning models refuse temperature and top_p ("Unsupported parameter"); the Responses API has no top_k.
    refuse = reasons(ctx.target) or "no_temperature" in ctx.target.options
    for key, value in (
        ("temperature", overrides.get("temperature", read.number(request, "temperature"))),
        ("top_p", read.number(request, "top_p")),
    ):
        if value is None:
            continue
        if refuse:
            ctx.changes.append(Change("param_dropped", key))
        else:
            body[key] = value
    if request.get("top_k") is not None:
        ctx.changes.append(Change("param_dropped", "top_k"))


def _metadata(metadata: Any, ctx: Context) -> None:
    """metadata.user_id is read for the session (prompt_cache_key); the rest has no counterpart."""
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise TranslationError("metadata: must be an object")
    for key in metadata:
        if key != "user_id":
            ctx.drop(f"metadata.{key}")


# What POST /responses/input_tokens takes (openai-python types/responses/input_token_count_params.py).
_COUNT_FIELDS = (
    "model",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning",
    "text",
)


def counts_exactly(target: Target) -> bool:
    """OpenAI's own API counts a request's input tokens; other Responses servers are not known to."""
    if "no_count_tokens" in target.options:
        return False
    return "count_tokens" in target.options or urlsplit(target.base_url).hostname == "api.openai.com"


def build_count_request(
    request: MessagesRequest, target: Target, *, client_headers: dict[str, str]
) -> UpstreamRequest | None:
    """The exact count of a count_tokens body (the request it would be, translated), or None to count
    locally: a server without the endpoint, or a body this dialect could not send anyway."""
    if not counts_exactly(target):
        return None
    try:
        # count_tokens bodies have no max_tokens: any valid one, it is not sent
        counted: MessagesRequest = {**request, "max_tokens": MIN_OUTPUT_TOKENS}
        full = build_request(counted, target, message_id="", client_headers=client_headers)
    except TranslationError:
        return None
    body = {k: full.upstream.body[k] for k in _COUNT_FIELDS if k in full.upstream.body}
    return UpstreamRequest(
        method="POST",
        url=f"{target.base_url.rstrip('/')}/responses/input_tokens",
        headers=full.upstream.headers,
        body=body,
        stream=False,
    )

"""Anthropic Messages request -> OpenAI Chat Completions request.

One dialect for OpenAI, DeepSeek, OpenRouter, Ollama, vLLM and other compatible servers.

The messages are translated in messages.py, tools in tools.py, the other parameters in params.py.
Pure. Every change or drop is recorded as a `Change` so the exchange view can say what was lossy.
Wire format: https://platform.openai.com/docs/api-reference/chat/create
"""

from __future__ import annotations

from .. import messages_request as read
from ..reasoning import foreign_dropped
from ..types import Change, JSONDict, MessagesRequest, Target, Translation, UpstreamRequest
from .context import Context
from .messages import chat_messages, system_messages
from .params import reasoning_effort, response_format, sampling, stop_param, user
from .state import ChatState
from .tools import tool_choice, tool_definitions


def build_request(
    request: MessagesRequest, target: Target, *, message_id: str, client_headers: dict[str, str]
) -> Translation:
    """The Chat Completions request for `request` on `target`, with every change it made."""
    # client_headers are not needed: this dialect authenticates with the target's own key.
    model, messages = read.required(request)
    ctx = Context.of(target)
    if "cache_control" in request:  # top-level automatic caching
        ctx.cache_controls += 1
    for key in request:
        if key not in read.KNOWN_FIELDS:
            ctx.drop(key)

    overrides = dict(target.overrides)
    body: JSONDict = {"model": target.model or model}
    tools = tool_definitions(request.get("tools"), ctx)  # first: tool names registered in a stable order
    body["messages"] = system_messages(request.get("system"), ctx) + chat_messages(messages, ctx)
    key = "max_completion_tokens" if ctx.quirks.max_completion_tokens else "max_tokens"
    body[key] = read.max_tokens(
        request.get("max_tokens"), target=target, overrides=overrides, changes=ctx.changes
    )
    stream = bool(request.get("stream"))
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}  # usage arrives only when asked for
    if tools:
        body["tools"] = tools
    body.update(tool_choice(request.get("tool_choice"), has_tools=bool(tools), ctx=ctx))
    reasoning = reasoning_effort(request, overrides=overrides, body=body, ctx=ctx)
    body.update(response_format(request.get("output_config"), ctx))
    stop_sequences, local_stops = stop_param(request.get("stop_sequences"), body=body, ctx=ctx)
    sampling(request, overrides=overrides, body=body, ctx=ctx)
    body.update(user(request.get("metadata"), ctx))

    for short, original in ctx.names.renamed().items():
        ctx.changes.append(Change("tool_renamed", f"{original} -> {short}"))
    if ctx.reasoning_dropped:
        ctx.changes.append(Change("reasoning_dropped", f"{ctx.reasoning_dropped} thinking block(s)"))
    ctx.changes += foreign_dropped(ctx.foreign_reasoning)
    if ctx.cache_controls:
        ctx.changes.append(Change("cache_control_stripped", str(ctx.cache_controls)))

    headers = {"content-type": "application/json"}
    if target.api_key:  # local servers (Ollama, vLLM) need no key
        headers["authorization"] = f"Bearer {target.api_key}"
    headers.update(dict(target.extra_headers))
    upstream = UpstreamRequest(
        method="POST",
        url=f"{target.base_url.rstrip('/')}/chat/completions",
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
        stop_sequences=stop_sequences,
        provider=target.provider,
        state=ChatState(
            reasoning=reasoning,
            local_stop_sequences=local_stops,
            request=request if local_stops else None,  # kept only when a local stop may cut the stream
        ),
    )

"""Anthropic Messages request -> OpenAI Chat Completions request.

One dialect for OpenAI, DeepSeek, OpenRouter, Ollama, vLLM and other compatible servers.

Pure. Every change or drop is recorded as a `Change` so the exchange view can say what was lossy.
Wire format: https://platform.openai.com/docs/api-reference/chat/create
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import orjson

from .. import messages_request as read
from ..base import TranslationError
from ..claude_code import without_billing_header
from ..ids import tool_id_to_upstream
from ..tool_names import ToolNameMap
from ..types import Change, JSONDict, MessagesRequest, Target, Translation, UpstreamRequest
from .documents import document_parts, search_result_part
from .response import REASONING_FIELDS, SIGNATURE_PREFIX

_DEFAULT_MAX_STOP_SEQUENCES = 4  # OpenAI's documented limit for `stop`
_USER_ID_LIMIT = 64  # OpenAI rejects a longer `user`


@dataclass(slots=True)
class _Context:
    """What one translation accumulates while it walks the request."""

    target: Target
    names: ToolNameMap = field(default_factory=ToolNameMap)
    changes: list[Change] = field(default_factory=list)
    cache_controls: int = 0
    reasoning_dropped: int = 0

    @property
    def replay_reasoning(self) -> bool:
        return "replay_reasoning" in self.target.options

    def see(self, block: JSONDict) -> None:
        """Note a block's cache_control: it is never copied, only counted."""
        if "cache_control" in block:
            self.cache_controls += 1

    def drop(self, detail: str) -> None:
        self.changes.append(Change("field_dropped", detail))

    def drop_content(self, detail: str) -> None:
        """A block Anthropic knows that has no counterpart here: a real loss of what the model sees."""
        self.changes.append(Change("content_dropped", detail))


def build_request(
    request: MessagesRequest, target: Target, *, message_id: str, client_headers: dict[str, str]
) -> Translation:
    """The Chat Completions request for `request` on `target`, with every change it made."""
    # client_headers are not needed: this dialect authenticates with the target's own key.
    model, messages = read.required(request)
    ctx = _Context(target=target)
    if "cache_control" in request:  # top-level automatic caching
        ctx.cache_controls += 1
    for key in request:
        if key not in read.KNOWN_FIELDS:
            ctx.drop(key)

    overrides = dict(target.overrides)
    body: JSONDict = {"model": target.model or model}
    tools = _tools(request.get("tools"), ctx)  # first, so tool names are registered in a stable order
    body["messages"] = _system(request.get("system"), ctx) + _messages(messages, ctx)
    key = "max_completion_tokens" if "max_completion_tokens" in target.options else "max_tokens"
    body[key] = _max_tokens(request.get("max_tokens"), target=target, overrides=overrides, ctx=ctx)
    stream = bool(request.get("stream"))
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}  # usage arrives only when asked for
    if tools:
        body["tools"] = tools
    body.update(_tool_choice(request.get("tool_choice"), has_tools=bool(tools), ctx=ctx))
    reasoning = _reasoning(request, overrides=overrides, body=body, ctx=ctx)
    body.update(_response_format(request.get("output_config"), ctx))
    stop_sequences, local_stops = _stop(request.get("stop_sequences"), body=body, ctx=ctx)
    _sampling(request, overrides=overrides, body=body, ctx=ctx)
    body.update(_user(request.get("metadata"), ctx))

    for short, original in ctx.names.renamed().items():
        ctx.changes.append(Change("tool_renamed", f"{original} -> {short}"))
    if ctx.reasoning_dropped:
        ctx.changes.append(Change("reasoning_dropped", f"{ctx.reasoning_dropped} thinking block(s)"))
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
        state={
            "reasoning": reasoning,
            "local_stop_sequences": local_stops,
            # A stream cut at a local stop ends before the backend's usage chunk: the request is kept
            # (a reference) to estimate the usage then, and only then.
            **({"request": request} if local_stops else {}),
        },
    )


# --- max_tokens ----------------------------------------------------------------------------------


def _max_tokens(value: Any, *, target: Target, overrides: JSONDict, ctx: _Context) -> int:
    if value is None:
        raise TranslationError("max_tokens: required")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TranslationError("max_tokens: must be a positive integer")
    # Only a known limit lowers it: the client derives its own budget from the model it thinks it talks to.
    limits: list[tuple[int, str]] = []
    if target.max_output_tokens is not None:
        limits.append((target.max_output_tokens, "model output limit"))
    ceiling = overrides.get("max_tokens")
    if isinstance(ceiling, int) and not isinstance(ceiling, bool) and ceiling > 0:
        limits.append((ceiling, "route override"))
    if limits:
        limit, reason = min(limits)
        if limit < value:
            ctx.changes.append(Change("max_tokens_lowered", f"{value} -> {limit} ({reason})"))
            return limit
    return value


# --- system and messages -------------------------------------------------------------------------


def _system(system: Any, ctx: _Context) -> list[JSONDict]:
    if system is None:
        return []
    system, dropped = without_billing_header(system)  # it would defeat the backend's prefix cache
    for header in dropped:
        ctx.changes.append(Change("billing_header_dropped", header[:200]))
    text = read.text_of(system, path="system", notes=ctx)
    return [{"role": "system", "content": text}] if text else []


@dataclass(slots=True)
class _Pending:
    """tool_use ids of the last assistant turn still waiting for their tool_result."""

    ids: dict[str, str] = field(default_factory=dict)  # client id -> path of its tool_use block
    deferred: list[JSONDict] = field(default_factory=list)  # system messages that arrived in between


def _messages(messages: list[Any], ctx: _Context) -> list[JSONDict]:
    out: list[JSONDict] = []
    pending = _Pending()
    for i, message in enumerate(messages):
        path = f"messages.{i}"
        if not isinstance(message, dict):
            raise TranslationError(f"{path}: must be an object")
        role = message.get("role")
        if role == "system":  # mid-conversation system message (Claude Code beta): keep it in place
            text = read.text_of(message.get("content"), path=f"{path}.content", notes=ctx)
            if text:
                # Chat Completions wants tool messages right after their assistant turn: hold it until then.
                (pending.deferred if pending.ids else out).append({"role": "system", "content": text})
            continue
        blocks = read.blocks(message.get("content"), path)
        if role == "user":
            out.extend(_user_message(blocks, path=path, pending=pending, ctx=ctx))
        elif role == "assistant":
            _unanswered(pending)
            out.extend(_assistant_message(blocks, path=path, pending=pending, ctx=ctx))
        else:
            raise TranslationError(f"{path}.role: must be 'user', 'assistant' or 'system'")
    _unanswered(pending)
    return out


def _unanswered(pending: _Pending) -> None:
    if pending.ids:
        client_id, path = next(iter(pending.ids.items()))
        raise TranslationError(f"{path}: tool_use {client_id} has no tool_result in the next user message")


def _image_part(block: JSONDict, *, path: str, ctx: _Context) -> JSONDict | None:
    url, kind = read.image_url(block, path=path)
    if url is None:  # e.g. Files API ids: nothing a Chat Completions server can fetch
        ctx.drop_content(f"{path}: image with a {kind} source")
        return None
    return {"type": "image_url", "image_url": {"url": url}}


def _user_message(blocks: list[JSONDict], *, path: str, pending: _Pending, ctx: _Context) -> list[JSONDict]:
    """Tool results first (one `tool` message each), then one user message with the rest."""
    tool_messages: list[JSONDict] = []
    moved: list[JSONDict] = []  # images and files from tool results: tool messages cannot carry them
    parts: list[JSONDict] = []
    for j, block in enumerate(blocks):
        bpath = f"{path}.content.{j}"
        ctx.see(block)
        match block["type"]:
            case "tool_result":
                client_id = block.get("tool_use_id")
                if not isinstance(client_id, str) or pending.ids.pop(client_id, None) is None:
                    raise TranslationError(f"{bpath}: unknown tool_use_id")
                text, attached = _tool_result_content(block, path=bpath, ctx=ctx)
                upstream_id = tool_id_to_upstream(client_id)
                tool_messages.append({"role": "tool", "tool_call_id": upstream_id, "content": text})
                if attached:
                    moved.extend(
                        _moved_from_tool_result(attached, upstream_id=upstream_id, path=bpath, ctx=ctx)
                    )
            case "text":
                if text := read.text(block, bpath):
                    parts.append({"type": "text", "text": text})
            case "image":
                if image := _image_part(block, path=bpath, ctx=ctx):
                    parts.append(image)
            case "document":
                parts.extend(_document(block, path=bpath, ctx=ctx))
            case "search_result":
                parts.append(search_result_part(block))
                ctx.changes.append(Change("document_converted", f"{bpath}: search result -> text"))
            case other:
                ctx.drop_content(f"{bpath}: {other} block")
    _unanswered(pending)
    out = tool_messages + pending.deferred
    pending.deferred = []
    if moved or parts:
        out.append({"role": "user", "content": _user_content(moved + parts)})
    return out


def _document(block: JSONDict, *, path: str, ctx: _Context) -> list[JSONDict]:
    parts, change = document_parts(block, path=path, target=ctx.target)
    if change is not None:
        ctx.changes.append(change)
    return parts


def _moved_from_tool_result(
    attached: list[JSONDict], *, upstream_id: str, path: str, ctx: _Context
) -> list[JSONDict]:
    """Images and files of a tool result, for the user message after it, named by the id the model
    itself gave the call."""
    images = sum(1 for p in attached if p["type"] == "image_url")
    files = len(attached) - images
    if images:
        ctx.changes.append(Change("tool_result_image_moved", f"{path}: {images} image(s) -> user message"))
    if files:
        ctx.changes.append(Change("tool_result_file_moved", f"{path}: {files} file(s) -> user message"))
    what = "Image" if not files else "Document" if not images else "Attachments"
    return [{"type": "text", "text": f"{what} from tool result {upstream_id}:"}, *attached]


def _user_content(parts: list[JSONDict]) -> str | list[JSONDict]:
    # Text-only content goes as a plain string: some servers (DeepSeek, older vLLM templates) reject lists.
    if all(part["type"] == "text" for part in parts):
        return "\n\n".join(part["text"] for part in parts)
    return parts


def _tool_result_content(block: JSONDict, *, path: str, ctx: _Context) -> tuple[str, list[JSONDict]]:
    """A tool_result's content as text for the `tool` message, plus the images and files it held."""
    content = block.get("content")
    texts: list[str] = []
    images: list[JSONDict] = []  # and files: what a tool message cannot carry
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for k, item in enumerate(content):
            ipath = f"{path}.content.{k}"
            if not isinstance(item, dict):
                raise TranslationError(f"{ipath}: must be an object")
            ctx.see(item)
            match item.get("type"):
                case "text":
                    texts.append(read.text(item, ipath))
                case "image":
                    if image := _image_part(item, path=ipath, ctx=ctx):
                        images.append(image)
                case "tool_reference":  # tool search (CLI 2.1.332): the tool's definition was loaded
                    name = item.get("tool_name")
                    if not isinstance(name, str) or not name:
                        raise TranslationError(f"{ipath}.tool_name: required")
                    texts.append(f"Tool loaded: {name}")
                    ctx.changes.append(Change("tool_reference_converted", f"{ipath}: {name}"))
                case "document":  # e.g. Claude Code's Read on a PDF
                    for part in _document(item, path=ipath, ctx=ctx):
                        (texts.append(part["text"]) if part["type"] == "text" else images.append(part))
                case "search_result":
                    texts.append(search_result_part(item)["text"])
                    ctx.changes.append(Change("document_converted", f"{ipath}: search result -> text"))
                case other:
                    ctx.drop_content(f"{ipath}: {other} block")
    elif content is not None:
        raise TranslationError(f"{path}.content: must be a string or a list of blocks")
    text = "\n".join(texts)
    if block.get("is_error") is True:
        # Chat Completions has no error flag on tool messages: say it in the text so the model sees it.
        text = f"Error: {text}"
    return text, images


def _assistant_message(
    blocks: list[JSONDict], *, path: str, pending: _Pending, ctx: _Context
) -> list[JSONDict]:
    texts: list[str] = []
    tool_calls: list[JSONDict] = []
    thinking: list[str] = []
    reasoning_field = "reasoning_content"  # DeepSeek's name; vLLM and others accept it too
    for j, block in enumerate(blocks):
        bpath = f"{path}.content.{j}"
        ctx.see(block)
        match block["type"]:
            case "text":
                if text := read.text(block, bpath):
                    texts.append(text)
            case "tool_use":
                tool_calls.append(_tool_call(block, path=bpath, ctx=ctx))
                pending.ids[block["id"]] = bpath
            case "thinking" if ctx.replay_reasoning and isinstance(block.get("thinking"), str):
                thinking.append(block["thinking"])
                reasoning_field = _reasoning_field(block.get("signature"), reasoning_field)
            case "thinking" | "redacted_thinking":  # redacted: encrypted for Anthropic only
                ctx.reasoning_dropped += 1
            case other:  # server tool calls and their results: Anthropic ran them, no backend here can
                ctx.drop_content(f"{bpath}: {other} block")
    if not texts and not tool_calls:
        return []  # nothing a Chat Completions server could use (e.g. only thinking)
    message: JSONDict = {"role": "assistant", "content": "\n\n".join(texts) if texts else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if ctx.replay_reasoning and (thinking or tool_calls):
        # DeepSeek returns 400 when a tool-call turn lacks reasoning_content, even an empty one.
        message[reasoning_field] = "\n\n".join(thinking)
    return [message]


def _reasoning_field(signature: object, default: str) -> str:
    """The field a thinking block we made came from (its signature names it), so it goes back there."""
    if isinstance(signature, str) and signature.startswith(SIGNATURE_PREFIX):
        named = signature[len(SIGNATURE_PREFIX) :]
        if named in REASONING_FIELDS:
            return named
    return default


def _tool_call(block: JSONDict, *, path: str, ctx: _Context) -> JSONDict:
    client_id, name, arguments = block.get("id"), block.get("name"), block.get("input")
    if not isinstance(client_id, str) or not client_id:
        raise TranslationError(f"{path}.id: required")
    if not isinstance(name, str) or not name:
        raise TranslationError(f"{path}.name: required")
    if not isinstance(arguments, dict):
        raise TranslationError(f"{path}.input: must be an object")
    return {
        "id": tool_id_to_upstream(client_id),
        "type": "function",
        "function": {"name": ctx.names.upstream(name), "arguments": _json(arguments)},
    }


def _json(value: JSONDict) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:  # e.g. integers beyond 64 bits, which the stdlib handles
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# --- tools ---------------------------------------------------------------------------------------


def _tools(tools: Any, ctx: _Context) -> list[JSONDict]:
    out: list[JSONDict] = []
    for found in read.client_tools(tools, ctx):
        function: JSONDict = {"name": ctx.names.upstream(found.name)}
        if isinstance(found.tool.get("description"), str):
            function["description"] = found.tool["description"]
        function["parameters"] = found.schema  # unchanged: $schema and additionalProperties included
        if isinstance(found.tool.get("strict"), bool):  # structured outputs: the backend holds to the schema
            function["strict"] = found.tool["strict"]
        out.append({"type": "function", "function": function})
        if found.tool.get("defer_loading"):
            # Tool search has no Chat Completions equivalent: the tool is simply sent up front.
            ctx.changes.append(Change("defer_loading_ignored", found.name))
    return out


def _tool_choice(choice: Any, *, has_tools: bool, ctx: _Context) -> JSONDict:
    if choice is None:
        return {}
    if not isinstance(choice, dict):
        raise TranslationError("tool_choice: must be an object")
    if not has_tools:  # servers reject tool_choice without tools
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
            out["tool_choice"] = {"type": "function", "function": {"name": ctx.names.upstream(name)}}
        case "none":
            return {"tool_choice": "none"}
        case other:
            raise TranslationError(f"tool_choice.type: unknown {other!r}")
    if choice.get("disable_parallel_tool_use") is True:
        out["parallel_tool_calls"] = False
    return out


# --- thinking, output format, sampling -----------------------------------------------------------


def _budget_effort(budget: int) -> str:
    # Buckets for budget_tokens -> reasoning_effort: < 4096 "low", < 16384 "medium", else "high".
    if budget < 4096:
        return "low"
    if budget < 16384:
        return "medium"
    return "high"


def _reasoning(request: MessagesRequest, *, overrides: JSONDict, body: JSONDict, ctx: _Context) -> bool:
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
    if "reasoning" not in ctx.target.options:
        ctx.changes.append(Change("thinking_dropped", f"{source}: model has no reasoning option"))
        return True
    override = overrides.get("reasoning_effort")
    if isinstance(override, str) and override:
        effort, source = override, f"{source}, route override"
    body["reasoning_effort"] = effort
    ctx.changes.append(Change("thinking_mapped", f"{source} -> reasoning_effort {effort}"))
    return True


def _response_format(output_config: Any, ctx: _Context) -> JSONDict:
    if output_config is None:
        return {}
    if not isinstance(output_config, dict):
        raise TranslationError("output_config: must be an object")
    out: JSONDict = {}
    for key, value in output_config.items():
        if key == "effort":
            continue  # read by _reasoning; without thinking it has no counterpart, dropped quietly
        if key != "format":
            ctx.drop(f"output_config.{key}")
            continue
        if not isinstance(value, dict) or value.get("type") != "json_schema":
            ctx.drop(f"output_config.format: type {value.get('type') if isinstance(value, dict) else value}")
            continue
        schema = value.get("schema")
        if not isinstance(schema, dict):
            raise TranslationError("output_config.format.schema: must be an object")
        strict = _strict_compatible(schema)
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": schema, "strict": strict},
        }
        ctx.changes.append(Change("response_format", f"output_config.format json_schema (strict: {strict})"))
    return out


def _strict_compatible(schema: Any) -> bool:
    """OpenAI strict mode needs every object closed (additionalProperties false), all properties required."""
    if isinstance(schema, list):
        return all(_strict_compatible(item) for item in schema)
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
        if not all(_strict_compatible(sub) for sub in properties.values()):
            return False
    for key in ("items", "prefixItems", "anyOf", "oneOf", "allOf", "not"):
        if key in schema and not _strict_compatible(schema[key]):
            return False
    for key in ("$defs", "definitions"):
        defs = schema.get(key)
        if isinstance(defs, dict) and not all(_strict_compatible(sub) for sub in defs.values()):
            return False
    return True


def _stop(value: Any, *, body: JSONDict, ctx: _Context) -> tuple[tuple[str, ...], list[str]]:
    """Sends what the backend accepts as `stop`; the rest are matched locally by the response side."""
    if value is None:
        return (), []
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise TranslationError("stop_sequences: must be a list of strings")
    configured = ctx.target.option_value("max_stop_sequences")
    limit = int(configured) if configured and configured.isdigit() else _DEFAULT_MAX_STOP_SEQUENCES
    sent, local = value[:limit], value[limit:]
    if sent:
        body["stop"] = sent
    if local:
        ctx.changes.append(
            Change("stop_sequences_local", f"{len(local)} of {len(value)} matched locally (limit {limit})")
        )
    return tuple(value), local


def _sampling(request: MessagesRequest, *, overrides: JSONDict, body: JSONDict, ctx: _Context) -> None:
    options = ctx.target.options
    temperature = overrides.get("temperature", read.number(request, "temperature"))
    if temperature is not None:
        if "no_temperature" in options:  # e.g. OpenAI reasoning models reject it
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
        if "top_k" in options:  # vLLM and some others accept it as an extension
            body["top_k"] = top_k
        else:
            ctx.changes.append(Change("param_dropped", "top_k"))


def _user(metadata: Any, ctx: _Context) -> JSONDict:
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
    key = "prompt_cache_key" if "prompt_cache_key" in ctx.target.options else "user"
    return {key: value[:_USER_ID_LIMIT]}

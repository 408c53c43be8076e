"""A finished tape -> the Exchange row's fields. Runs in the recorder's thread, never on the event loop."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, cast

import orjson

from proxy import catalog
from proxy.recording.tape import Packed, Tape
from proxy.translate import tokens
from proxy.translate.claude_code import is_call_failure, tool_result_head
from proxy.translate.types import JSONDict, MessagesRequest

logger = logging.getLogger(__name__)


def start_fields(tape: Tape) -> dict[str, Any]:
    """What is known once the request is routed: enough for a pending row in the live feed."""
    return {
        "created_at": tape.received_at,
        "request_id": tape.request_id,
        "endpoint": tape.endpoint,
        "stream": tape.stream,
        "session_id": tape.session_id,
        "user_agent": tape.user_agent[:300],
        "client_model": tape.client_model[:200],
        "client_request": tape.client_request,
        "client_headers": tape.client_headers,
        "rule": tape.rule,
        "client_key": tape.client_key,
        "route_reason": tape.route_reason,
        "task": tape.task,
        "agent": tape.agent,
        "provider": tape.provider,
        "dialect": tape.dialect,
        "backend_model": tape.backend_model[:200],
        "origin": tape.origin,
    }


def row_fields(tape: Tape) -> dict[str, Any]:
    """The whole row of a finished exchange (a fallback may have changed provider and model since start)."""
    return {**start_fields(tape), **finished_fields(tape)}


# Written by the pending row and never changed while the request is answered.
REQUEST_FIELDS = frozenset({"client_request", "client_headers"})


def update_fields(tape: Tape) -> dict[str, Any]:
    """A pending row's rewrite once its exchange finished: everything but the request, written already.

    Under load nearly every exchange outlives the pending-row delay, and rewriting its ~50 KB request
    doubled what the writer had to copy, encode and store (measured: docs/benchmarks.md)."""
    return {name: value for name, value in row_fields(tape).items() if name not in REQUEST_FIELDS}


def finished_fields(tape: Tape) -> dict[str, Any]:
    message = tape.client_message
    usage = dict(tape.usage or (message or {}).get("usage") or {})
    changes = tape.changes
    if _needs_estimate(tape, usage):
        try:
            usage = {**usage, **_estimated_usage(tape)}
            changes = [*changes, {"kind": "usage_estimated", "detail": _ESTIMATED_DETAIL, "loss": False}]
        except Exception:  # an estimate must never cost the row
            logger.exception("record: could not estimate the usage of a cancelled exchange")
    input_tokens = int(usage.get("input_tokens") or 0)
    output_tokens = int(usage.get("output_tokens") or 0)
    cache_read = int(usage.get("cache_read_input_tokens") or 0)
    cache_write = int(usage.get("cache_creation_input_tokens") or 0)
    tool_uses = [b for b in (message or {}).get("content", []) if b.get("type") == "tool_use"]
    end = tape.done_at if tape.done_at is not None else tape.t0
    return {
        "finished_at": tape.received_at + timedelta(seconds=end - tape.t0),
        "status": tape.status,
        "http_status": tape.http_status,
        "error_type": tape.error_type,
        "error_message": tape.error_message[:5000],
        "upstream_request": tape.upstream_request,
        "upstream_response": tape.upstream_response
        if tape.upstream_response is not None
        else b"".join(tape.upstream_chunks).decode("utf-8", errors="replace"),
        "client_response": message,
        "changes": changes,
        "attempts": tape.attempts,
        "upstream_first_byte_ms": tape.ms(tape.first_byte_at),
        "first_token_ms": tape.ms(tape.first_token_at),
        "duration_ms": tape.ms(tape.done_at),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_tokens": cache_read,
        "cache_write_tokens": cache_write,
        "cost_usd": _cost(tape, usage),
        "claude_cost_usd": _claude_cost(tape, usage),
        "tool_calls": len(tool_uses),
        # Calls whose arguments are unusable; the recorder adds the ones the client later reports failed.
        "tool_call_errors": sum(1 for b in tool_uses if invalid_tool_input(b)),
    }


def failed_tool_results(request: MessagesRequest) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The tool_use ids that a request's newest user turn reports failed (`is_error` results), split in
    two: calls the client refused to run (the model's failure: bad arguments, unknown tool) and tools
    that ran, or were stopped, and reported an error (a failing test run is the tool's result).

    Read by the handler from the body it parsed anyway (a few blocks, microseconds), so the writer
    never has to parse or decompress a request to find them. Not last_tool_results: that one also joins
    each result's text, up to ~170 KB for a Read, which the hot path has no use for."""
    messages = request.get("messages")
    last = messages[-1] if isinstance(messages, list) and messages else None
    if not isinstance(last, dict) or last.get("role") != "user" or not isinstance(last.get("content"), list):
        return (), ()
    calls: list[str] = []
    results: list[str] = []
    for b in last["content"]:
        if (
            isinstance(b, dict)
            and b.get("type") == "tool_result"
            and b.get("is_error") is True
            and isinstance(b.get("tool_use_id"), str)
        ):
            failed = is_call_failure(tool_result_head(b.get("content")))
            (calls if failed else results).append(b["tool_use_id"])
    return tuple(calls), tuple(results)


def last_tool_results(request: JSONDict) -> dict[str, tuple[bool, str]]:
    """tool_use_id -> (is_error, text) for the tool results a request brings (its last user turn; the
    turns before it were answered and recorded by earlier requests)."""
    messages = request.get("messages") or []
    if not messages or not isinstance(messages[-1], dict) or messages[-1].get("role") != "user":
        return {}
    content = messages[-1].get("content")
    if not isinstance(content, list):
        return {}
    out = {}
    for b in content:
        if isinstance(b, dict) and b.get("type") == "tool_result":
            text = b.get("content")
            if isinstance(text, list):
                text = " ".join(str(c.get("text", "")) for c in text if isinstance(c, dict))
            out[str(b.get("tool_use_id", ""))] = (bool(b.get("is_error")), str(text or ""))
    return out


_ESTIMATED_DETAIL = (
    "the client hung up before the backend reported usage: tokens estimated locally from what was sent "
    "and what the client had received"
)


def _needs_estimate(tape: Tape, usage: JSONDict) -> bool:
    """A stream the client left after the backend began answering: the backend bills the prompt and what
    it generated, but its usage comes only at the end, so the record would say zero tokens, zero cost."""
    no_tokens = not usage.get("input_tokens") and not usage.get("output_tokens")
    return tape.status == "cancelled" and tape.first_byte_at is not None and no_tokens


def _estimated_usage(tape: Tape) -> dict[str, int]:
    request = tape.client_request
    if isinstance(request, Packed):
        request = request.unpack()
    if isinstance(request, orjson.Fragment):  # its bytes are reachable only by serialising it
        request = orjson.loads(orjson.dumps(request))
    generated: list[str] = []
    for block in (tape.client_message or {}).get("content", []):
        match block.get("type"):
            case "text":
                generated.append(block.get("text", ""))
            case "thinking":
                generated.append(block.get("thinking", ""))
            case "tool_use":
                generated.append(orjson.dumps(block.get("input", {})).decode())
    # A request that reached its backend (cancelled after the first byte): validated, so a Messages request.
    served = cast(MessagesRequest, request) if isinstance(request, dict) else None
    input_tokens, output_tokens = tokens.usage_estimate(served, "".join(generated))
    return {"input_tokens": input_tokens, "output_tokens": output_tokens}


def _cost(tape: Tape, usage: JSONDict) -> float | None:
    if not usage or not tape.backend_model or tape.endpoint != "messages":
        return None
    try:
        return catalog.cost_usd(
            model=tape.backend_model,
            usage=usage,
            provider=tape.provider or None,
            overrides=tape.prices or None,
            at=tape.received_at,
        )
    except Exception:  # a pricing gap must never lose the record
        return None


def _claude_cost(tape: Tape, usage: JSONDict) -> float | None:
    if not usage or not tape.client_model or tape.endpoint != "messages":
        return None
    try:
        return catalog.claude_equivalent_cost(
            client_model=tape.client_model, usage=usage, at=tape.received_at
        )
    except Exception:
        return None


def invalid_tool_input(block: JSONDict) -> bool:
    value = block.get("input")
    if isinstance(value, dict):
        return False
    if isinstance(value, str):
        try:
            return not isinstance(orjson.loads(value), dict)
        except orjson.JSONDecodeError:
            return True
    return True

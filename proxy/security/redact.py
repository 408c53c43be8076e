"""Secrets out of everything we say or keep: error messages, recorded bodies, the server log.

Two kinds of secret are replaced by `[redacted]`:
- the configured ones, matched literally: every provider's key (from its environment variable or the
  database) and the client keys of SWITCHBOARD_API_KEYS, refreshed with the routing snapshot;
- key-shaped strings, matched by their vendors' prefixes: a client's own Anthropic key echoed by
  Anthropic, a dashboard-made client key (only its hash is kept, so it cannot be matched literally),
  `Bearer …` tokens and key-like query parameters.

Called on error paths (microseconds) and in the recorder's thread, never per streamed chunk. The
recorder redacts every field of a failed exchange (an upstream error body is where keys get echoed) and
the small fields of every exchange; the bodies of a successful one are left as they are: a full pass costs
~1.2 ms per 150 KB body (measured), for text the backend never had a key to echo into.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from proxy.recording.tape import is_secret_header

REDACTED = "[redacted]"
# A secret header's value as the routes editor and `routes export` show it; given back, the stored value
# is kept (a provider's extra_headers may carry its credentials: x-portkey-api-key, cf-aig-authorization).
STORED = "[stored]"
# Shorter configured "keys" ("ollama", "none") are placeholders local servers ignore: replacing them
# everywhere would mangle ordinary words in recorded prompts.
MIN_SECRET_LENGTH = 8

_TOKEN = r"[A-Za-z0-9_\-]"
# Each pattern starts with a literal, which `re` scans for at memchr speed (~0.1 ms per 100 KB body);
# an alternation or a leading lookbehind turns that into a try at every position (2-12 ms, measured on
# Claude Code's requests). So one pattern per prefix, and the context is checked on each match.
# (pattern, group replaced, what the text before the match must end with)
_SHAPES: tuple[tuple[str, int, str], ...] = (
    *((rf"{prefix}{_TOKEN}{{20,}}", 0, r"(?:^|[^A-Za-z0-9])$") for prefix in (
        "sk-",  # OpenAI, Anthropic (sk-ant-...), DeepSeek, OpenRouter, Switchboard's own client keys
        "gsk_", "hf_", "xai-", "pplx-", "ghp_", "gho_", "ghs_", "github_pat_",
    )),
    (rf"AIza{_TOKEN}{{35}}", 0, ""),  # Google
    (r"AKIA[0-9A-Z]{16}", 0, r"(?:^|[^A-Z0-9])$"),  # AWS access key ids
    (r"earer\s+([A-Za-z0-9._~+/\-]{12,}=*)", 1, r"[Bb]$"),  # Bearer tokens, the word kept
    # Query parameters that carry keys (Gemini's ?key=, ?api_key=, ?access_token=): the value goes.
    *((rf"{name}=([^&#\s\\\"'<>]+)", 1, r"[?&](?:[A-Za-z_\-]*[_\-])?$")
      for name in ("key", "token", "secret", "password")),
)  # fmt: skip


class _Shape:
    __slots__ = ("before", "before_raw", "group", "raw", "text")

    def __init__(self, pattern: str, group: int, before: str) -> None:
        self.group = group
        self.text, self.before = re.compile(pattern), re.compile(before) if before else None
        self.raw = re.compile(pattern.encode())
        self.before_raw = re.compile(before.encode()) if before else None

    def sub_text(self, value: str) -> str:
        return self.text.sub(lambda m: self._replace(m, self.before, REDACTED), value)

    def sub_raw(self, value: bytes) -> bytes:
        return self.raw.sub(lambda m: self._replace(m, self.before_raw, REDACTED.encode()), value)

    def _replace(self, match: re.Match[Any], before: re.Pattern[Any] | None, redacted: Any) -> Any:
        whole = match.group(0)
        start = match.start()
        if before is not None and not before.search(match.string[max(0, start - 24) : start]):
            return whole
        if self.group == 0:
            return redacted
        cut = match.start(self.group) - start
        return whole[:cut] + redacted


_SHAPED = tuple(_Shape(*shape) for shape in _SHAPES)
# For short text one alternation of the literals says at once whether any shape could match: running each
# shape's pattern was ~50 us per recorded row (its small fields), mostly per-call overhead.
_SHORT = 8192
_TRIGGER = "|".join(re.escape(prefix) for prefix in (
    "sk-", "gsk_", "hf_", "xai-", "pplx-", "ghp_", "gho_", "ghs_", "github_pat_", "AIza", "AKIA", "earer",
    "key=", "token=", "secret=", "password=",
))  # fmt: skip
_TRIGGER_TEXT, _TRIGGER_RAW = re.compile(_TRIGGER), re.compile(_TRIGGER.encode())


class Redactor:
    """The configured secrets (replaced literally, longest first, so a key that contains another goes
    whole) and the key shapes. Replaced as a whole object on reload: readers never see half of one."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = tuple(
            sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
        )
        self._secrets_raw = tuple(s.encode() for s in self.secrets)

    def text(self, value: str) -> str:
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        if len(value) < _SHORT and not _TRIGGER_TEXT.search(value):
            return value
        for shape in _SHAPED:
            value = shape.sub_text(value)
        return value

    def raw(self, value: bytes) -> bytes:
        for secret in self._secrets_raw:
            if secret in value:
                value = value.replace(secret, REDACTED.encode())
        if len(value) < _SHORT and not _TRIGGER_RAW.search(value):
            return value
        for shape in _SHAPED:
            value = shape.sub_raw(value)
        return value

    def value(self, value: Any) -> Any:
        """A recorded field (text, JSON already encoded, or a JSON structure) with its secrets replaced;
        the same object when there were none."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, (dict, list, orjson.Fragment)):
            raw = orjson.dumps(value)  # a Fragment's bytes are reachable only this way
            cleaned = self.raw(raw)
            # The replacement holds no JSON syntax and keys hold no escapes: the JSON stays valid.
            return value if cleaned == raw else orjson.Fragment(cleaned)
        return value


# Small on every exchange; the bodies too when it failed (see the module docstring).
_ALWAYS = ("error_message", "attempts", "changes", "client_headers", "route_reason")
_WHEN_FAILED = ("client_request", "upstream_request", "upstream_response", "client_response")


def redact_row(fields: dict[str, Any]) -> dict[str, Any]:
    """An Exchange row's fields (plain values, not Packed) as they may be stored."""
    current = redactor
    names = _ALWAYS + _WHEN_FAILED if fields.get("status") == "error" else _ALWAYS
    out = dict(fields)
    for name in names:
        if out.get(name):
            out[name] = current.value(out[name])
    request = out.get("upstream_request")
    if isinstance(request, dict) and isinstance(request.get("url"), str):  # ?key= in a URL
        out["upstream_request"] = {**request, "url": current.text(request["url"])}
    return out


_secrets: dict[str, tuple[str, ...]] = {}
redactor = Redactor()


def set_secrets(source: str, secrets: Iterable[str]) -> None:
    """Replace the configured secrets of one source ("providers", "client keys")."""
    global redactor
    _secrets[source] = tuple(secrets)
    redactor = Redactor(s for group in _secrets.values() for s in group)


def redact(text: str) -> str:
    """`text` with every configured and key-shaped secret replaced."""
    return redactor.text(text)


class RedactingFilter(logging.Filter):
    """On the log handlers: a message (arguments and traceback included) never carries a secret.

    Formats the record once here, so the handler's formatter finds the message already clean."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redactor.text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redactor.text(record.exc_text)
        return True


def masked_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A provider's extra headers as shown or exported: secret ones as STORED."""
    return {k: STORED if is_secret_header(str(k).lower()) and v else v for k, v in headers.items()}


def unmasked_headers(new: Mapping[str, str], old: Mapping[str, str]) -> dict[str, str]:
    """Extra headers as edited or imported: a STORED value keeps the stored one (dropped if there is none)."""
    return {k: old[k] if v == STORED else v for k, v in new.items() if v != STORED or old.get(k)}


def header_secrets(headers: Mapping[str, str]) -> list[str]:
    return [str(v) for k, v in headers.items() if is_secret_header(str(k).lower())]

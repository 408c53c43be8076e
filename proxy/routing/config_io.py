"""The routing configuration as a TOML file (export, import) and claude-code-router's config.json (import).

No secrets leave the database: a provider's key is exported as the name of its environment variable,
and a key stored as a secret is kept on import when the file names no variable for that provider.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import orjson

from proxy.routing.order import evaluation_order, order_warnings
from proxy.routing.presets import BY_KEY
from proxy.routing.rules import DEFAULT_LONG_CONTEXT_TOKENS, ConfigError, ProviderSpec, RuleSpec
from proxy.security.redact import masked_headers, unmasked_headers
from proxy.translate.dialects import DIALECTS

PROVIDER_KEYS = (
    "name", "dialect", "base_url", "api_key_env", "connect_timeout", "first_byte_timeout", "idle_timeout",
    "total_timeout", "extra_headers", "model_settings", "heal_tool_calls", "tool_call_retries", "quirks",
)  # fmt: skip
HEALING_KEYS = ("heal_tool_calls", "tool_call_retries")  # issue #15: fixed names, on providers and rules
TIMEOUT_KEYS = ("connect_timeout", "first_byte_timeout", "idle_timeout", "total_timeout")
# Files exported before the timeouts were split: read_timeout was httpx's, the longest wait for a chunk.
_OLD_PROVIDER_KEYS = {"read_timeout": "idle_timeout"}
RULE_KEYS = (
    "name",
    "provider",
    "model",
    "enabled",
    "default",
    "conditions",
    "overrides",
    "fallbacks",
    "aliases",
    "heal_tool_calls",
    "tool_call_retries",
)
HEADER = (
    "# Switchboard routing configuration: `python manage.py routes import FILE` loads it back.\n"
    "# Rules are tried top to bottom; the first match wins. The default rule is always tried last\n"
    "# (it is written last, and imported last wherever it stands) and takes the rest.\n"
    "# Keys are never exported: api_key_env names the environment variable holding a provider's key.\n"
)

# --- writing TOML (a small subset: tables of strings, numbers, booleans, lists and inline tables) ----

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _string(key)


def _string(value: str) -> str:
    # JSON string escapes (\" \\ \n \t \uXXXX) are all valid in TOML basic strings.
    return orjson.dumps(value).decode()


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Mapping):
        items = [(k, v) for k, v in value.items() if v is not None]  # TOML has no null: absent means unset
        if not items:
            return "{}"
        return "{ " + ", ".join(f"{_key(str(k))} = {toml_value(v)}" for k, v in items) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def export_toml(providers: Sequence[ProviderSpec], rules: Sequence[RuleSpec]) -> str:
    """The whole configuration as TOML, rules in order. Secrets are left out (a comment says so)."""
    lines = [HEADER]
    for p in providers:
        lines.append("[[providers]]")
        if p.api_key_secret and not p.api_key_env:
            lines.append("# this provider's key is stored in the database and is not exported")
        row: dict[str, Any] = {
            "name": p.name,
            "dialect": p.dialect,
            "base_url": p.base_url,
            "api_key_env": p.api_key_env,
            **{key: float(getattr(p, key)) for key in TIMEOUT_KEYS},
            "extra_headers": masked_headers(p.extra_headers),  # "[stored]" keeps the stored value on import
            "model_settings": dict(p.model_settings),
            "quirks": list(p.quirks),
        }
        # Only what differs from the defaults (healing on, one retry): files stay as short as before.
        if not p.heal_tool_calls:
            row["heal_tool_calls"] = False
        if p.tool_call_retries != 1:
            row["tool_call_retries"] = p.tool_call_retries
        lines += [f"{k} = {toml_value(v)}" for k, v in row.items() if v not in ("", {}, [])]
        lines.append("")
    warnings: dict[str, list[str]] = {}
    for warning in order_warnings(rules):
        warnings.setdefault(warning.rule, []).append(warning.message)
    for r in evaluation_order(rules):
        # one line each: a rule name is free text, and a newline in it must not end the comment
        lines += [f"# warning: {' '.join(message.split())}" for message in warnings.get(r.name, [])]
        lines.append("[[rules]]")
        row = {
            "name": r.name,
            "provider": r.provider,
            "model": r.model,
            "enabled": r.enabled,
            "default": r.is_default,
            "conditions": dict(r.conditions),
            "overrides": dict(r.overrides),
            "fallbacks": [dict(f) for f in r.fallbacks],
            "aliases": list(r.aliases),
            "heal_tool_calls": r.heal_tool_calls,
            "tool_call_retries": r.tool_call_retries,
        }
        lines += [f"{k} = {toml_value(v)}" for k, v in row.items() if v not in ({}, [], None)]
        lines.append("")
    return "\n".join(lines) + "\n"


# --- reading TOML ------------------------------------------------------------------------------------


_DEFAULTS = ProviderSpec(name="", dialect="", base_url="")


def _timeout(row: Mapping[str, Any], key: str) -> float:
    """A provider's timeout from the file, else the default one."""
    return float(row.get(key, getattr(_DEFAULTS, key)))


def parse_toml(text: str) -> tuple[list[ProviderSpec], list[RuleSpec]]:
    """Providers and rules from an exported file; ConfigError for a malformed one (not yet validated)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"not valid TOML: {exc}"]) from exc
    problems = [f"unknown top-level key '{k}'" for k in data if k not in ("providers", "rules")]
    providers, rules = [], []
    for i, row in enumerate(data.get("providers", [])):
        row = {_OLD_PROVIDER_KEYS.get(k, k): v for k, v in row.items()}
        problems += [f"providers[{i}]: unknown key '{k}'" for k in row if k not in PROVIDER_KEYS]
        try:
            providers.append(
                ProviderSpec(
                    name=str(row["name"]),
                    dialect=str(row.get("dialect", "openai")),
                    base_url=str(row["base_url"]),
                    api_key_env=str(row.get("api_key_env", "")),
                    extra_headers=dict(row.get("extra_headers", {})),
                    connect_timeout=_timeout(row, "connect_timeout"),
                    first_byte_timeout=_timeout(row, "first_byte_timeout"),
                    idle_timeout=_timeout(row, "idle_timeout"),
                    total_timeout=_timeout(row, "total_timeout"),
                    model_settings=dict(row.get("model_settings", {})),
                    **_healing(row, f"providers[{i}]", problems, default=(True, 1)),
                    quirks=[str(q) for q in row.get("quirks", [])],
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(f"providers[{i}]: missing or bad {exc}")
    for i, row in enumerate(data.get("rules", [])):
        problems += [f"rules[{i}]: unknown key '{k}'" for k in row if k not in RULE_KEYS]
        try:
            rules.append(
                RuleSpec(
                    name=str(row["name"]),
                    provider=str(row["provider"]),
                    model=str(row.get("model", "")),
                    conditions=dict(row.get("conditions", {})),
                    overrides=dict(row.get("overrides", {})),
                    fallbacks=[dict(f) for f in row.get("fallbacks", [])],
                    aliases=[str(a) for a in row.get("aliases", [])],
                    enabled=bool(row.get("enabled", True)),
                    is_default=bool(row.get("default", False)),
                    **_healing(row, f"rules[{i}]", problems, default=(None, None)),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(f"rules[{i}]: missing or bad {exc}")
    if problems:
        raise ConfigError(problems)
    return providers, rules


def _healing(
    row: Mapping[str, Any], where: str, problems: list[str], *, default: tuple[Any, Any]
) -> dict[str, Any]:
    """heal_tool_calls (a boolean) and tool_call_retries (an integer) as written, else `default`."""
    heal, retries = row.get("heal_tool_calls", default[0]), row.get("tool_call_retries", default[1])
    if heal is not None and not isinstance(heal, bool):
        problems.append(f"{where}: heal_tool_calls must be true or false")
        heal = default[0]
    if retries is not None and (not isinstance(retries, int) or isinstance(retries, bool)):
        problems.append(f"{where}: tool_call_retries must be an integer")
        retries = default[1]
    return {"heal_tool_calls": heal, "tool_call_retries": retries}


# --- claude-code-router -------------------------------------------------------------------------------

_ENV_REF = re.compile(r"^\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?$")
# Router key -> (our rule name, its conditions); in claude-code-router's own precedence order
# (longContext first, then background, webSearch, think), with image ahead of think so a picture
# reaches the model that can see it.
_CCR_ROUTES = (
    ("longContext", "long-context", "long_context"),
    ("background", "background", "background"),
    ("webSearch", "web-search", "web_search"),
    ("image", "image", "image"),
    ("think", "think", "think"),
)
THINK_NOTE = (
    "Router.think became rule 'think' (task think): it takes requests with thinking enabled and a budget, "
    "an effort above Claude Code's default for the model (the user chose it), or Claude Code's plan mode. "
    "claude-code-router sends every request that has a "
    "thinking field there, but Claude Code now sends adaptive thinking on every main turn: those go to "
    "the default rule"
)
# The transformers of claude-code-router's format that name a dialect (carried over as that dialect).
_CCR_DIALECT_TRANSFORMERS = frozenset({"anthropic", "openai", "gemini", "openai-responses"})
_CCR_IGNORED = {"LOG", "LOG_LEVEL", "HOST", "PORT", "NON_INTERACTIVE_MODE", "StatusLine"}


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", name.strip().lower()).strip("-") or "provider"


def _ccr_dialect(
    name: str, url: str, uses: set[str], notes: list[str]
) -> tuple[str, str, tuple[str, ...]] | None:
    """(dialect, base URL, quirks) for a claude-code-router provider; None (noted) to skip it."""
    host = urlsplit(url).hostname or ""
    if "vertex-gemini" in uses or host.endswith("aiplatform.googleapis.com"):
        notes.append(f"provider '{name}': Vertex AI is not supported yet; it and its routes were skipped")
        return None
    if "gemini" in uses or host == "generativelanguage.googleapis.com":
        preset = BY_KEY["gemini"]
        if preset.dialect not in DIALECTS:  # a build without the gemini dialect: Gemini's OpenAI endpoint
            preset = BY_KEY["gemini-openai"]
            notes.append(f"provider '{name}': imported through Gemini's OpenAI-compatible endpoint")
        return preset.dialect, preset.base_url, preset.quirks
    if "openai-responses" in uses or url.endswith("/responses"):
        if "openai_responses" not in DIALECTS:
            notes.append(
                f"provider '{name}': the Responses API is not supported yet; it and its routes were skipped"
            )
            return None
        return "openai_responses", re.sub(r"/responses$", "", url), ()
    if "anthropic" in uses or url.endswith("/v1/messages"):
        return "anthropic", re.sub(r"/v1/messages$", "", url), ()
    return "openai", re.sub(r"/chat/completions$", "", url), ()


def _ccr_provider(entry: Mapping[str, Any], timeout: float, notes: list[str]) -> ProviderSpec | None:
    name = _slug(str(entry.get("name", "")))
    url = str(entry.get("api_base_url", "")).rstrip("/")
    uses = _transformer_names(entry.get("transformer"))
    found = _ccr_dialect(name, url, uses, notes)
    if found is None:
        return None
    dialect, base_url, quirks = found
    other = sorted(uses - _CCR_DIALECT_TRANSFORMERS)
    if other:
        notes.append(
            f"provider '{name}': transformers {', '.join(other)} were not carried over "
            "(the openai dialect already handles tool calls, reasoning and token limits)"
        )
    key = str(entry.get("api_key", ""))
    env = _ENV_REF.match(key)
    secret = ""
    if key and not env:
        secret = key
        notes.append(f"provider '{name}': its literal API key is stored as a secret (an env var is safer)")
    return ProviderSpec(
        name=name,
        dialect=dialect,
        base_url=base_url,
        api_key_env=env.group(1) if env else "",
        api_key_secret=secret,
        # claude-code-router's API_TIMEOUT_MS bounds the whole request: our total timeout.
        total_timeout=timeout,
        quirks=quirks,
    )


def _transformer_names(transformer: Any) -> set[str]:
    if not isinstance(transformer, Mapping):
        return set()
    names = set()
    for section in transformer.values():
        uses = section if isinstance(section, list) else (section or {}).get("use", [])
        for use in uses if isinstance(uses, list) else []:
            names.add(str(use[0] if isinstance(use, list) else use).lower())
    return names


def from_claude_code_router(data: Mapping[str, Any]) -> tuple[list[ProviderSpec], list[RuleSpec], list[str]]:
    """claude-code-router's config.json -> providers, rules, and notes on what could not be carried over."""
    notes: list[str] = []
    timeout = float(data.get("API_TIMEOUT_MS", 0)) / 1000
    providers: dict[str, ProviderSpec] = {}
    skipped: set[str] = set()
    for entry in data.get("Providers") or data.get("providers") or []:
        spec = _ccr_provider(entry, timeout, notes)
        if spec is None:
            skipped.add(_slug(str(entry.get("name", ""))))
        else:
            providers[spec.name] = spec
    router = data.get("Router") or {}
    rules: list[RuleSpec] = []

    def target(key: str) -> tuple[str, str] | None:
        value = router.get(key)
        if not value:
            return None
        provider, _, model = str(value).partition(",")
        provider = _slug(provider)
        if provider in skipped:
            notes.append(f"route '{key}' ({value}) was skipped: its provider was not imported")
            return None
        if provider not in providers:
            raise ConfigError([f"Router.{key} = '{value}': no provider named '{provider}'"])
        return provider, model.strip()

    for key, name, task in _CCR_ROUTES:
        found = target(key)
        if found is None:
            continue
        conditions: dict[str, Any] = {"task": task}
        threshold = router.get("longContextThreshold", DEFAULT_LONG_CONTEXT_TOKENS)
        if task == "long_context" and threshold != DEFAULT_LONG_CONTEXT_TOKENS:
            conditions["threshold"] = int(threshold)
        rules.append(RuleSpec(name=name, provider=found[0], model=found[1], conditions=conditions))
        if task == "think":
            notes.append(THINK_NOTE)
    default = target("default")
    if default is None:
        raise ConfigError(["Router.default is missing or uses a provider that cannot be imported"])
    rules.append(RuleSpec(name="default", provider=default[0], model=default[1], is_default=True))
    _note_the_rest(data, router, notes)
    return list(providers.values()), rules, notes


def _note_the_rest(data: Mapping[str, Any], router: Mapping[str, Any], notes: list[str]) -> None:
    known_router = {k for k, _, _ in _CCR_ROUTES} | {"default", "longContextThreshold"}
    for key in router:
        if key not in known_router:
            notes.append(f"Router.{key} was not carried over (no equivalent)")
    if data.get("CUSTOM_ROUTER_PATH"):
        notes.append("CUSTOM_ROUTER_PATH: a JavaScript router cannot be imported; express it as rules")
    if data.get("transformers"):
        notes.append("custom transformer plugins were not carried over")
    if data.get("PROXY_URL"):
        notes.append("PROXY_URL was not carried over: set HTTPS_PROXY in the environment instead")
    if data.get("APIKEY"):
        notes.append("APIKEY (the router's own access key) was not carried over")
    notes.append(
        "claude-code-router's <CCR-SUBAGENT-MODEL> tag has no equivalent: add a rule with an agent "
        "condition and put <switchboard-agent>name</switchboard-agent> in the subagent's prompt"
    )
    for key in data:
        if key not in {"Providers", "providers", "Router", "API_TIMEOUT_MS", "CUSTOM_ROUTER_PATH",
                       "transformers", "PROXY_URL", "APIKEY"} | _CCR_IGNORED:  # fmt: skip
            notes.append(f"{key} was not carried over")


# --- the database side ------------------------------------------------------------------------------


def export_config() -> str:
    """The stored configuration as TOML."""
    from proxy.routing.snapshot import load_specs

    providers, rules = load_specs()
    return export_toml(providers, rules)


def import_config(providers: Sequence[ProviderSpec], rules: Sequence[RuleSpec], *, actor: str = "") -> None:
    """Replace the whole configuration, atomically; ConfigError (nothing changed) when it is invalid."""
    from proxy.models import Provider, Rule
    from proxy.routing.snapshot import config_edit

    with config_edit(actor=actor):
        existing = {p.name: p for p in Provider.objects.all()}
        Rule.objects.all().delete()
        Provider.objects.exclude(name__in=[p.name for p in providers]).delete()
        by_name = {}
        for spec in providers:
            row = existing.get(spec.name) or Provider(name=spec.name)
            row.dialect, row.base_url, row.api_key_env = spec.dialect, spec.base_url, spec.api_key_env
            if spec.api_key_secret or spec.api_key_env:
                row.api_key_secret = spec.api_key_secret  # an env reference replaces a stored secret
            row.extra_headers = unmasked_headers(spec.extra_headers, row.extra_headers or {})
            row.model_settings = dict(spec.model_settings)
            row.quirks = list(spec.quirks)
            for key in (*TIMEOUT_KEYS, *HEALING_KEYS):
                setattr(row, key, getattr(spec, key))
            row.save()
            by_name[spec.name] = row
        for position, rule in enumerate(evaluation_order(rules)):
            if rule.provider not in by_name:
                raise ConfigError([f"rule '{rule.name}': unknown provider '{rule.provider}'"])
            Rule.objects.create(
                name=rule.name,
                position=position,
                enabled=rule.enabled,
                conditions=dict(rule.conditions),
                provider=by_name[rule.provider],
                model=rule.model,
                overrides=dict(rule.overrides),
                fallbacks=[dict(f) for f in rule.fallbacks],
                aliases=list(rule.aliases),
                is_default=rule.is_default,
                heal_tool_calls=rule.heal_tool_calls,
                tool_call_retries=rule.tool_call_retries,
            )

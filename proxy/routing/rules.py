"""Routing rules as plain data: conditions, validation, compiling a configuration and choose_target.

Pure: no Django, no IO. routing/snapshot.py converts the database rows into these dataclasses, compiles them
once per configuration version (`compile_config`) and calls `choose_target` per request.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from proxy.catalog import lookup
from proxy.http.model_names import display_name
from proxy.routing.detect import Facts, TokenCounter, request_facts
from proxy.translate.dialects import DIALECTS, dialect_names
from proxy.translate.types import JSONDict, MessagesRequest, Target

TASKS = ("background", "think", "long_context", "web_search", "image")
# What Decision.task reports when the matched rule does not name a task: the most specific first.
TASK_PRIORITY = ("long_context", "background", "web_search", "image", "think")
CONDITION_KEYS = ("model", "task", "agent", "client", "session", "threshold")
OVERRIDE_KEYS = ("max_tokens", "temperature", "reasoning_effort")
REASONING_EFFORTS = ("minimal", "low", "medium", "high", "xhigh", "max")
DEFAULT_LONG_CONTEXT_TOKENS = 60000
# Listed in GET /v1/models for the rules that answer to them (Claude Code's /model picker keeps only
# claude-… ids): the current ids named by the captured CLI's own prompt (2.1.197) and the latest CLI's
# main model (2.1.332).
KNOWN_CLAUDE_MODELS = (
    "claude-opus-5-5",
    "claude-opus-4-8",
    "claude-sonnet-5",
    "claude-haiku-4-5-20251001",
    "claude-fable-5",
)
LOCAL_HOSTS = ("127.0.0.1", "localhost", "0.0.0.0", "::1", "::")


class ConfigError(ValueError):
    """The configuration is invalid; `problems` lists every reason, in words a user can act on."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    name: str
    dialect: str
    base_url: str
    api_key_env: str = ""
    api_key_secret: str = ""
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    connect_timeout: float = 10.0
    first_byte_timeout: float = 300.0  # 0 = none, as for idle and total
    idle_timeout: float = 120.0
    total_timeout: float = 0.0
    # {model_id: {"max_output_tokens": int, "options": [...], ...}}
    model_settings: Mapping[str, JSONDict] = field(default_factory=dict)
    heal_tool_calls: bool = True  # issue #15: tool calls checked, repaired, retried
    tool_call_retries: int = 1
    # The endpoint's capability profile: Target.options for every model (presets.py fills them in).
    quirks: Sequence[str] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "quirks", tuple(self.quirks))  # lists or tuples in, equal specs out


@dataclass(frozen=True, slots=True)
class RuleSpec:
    name: str
    provider: str
    model: str = ""  # "" = keep the client's model (anthropic passthrough only)
    conditions: Mapping[str, Any] = field(default_factory=dict)
    overrides: Mapping[str, Any] = field(default_factory=dict)
    fallbacks: Sequence[Mapping[str, str]] = ()  # [{"provider", "model"} | {"rule": name}]
    aliases: Sequence[str] = ()
    enabled: bool = True
    is_default: bool = False
    # None: the provider's setting (a rule's own wins over its providers', fallbacks included)
    heal_tool_calls: bool | None = None
    tool_call_retries: int | None = None

    def __post_init__(self) -> None:
        # Lists or tuples in, tuples kept: specs from the DB, TOML and code compare equal.
        object.__setattr__(self, "fallbacks", tuple(self.fallbacks))
        object.__setattr__(self, "aliases", tuple(self.aliases))


@dataclass(frozen=True, slots=True)
class Decision:
    targets: tuple[Target, ...]  # primary first, then the fallback chain
    rule: str
    reason: str  # "rule 'background': model contains 'haiku'"
    task: str  # "", or one of TASKS
    agent: str  # "" or the recognised agent name
    body: MessagesRequest  # what to forward: agent markers stripped (the same dict when nothing was)


# --- conditions ------------------------------------------------------------------------------------

_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True, slots=True)
class Pattern:
    """A glob (when it has * ? or [...]) or else a plain string, matched case-insensitively."""

    raw: str
    regex: re.Pattern[str] | None
    exact: bool  # plain strings: exact (agent, session) or substring (model, client)
    lowered: str = ""

    def matches(self, value: str) -> bool:
        """`value` must already be lower-case (Facts keeps lower-cased copies)."""
        if self.regex is not None:
            return self.regex.fullmatch(value) is not None
        return value == self.lowered if self.exact else self.lowered in value

    def describe(self) -> str:
        if self.regex is not None:
            return f"matches '{self.raw}'"
        return f"is '{self.raw}'" if self.exact else f"contains '{self.raw}'"


def _first(patterns: tuple[Pattern, ...], values: tuple[str, ...]) -> Pattern | None:
    for pattern in patterns:
        for value in values:
            if pattern.matches(value):
                return pattern
    return None


def compile_pattern(raw: str, *, exact: bool) -> Pattern:
    """Raises ValueError for an empty pattern or an unclosed [ ] class."""
    if not raw.strip():
        raise ValueError("empty pattern")
    if not _GLOB_CHARS & set(raw):
        return Pattern(raw, None, exact, raw.lower())
    depth = 0
    for ch in raw:
        if ch == "[":
            depth += 1
        elif ch == "]" and depth:
            depth -= 1
    if depth or "[]" in raw:
        raise ValueError(f"bad glob {raw!r}: unclosed or empty [ ]")
    return Pattern(raw, re.compile(fnmatch.translate(raw.lower())), exact, raw.lower())


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


@dataclass(frozen=True, slots=True)
class CompiledRule:
    name: str
    targets: tuple[Target, ...]
    model: tuple[Pattern, ...] = ()
    aliases: frozenset[str] = frozenset()
    tasks: tuple[str, ...] = ()
    threshold: int = DEFAULT_LONG_CONTEXT_TOKENS
    agents: tuple[Pattern, ...] = ()
    clients: tuple[Pattern, ...] = ()
    sessions: tuple[Pattern, ...] = ()

    def match(self, facts: Facts) -> tuple[list[str], str] | None:
        """The reasons it matches (one per condition) and the task it matched on, or None.

        Plain loops, cheapest conditions first: this runs for every rule on every request.
        """
        reasons: list[str] = []
        if self.model or self.aliases:
            if facts.model_lc in self.aliases:
                reasons.append(f"model is alias '{facts.model}'")
            else:
                hit = _first(self.model, (facts.model_lc,))
                if hit is None:
                    return None
                reasons.append(f"model {hit.describe()}")
        for label, patterns, values in (
            ("agent", self.agents, facts.agent_lc),
            ("client", self.clients, facts.clients_lc),
            ("session", self.sessions, facts.session_lc),
        ):
            if patterns:
                hit = _first(patterns, values)
                if hit is None:
                    return None
                reasons.append(f"{label} {hit.describe()}")
        task = ""
        if self.tasks:
            for candidate in self.tasks:  # long_context last in cost: counted only when reached
                if self._has_task(candidate, facts):
                    task = candidate
                    break
            if not task:
                return None
            if task == "long_context":
                reasons.append(f"task is long_context ({facts.tokens()} input tokens > {self.threshold})")
            else:
                reasons.append(f"task is {task}")
        return reasons, task

    def _has_task(self, task: str, facts: Facts) -> bool:
        if task == "long_context":
            return facts.count_tokens is not None and facts.tokens() > self.threshold
        return task in facts.tasks


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One compiled configuration: what every request of one version is routed by."""

    version: int
    rules: tuple[CompiledRule, ...]  # enabled, non-default, in order
    default: CompiledRule | None
    model_ids: tuple[str, ...]  # claude-… ids for GET /v1/models
    model_names: Mapping[str, str] = field(default_factory=dict)  # id -> display_name ("Sonnet 5 -> x")


def choose_target(
    snapshot: Snapshot,
    body: MessagesRequest,
    headers: Mapping[str, str],
    *,
    count_tokens: TokenCounter | None = None,
) -> Decision | None:
    """The first matching rule's decision, the default rule's, or None when there is no default."""
    facts = request_facts(body, headers, count_tokens=count_tokens)
    for rule in snapshot.rules:
        matched = rule.match(facts)
        if matched is not None:
            reasons, task = matched
            why = " and ".join(reasons) or "it has no conditions"
            return _decision(rule, facts, f"rule '{rule.name}': {why}", task)
    if snapshot.default is None:
        return None
    rule = snapshot.default
    return _decision(rule, facts, f"rule '{rule.name}': the default (no other rule matched)", "")


def _decision(rule: CompiledRule, facts: Facts, reason: str, task: str) -> Decision:
    if not task:
        # long_context is reported only when some rule already counted (counting costs ~ms on big bodies).
        counted = facts.counted_tokens
        tasks = facts.tasks | ({"long_context"} if (counted or 0) > DEFAULT_LONG_CONTEXT_TOKENS else set())
        task = next((t for t in TASK_PRIORITY if t in tasks), "")
    return Decision(rule.targets, rule.name, reason, task, facts.agent, facts.body)


# --- compiling and validating a configuration ------------------------------------------------------

_SLUG = re.compile(r"^[-a-zA-Z0-9_]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PATTERN_EXACT = {"model": False, "client": False, "agent": True, "session": True}


def is_own_address(base_url: str, own_port: int | None) -> bool:
    """True when base_url points back at this server (a routing loop)."""
    if own_port is None:
        return False
    parts = urlsplit(base_url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return False
    return (parts.hostname or "").lower() in LOCAL_HOSTS and port == own_port


def _check_provider(p: ProviderSpec, own_port: int | None) -> list[str]:
    where = f"provider '{p.name}'"
    problems = []
    if not _SLUG.match(p.name or ""):
        problems.append(f"{where}: the name must be letters, digits, - or _")
    if p.dialect not in (dialects := dialect_names()):  # the registry: a new dialect is known everywhere
        problems.append(f"{where}: unknown dialect '{p.dialect}' (known: {', '.join(sorted(dialects))})")
    parts = urlsplit(p.base_url or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        problems.append(f"{where}: base URL '{p.base_url}' must start with http:// or https://")
    elif is_own_address(p.base_url, own_port):
        problems.append(f"{where}: base URL '{p.base_url}' points at this proxy itself: requests would loop")
    if p.api_key_env and not _ENV_NAME.match(p.api_key_env):
        problems.append(f"{where}: '{p.api_key_env}' is not an environment variable name")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in dict(p.extra_headers).items()):
        problems.append(f"{where}: extra headers must map names to string values")
    if p.connect_timeout <= 0:
        problems.append(f"{where}: the connect timeout must be positive")
    if min(p.first_byte_timeout, p.idle_timeout, p.total_timeout) < 0:
        problems.append(f"{where}: timeouts cannot be negative (0 means no limit)")
    if not _retries_ok(p.tool_call_retries):
        problems.append(f"{where}: tool_call_retries must be an integer from 0 to {MAX_TOOL_CALL_RETRIES}")
    if not isinstance(p.model_settings, Mapping) or not all(
        isinstance(v, Mapping) for v in p.model_settings.values()
    ):
        problems.append(f"{where}: per-model settings must map model ids to tables")
    if not all(isinstance(q, str) and q.strip() for q in p.quirks):
        problems.append(f"{where}: quirks must be a list of names")
    return problems


def _compile_conditions(rule: RuleSpec, problems: list[str]) -> dict[str, Any]:
    """Condition patterns and tasks for CompiledRule; problems are appended."""
    where = f"rule '{rule.name}'"
    out: dict[str, Any] = {}
    conditions = dict(rule.conditions)
    for key in conditions:
        if key not in CONDITION_KEYS:
            problems.append(f"{where}: unknown condition '{key}' (known: {', '.join(CONDITION_KEYS)})")
    for key, exact in _PATTERN_EXACT.items():
        if key not in conditions:
            continue
        patterns = []
        for raw in _as_list(conditions[key]):
            try:
                if not isinstance(raw, str):
                    raise ValueError(f"{raw!r} is not text")
                patterns.append(compile_pattern(raw, exact=exact))
            except ValueError as exc:
                problems.append(f"{where}: condition {key}: {exc}")
        out[{"model": "model", "agent": "agents", "client": "clients", "session": "sessions"}[key]] = tuple(
            patterns
        )
    if "task" in conditions:
        tasks = tuple(_as_list(conditions["task"]))
        for task in tasks:
            if task not in TASKS:
                problems.append(f"{where}: unknown task '{task}' (known: {', '.join(TASKS)})")
        out["tasks"] = tasks
    if "threshold" in conditions:
        threshold = conditions["threshold"]
        if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold <= 0:
            problems.append(f"{where}: threshold must be a positive number of tokens")
        elif "long_context" not in out.get("tasks", ()):
            problems.append(f"{where}: threshold only applies with task long_context")
        else:
            out["threshold"] = threshold
    return out


def _check_overrides(rule: RuleSpec) -> list[str]:
    where = f"rule '{rule.name}'"
    problems = []
    for key, value in dict(rule.overrides).items():
        if key not in OVERRIDE_KEYS:
            problems.append(f"{where}: unknown override '{key}' (known: {', '.join(OVERRIDE_KEYS)})")
        elif key == "max_tokens" and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            problems.append(f"{where}: max_tokens override must be a positive integer")
        elif key == "temperature" and (
            not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 2
        ):
            problems.append(f"{where}: temperature override must be between 0 and 2")
        elif key == "reasoning_effort" and value not in REASONING_EFFORTS:
            problems.append(f"{where}: reasoning_effort must be one of {', '.join(REASONING_EFFORTS)}")
    return problems


MAX_TOOL_CALL_RETRIES = 5  # each retry is a whole request again: more would only cost


def _retries_ok(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOOL_CALL_RETRIES


def _chain(
    name: str, by_name: Mapping[str, RuleSpec], stack: tuple[str, ...], problems: list[str]
) -> list[tuple[str, str]]:
    """A rule's (provider, model) chain: its target, then its fallbacks, `{"rule": x}` expanded."""
    if name in stack:
        problems.append(f"fallback cycle: {' -> '.join((*stack, name))}")
        return []
    rule = by_name[name]
    chain = [(rule.provider, rule.model)]
    for entry in rule.fallbacks:
        if not isinstance(entry, Mapping):
            problems.append(f"rule '{name}': a fallback must be {{provider, model}} or {{rule}}")
        elif "rule" in entry:
            if entry["rule"] not in by_name:
                problems.append(f"rule '{name}': fallback names unknown rule '{entry['rule']}'")
            else:
                chain += _chain(str(entry["rule"]), by_name, (*stack, name), problems)
        else:
            chain.append((str(entry.get("provider", "")), str(entry.get("model", ""))))
    return chain


def _check_target(where: str, provider: str, model: str, providers: Mapping[str, ProviderSpec]) -> list[str]:
    if not provider:
        return [f"{where}: empty target (no provider)"]
    if provider not in providers:
        return [f"{where}: unknown provider '{provider}'"]
    dialect = DIALECTS.get(providers[provider].dialect)  # an unknown one is reported with its provider
    if not model and not (dialect is not None and dialect.capabilities.keeps_client_model):
        return [f"{where}: empty target (no model for {providers[provider].dialect} provider '{provider}')"]
    return []


def _check_rules(rules: Sequence[RuleSpec], providers: Mapping[str, ProviderSpec]) -> list[str]:
    problems: list[str] = []
    names = [r.name for r in rules]
    for name in {n for n in names if names.count(n) > 1}:
        problems.append(f"two rules are named '{name}'")
    if any(not r.name.strip() for r in rules):
        problems.append("every rule needs a name")
    defaults = [r for r in rules if r.is_default and r.enabled]
    if len(defaults) != 1:
        problems.append(f"exactly one enabled default rule is needed (found {len(defaults)})")
    seen_aliases: dict[str, str] = {}
    by_name = {r.name: r for r in rules}
    for rule in rules:
        where = f"rule '{rule.name}'"
        problems += _check_target(where, rule.provider, rule.model, providers)
        problems += _check_overrides(rule)
        if rule.tool_call_retries is not None and not _retries_ok(rule.tool_call_retries):
            problems.append(
                f"{where}: tool_call_retries must be an integer from 0 to {MAX_TOOL_CALL_RETRIES}"
            )
        if rule.is_default and rule.conditions:
            problems.append(f"{where}: the default rule matches every request; remove its conditions")
        for alias in rule.aliases:
            if not isinstance(alias, str) or not alias.startswith("claude"):
                problems.append(
                    f"{where}: alias {alias!r} must start with 'claude' (Claude Code lists only those)"
                )
            elif alias.lower() in seen_aliases:
                problems.append(
                    f"{where}: alias '{alias}' is already used by rule '{seen_aliases[alias.lower()]}'"
                )
            else:
                seen_aliases[alias.lower()] = rule.name
        if rule.aliases and not rule.model:
            problems.append(f"{where}: a rule with aliases needs a model (the alias is not a real model id)")
        chain = _chain(rule.name, by_name, (), problems)
        seen: set[tuple[str, str]] = set()
        for provider, model in chain[1:]:
            problems += _check_target(f"{where} fallback", provider, model, providers)
        for pair in chain:
            if pair in seen:
                problems.append(
                    f"{where}: fallback cycle: {pair[0]}/{pair[1] or '(client model)'} comes twice"
                )
            seen.add(pair)
    return list(dict.fromkeys(problems))


def validate_config(
    providers: Sequence[ProviderSpec],
    rules: Sequence[RuleSpec],
    *,
    own_port: int | None = None,
) -> None:
    """Raise ConfigError listing every problem; return None when the configuration can serve."""
    compile_config(providers, rules, own_port=own_port)


# $ per million tokens a provider's model_settings may set; they win over genai-prices in cost estimates.
PRICE_KEYS = ("input_price", "output_price", "cache_read_price", "cache_write_price")


def compile_config(
    providers: Sequence[ProviderSpec],
    rules: Sequence[RuleSpec],
    *,
    version: int = 0,
    own_port: int | None = None,
    environ: Mapping[str, str] | None = None,
    max_output_tokens: Callable[[str, JSONDict | None], int | None] | None = None,
    model_options: Callable[[str, JSONDict | None], frozenset[str]] | None = None,
) -> Snapshot:
    """Validate and turn the configuration into a Snapshot (rules in the given order)."""
    problems: list[str] = []
    by_provider: dict[str, ProviderSpec] = {}
    for p in providers:
        if p.name in by_provider:
            problems.append(f"two providers are named '{p.name}'")
        by_provider[p.name] = p
        problems += _check_provider(p, own_port)
    problems += _check_rules(rules, by_provider)
    compiled_conditions = {r.name: _compile_conditions(r, problems) for r in rules}
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))

    env = environ if environ is not None else {}
    by_name = {r.name: r for r in rules}

    def target(provider: str, model: str, rule: RuleSpec) -> Target:
        p, overrides = by_provider[provider], rule.overrides
        # Keys may be globs ("*" on a local server's provider: zero prices for every model it serves),
        # matched as the output limits are: the exact id first, then the longest matching pattern.
        settings = lookup(model, {k.lower(): v for k, v in p.model_settings.items()}) or {}
        limit = settings.get("max_output_tokens")
        if model and max_output_tokens is not None:
            # the catalog looks at the provider's own table first (globs allowed), then the shipped one
            limit = max_output_tokens(model, dict(p.model_settings) or None)
        options = (model_options(model, None) if model and model_options else frozenset()) | frozenset(
            str(o) for o in [*(settings.get("options") or ()), *p.quirks]
        )
        return Target(
            provider=p.name,
            dialect=p.dialect,
            base_url=p.base_url,
            model=model,
            api_key=env.get(p.api_key_env, "") if p.api_key_env else p.api_key_secret,
            extra_headers=tuple((str(k), str(v)) for k, v in dict(p.extra_headers).items()),
            max_output_tokens=limit if isinstance(limit, int) else None,
            options=options,
            overrides=tuple(sorted(dict(overrides).items())),
            connect_timeout=p.connect_timeout,
            first_byte_timeout=p.first_byte_timeout,
            idle_timeout=p.idle_timeout,
            total_timeout=p.total_timeout,
            prices=tuple((k, float(v)) for k, v in settings.items() if k in PRICE_KEYS and v is not None),
            heal_tool_calls=p.heal_tool_calls if rule.heal_tool_calls is None else rule.heal_tool_calls,
            tool_call_retries=p.tool_call_retries
            if rule.tool_call_retries is None
            else rule.tool_call_retries,
        )

    compiled: list[CompiledRule] = []
    default: CompiledRule | None = None
    aliases: dict[str, None] = {}
    answered: dict[str, None] = {}
    for rule in rules:
        if not rule.enabled:
            continue
        chain = _chain(rule.name, by_name, (), [])
        c = CompiledRule(
            name=rule.name,
            targets=tuple(target(p, m, rule) for p, m in chain),
            aliases=frozenset(a.lower() for a in rule.aliases),
            **compiled_conditions[rule.name],
        )
        aliases.update(dict.fromkeys(rule.aliases))
        answered.update(dict.fromkeys(_answers_to(c, is_default=rule.is_default)))
        if rule.is_default:
            default = c
        else:
            compiled.append(c)
    model_ids = tuple({**aliases, **answered})  # aliases first: the models a user made on purpose
    snapshot = Snapshot(version=version, rules=tuple(compiled), default=default, model_ids=model_ids)
    return replace(snapshot, model_names=_model_names(snapshot))


def _model_names(snapshot: Snapshot) -> dict[str, str]:
    """Each listed id's display name, saying where a plain request for it goes (once per version)."""
    names = {}
    for model_id in snapshot.model_ids:
        decision = choose_target(snapshot, {"model": model_id, "max_tokens": 1, "messages": []}, {})
        names[model_id] = display_name(
            model_id, decision.targets[0] if decision and decision.targets else None
        )
    return names


def _answers_to(rule: CompiledRule, *, is_default: bool) -> list[str]:
    """The claude ids a rule serves: exact ids it names, known ids its patterns match; all for the default."""
    if is_default:
        return list(KNOWN_CLAUDE_MODELS)
    ids = [p.raw for p in rule.model if p.regex is None and p.lowered.startswith("claude")]
    return ids + [m for m in KNOWN_CLAUDE_MODELS if any(p.matches(m) for p in rule.model)]


def needs_token_count(snapshot: Snapshot) -> bool:
    return any("long_context" in r.tasks for r in snapshot.rules)

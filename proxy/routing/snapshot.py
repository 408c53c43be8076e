"""The database edge of routing: a per-process snapshot of the configuration, kept fresh on every request.

Freshness: every decision first reads `MAX(version)` of ConfigVersion, so an edit committed before a
request arrives is seen by that request, in every process, with no TTL and no broadcast to miss.
Measured on this machine (SQLite WAL): the read costs ~10 us through a plain sqlite3 connection on the
event loop itself, against ~40 us for the same query through Django and ~150-300 us more for any hop to
a thread (asgiref's sync_to_async: ~1 ms). So SQLite reads directly; other databases (Postgres) read on
ONE dedicated thread, where requests that arrive while a read is queued share it (a read that already
started never answers a later request). Only when the version changed are providers and rules reloaded
and compiled (pure: proxy.routing.rules), on that thread.
If the version read fails, or takes longer than CONFIG_WAIT_S (the database locked, restarting,
unreachable), the last good snapshot keeps serving (logged) and the config thread checks again: a
request never waits on the database for longer than that. Invalid configuration never reaches the
database: `config_edit()` validates inside the transaction and rolls back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from django.db import connection, transaction
from django.db.models import F

from proxy import catalog
from proxy.routing.detect import TokenCounter
from proxy.routing.rules import (
    ConfigError,
    Decision,
    ProviderSpec,
    RuleSpec,
    Snapshot,
    choose_target,
    compile_config,
    needs_token_count,
)
from proxy.security import access, clientkeys, redact
from proxy.security.crypto import UnreadableSecret
from proxy.translate import tokens
from proxy.translate.base import TranslationError
from proxy.translate.dialects import DIALECTS
from proxy.translate.types import MessagesRequest

__all__ = [
    "ConfigError",
    "Decision",
    "Snapshot",
    "checked_snapshot",
    "config_edit",
    "decide",
    "invalidate",
    "load_specs",
    "model_ids",
    "models",
    "validate_config",
]

logger = logging.getLogger(__name__)


def own_port() -> int | None:
    """The port this server listens on (set by `manage.py serve`), for refusing routing loops."""
    value = os.environ.get("SWITCHBOARD_PORT", "")
    return int(value) if value.isdigit() else None


# --- loading ---------------------------------------------------------------------------------------


def load_specs() -> tuple[list[ProviderSpec], list[RuleSpec]]:
    """The configuration as stored, as plain dataclasses (sync: call it off the event loop)."""
    from proxy.models import Provider, Rule

    providers = [provider_spec(p) for p in Provider.objects.order_by("name")]
    # The default rule last, wherever its position: that is where choose_target tries it.
    rows = Rule.objects.select_related("provider").order_by("is_default", "position", "id")
    rules = [rule_spec(r) for r in rows]
    return providers, rules


def rule_position(rules: list[RuleSpec], name: str) -> int | None:
    """The rule's number in the order tried (1 = first), as the routes list shows it."""
    return next((i for i, r in enumerate(rules, start=1) if r.name == name), None)


def provider_spec(p: Any) -> ProviderSpec:
    return ProviderSpec(
        name=p.name,
        dialect=p.dialect,
        base_url=p.base_url,
        api_key_env=p.api_key_env,
        api_key_secret=p.api_key_secret,
        extra_headers=dict(p.extra_headers or {}),
        connect_timeout=p.connect_timeout,
        first_byte_timeout=p.first_byte_timeout,
        idle_timeout=p.idle_timeout,
        total_timeout=p.total_timeout,
        model_settings=dict(p.model_settings or {}),
        heal_tool_calls=p.heal_tool_calls,
        tool_call_retries=p.tool_call_retries,
        quirks=list(p.quirks or []),
    )


def rule_spec(r: Any) -> RuleSpec:
    return RuleSpec(
        name=r.name,
        provider=r.provider.name if r.provider_id else "",
        model=r.model,
        conditions=dict(r.conditions or {}),
        overrides=dict(r.overrides or {}),
        fallbacks=list(r.fallbacks or []),
        aliases=list(r.aliases or []),
        enabled=r.enabled,
        is_default=r.is_default,
        heal_tool_calls=r.heal_tool_calls,
        tool_call_retries=r.tool_call_retries,
    )


def check_secrets(providers: list[ProviderSpec]) -> None:
    """ConfigError for a stored key this process cannot decrypt (it would be sent as its ciphertext)."""
    problems = [
        f"provider '{p.name}': its stored key cannot be decrypted: SWITCHBOARD_ENCRYPTION_KEY (or the "
        "data directory's encryption.key) is not the one it was saved with; set it, or type the key again"
        for p in providers
        if isinstance(p.api_key_secret, UnreadableSecret)
    ]
    if problems:
        raise ConfigError(problems)


def validate_config(providers: list[ProviderSpec], rules: list[RuleSpec]) -> None:
    """Raise ConfigError (its .problems lists every reason) unless this configuration can serve."""
    check_secrets(providers)
    # The operator's allowlist of key variables (settings, so not in the pure rules module).
    problems = [
        f"provider '{p.name}': {problem}"
        for p in providers
        if (problem := access.key_env_problem(p.api_key_env)) is not None
    ]
    try:
        compile_config(providers, rules, own_port=own_port())
    except ConfigError as exc:
        problems = exc.problems + problems
    if problems:
        raise ConfigError(problems)


def build_snapshot(version: int) -> Snapshot:
    providers, rules = load_specs()
    check_secrets(providers)
    snapshot = compile_config(
        providers,
        rules,
        version=version,
        own_port=own_port(),
        environ=access.key_environ(),  # only allowed names: a stored name outside them sends nothing
        max_output_tokens=catalog.max_output_tokens,
        model_options=catalog.model_options,
    )
    # Every key a provider has is redacted wherever it might be echoed (proxy/security/redact.py).
    keys = [os.environ.get(p.api_key_env, "") if p.api_key_env else p.api_key_secret for p in providers]
    keys += [v for p in providers for v in redact.header_secrets(p.extra_headers)]
    redact.set_secrets("providers", keys)
    for p in providers:
        if p.api_key_env and p.api_key_env not in os.environ:
            logger.warning("provider %s: environment variable %s is not set", p.name, p.api_key_env)
    return snapshot


def read_version() -> int:
    from proxy.models import ConfigVersion

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT MAX(version) FROM {ConfigVersion._meta.db_table}")
        row = cursor.fetchone()
    return int(row[0] or 0) if row else 0


# --- the per-process snapshot ----------------------------------------------------------------------

_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="switchboard-config")
_lock = threading.Lock()
_snapshot: Snapshot | None = None
_waiting: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[Snapshot]]] = []
_scheduled = False
# The longest a request waits for the version read on the config thread (which normally answers in well
# under a millisecond) before the last configuration serves it anyway.
CONFIG_WAIT_S = 0.25
_last_stale_log = 0.0
_check_started = 0.0  # time.monotonic() when the pending config-thread check was submitted


def invalidate() -> None:
    """Drop this process's snapshot: the next decision reloads (other processes see the version bump)."""
    global _snapshot
    _snapshot = None


def current_snapshot_sync() -> Snapshot:
    """Check the version and reload when it changed (sync; runs on the config thread)."""
    global _snapshot
    try:
        version = read_version()
    except Exception:
        if _snapshot is None:
            raise
        logger.exception("reading the configuration version failed; serving the last configuration")
        connection.close()  # a broken connection is reopened on the next check
        return _snapshot
    snapshot = _snapshot
    if snapshot is None or snapshot.version != version:
        clientkeys.reload()  # keys made or revoked bump the version too; applied even if the rules are bad
        try:
            snapshot = build_snapshot(version)
        except ConfigError as exc:
            # Only a hand-edited database gets here: config_edit() refuses invalid configurations.
            if _snapshot is None:
                raise
            logger.error(
                "configuration version %s is invalid, still serving %s: %s", version, _snapshot.version, exc
            )
            return _snapshot
        _snapshot = snapshot
    return snapshot


def _check_batch() -> None:
    """One version check answering every request that was waiting when it started."""
    global _scheduled
    with _lock:
        batch = list(_waiting)
        _waiting.clear()
        _scheduled = False
    try:
        result: Snapshot | BaseException = current_snapshot_sync()
    except BaseException as exc:  # handed to the waiting requests
        result = exc
    for loop, future in batch:
        loop.call_soon_threadsafe(_settle, future, result)


def _settle(future: asyncio.Future[Snapshot], result: Snapshot | BaseException) -> None:
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


async def snapshot() -> Snapshot:
    """The configuration as of now: one cheap version read per call, never a long wait."""
    current = _snapshot
    if current is not None and _direct_reads:
        version = _read_version_direct()
        if version is not None and version == current.version:
            return current
        if version is None and _direct_reads:  # SQLite that cannot be read right now
            _schedule_check(None)
            _note_stale("the database cannot be read")
            return current
    if current is not None and _scheduled and time.monotonic() - _check_started > CONFIG_WAIT_S:
        # A check hangs (a database that accepts connections and answers nothing): don't queue behind it.
        _note_stale("the configuration version read is hanging")
        return current
    future = _schedule_check(asyncio.get_running_loop())
    assert future is not None
    if current is None:
        return await future  # nothing to serve yet: the first request waits for the configuration
    try:
        return await asyncio.wait_for(asyncio.shield(future), CONFIG_WAIT_S)
    except TimeoutError:
        _note_stale(f"the configuration version did not come back within {CONFIG_WAIT_S} s")
        return current


def _note_stale(why: str) -> None:
    global _last_stale_log
    now = time.monotonic()
    if now - _last_stale_log > 10:  # once per 10 s while it lasts, not once per request
        _last_stale_log = now
        version = _snapshot.version if _snapshot else None
        logger.warning("%s: serving the last configuration (version %s)", why, version)


def _schedule_check(loop: asyncio.AbstractEventLoop | None) -> asyncio.Future[Snapshot] | None:
    """Check (and reload) on the config thread; concurrent callers share one check. With a loop, a
    future for its result; without, the check only refreshes the snapshot."""
    global _scheduled, _check_started
    future: asyncio.Future[Snapshot] | None = None
    with _lock:
        if loop is not None:
            future = loop.create_future()
            _waiting.append((loop, future))
        submit = not _scheduled
        _scheduled = True
        if submit:
            _check_started = time.monotonic()
    if submit:
        _executor.submit(_check_batch)
    return future


# SQLite: the version is read on the event loop itself through a plain sqlite3 connection (~10 us,
# measured; WAL readers never wait for the writer), which is cheaper than any thread hop (~150-300 us).
# Other databases go through the config thread. The connection is per thread: sqlite3 objects are not
# shared between threads.
_direct_reads = True
_local = threading.local()


def _sqlite_target() -> str | None:
    from django.db import connections

    db = connections["default"]
    if db.vendor != "sqlite":
        return None
    name = str(db.settings_dict["NAME"])
    if name.startswith("file:"):
        return name  # Django's shared in-memory test database, already a URI
    if not name or name == ":memory:":
        return None
    return "file:" + urllib.parse.quote(name) + "?mode=rw"


def _read_version_direct() -> int | None:
    """The version via this thread's own sqlite3 connection; None when that is not possible."""
    global _direct_reads
    reader = getattr(_local, "reader", None)
    try:
        if reader is None:
            target = _sqlite_target()
            if target is None:
                _direct_reads = False  # not SQLite: always use the config thread
                return None
            # timeout 0: this runs on the event loop, so a locked database fails the read at once
            # (the last configuration serves) instead of holding every request behind it.
            reader = sqlite3.connect(
                target, uri=True, timeout=0, isolation_level=None, check_same_thread=False
            )
            _local.reader = reader
        from proxy.models import ConfigVersion

        # fetchall, not fetchone: it finishes the statement, so no read transaction stays open to hold
        # back WAL checkpoints (or, without WAL, block writers).
        rows = reader.execute(f"SELECT MAX(version) FROM {ConfigVersion._meta.db_table}").fetchall()
    except sqlite3.Error as exc:
        logger.debug("direct configuration version read failed: %s", exc)
        _local.reader = None
        return None
    return int(rows[0][0] or 0) if rows else 0


# --- the interface of the hot path -----------------------------------------------------------------


async def checked_snapshot() -> Snapshot:
    """The current snapshot (client keys refreshed with it); TranslationError if the configuration is bad."""
    try:
        return await snapshot()
    except ConfigError as exc:
        raise TranslationError(
            f"routing configuration is invalid: {exc}", error_type="api_error", status=500
        ) from exc


async def decide(body: MessagesRequest, headers: dict[str, str], *, snap: Snapshot | None = None) -> Decision:
    """Where this request goes (`headers`: lower-case names). TranslationError when no rule serves it.
    `snap`: a snapshot this request already read (one version check per request, not two)."""
    if snap is None:
        snap = await checked_snapshot()
    counter: TokenCounter | None = tokens.count_tokens if needs_token_count(snap) else None
    decision = choose_target(snap, body, headers, count_tokens=counter)
    if decision is None or not decision.targets:
        raise TranslationError(f"no routing rule serves model '{body.get('model', '')}' (no default rule)")
    return decision


async def model_ids() -> list[str]:
    """The claude-… ids for GET /v1/models: every alias, and the exact claude ids rules answer to."""
    return list((await snapshot()).model_ids)


async def models() -> list[tuple[str, str]]:
    """(id, display_name) for GET /v1/models, in the listed order; the name says where the id routes."""
    snap = await snapshot()
    return [(model_id, snap.model_names.get(model_id, model_id)) for model_id in snap.model_ids]


# --- editing ---------------------------------------------------------------------------------------


def bump_version() -> int:
    """Mark the configuration changed (inside the edit's transaction): every process reloads."""
    from proxy.models import ConfigVersion

    if not ConfigVersion.objects.update(version=F("version") + 1):
        ConfigVersion.objects.create(version=1)
    return read_version()


@contextlib.contextmanager
def config_edit(*, actor: str = "") -> Iterator[None]:
    """Edit providers and rules inside this block; on exit the result is validated as a whole.

    Invalid: ConfigError is raised and the transaction rolls back (the previous configuration keeps
    serving). Valid: the version is bumped in the same transaction, so every process reloads. Changes of
    where a provider's requests and keys go are logged with `actor` (who made the edit).
    """
    with transaction.atomic():
        before = _key_destinations()
        yield
        providers, rules = load_specs()
        validate_config(providers, rules)
        bump_version()
        changes = _destination_changes(before, _key_destinations())
    invalidate()
    for level, change in changes:
        logger.log(level, "configuration: %s (by %s)", change, actor or "this process")


Destination = tuple[str, str, str, bool, bytes]  # dialect, base URL, key variable, stored key?, headers


def _key_destinations() -> dict[str, Destination]:
    """Per provider: what decides where its requests and keys go."""
    from proxy.models import Provider

    rows = Provider.objects.values_list(
        "name", "dialect", "base_url", "api_key_env", "api_key_secret", "extra_headers"
    )
    return {
        name: (dialect, url, env, bool(secret), orjson.dumps(headers or {}, option=orjson.OPT_SORT_KEYS))
        for name, dialect, url, env, secret, headers in rows
    }


def _forwards_keys(dialect: str) -> bool:
    known = DIALECTS.get(dialect)
    return known is not None and known.capabilities.forwards_client_credentials


def _destination_changes(
    before: dict[str, Destination], after: dict[str, Destination]
) -> list[tuple[int, str]]:
    """(log level, words) per change, without secrets. A passthrough provider forwards the client's own
    key: said so. A new provider is routine (the seed, an import); a changed destination is a warning."""
    changes = []
    for name, (dialect, url, env, secret, headers) in after.items():
        old = before.get(name)
        forwards = " (passthrough: it receives the clients' own API keys)" if _forwards_keys(dialect) else ""
        if old is None:
            if before:  # the first configuration (the seed, a first import) says what it made itself
                changes.append((logging.INFO, f"provider '{name}' added: base URL {url}{forwards}"))
            continue
        said = []
        if old[0] != dialect:
            said.append(f"dialect changed from {old[0]} to {dialect}")
        if old[1] != url:
            said.append(f"base URL changed from {old[1]} to {url}")
        if old[2] != env or old[3] != secret:
            said.append(
                f"key source changed (env {old[2] or '-'} -> {env or '-'}, stored key {old[3]} -> {secret})"
            )
        if old[4] != headers:
            said.append("extra headers changed")
        if said:
            changes.append((logging.WARNING, f"provider '{name}': {'; '.join(said)}{forwards}"))
    changes += [(logging.INFO, f"provider '{name}' removed") for name in before.keys() - after.keys()]
    return changes

"""Who may use the API: client keys, the loopback rule, and per-key limits.

Keys come from SWITCHBOARD_API_KEYS and from the dashboard's Keys page (stored as SHA-256 digests). The
check is a digest lookup in an in-memory table (~1 us): the table is rebuilt on the config thread
whenever the routing snapshot sees the configuration version change (proxy/routing/snapshot.py), and making or
revoking a key bumps that version, so every process applies it to its next request. No database query
per request.

A client presents its key as `x-switchboard-key`, `Authorization: Bearer`, or `x-api-key`. The header
that carried our key is not forwarded; any other credential is the client's own and goes to a route
that forwards the client's key (Anthropic passthrough), never stored. So a Claude subscriber keeps
their OAuth token in Authorization and adds ours with ANTHROPIC_CUSTOM_HEADERS="x-switchboard-key: …";
an API-key user puts ours in ANTHROPIC_AUTH_TOKEN (Bearer) and theirs in ANTHROPIC_API_KEY.

With no key configured at all, only loopback clients are served (the peer address of the socket).

Limits are per key and per process: requests in flight, and requests per minute (a token bucket that
holds a minute's worth). A refusal is Anthropic's 429 rate_limit_error with retry-after.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings

from proxy.security import redact
from proxy.translate.base import TranslationError
from proxy.translate.types import ErrorType

logger = logging.getLogger(__name__)

OWN_HEADER = "x-switchboard-key"
KEY_PREFIX = "sk-sb-"  # key-shaped (proxy/security/redact.py catches it anywhere it is echoed)
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


class KeyRefused(TranslationError):
    """401 authentication_error or 429 rate_limit_error, in Anthropic's words."""

    def __init__(
        self,
        message: str,
        *,
        error_type: ErrorType,
        status: int,
        retry_after: str | None = None,
        label: str = "",
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message, error_type=error_type, status=status)
        self.headers = headers or {}  # Anthropic's anthropic-ratelimit-requests-* on a rate refusal
        self.retry_after = retry_after
        self.label = label  # the key's, when it was valid and over a limit


@dataclass(frozen=True, slots=True)
class KeyEntry:
    label: str
    max_concurrent: int  # 0: no limit
    per_minute: int  # 0: no limit


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class Admission:
    """One admitted request: holds its key's slot until `release()` (the exchange finished)."""

    __slots__ = ("label", "released")

    def __init__(self, label: str) -> None:
        self.label = label
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            left = _in_flight.get(self.label, 1) - 1
            if left > 0:
                _in_flight[self.label] = left
            else:
                _in_flight.pop(self.label, None)


_table: dict[bytes, KeyEntry] = {}
# Revoked dashboard keys: refused by name, even when no key is left in force and loopback is open
# (someone revoking a key expects it to stop working, whoever holds it).
_revoked: dict[bytes, KeyEntry] = {}
_in_flight: dict[str, int] = {}  # label -> requests in flight (event loop only)
_buckets: dict[str, _Bucket] = {}


def digest(key: str) -> bytes:
    # A plain hash, not a slow KDF: our keys carry 256 random bits (nothing to brute-force), and the check
    # runs on every request. Environment keys are never stored at all.
    return hashlib.sha256(key.encode()).digest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


_LABEL = re.compile(r"[A-Za-z0-9_.-]{1,40}")


def env_keys() -> list[tuple[str, str]]:
    """(label, key) for each SWITCHBOARD_API_KEYS entry: `label:key`, or a bare key labelled `env-N` by
    its position (never by a hash of it: a short fingerprint of a weak key would give it away)."""
    out = []
    for n, entry in enumerate(settings.CLIENT_API_KEYS, start=1):
        label, sep, key = entry.partition(":")
        if sep and key.strip() and _LABEL.fullmatch(label.strip()):
            out.append((label.strip(), key.strip()))
        else:
            out.append((f"env-{n}", entry))
    return out


def reload() -> None:
    """Rebuild the table from the settings and the database (sync: the config thread, or a test)."""
    global _table, _revoked
    from proxy.models import ClientKey

    default = KeyEntry("", settings.KEY_MAX_CONCURRENT, settings.KEY_REQUESTS_PER_MINUTE)
    table = {
        digest(key): KeyEntry(label, default.max_concurrent, default.per_minute) for label, key in env_keys()
    }
    revoked: dict[bytes, KeyEntry] = {}
    for row in ClientKey.objects.only(
        "label", "digest", "max_concurrent", "requests_per_minute", "revoked_at"
    ):
        entry = KeyEntry(
            row.label,
            default.max_concurrent if row.max_concurrent is None else row.max_concurrent,
            default.per_minute if row.requests_per_minute is None else row.requests_per_minute,
        )
        (table if row.revoked_at is None else revoked)[bytes.fromhex(row.digest)] = entry
    _table, _revoked = table, revoked
    redact.set_secrets("client keys", [key for _, key in env_keys()])


def keys_configured() -> bool:
    """Is any client key in force (environment or dashboard)? For the dashboard's login check: sync, at
    most one indexed query, and fresh (a key made in another process counts at once)."""
    from proxy.models import ClientKey

    return bool(settings.CLIENT_API_KEYS) or ClientKey.objects.filter(revoked_at=None).exists()


def presented_key_valid(headers: dict[str, str]) -> bool:
    """A client key in force is among these (lower-case) headers: for /api/ scripts when the dashboard
    needs a login. Sync and fresh (at most one indexed query), like keys_configured()."""
    from proxy.models import ClientKey

    presented = [headers.get(OWN_HEADER, ""), headers.get("x-api-key", "")]
    scheme, _, token = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer":
        presented.append(token)
    digests = {digest(key.strip()) for key in presented if key.strip()}
    if not digests:
        return False
    if digests & {digest(key) for _, key in env_keys()}:
        return True
    return ClientKey.objects.filter(digest__in=[d.hex() for d in digests], revoked_at=None).exists()


def is_loopback(address: str) -> bool:
    if address in _LOOPBACK:
        return True
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:  # a dual-stack socket's ::ffff:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def admit(headers: dict[str, str], *, peer: str) -> tuple[Admission | None, dict[str, str]]:
    """Let a request in or raise KeyRefused. Returns its admission (None when no keys are configured)
    and the headers to go on with: without the one that carried our key."""
    table = _table
    if not table:
        if _revoked:
            _refuse_if_revoked(headers)
        if is_loopback(peer):
            return None, headers
        raise KeyRefused(
            f"no client keys are configured, so only clients on this machine are served ({peer} is not); "
            "set SWITCHBOARD_API_KEYS or make a key on the dashboard's Keys page",
            error_type="authentication_error",
            status=401,
        )
    name, entry = _find(table, headers)
    if entry is None:
        if _revoked:
            _refuse_if_revoked(headers)
        raise KeyRefused(
            "invalid x-api-key" if name else "x-api-key header is required",
            error_type="authentication_error",
            status=401,
        )
    _check_limits(entry)
    _in_flight[entry.label] = _in_flight.get(entry.label, 0) + 1
    rest = {k: v for k, v in headers.items() if k != name}
    return Admission(entry.label), rest


def _find(table: dict[bytes, KeyEntry], headers: dict[str, str]) -> tuple[str, KeyEntry | None]:
    """(header name that carried a key, its entry). A dedicated header is the only one looked at."""
    own = headers.get(OWN_HEADER)
    if own is not None:
        return OWN_HEADER, table.get(digest(own.strip()))
    presented = ""
    auth = headers.get("authorization")
    if auth is not None:
        presented = "authorization"
        scheme, _, token = auth.strip().partition(" ")
        if scheme.lower() == "bearer" and (entry := table.get(digest(token.strip()))):
            return "authorization", entry
    api_key = headers.get("x-api-key")
    if api_key is not None:
        presented = "x-api-key"
        if entry := table.get(digest(api_key.strip())):
            return "x-api-key", entry
    return presented, None


def _refuse_if_revoked(headers: dict[str, str]) -> None:
    _, entry = _find(_revoked, headers)
    if entry is not None:
        raise KeyRefused(
            f"invalid x-api-key: key '{entry.label}' was revoked",
            error_type="authentication_error",
            status=401,
        )


def _check_limits(entry: KeyEntry) -> None:
    if entry.max_concurrent and _in_flight.get(entry.label, 0) >= entry.max_concurrent:
        raise KeyRefused(
            f"key '{entry.label}': {entry.max_concurrent} requests in flight, its limit; "
            "retry when one finishes",
            error_type="rate_limit_error",
            status=429,
            retry_after="1",
            label=entry.label,
        )
    if entry.per_minute:
        now = time.monotonic()
        rate = entry.per_minute / 60.0
        bucket = _buckets.get(entry.label)
        if bucket is None:
            bucket = _buckets[entry.label] = _Bucket(float(entry.per_minute), now)
        bucket.tokens = min(float(entry.per_minute), bucket.tokens + (now - bucket.at) * rate)
        bucket.at = now
        if bucket.tokens < 1.0:
            wait = math.ceil((1.0 - bucket.tokens) / rate)
            full = datetime.fromtimestamp(time.time() + (entry.per_minute - bucket.tokens) / rate, UTC)
            raise KeyRefused(
                f"key '{entry.label}': over its limit of {entry.per_minute} requests per minute",
                error_type="rate_limit_error",
                status=429,
                retry_after=str(max(1, wait)),
                label=entry.label,
                headers={  # as Anthropic names them; reset: when the limit is whole again (RFC 3339)
                    "anthropic-ratelimit-requests-limit": str(entry.per_minute),
                    "anthropic-ratelimit-requests-remaining": "0",
                    "anthropic-ratelimit-requests-reset": full.isoformat(timespec="seconds").replace(
                        "+00:00", "Z"
                    ),
                },
            )
        bucket.tokens -= 1.0

"""Who may reach this server, and when a dashboard login is required: the security edge in one place.

Safe by default: only loopback names (and the address `serve --host` listens on) are accepted as Host,
so a DNS-rebinding page cannot reach the dashboard, the API or the live feed under its own name. A login
is required as soon as the service is reachable from elsewhere or client keys are configured. SECURITY.md
describes the threat model.
"""

from __future__ import annotations

import fnmatch
import functools
import ipaddress
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseForbidden,
    HttpResponseRedirect,
)
from django.http.request import split_domain_port, validate_host

from proxy.http.errors import error_response

logger = logging.getLogger(__name__)

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
# Addresses that mean "every interface": not a name a client can use in its Host header.
_WILDCARD_BINDS = frozenset({"0.0.0.0", "::", "[::]", ""})


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1), with or without [brackets]."""
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def served_host() -> str:
    """The address `manage.py serve` listens on (it sets SWITCHBOARD_HOST; 127.0.0.1 when not serving)."""
    return os.environ.get("SWITCHBOARD_HOST", "127.0.0.1")


def host_name(host: str) -> str:
    """An address as it appears in a Host header: IPv6 literals in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def extra_hosts() -> list[str]:
    """The names SWITCHBOARD_ALLOWED_HOSTS adds (comma separated; Django's syntax, e.g. `.example.com`)."""
    return [h.strip() for h in os.environ.get("SWITCHBOARD_ALLOWED_HOSTS", "").split(",") if h.strip()]


def allowed_hosts(*, host: str | None = None, extra: Iterable[str] | None = None) -> list[str]:
    """Loopback names, the served address and SWITCHBOARD_ALLOWED_HOSTS: settings.ALLOWED_HOSTS."""
    host = served_host() if host is None else host
    names = [*LOOPBACK_HOSTS]
    if host not in _WILDCARD_BINDS:
        names.append(host_name(host))
    names += extra_hosts() if extra is None else list(extra)
    return list(dict.fromkeys(names))


def listen_on(host: str, port: int) -> None:
    """`serve` learns its address after settings are loaded: record it and accept it as a Host."""
    os.environ["SWITCHBOARD_HOST"] = host
    os.environ["SWITCHBOARD_PORT"] = str(port)
    settings.ALLOWED_HOSTS = allowed_hosts(host=host)
    _accepted_hosts.clear()


def exposure() -> str:
    """Why the service is reachable beyond loopback, in words ("" when it is not): it listens on another
    interface, or a non-loopback name is allowed (a reverse proxy in front)."""
    if not is_loopback(served_host()):
        return f"--host {served_host()}"
    others = [h for h in extra_hosts() if h == "*" or not is_loopback(h.lstrip("."))]
    if others:
        return f"SWITCHBOARD_ALLOWED_HOSTS={','.join(others)}"
    return ""


def exposed() -> bool:
    return bool(exposure())


def client_keys_configured() -> bool:
    """Client API keys are configured, in the environment or on the Keys page (sync: one indexed query)."""
    from proxy.security import clientkeys

    return clientkeys.keys_configured()


def login_required() -> bool:
    """The one decision: does the dashboard (pages, JSON, live feed, edits) need a logged-in user?"""
    return settings.REQUIRE_LOGIN or exposed() or client_keys_configured()


def startup_problems() -> list[str]:
    """Why `serve` must refuse to start as configured (empty: fine). Each says what to set."""
    problems = []
    where = exposure()
    if where and not client_keys_configured():
        problems.append(
            f"reachable beyond loopback ({where}) with no client API keys: anyone who can reach the port "
            "could use your backends and read every recorded prompt. Set SWITCHBOARD_API_KEYS=<key>[,<key>] "
            "(clients send one as x-api-key / ANTHROPIC_AUTH_TOKEN), or listen on 127.0.0.1."
        )
    if where and settings.DEBUG:
        problems.append(
            "SWITCHBOARD_DEBUG=true shows settings and source code on error pages: "
            "not allowed when listening beyond loopback."
        )
    return problems


# --- Host and Origin checks for the paths that skip Django's middleware -----------------------------

# Host header values seen and accepted, so the /v1/ path pays one dict lookup per request. Only accepted
# values are kept (a page cycling through names cannot grow it past the allowed names x ports it uses).
_accepted_hosts: dict[bytes, bool] = {}
_refused_logged: set[str] = set()
_MAX_CACHED = 4096


def host_allowed(raw: bytes) -> bool:
    """Whether a raw Host header value names this server (Django's ALLOWED_HOSTS rules)."""
    if raw in _accepted_hosts:
        return True
    try:
        domain, _port = split_domain_port(raw.decode("ascii"))
    except UnicodeDecodeError:
        return False
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    if len(_accepted_hosts) < _MAX_CACHED:
        _accepted_hosts[raw] = True
    return True


@receiver(setting_changed)
def _forget_accepted_hosts(*, setting: str, **kwargs: Any) -> None:
    """override_settings(ALLOWED_HOSTS=...) in tests: accept by the new list, not the cache."""
    if setting == "ALLOWED_HOSTS":
        _accepted_hosts.clear()


def log_refused_host(host: str, path: str) -> None:
    """Log a refused Host once per name: a rebinding page retrying must not flood the log."""
    if host in _refused_logged or len(_refused_logged) > 1000:
        return
    _refused_logged.add(host)
    logger.warning(
        "refused a request for Host %r (%s): not an allowed host; add it to SWITCHBOARD_ALLOWED_HOSTS "
        "if clients really use that name",
        host[:200],
        path[:200],
    )


def origin_allowed(origin: str, host: str) -> bool:
    """A browser Origin is this server itself (same host:port as the Host it asked for) or trusted.

    `Origin: null` (sandboxed frames, file: pages) is never this server.
    """
    if origin in settings.CSRF_TRUSTED_ORIGINS:
        return True
    scheme, sep, netloc = origin.partition("://")
    return bool(sep) and scheme in ("http", "https") and netloc.lower() == host.lower()


def refused_host_message(host: str) -> str:
    return (
        f"Host '{host[:200]}' is not served here (allowed: {', '.join(settings.ALLOWED_HOSTS)}); "
        "set SWITCHBOARD_ALLOWED_HOSTS to add a name"
    )


# --- which environment variables a provider may read its key from -----------------------------------


def key_env_problem(name: str) -> str | None:
    """Why a provider may not read its key from environment variable `name` (None: it may).

    Without this, whoever can edit a provider could point it at any variable the process sees (a cloud
    credential, SWITCHBOARD_SECRET_KEY) and have it sent to a base URL of their choosing.
    """
    if not name:
        return None
    if name.upper().startswith("SWITCHBOARD_"):
        return f"'{name}': Switchboard's own settings are never sent to a backend"
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in settings.API_KEY_ENV_ALLOWED):
        return None
    return (
        f"'{name}' is not an allowed key variable (allowed: {', '.join(settings.API_KEY_ENV_ALLOWED)}; "
        "the operator sets SWITCHBOARD_API_KEY_ENVS to allow others)"
    )


def key_environ() -> dict[str, str]:
    """The environment variables provider keys may come from (what routing reads keys from)."""
    return {k: v for k, v in os.environ.items() if key_env_problem(k) is None}


# --- the dashboard side (Django middleware and a view decorator) ------------------------------------

# Reachable without a login: the login page itself and the static files it needs, and the probes.
_OPEN_PATHS = ("/login", "/logout", "/static/", "/healthz", "/readyz")
# Scripts reach these with a client key instead of a login (answered with an Anthropic error body).
_KEY_PATHS = ("/api/", "/metrics")


def client_key_valid(request: HttpRequest) -> bool:
    """The request carries a client API key in force (x-switchboard-key, x-api-key or Authorization:
    Bearer): scripts reading /api/ when a login is required."""
    from proxy.security import clientkeys

    return clientkeys.presented_key_valid({k.lower(): v for k, v in request.headers.items()})


class HostMiddleware:
    """Refuse foreign Host headers before anything else runs (static files included). First in the
    chain; on /api/ the refusal is an Anthropic error body, elsewhere plain text."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        raw_host = request.META.get("HTTP_HOST", "")
        if not raw_host or host_allowed(raw_host.encode("latin-1")):
            return self.get_response(request)
        log_refused_host(raw_host, request.path)
        if request.path.startswith("/api/"):
            return error_response("invalid_request_error", refused_host_message(raw_host), status=400)
        return HttpResponseBadRequest(refused_host_message(raw_host), content_type="text/plain")


class LoginMiddleware:
    """When a login is required, let through only logged-in users (and, on /api/, client keys).
    After AuthenticationMiddleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        refusal = self.refusal(request)
        return refusal if refusal is not None else self.get_response(request)

    def refusal(self, request: HttpRequest) -> HttpResponse | None:
        # Open paths first: /readyz must answer while the database (which login_required() asks) is down.
        if request.path.startswith(_OPEN_PATHS) or not login_required() or request.user.is_authenticated:
            return None
        if request.path.startswith(_KEY_PATHS):
            if client_key_valid(request):
                return None
            return error_response(
                "authentication_error",
                "log in to the dashboard, or send a client API key (x-api-key)",
                status=401,
            )
        if not request.headers.get("HX-Request"):
            return HttpResponseRedirect(_login_url(request.get_full_path()))
        # htmx would swap a redirect's login form into the page: send the whole window there, and back
        # to the page it was on afterwards (not to the fragment it asked for).
        current = urlsplit(request.headers.get("HX-Current-URL", ""))
        response = HttpResponse(status=401)
        response["HX-Redirect"] = _login_url(
            (current.path or "/") + (f"?{current.query}" if current.query else "")
        )
        return response


def _login_url(next_path: str) -> str:
    return f"{settings.LOGIN_URL}?{urlencode({'next': next_path})}"


def is_admin(request: HttpRequest) -> bool:
    """May change where requests (and keys) go: anyone on a loopback-only server, else a staff user."""
    if not login_required():
        return True
    user = request.user
    return bool(user.is_authenticated and user.is_active and getattr(user, "is_staff", False))


def context(request: HttpRequest) -> dict[str, Any]:
    """Template context: whether this user may change routing (the routes page hides its edit controls)."""
    return {"can_edit_routes": functools.partial(is_admin, request), "login_required": login_required}


def admin_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Changes (any method but GET/HEAD) through this view need an admin when a login is required."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method not in ("GET", "HEAD") and not is_admin(request):
            logger.warning("refused a configuration change by %r: not an admin", request.user.get_username())
            return HttpResponseForbidden(
                "Only an admin (a staff user) can change providers and rules.", content_type="text/plain"
            )
        return view(request, *args, **kwargs)

    return wrapped


def actor(request: HttpRequest) -> str:
    """Who made a change, for the log."""
    user = getattr(request, "user", None)
    name = user.get_username() if user is not None and user.is_authenticated else "unauthenticated"
    return f"{name} from {request.META.get('REMOTE_ADDR', '?')}"


class WebsocketGuard:
    """ASGI wrapper for the live feed: the Host must be allowed, the Origin must be this server (a page
    elsewhere, or `Origin: null`, cannot read the live rows), and a login is needed when one is required.
    Runs inside channels' AuthMiddlewareStack, which has already resolved scope["user"]."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        from channels.db import database_sync_to_async

        # login_required() may ask the database whether client keys exist: not on the event loop.
        problem = await database_sync_to_async(self.problem)(scope)
        if problem is None:
            return await self.app(scope, receive, send)
        logger.warning("refused a live-feed websocket: %s", problem)
        await receive()  # websocket.connect
        await send({"type": "websocket.close", "code": 4403})  # before accept: the handshake gets 403

    def problem(self, scope: dict[str, Any]) -> str | None:
        headers = dict(scope.get("headers", []))
        host = headers.get(b"host", b"").decode("latin-1")
        origin = headers.get(b"origin", b"").decode("latin-1")
        if not host_allowed(host.encode("latin-1")):
            return f"Host {host[:200]!r} is not allowed"
        if not origin_allowed(origin, host):
            return f"Origin {origin[:200]!r} is not this server (Host {host[:200]!r})"
        user = scope.get("user")
        if login_required() and not (user is not None and user.is_authenticated):
            return "not logged in"
        return None


def ensure_first_admin() -> str | None:
    """When no dashboard user exists yet, create the superuser `admin` with a random password and return
    it (to be shown once); None when a user already exists."""
    import secrets

    from django.contrib.auth.models import User

    if User.objects.exists():
        return None
    password = secrets.token_urlsafe(12)
    User.objects.create_superuser("admin", password=password)
    logger.info("created the first dashboard user 'admin'")
    return password

"""The only settings module. Production differs from development only by its environment.

Defaults start the service with no environment at all: SQLite in the data directory and the
in-memory channel layer. DATABASE_URL and REDIS_URL switch to Postgres and channels_redis.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from proxy.security import access

BASE_DIR = Path(__file__).resolve().parent.parent


def envstr(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def envbool(name: str, default: str) -> bool:
    value = os.environ.get(name, default).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"{name}={value!r}: use true or false")


def envnumber(name: str) -> float | None:
    """An optional positive number: unset, empty or 0 means no limit."""
    value = os.environ.get(name, "").strip()
    try:
        number = float(value) if value else 0.0
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={value!r}: expected a number") from exc
    if number < 0:
        raise ImproperlyConfigured(f"{name}={value!r}: must not be negative")
    return number or None


def envint(name: str, default: str) -> int:
    value = os.environ.get(name, default)
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={value!r}: expected an integer") from exc


DEBUG = envbool("SWITCHBOARD_DEBUG", "false")
DATA_DIR = Path(envstr("SWITCHBOARD_DATA_DIR", str(Path.home() / ".switchboard"))).expanduser()


def _secret_key() -> str:
    """SWITCHBOARD_SECRET_KEY, else a random key made once and kept in the data directory (0600): a key
    shipped in the source would let anyone sign what the dashboard trusts."""
    if key := envstr("SWITCHBOARD_SECRET_KEY"):
        return key
    path = DATA_DIR / "secret_key"
    key = secrets.token_urlsafe(50)
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        try:
            DATA_DIR.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            return path.read_text().strip()
        except OSError:  # a read-only home (DATABASE_URL in a container): this process's own key
            return key
        with os.fdopen(fd, "w") as f:
            f.write(key)
        return key


SECRET_KEY = _secret_key()
# Loopback names, the address `serve --host` listens on and SWITCHBOARD_ALLOWED_HOSTS (security/access.py).
ALLOWED_HOSTS = access.allowed_hosts()
CSRF_TRUSTED_ORIGINS = [o for o in envstr("SWITCHBOARD_CSRF_TRUSTED_ORIGINS", "").split(",") if o]
# Require a dashboard login even on loopback (e.g. behind a reverse proxy that rewrites Host).
REQUIRE_LOGIN = envbool("SWITCHBOARD_REQUIRE_LOGIN", "false")
# The environment variables a provider may read its key from (globs; SWITCHBOARD_* never).
API_KEY_ENV_ALLOWED = [p.strip() for p in envstr("SWITCHBOARD_API_KEY_ENVS", "*_API_KEY").split(",")
                       if p.strip()]  # fmt: skip

# The dashboard login: distinct cookie names (cookies are per host, not per port: other local apps
# share localhost), never readable by scripts, not sent on cross-site requests.
SESSION_COOKIE_NAME = "switchboard_session"
CSRF_COOKIE_NAME = "switchboard_csrftoken"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Strict"
# Behind a TLS reverse proxy (daphne takes the scheme from X-Forwarded-Proto): cookies only over https.
HTTPS = envbool("SWITCHBOARD_HTTPS", "false")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS
LOGIN_URL = "/login"
LOGIN_REDIRECT_URL = "/"

INSTALLED_APPS = [
    "daphne",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "template_partials",
    "proxy",
    "dashboard",
]

MIDDLEWARE = [
    # Refuses foreign Host headers (DNS rebinding) before anything else (proxy/security/access.py).
    "proxy.security.access.HostMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Asks for the login when one is required (proxy/security/access.py).
    "proxy.security.access.LoginMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "proxy.urls"
ASGI_APPLICATION = "proxy.asgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "proxy.security.access.context",
            ],
        },
    }
]


def _database() -> dict[str, object]:
    url = envstr("DATABASE_URL")
    if url:
        return dict(dj_database_url.parse(url, conn_max_age=600))
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(DATA_DIR / "switchboard.sqlite3"),
        # Persistent connections: the recorder's thread would otherwise reconnect for every batch.
        "CONN_MAX_AGE": None,
        # IMMEDIATE + WAL: the single recorder writer never stalls dashboard readers.
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            # Seconds the recorder's writer waits for a lock: only it writes, off the hot path.
            "timeout": envint("SWITCHBOARD_SQLITE_TIMEOUT", "20"),
            # 16 KB pages (set before the first table, so new databases only): an exchange holds ~100 KB of
            # bodies, so fewer overflow pages per row. bench/sqlite_pages.py: inserts ~30% less CPU and
            # wall time than with 4 KB pages; reads no slower.
            # journal_size_limit: once checkpointed and reused, the WAL is cut back to 32 MB; it otherwise
            # keeps for good the size of the largest transaction it ever held (60 MB after one 20 MB image).
            "init_command": "PRAGMA page_size=16384; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
            "PRAGMA journal_size_limit=33554432;",
            # sqlite3 keeps each cached prepared statement with a copy of its last bound values: with the
            # recorder's multi-row INSERTs (one statement per row count) that was up to 128 batches of
            # request bodies held for good (~100 MB after 4,000 exchanges, measured with memray).
            # Preparing a statement again costs microseconds.
            "cached_statements": 0,
        },
    }


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = envstr("REDIS_URL")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# No STATIC_ROOT: WhiteNoise serves straight from the app and project static dirs (no collectstatic step).
WHITENOISE_USE_FINDERS = True  # serve from app/static dirs without collectstatic

# Recorded prompts and tool outputs are hostile input: no inline script, nothing from elsewhere.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'", "ws:", "wss:"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    # Secrets never reach the log: configured keys and key-shaped strings are redacted (security/redact.py).
    "filters": {"redact": {"()": "proxy.security.redact.RedactingFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]}},
    "root": {"handlers": ["console"], "level": envstr("SWITCHBOARD_LOG_LEVEL", "WARNING")},
    "loggers": {"proxy": {"level": envstr("SWITCHBOARD_LOG_LEVEL", "INFO"), "propagate": True}},
}

# --- Switchboard ------------------------------------------------------------------------------
# Backend defaults, named as the popular single-file proxies name them. They seed the default
# route on first start; the routes editor owns the configuration after that.
OPENAI_API_KEY = envstr("OPENAI_API_KEY")
OPENAI_BASE_URL = envstr("OPENAI_BASE_URL", "")
GEMINI_API_KEY = envstr("GEMINI_API_KEY")  # alone (no OPENAI_*): seeds a Gemini default route
BIG_MODEL = envstr("BIG_MODEL", "")
MIDDLE_MODEL = envstr("MIDDLE_MODEL", "") or BIG_MODEL
SMALL_MODEL = envstr("SMALL_MODEL", "")
# Never ANTHROPIC_BASE_URL: users export it for Claude Code in the same shell, pointing at us.
ANTHROPIC_UPSTREAM_URL = envstr("SWITCHBOARD_ANTHROPIC_URL", "https://api.anthropic.com")
UPSTREAM_CONNECT_TIMEOUT = float(envstr("SWITCHBOARD_CONNECT_TIMEOUT", "10"))
UPSTREAM_READ_TIMEOUT = float(envstr("SWITCHBOARD_READ_TIMEOUT", "600"))
RECORD_EXCHANGES = envbool("SWITCHBOARD_RECORD", "true")
# Exchanges that may wait in memory for the database (compressed, ~20-50 KB each) while it is
# unavailable; past this, finished exchanges are counted as dropped, never silently.
RECORD_BACKLOG = envint("SWITCHBOARD_RECORD_BACKLOG", "2000")
# Seconds requests in flight get to finish on SIGTERM before they end with an error: inside the 10 s
# `docker stop` and Kubernetes allow by default (leaving time to write the record).
SHUTDOWN_GRACE = float(envstr("SWITCHBOARD_SHUTDOWN_GRACE", "8"))
# Request bodies above this are refused with request_too_large (Anthropic's own cap is 32 MB).
MAX_REQUEST_BYTES = envint("SWITCHBOARD_MAX_REQUEST_BYTES", str(32 * 1024 * 1024))
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BYTES + 1024

# Client keys: a client presents one as x-api-key, `Authorization: Bearer` or x-switchboard-key. With
# none here and none made in the dashboard (Keys), only loopback clients are served (security/clientkeys.py).
CLIENT_API_KEYS = [k.strip() for k in envstr("SWITCHBOARD_API_KEYS", "").split(",") if k.strip()]
# Per key, per process; 0 = no limit. A dashboard key may set its own.
KEY_MAX_CONCURRENT = envint("SWITCHBOARD_KEY_MAX_CONCURRENT", "0")
KEY_REQUESTS_PER_MINUTE = envint("SWITCHBOARD_KEY_REQUESTS_PER_MINUTE", "0")
# Fernet keys for secrets stored in the database (first encrypts; all decrypt). Empty: a key is made
# once in DATA_DIR/encryption.key (proxy/security/crypto.py).
ENCRYPTION_KEYS = [k.strip() for k in envstr("SWITCHBOARD_ENCRYPTION_KEY", "").split(",") if k.strip()]
# Retention (recording/retention.py): keep this many days and/or GB of exchanges; unset = keep everything.
# The dashboard's Data page overrides both once edited there. The recorder prunes every PRUNE_INTERVAL_S.
_days = envnumber("SWITCHBOARD_RETENTION_DAYS")
RETENTION_DAYS = int(_days) if _days else None
RETENTION_GB = envnumber("SWITCHBOARD_RETENTION_GB")
PRUNE_INTERVAL_S = envnumber("SWITCHBOARD_PRUNE_INTERVAL") or 3600.0

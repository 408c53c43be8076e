"""The only settings module. Production differs from development only by its environment.

Defaults start the service with no environment at all: SQLite in the data directory and the
in-memory channel layer. DATABASE_URL and REDIS_URL switch to Postgres and channels_redis.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

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
# A local tool: the key only signs sessions/CSRF for the dashboard. Override it when exposed.
SECRET_KEY = envstr("SWITCHBOARD_SECRET_KEY", "switchboard-local-only-change-me-when-exposed")
ALLOWED_HOSTS = [h for h in envstr("SWITCHBOARD_ALLOWED_HOSTS", "*").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in envstr("SWITCHBOARD_CSRF_TRUSTED_ORIGINS", "").split(",") if o]

DATA_DIR = Path(envstr("SWITCHBOARD_DATA_DIR", str(Path.home() / ".switchboard"))).expanduser()

INSTALLED_APPS = [
    "daphne",
    "django.contrib.contenttypes",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "template_partials",
    "proxy",
    "dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
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
            "timeout": 20,
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
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": envstr("SWITCHBOARD_LOG_LEVEL", "WARNING")},
    "loggers": {"proxy": {"level": envstr("SWITCHBOARD_LOG_LEVEL", "INFO"), "propagate": True}},
}

# --- Switchboard ------------------------------------------------------------------------------
# Backend defaults, named as the popular single-file proxies name them. They seed the default
# route on first start; the routes editor owns the configuration after that.
OPENAI_API_KEY = envstr("OPENAI_API_KEY")
OPENAI_BASE_URL = envstr("OPENAI_BASE_URL", "")
BIG_MODEL = envstr("BIG_MODEL", "")
MIDDLE_MODEL = envstr("MIDDLE_MODEL", "") or BIG_MODEL
SMALL_MODEL = envstr("SMALL_MODEL", "")
# Never ANTHROPIC_BASE_URL: users export it for Claude Code in the same shell, pointing at us.
ANTHROPIC_UPSTREAM_URL = envstr("SWITCHBOARD_ANTHROPIC_URL", "https://api.anthropic.com")
UPSTREAM_CONNECT_TIMEOUT = float(envstr("SWITCHBOARD_CONNECT_TIMEOUT", "10"))
UPSTREAM_READ_TIMEOUT = float(envstr("SWITCHBOARD_READ_TIMEOUT", "600"))
RECORD_EXCHANGES = envbool("SWITCHBOARD_RECORD", "true")
# Request bodies above this are refused with request_too_large (Anthropic's own cap is 32 MB).
MAX_REQUEST_BYTES = envint("SWITCHBOARD_MAX_REQUEST_BYTES", str(32 * 1024 * 1024))
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BYTES + 1024
# Retention (proxy/retention.py): keep this many days and/or GB of exchanges; unset = keep everything.
# The dashboard's Data page overrides both once edited there. The recorder prunes every PRUNE_INTERVAL_S.
_days = envnumber("SWITCHBOARD_RETENTION_DAYS")
RETENTION_DAYS = int(_days) if _days else None
RETENTION_GB = envnumber("SWITCHBOARD_RETENTION_GB")
PRUNE_INTERVAL_S = envnumber("SWITCHBOARD_PRUNE_INTERVAL") or 3600.0

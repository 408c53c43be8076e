"""The first configuration, from the environment: what a fresh install routes by until someone edits it."""

from __future__ import annotations

import logging
import os

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction

from proxy.routing.presets import BY_KEY
from proxy.routing.rules import is_own_address
from proxy.routing.snapshot import config_edit, own_port
from proxy.translate.dialects import DIALECTS

logger = logging.getLogger(__name__)

OPENAI_DEFAULT_URL = "https://api.openai.com/v1"
BIG_DEFAULT = "gpt-4o"
SMALL_DEFAULT = "gpt-4o-mini"
# Gemini's (proxy/data/model_limits.json knows both: 65,536 output tokens, 1M context).
GEMINI_BIG_DEFAULT = "gemini-2.5-pro"
GEMINI_SMALL_DEFAULT = "gemini-2.5-flash"


def ensure_seeded() -> str:
    """Create the default configuration when there is no provider yet (idempotent; called at start).

    Returns what it seeded, in words for the start banner, or "" when the database had a configuration.

    With OPENAI_BASE_URL or OPENAI_API_KEY: provider "openai" and rules haiku -> SMALL_MODEL,
    opus -> BIG_MODEL, default -> MIDDLE_MODEL. With GEMINI_API_KEY alone: the same rules on provider
    "gemini" (Gemini's own API). With no backend at all: Anthropic passthrough keeping the client's
    model and key, so the dashboard shows the user's own Claude traffic with zero config.
    """
    from proxy.models import Provider

    try:
        return _seed()
    except IntegrityError:
        # Two servers started together (Postgres; SQLite's IMMEDIATE transactions serialise them):
        # the other one seeded first, which is all we wanted.
        if not Provider.objects.exists():
            raise
        return ""


def _seed() -> str:
    from proxy.models import Provider, Rule

    with transaction.atomic():
        if Provider.objects.exists():
            return ""
        if settings.OPENAI_BASE_URL or settings.OPENAI_API_KEY:
            base_url = settings.OPENAI_BASE_URL or OPENAI_DEFAULT_URL
            _refuse_loop(base_url, "OPENAI_BASE_URL")
            return _seed_family(
                name="openai", dialect="openai", base_url=base_url, key_env="OPENAI_API_KEY",
                big=BIG_DEFAULT, small=SMALL_DEFAULT,
            )  # fmt: skip
        if settings.GEMINI_API_KEY:
            # Gemini's own API once the gemini dialect is registered; until then its OpenAI-compatible
            # endpoint (the same key and models), so the variable works either way.
            preset = BY_KEY["gemini" if "gemini" in DIALECTS else "gemini-openai"]
            return _seed_family(
                name="gemini", dialect=preset.dialect, base_url=preset.base_url, key_env="GEMINI_API_KEY",
                big=GEMINI_BIG_DEFAULT, small=GEMINI_SMALL_DEFAULT, quirks=list(preset.quirks),
            )  # fmt: skip
        else:
            base_url = settings.ANTHROPIC_UPSTREAM_URL
            _refuse_loop(base_url, "SWITCHBOARD_ANTHROPIC_URL")
            with config_edit():
                provider = Provider.objects.create(name="anthropic", dialect="anthropic", base_url=base_url)
                Rule.objects.create(name="default", position=0, is_default=True, provider=provider, model="")
            logger.info("seeded routing: Anthropic passthrough at %s (no backend configured)", base_url)
            return f"Anthropic passthrough to {base_url} (no OPENAI_BASE_URL or OPENAI_API_KEY set)"


def _seed_family(
    *,
    name: str,
    dialect: str,
    base_url: str,
    key_env: str,
    big: str,
    small: str,
    quirks: list[str] | None = None,
) -> str:
    """One provider and the haiku / opus / default rules on it (models from BIG/MIDDLE/SMALL_MODEL)."""
    from proxy.models import Provider, Rule

    big = settings.BIG_MODEL or big
    middle = settings.MIDDLE_MODEL or big
    small = settings.SMALL_MODEL or small
    with config_edit():
        provider = Provider.objects.create(
            name=name, dialect=dialect, base_url=base_url, api_key_env=key_env, quirks=quirks or []
        )
        Rule.objects.create(
            name="haiku", position=0, conditions={"model": "haiku"}, provider=provider, model=small
        )
        Rule.objects.create(
            name="opus", position=1, conditions={"model": "opus"}, provider=provider, model=big
        )
        Rule.objects.create(name="default", position=2, is_default=True, provider=provider, model=middle)
    logger.info("seeded routing: %s at %s (%s / %s / %s)", name, base_url, small, middle, big)
    return f"{name} at {base_url}: haiku -> {small}, opus -> {big}, the rest -> {middle}"


# What only the first start reads: after that, the stored configuration is the routing.
SEED_VARIABLES = ("OPENAI_BASE_URL", "BIG_MODEL", "MIDDLE_MODEL", "SMALL_MODEL")


def ignored_environment() -> list[str]:
    """Seed variables set now that the stored configuration does not use (they changed since the seed)."""
    from proxy.models import Provider, Rule

    values = {name: os.environ.get(name, "").strip() for name in SEED_VARIABLES}
    urls = {u.rstrip("/") for u in Provider.objects.values_list("base_url", flat=True)}
    models = set(Rule.objects.values_list("model", flat=True))
    ignored = []
    for name, value in values.items():
        used = value.rstrip("/") in urls if name == "OPENAI_BASE_URL" else value in models
        if value and not used:
            ignored.append(f"{name}={value}")
    return ignored


def _refuse_loop(base_url: str, variable: str) -> None:
    if is_own_address(base_url, own_port()):
        raise ImproperlyConfigured(
            f"{variable}={base_url} points at this proxy itself (port {own_port()}): requests would loop. "
            "Set it to the backend's URL (ANTHROPIC_BASE_URL is what Claude Code uses to reach us)."
        )

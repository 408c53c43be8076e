"""A dialect added to the registry alone is known everywhere a provider names one: rule validation,
the routes editor's form and the TOML import (issue 13: a new dialect touches nothing outside translate/)."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from proxy.models import Provider
from proxy.routing import snapshot
from proxy.routing.rules import ConfigError, ProviderSpec, RuleSpec, validate_config
from proxy.routing.seed import ensure_seeded
from proxy.translate.dialects import DIALECTS
from tests.conftest import run_async

pytestmark = pytest.mark.django_db(transaction=True)
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def dummy(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A third dialect, registered the only way a new one is: a line in translate/dialects.py."""
    monkeypatch.setitem(DIALECTS, "dummy", DIALECTS["openai"])
    snapshot.invalidate()
    yield "dummy"
    snapshot.invalidate()


def _specs(dialect: str) -> tuple[list[ProviderSpec], list[RuleSpec]]:
    provider = ProviderSpec(name="third", dialect=dialect, base_url="https://third.example/v1")
    return [provider], [RuleSpec(name="default", provider="third", model="m-1", is_default=True)]


def test_a_registered_dialect_passes_rule_validation(dummy: str) -> None:
    validate_config(*_specs(dummy))  # the pure rules
    snapshot.validate_config(*_specs(dummy))  # and the database side's (allowlist, secrets)


def test_an_unregistered_dialect_is_refused_naming_the_registered_ones(dummy: str) -> None:
    known = ", ".join(sorted(DIALECTS))  # every registered one, the dummy included
    with pytest.raises(ConfigError, match=re.escape(f"unknown dialect 'fourth' (known: {known})")):
        validate_config(*_specs("fourth"))
    assert "dummy" in known


def _provider_post(dialect: str) -> dict[str, object]:
    return {
        "name": "third",
        "dialect": dialect,
        "base_url": "https://third.example/v1",
        "api_key_env": "",
        "extra_headers": "",
        "model_settings": "",
        "connect_timeout": 10,
        "first_byte_timeout": 300,
        "idle_timeout": 120,
        "total_timeout": 0,
    }


def test_the_routes_form_offers_and_saves_a_registered_dialect(dummy: str, settings: Any) -> None:
    settings.OPENAI_API_KEY = settings.OPENAI_BASE_URL = ""
    ensure_seeded()  # a configuration that serves (a default rule): the new provider joins it
    client = Client()
    form = client.get("/routes/providers/new", **HX).content.decode()
    assert '<option value="dummy">dummy</option>' in form
    assert client.post("/routes/providers/new", _provider_post(dummy), **HX).status_code == 200
    assert Provider.objects.get(name="third").dialect == "dummy"
    refused = client.post("/routes/providers/new", {**_provider_post("fourth"), "name": "x"}, **HX)
    assert "Select a valid choice. fourth is not one of the available choices." in refused.content.decode()
    assert not Provider.objects.filter(name="x").exists()


TOML = """
[[providers]]
name = "third"
dialect = "{dialect}"
base_url = "https://third.example/v1"

[[rules]]
name = "default"
provider = "third"
model = "m-1"
default = true
"""


def test_a_toml_import_accepts_a_registered_dialect(dummy: str, tmp_path: Path) -> None:
    path = tmp_path / "routes.toml"
    path.write_text(TOML.format(dialect="fourth"))
    with pytest.raises(CommandError, match="unknown dialect 'fourth'"):
        call_command("routes", "import", str(path), stderr=io.StringIO())
    path.write_text(TOML.format(dialect=dummy))
    call_command("routes", "import", str(path), stderr=io.StringIO())
    assert Provider.objects.get(name="third").dialect == "dummy"
    decision = run_async(snapshot.decide({"model": "claude-x", "messages": [], "max_tokens": 1}, {}))
    assert (decision.targets[0].provider, decision.targets[0].dialect) == ("third", "dummy")

"""The Keys page's views: CSRF on every POST, labels checked, the key shown once, revocation."""

from __future__ import annotations

import hashlib
import re

import pytest
from django.test import Client

from proxy.models import ClientKey, ConfigVersion
from proxy.security import clientkeys

pytestmark = pytest.mark.django_db(transaction=True)
HX = {"HTTP_HX_REQUEST": "true"}


def admin(client: Client) -> Client:
    """A client logged in as an admin: a configured key turns the dashboard login on (security/access.py)."""
    from django.contrib.auth.models import User

    user = User.objects.filter(username="admin").first()
    user = user or User.objects.create_superuser("admin", password="pw")
    client.force_login(user)
    return client


def test_posts_without_the_csrf_token_are_refused() -> None:
    browser = admin(Client(enforce_csrf_checks=True))
    assert browser.post("/keys/new", {"label": "sneaky"}).status_code == 403
    key = ClientKey.objects.create(label="kept", digest="0" * 64)
    assert browser.post(f"/keys/{key.pk}/revoke").status_code == 403
    assert not ClientKey.objects.filter(label="sneaky").exists()
    assert ClientKey.objects.get(pk=key.pk).revoked_at is None


def test_a_made_key_is_stored_as_its_digest_only_and_bumps_the_version(settings: object) -> None:
    settings.CLIENT_API_KEYS = []  # type: ignore[attr-defined]
    assert not clientkeys.keys_configured()
    before = ConfigVersion.objects.first()
    response = admin(Client()).post("/keys/new", {"label": "ci", "max_concurrent": "2"}, **HX)
    assert response.status_code == 200 and response["cache-control"] == "no-store"
    key = re.search(r'value="(sk-sb-[^"]+)"', response.content.decode())
    assert key
    row = ClientKey.objects.get(label="ci")
    assert row.digest == hashlib.sha256(key.group(1).encode()).hexdigest()
    assert key.group(1) not in str(ClientKey.objects.values().get(pk=row.pk))
    assert row.max_concurrent == 2 and row.requests_per_minute is None
    after = ConfigVersion.objects.get()
    assert before is None or after.version > before.version
    assert clientkeys.keys_configured()
    assert key.group(1) not in admin(Client()).get("/keys").content.decode()


def test_labels_are_unique_and_env_labels_are_reserved() -> None:
    ClientKey.objects.create(label="taken", digest="1" * 64)
    for label, problem in (("taken", "already exists"), ("env-2", "taken by a key in SWITCHBOARD_API_KEYS")):
        page = admin(Client()).post("/keys/new", {"label": label}, **HX).content.decode()
        assert problem in page and "sk-sb-" not in page
    assert ClientKey.objects.count() == 1


def test_revoking_a_key_keeps_it_listed_and_takes_it_out_of_force(
    settings: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.CLIENT_API_KEYS = []  # type: ignore[attr-defined]
    monkeypatch.setattr(clientkeys, "_table", {})  # restored after the reload below
    monkeypatch.setattr(clientkeys, "_revoked", {})
    key = ClientKey.objects.create(label="old", digest="2" * 64)
    page = admin(Client()).post(f"/keys/{key.pk}/revoke", **HX).content.decode()
    assert "revoked" in page and f'id="clientkey-{key.pk}"' in page
    assert ClientKey.objects.get(pk=key.pk).revoked_at is not None
    assert not clientkeys.keys_configured()
    clientkeys.reload()
    assert clientkeys._table == {} and bytes.fromhex("2" * 64) in clientkeys._revoked

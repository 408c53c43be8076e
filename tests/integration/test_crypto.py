"""Provider keys typed into the UI are encrypted at rest; rows stored plain before still read. Issue #17."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection

from proxy.models import Provider
from proxy.routing import snapshot
from proxy.security import crypto

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "sk-typed-into-the-ui-0123456789"


def stored(pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key_secret FROM proxy_provider WHERE id = %s", [pk])
        return str(cursor.fetchone()[0])


def test_a_saved_secret_is_encrypted_in_the_database_and_plain_in_python() -> None:
    p = Provider.objects.create(name="typed", base_url="http://127.0.0.1:9/v1", api_key_secret=SECRET)
    raw = stored(p.pk)
    assert raw.startswith("fernet:") and SECRET not in raw
    assert Provider.objects.get(pk=p.pk).api_key_secret == SECRET
    specs, _ = snapshot.load_specs()
    assert [s.api_key_secret for s in specs if s.name == "typed"] == [SECRET]  # what routing uses


def test_a_row_stored_plain_still_reads_and_is_encrypted_on_save() -> None:
    p = Provider.objects.create(name="old", base_url="http://127.0.0.1:9/v1")
    with connection.cursor() as cursor:  # as 0003 wrote it
        cursor.execute("UPDATE proxy_provider SET api_key_secret = %s WHERE id = %s", [SECRET, p.pk])
    row = Provider.objects.get(pk=p.pk)
    assert row.api_key_secret == SECRET
    row.save()
    assert stored(p.pk).startswith("fernet:")


def test_the_migration_encrypts_plain_rows_and_its_reverse_decrypts_them() -> None:
    p = Provider.objects.create(name="legacy", base_url="http://127.0.0.1:9/v1")
    call_command("migrate", "proxy", "0003", verbosity=0)
    try:
        with connection.cursor() as cursor:
            cursor.execute("UPDATE proxy_provider SET api_key_secret = %s WHERE id = %s", [SECRET, p.pk])
        call_command("migrate", "proxy", "0004_client_keys", verbosity=0)
        assert stored(p.pk).startswith("fernet:")
        # only(): columns that later migrations add do not exist at 0004
        assert Provider.objects.only("api_key_secret").get(pk=p.pk).api_key_secret == SECRET
        call_command("migrate", "proxy", "0003", verbosity=0)
        assert stored(p.pk) == SECRET
    finally:
        call_command("migrate", verbosity=0)


def test_a_secret_from_another_key_is_refused_in_words(settings: object) -> None:
    from cryptography.fernet import Fernet

    foreign = crypto.PREFIX + Fernet(Fernet.generate_key()).encrypt(b"x").decode()
    with pytest.raises(crypto.SecretUnreadable, match="SWITCHBOARD_ENCRYPTION_KEY"):
        crypto.decrypt(foreign)


def test_keys_rotate_the_first_encrypts_every_one_decrypts(settings: object) -> None:
    from cryptography.fernet import Fernet

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    crypto._fernet.cache_clear()
    try:
        settings.ENCRYPTION_KEYS = [old]  # type: ignore[attr-defined]
        token = crypto.encrypt(SECRET)
        crypto._fernet.cache_clear()
        settings.ENCRYPTION_KEYS = [new, old]  # type: ignore[attr-defined]
        assert crypto.decrypt(token) == SECRET
        crypto._fernet.cache_clear()
        settings.ENCRYPTION_KEYS = [new]  # type: ignore[attr-defined]
        with pytest.raises(crypto.SecretUnreadable):
            crypto.decrypt(token)
    finally:
        crypto._fernet.cache_clear()


def test_without_a_configured_key_one_is_made_once_in_the_data_dir(
    settings: object, tmp_path: object
) -> None:
    from pathlib import Path

    settings.ENCRYPTION_KEYS = []  # type: ignore[attr-defined]
    settings.DATA_DIR = Path(str(tmp_path))  # type: ignore[attr-defined]
    crypto._fernet.cache_clear()
    try:
        token = crypto.encrypt(SECRET)
        key_file = Path(str(tmp_path)) / crypto.KEY_FILE
        assert oct(key_file.stat().st_mode & 0o777) == "0o600"
        crypto._fernet.cache_clear()
        assert crypto.decrypt(token) == SECRET  # the same key, read back
    finally:
        crypto._fernet.cache_clear()


def test_a_secret_saved_under_another_key_stops_routing_in_words_not_the_dashboard() -> None:
    from cryptography.fernet import Fernet
    from django.test import Client

    p = Provider.objects.create(name="foreign", base_url="http://127.0.0.1:9/v1")
    foreign = crypto.PREFIX + Fernet(Fernet.generate_key()).encrypt(SECRET.encode()).decode()
    with connection.cursor() as cursor:  # as another process, with its own encryption key, saved it
        cursor.execute("UPDATE proxy_provider SET api_key_secret = %s WHERE id = %s", [foreign, p.pk])
    with pytest.raises(snapshot.ConfigError, match="provider 'foreign': its stored key cannot be decrypted"):
        snapshot.build_snapshot(1)
    with pytest.raises(snapshot.ConfigError, match="cannot be decrypted"), snapshot.config_edit():
        pass  # no edit saves while it is unreadable, and the message says why
    from proxy.routing import config_io

    assert 'name = "foreign"' in config_io.export_config()  # export still works (no secret in it)
    page = Client().get("/routes")
    assert page.status_code == 200 and "stored (hidden)" in page.content.decode()
    row = Provider.objects.get(pk=p.pk)
    row.save()  # saved again untouched: the token is kept as it was, not encrypted twice
    assert stored(p.pk) == foreign


def test_secret_extra_headers_are_write_only_in_the_editor_and_the_export() -> None:
    from django.test import Client

    from proxy.models import Rule
    from proxy.routing import config_io

    with snapshot.config_edit():
        p = Provider.objects.create(
            name="gateway",
            base_url="http://127.0.0.1:9/v1",
            extra_headers={"x-gateway-token": "gw-secret-0123456789", "x-region": "eu"},
        )
        Rule.objects.create(name="default", is_default=True, provider=p, model="m")
    form = Client().get(f"/routes/providers/{p.pk}").content.decode()
    assert "gw-secret-0123456789" not in form and "[stored]" in form and "x-region" in form
    exported = config_io.export_config()
    assert "gw-secret-0123456789" not in exported and "[stored]" in exported
    providers, rules = config_io.parse_toml(exported)
    config_io.import_config(providers, rules)  # the file given back: the stored value is kept
    assert Provider.objects.get(name="gateway").extra_headers["x-gateway-token"] == "gw-secret-0123456789"

"""Secrets typed into the dashboard (a provider's key) are encrypted at rest with Fernet.

`cryptography`'s Fernet (AES-128-CBC + HMAC-SHA256, a versioned token format) rather than anything of
our own. The key comes from SWITCHBOARD_ENCRYPTION_KEY (one or more Fernet keys, comma-separated: the
first encrypts, every one decrypts, so keys can be rotated). Without it a key is generated once into
`<data dir>/encryption.key` (mode 0600), so a copied database or a dump alone does not carry the
secrets. Several processes sharing one database (DATABASE_URL) must share the key: set the variable.

Stored values are `fernet:<token>`; a value without the prefix is a row written before encryption and
still reads as plain text (the 0004 migration and every save encrypt it).
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

logger = logging.getLogger(__name__)

PREFIX = "fernet:"
KEY_FILE = "encryption.key"


class SecretUnreadable(ImproperlyConfigured):
    """A stored secret that this process's encryption key cannot decrypt."""


class UnreadableSecret(str):
    """What the field holds for a secret it could not decrypt: the stored token, unchanged (saving the row
    again keeps it), so the dashboard still works and routing refuses the provider in words."""


@functools.cache
def _fernet() -> MultiFernet:
    keys: list[str | bytes] = [*settings.ENCRYPTION_KEYS] or [_key_from_file()]
    try:
        return MultiFernet([Fernet(k) for k in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(
            "SWITCHBOARD_ENCRYPTION_KEY: each key must be 32 url-safe base64-encoded bytes; make one with "
            "python -c 'from cryptography.fernet import Fernet as F; print(F.generate_key().decode())'"
        ) from exc


def _key_from_file() -> bytes:
    path = settings.DATA_DIR / KEY_FILE
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    try:  # O_EXCL: two processes starting at once agree on the first one's key
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as f:
        f.write(key + b"\n")
    logger.info("made an encryption key for stored secrets: %s", path)
    return key


def encrypt(plain: str) -> str:
    return PREFIX + _fernet().encrypt(plain.encode()).decode()


def decrypt(stored: str) -> str:
    if not stored.startswith(PREFIX):
        return stored  # written before encryption at rest: still read
    try:
        return _fernet().decrypt(stored[len(PREFIX) :].encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadable(
            "a stored provider key cannot be decrypted: SWITCHBOARD_ENCRYPTION_KEY (or the data "
            "directory's encryption.key) is not the key it was saved with"
        ) from exc


class SecretField(models.TextField):
    """Text that is encrypted in the database and plain in Python."""

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return decrypt(value)
        except SecretUnreadable:
            logger.error("a stored provider key cannot be decrypted with this process's encryption key")
            return UnreadableSecret(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if isinstance(value, str) and value and not value.startswith(PREFIX):
            return encrypt(value)
        return value

"""security/access.py: which names are loopback, what is allowed, when a login is required (issue #17)."""

from __future__ import annotations

import pytest
from django.test import override_settings

from proxy.security import access


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.8.9.1", "::1", "[::1]", "app.localhost"])
def test_is_loopback_for_loopback_names(host: str) -> None:
    assert access.is_loopback(host)


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "192.168.1.5", "localhost.evil.example", "evil.example", ""]
)
def test_is_loopback_is_false_elsewhere(host: str) -> None:
    assert not access.is_loopback(host)


def test_allowed_hosts_are_loopback_plus_the_served_address_plus_extra() -> None:
    assert access.allowed_hosts(host="127.0.0.1", extra=[]) == ["localhost", "127.0.0.1", "[::1]"]
    assert access.allowed_hosts(host="192.168.1.5", extra=["sb.example"])[-2:] == [
        "192.168.1.5",
        "sb.example",
    ]
    assert access.allowed_hosts(host="::1", extra=[]) == ["localhost", "127.0.0.1", "[::1]"]
    assert "0.0.0.0" not in access.allowed_hosts(host="0.0.0.0", extra=[])  # every interface: not a name


def test_exposure_names_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_HOST", "127.0.0.1")
    monkeypatch.delenv("SWITCHBOARD_ALLOWED_HOSTS", raising=False)
    assert access.exposure() == ""
    monkeypatch.setenv("SWITCHBOARD_ALLOWED_HOSTS", "localhost,sb.team.example")
    assert access.exposure() == "SWITCHBOARD_ALLOWED_HOSTS=sb.team.example"
    monkeypatch.setenv("SWITCHBOARD_HOST", "0.0.0.0")
    assert access.exposure() == "--host 0.0.0.0"


@override_settings(CLIENT_API_KEYS=[], REQUIRE_LOGIN=False)
@pytest.mark.django_db  # keys made on the dashboard count too: one query
def test_login_required_only_when_exposed_or_keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_HOST", "127.0.0.1")
    monkeypatch.delenv("SWITCHBOARD_ALLOWED_HOSTS", raising=False)
    assert not access.login_required()
    with override_settings(CLIENT_API_KEYS=["k"]):
        assert access.login_required()
    with override_settings(REQUIRE_LOGIN=True):
        assert access.login_required()
    monkeypatch.setenv("SWITCHBOARD_HOST", "10.0.0.2")
    assert access.login_required()


@pytest.mark.parametrize(
    ("origin", "host", "ok"),
    [
        ("http://127.0.0.1:8082", "127.0.0.1:8082", True),
        ("https://sb.example", "sb.example", True),
        ("http://127.0.0.1:9999", "127.0.0.1:8082", False),  # another local app
        ("http://evil.example:8082", "127.0.0.1:8082", False),
        ("null", "127.0.0.1:8082", False),
        ("", "127.0.0.1:8082", False),
        ("127.0.0.1:8082", "127.0.0.1:8082", False),  # no scheme: not an origin
    ],
)
def test_origin_allowed_is_same_host_and_port(origin: str, host: str, ok: bool) -> None:
    assert access.origin_allowed(origin, host) is ok


@override_settings(CSRF_TRUSTED_ORIGINS=["http://tool.example"])
def test_origin_allowed_when_trusted() -> None:
    assert access.origin_allowed("http://tool.example", "127.0.0.1:8082")


@override_settings(ALLOWED_HOSTS=["localhost", "127.0.0.1", "[::1]"])
def test_host_allowed_by_django_rules_with_any_port() -> None:
    for host in (b"localhost", b"localhost:8082", b"127.0.0.1:1", b"[::1]:8082", b"LOCALHOST:8082"):
        assert access.host_allowed(host), host
    for host in (b"evil.example", b"evil.example:8082", b"127.0.0.1.nip.io", b"", b"\xff", b"local host"):
        assert not access.host_allowed(host), host


@override_settings(API_KEY_ENV_ALLOWED=["*_API_KEY"])
def test_key_env_allowlist() -> None:
    assert access.key_env_problem("") is None
    assert access.key_env_problem("OPENAI_API_KEY") is None
    assert "not an allowed" in (access.key_env_problem("AWS_SECRET_ACCESS_KEY") or "")
    assert "not an allowed" in (access.key_env_problem("openai_api_key") or "")  # names are case-sensitive
    assert "never sent" in (access.key_env_problem("SWITCHBOARD_API_KEY") or "")
    with override_settings(API_KEY_ENV_ALLOWED=["*_API_KEY", "GROQ_TOKEN"]):
        assert access.key_env_problem("GROQ_TOKEN") is None


@override_settings(API_KEY_ENV_ALLOWED=["*_API_KEY"])
def test_key_environ_holds_only_allowed_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_API_KEY", "a")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "b")
    monkeypatch.setenv("SWITCHBOARD_API_KEY", "c")
    environ = access.key_environ()
    assert environ["X_API_KEY"] == "a"
    assert "AWS_SECRET_ACCESS_KEY" not in environ and "SWITCHBOARD_API_KEY" not in environ


def test_host_allowed_follows_a_changed_setting() -> None:
    with override_settings(ALLOWED_HOSTS=["sb.example"]):
        assert access.host_allowed(b"sb.example:8082")
    with override_settings(ALLOWED_HOSTS=["localhost"]):
        assert not access.host_allowed(b"sb.example:8082")

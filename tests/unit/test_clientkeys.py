"""proxy/security/clientkeys.py: which header carries our key, what is forwarded, loopback, limits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from proxy.security import clientkeys
from proxy.security.clientkeys import KeyEntry, KeyRefused, admit, digest, is_loopback

OURS = "sk-sb-" + "k" * 43
THEIRS = "sk-ant-api03-" + "t" * 40


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[bytes, KeyEntry]]:
    entries = {digest(OURS): KeyEntry("ours", 0, 0)}
    monkeypatch.setattr(clientkeys, "_table", entries)
    monkeypatch.setattr(clientkeys, "_in_flight", {})
    monkeypatch.setattr(clientkeys, "_buckets", {})
    yield entries


@pytest.mark.parametrize(
    ("headers", "forwarded"),
    [
        ({"x-api-key": OURS}, {}),
        ({"authorization": f"Bearer {OURS}"}, {}),
        ({"authorization": f"bearer  {OURS} "}, {}),
        # ours as Bearer, theirs as x-api-key: theirs goes on to a passthrough route
        ({"authorization": f"Bearer {OURS}", "x-api-key": THEIRS}, {"x-api-key": THEIRS}),
        # theirs (an OAuth token) as Bearer, ours in the dedicated header
        (
            {"authorization": f"Bearer {THEIRS}", "x-switchboard-key": OURS},
            {"authorization": f"Bearer {THEIRS}"},
        ),
        ({"x-api-key": OURS, "authorization": f"Bearer {THEIRS}"}, {"authorization": f"Bearer {THEIRS}"}),
    ],
)  # fmt: skip
def test_our_key_is_found_and_only_its_header_is_dropped(
    table: dict[bytes, KeyEntry], headers: dict[str, str], forwarded: dict[str, str]
) -> None:
    admission, rest = admit({"host": "x", **headers}, peer="10.0.0.2")
    assert admission is not None and admission.label == "ours"
    assert rest == {"host": "x", **forwarded}


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "x-api-key header is required"),
        ({"x-api-key": THEIRS}, "invalid x-api-key"),
        ({"authorization": f"Basic {OURS}"}, "invalid x-api-key"),
        # a dedicated header is the only one looked at: a wrong one is not rescued by another
        ({"x-switchboard-key": "nope", "x-api-key": OURS}, "invalid x-api-key"),
    ],
)
def test_a_request_without_a_valid_key_is_refused_401(
    table: dict[bytes, KeyEntry], headers: dict[str, str], message: str
) -> None:
    with pytest.raises(KeyRefused) as refused:
        admit(headers, peer="127.0.0.1")  # loopback does not matter once keys are configured
    assert (refused.value.status, refused.value.error_type, refused.value.message) == (
        401,
        "authentication_error",
        message,
    )


@pytest.mark.parametrize(
    ("peer", "served"),
    [("127.0.0.1", True), ("127.8.0.1", True), ("::1", True), ("::ffff:127.0.0.1", True),
     ("10.0.0.2", False), ("::ffff:10.0.0.2", False), ("192.0.2.2", False), ("", False), ("unix", False)],
)  # fmt: skip
def test_without_keys_only_loopback_is_served(
    monkeypatch: pytest.MonkeyPatch, peer: str, served: bool
) -> None:
    monkeypatch.setattr(clientkeys, "_table", {})
    assert is_loopback(peer) is served
    if served:
        assert admit({"x-api-key": "anything"}, peer=peer) == (None, {"x-api-key": "anything"})
    else:
        with pytest.raises(KeyRefused, match="only clients on this machine"):
            admit({}, peer=peer)


def test_concurrency_is_counted_per_key_and_freed_once(table: dict[bytes, KeyEntry]) -> None:
    table[digest(OURS)] = KeyEntry("ours", 2, 0)
    first, _ = admit({"x-api-key": OURS}, peer="")
    second, _ = admit({"x-api-key": OURS}, peer="")
    with pytest.raises(KeyRefused) as limited:
        admit({"x-api-key": OURS}, peer="")
    assert (limited.value.status, limited.value.retry_after, limited.value.label) == (429, "1", "ours")
    assert first is not None and second is not None
    first.release()
    first.release()  # twice is once
    admit({"x-api-key": OURS}, peer="")
    with pytest.raises(KeyRefused):
        admit({"x-api-key": OURS}, peer="")


def test_the_rate_limit_refills_over_the_minute(
    table: dict[bytes, KeyEntry], monkeypatch: pytest.MonkeyPatch
) -> None:
    table[digest(OURS)] = KeyEntry("ours", 0, 3)
    now = [1000.0]
    monkeypatch.setattr(clientkeys.time, "monotonic", lambda: now[0])
    for _ in range(3):
        admit({"x-api-key": OURS}, peer="")
    with pytest.raises(KeyRefused) as limited:
        admit({"x-api-key": OURS}, peer="")
    assert limited.value.retry_after == "20"  # one request's worth comes back in 60 / 3 s
    assert limited.value.headers["anthropic-ratelimit-requests-limit"] == "3"
    assert limited.value.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert limited.value.headers["anthropic-ratelimit-requests-reset"].endswith("Z")
    now[0] += 20
    admit({"x-api-key": OURS}, peer="")
    with pytest.raises(KeyRefused):
        admit({"x-api-key": OURS}, peer="")


def test_environment_keys_are_labelled_as_written_or_by_position(settings: object) -> None:
    settings.CLIENT_API_KEYS = [f"laptop:{OURS}", "sk-sb-bare-0123456789", "not a label:sk-x"]  # type: ignore[attr-defined]
    assert clientkeys.env_keys() == [
        ("laptop", OURS),
        ("env-2", "sk-sb-bare-0123456789"),  # never a fingerprint of the key
        ("env-3", "not a label:sk-x"),
    ]
    assert clientkeys.new_key().startswith("sk-sb-") and clientkeys.new_key() != clientkeys.new_key()

"""security/redact.py: configured keys and key-shaped strings out of text, JSON bytes, rows and log lines."""

from __future__ import annotations

import logging

import orjson
import pytest

from proxy.security import redact
from proxy.security.redact import REDACTED, RedactingFilter, Redactor, redact_row

OPENAI = "sk-proj-" + "a1B2" * 12
ANTHROPIC = "sk-ant-api03-" + "Zz9_-" * 10
GOOGLE = "AIza" + "x" * 35


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"Incorrect API key provided: {OPENAI}.", f"Incorrect API key provided: {REDACTED}."),
        (f"invalid x-api-key {ANTHROPIC}", f"invalid x-api-key {REDACTED}"),
        (f"Authorization: Bearer {'t' * 30}", f"Authorization: Bearer {REDACTED}"),
        (f"bearer {'t' * 30}", f"bearer {REDACTED}"),
        (f"https://g.example/v1/models?alt=sse&key={GOOGLE}", f"https://g.example/v1/models?alt=sse&key={REDACTED}"),
        ("https://x/v1?api_key=abc&access_token=def#top", f"https://x/v1?api_key={REDACTED}&access_token={REDACTED}#top"),
        (f"gsk_{'q' * 40} and hf_{'w' * 30}", f"{REDACTED} and {REDACTED}"),
        ("AKIAABCDEFGHIJKLMNOP", REDACTED),
    ],
)  # fmt: skip
def test_key_shaped_strings_are_redacted(text: str, expected: str) -> None:
    assert Redactor().text(text) == expected
    assert Redactor().raw(text.encode()) == expected.encode()


@pytest.mark.parametrize(
    "text",
    [
        "risk-assessment-of-the-whole-module-tree",  # sk- inside a word
        "task-abcdefghijklmnopqrstuvwxyz0123",
        "monkey=banana and turkey=roast",  # key= not in a query string
        "the bearer of bad news",
        "sk-short",
        "A bare AKIA in text",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert Redactor().text(text) == text


def test_configured_secrets_are_replaced_whole_even_when_not_key_shaped() -> None:
    secrets = Redactor(["hunter2-is-my-password", "hunter2-is-my", "tiny"])
    assert secrets.text("a hunter2-is-my-password b") == f"a {REDACTED} b"  # the longer one first
    assert secrets.text("tiny things") == "tiny things"  # too short to be a real key: not replaced


def test_redacting_json_keeps_it_valid() -> None:
    body = orjson.dumps({"error": {"message": f'bad "key" {OPENAI} at https://x?key=abc\\"'}})
    cleaned = Redactor().value(orjson.Fragment(body))
    parsed = orjson.loads(orjson.dumps(cleaned))
    assert OPENAI not in parsed["error"]["message"] and REDACTED in parsed["error"]["message"]


def test_a_value_without_secrets_is_returned_as_is() -> None:
    value = {"content": [{"type": "text", "text": "hello"}]}
    assert Redactor(["sk-configured-0123456789"]).value(value) is value


def test_redact_row_cleans_the_bodies_of_failed_exchanges_only() -> None:
    redact.set_secrets("test", ["configured-secret-value"])
    try:
        ok = {
            "status": "ok",
            "client_request": {"t": OPENAI},
            "error_message": "",
            "attempts": [{"error": OPENAI}],
        }
        row = redact_row(ok)
        assert row["client_request"] == {"t": OPENAI}  # a prompt is the user's: left as recorded
        assert OPENAI not in orjson.dumps(row["attempts"]).decode()
        failed = {
            "status": "error",
            "error_message": "echo configured-secret-value",
            "upstream_response": f'{{"error": "{OPENAI}"}}',
            "upstream_request": {"url": "https://x/v1?key=abc", "headers": {}, "body": {}},
        }
        row = redact_row(failed)
        assert row["error_message"] == f"echo {REDACTED}"
        assert OPENAI not in row["upstream_response"]
        assert "abc" not in orjson.dumps(row["upstream_request"]).decode()
    finally:
        redact.set_secrets("test", [])


def test_the_log_filter_redacts_messages_arguments_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test_redact")
    logger.addFilter(RedactingFilter())
    try:
        with caplog.at_level(logging.INFO, logger="test_redact"):
            logger.info("upstream said %s", f"no such key {OPENAI}")
            try:
                raise ValueError(f"boom {ANTHROPIC}")
            except ValueError:
                logger.exception("failed")
        text = caplog.text
    finally:
        logger.filters.clear()
    assert OPENAI not in text and ANTHROPIC not in text
    assert text.count(REDACTED) >= 2


def test_secret_extra_headers_are_masked_and_a_mask_given_back_keeps_the_stored_value() -> None:
    stored = {"x-portkey-api-key": "pk-live-123456", "cf-aig-authorization": "Bearer abc", "x-region": "eu"}
    shown = redact.masked_headers(stored)
    assert shown == {
        "x-portkey-api-key": redact.STORED,
        "cf-aig-authorization": redact.STORED,
        "x-region": "eu",
    }
    edited = {
        **shown,
        "x-region": "us",
        "x-new-token": redact.STORED,
    }  # a mask with nothing behind it: dropped
    assert redact.unmasked_headers(edited, stored) == {**stored, "x-region": "us"}
    assert redact.unmasked_headers({"x-portkey-api-key": "pk-new-999999"}, stored) == {
        "x-portkey-api-key": "pk-new-999999"
    }

"""proxy/translate/changes.py: every kind of change the translators record is classified on purpose."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from proxy.translate.changes import LOSS_KINDS, ROUTINE_KINDS, change_is_loss, is_loss, losses

TRANSLATE = Path(__file__).resolve().parents[2] / "proxy" / "translate"


def recorded_kinds() -> set[str]:
    kinds: set[str] = set()
    for path in TRANSLATE.rglob("*.py"):
        kinds |= set(re.findall(r'Change\(\s*"([a-z_]+)"', path.read_text()))
    return kinds


def test_every_kind_the_translators_record_is_routine_or_a_loss() -> None:
    kinds = recorded_kinds()
    assert "billing_header_dropped" in kinds and "cache_control_stripped" in kinds  # the scan works
    # field_dropped names a field or a piece of content: classified by its detail (below).
    unclassified = kinds - ROUTINE_KINDS - LOSS_KINDS - {"field_dropped"}
    assert unclassified == set(), f"classify these in proxy/translate/changes.py: {sorted(unclassified)}"
    assert not ROUTINE_KINDS & LOSS_KINDS


@pytest.mark.parametrize(
    ("kind", "detail", "loss"),
    [
        ("billing_header_dropped", "x-anthropic-billing-header: cc_version=2.1.332.717;", False),
        ("cache_control_stripped", "12", False),
        ("field_dropped", "context_management", False),
        ("field_dropped", "metadata.foo", False),
        ("field_dropped", "tool_choice: no tools sent", False),
        ("document_converted", "messages.0.content.1: application/pdf -> text", False),
        ("content_dropped", "messages.0.content.1: type container_upload", True),
        # rows recorded before content_dropped existed
        ("field_dropped", "messages.3.content.0: type container_upload", True),
        ("field_dropped", "messages.1.content.2: image source file", True),
        ("field_dropped", "tools.30: server tool web_search_20250305 (web_search)", True),
        ("some_kind_added_later", "", True),  # unclassified: shown, so that someone classifies it
    ],
)
def test_is_loss(kind: str, detail: str, loss: bool) -> None:
    assert is_loss(kind, detail) is loss


def test_recorded_flag_wins_and_old_rows_are_classified_by_kind() -> None:
    assert change_is_loss({"kind": "content_dropped", "detail": "", "loss": False}) is False
    assert change_is_loss({"kind": "billing_header_dropped", "detail": ""}) is False
    assert change_is_loss({"kind": "content_dropped", "detail": "x"}) is True
    assert losses([{"kind": "model_mapped", "detail": "a -> b"}, "junk", None]) == []

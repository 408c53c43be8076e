"""translate/reasoning.py: a tagged signature names who minted it and is read back only by them."""

from __future__ import annotations

from proxy.translate.reasoning import Minted, mint, minted_by, read


def test_round_trip_with_any_provider_name_and_payload() -> None:
    sig = mint(dialect="gemini", provider="my.gemini: prod", payload="Q2lz.dA==.x")
    assert read(sig) == Minted("gemini", "my.gemini: prod", "Q2lz.dA==.x")
    assert minted_by(sig, dialect="gemini", provider="my.gemini: prod") == "Q2lz.dA==.x"
    assert minted_by(sig, dialect="gemini", provider="other") is None
    assert minted_by(sig, dialect="openai_responses", provider="my.gemini: prod") is None


def test_foreign_signatures_are_not_ours() -> None:
    for foreign in ("EqQBCkgIARABGAIiQL", "", None, 42, "sb1.", "sb1.x", "sb1..cA.y", "sb1.d.!!!.p"):
        assert read(foreign) is None

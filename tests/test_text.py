"""Reasons and actors: one line of printable text, bounded."""

from __future__ import annotations

import pytest

from breaker_service.errors import BreakerServiceError, InvalidText
from breaker_service.text import MAX_REASON, checked_text


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("a\x00b", id="nul"),
        pytest.param("line\nforged [CIRCUIT] kimi: open -> closed", id="newline"),
        pytest.param("carriage\rreturn", id="cr"),
        pytest.param("esc\x1b[31m", id="ansi-escape"),
        pytest.param("lone \ud800 surrogate", id="surrogate"),
        pytest.param("x" * (MAX_REASON + 1), id="too-long"),
    ],
)
def test_unstorable_text_is_refused(value: str) -> None:
    """Each is ``InvalidText``: a ``ValueError`` and one of ours, naming the field."""
    with pytest.raises(InvalidText) as caught:
        checked_text(value, "reason", limit=MAX_REASON)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, BreakerServiceError)
    assert caught.value.field == "reason"


@pytest.mark.parametrize(
    "value",
    ["maintenance window", "Wartung: Störung 42 — 维护", "tab-free, emoji ok 🔧"],
)
def test_printable_text_passes(value: str) -> None:
    """Any printable text, in any script, passes unchanged."""
    assert checked_text(value, "reason", limit=MAX_REASON) == value

"""What a retry reports: the hook payloads and the marks left on a re-raised error.

``on_retry`` hooks get a ``RetryScheduled``, ``on_give_up`` hooks a ``GiveUp``; the
error a policy re-raises carries ``attempts`` and ``gave_up`` (read with
``attempts_of``/``gave_up_of``), so callers above the policy can count a call once.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Literal

from .classify import Classification

__all__ = [
    "GAVE_UP_EXHAUSTED",
    "GiveUp",
    "GiveUpCause",
    "RetryScheduled",
    "attempts_of",
    "gave_up_of",
    "mark",
]

GiveUpCause = Literal["attempts", "retry_after", "deadline", "budget"]
"""Why a policy stopped retrying a transient error, as a low-cardinality code."""


@dataclass(frozen=True, slots=True)
class RetryScheduled:
    """Passed to ``on_retry`` hooks: a retry is about to wait ``delay`` seconds."""

    name: str
    attempt: int
    max_attempts: int
    delay: float
    error: BaseException
    classification: Classification


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Passed to ``on_give_up`` hooks: the last error is about to be re-raised."""

    name: str
    attempts: int
    reason: str
    error: BaseException
    classification: Classification
    cause: GiveUpCause = "attempts"


def attempts_of(exc: BaseException) -> int | None:
    """How many attempts a retried call made before raising ``exc`` (None if unknown)."""
    value = getattr(exc, "attempts", None)
    return value if isinstance(value, int) else None


def mark(exc: BaseException, attempts: int, gave_up: str = "permanent") -> None:
    """Note on ``exc`` how many attempts were made and why the retries stopped."""
    with contextlib.suppress(AttributeError):  # exceptions with __slots__
        exc.attempts = attempts  # type: ignore[attr-defined]
        exc.gave_up = gave_up  # type: ignore[attr-defined]


GAVE_UP_EXHAUSTED = frozenset({"attempts", "retry_after", "deadline"})
"""Why a call ended that says the provider failed it (vs. "budget", "permanent")."""


def gave_up_of(exc: BaseException) -> str | None:
    """Why the retries around ``exc`` stopped (``None`` if no policy saw it)."""
    reason = getattr(exc, "gave_up", None)
    return reason if isinstance(reason, str) else None

"""How an error counts for a breaker: failure, timeout, or neither."""

from __future__ import annotations

from collections.abc import Callable

from ..retry.classify import Classifier
from .state import Outcome

__all__ = ["Judge", "default_judge"]

Judge = Callable[[BaseException], tuple[Outcome, str, int | None]]
"""Decides how an error counts: (outcome, short kind for the log, HTTP status)."""

_DEFAULT_CLASSIFIER = Classifier()


def default_judge(
    exc: BaseException, classifier: Classifier = _DEFAULT_CLASSIFIER
) -> tuple[Outcome, str, int | None]:
    """Transient errors fail (timeouts as TIMEOUT); everything else, and cancellation, is neither."""
    if not isinstance(exc, Exception):
        return Outcome.IGNORED, type(exc).__name__, None
    verdict = classifier(exc)
    if not verdict.transient:
        return Outcome.IGNORED, verdict.kind, verdict.status
    return (
        (Outcome.TIMEOUT if verdict.timeout else Outcome.FAILURE),
        verdict.kind,
        verdict.status,
    )

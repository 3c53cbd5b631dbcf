"""Retries: backoff, classification, budget and the ``RetryPolicy`` engine."""

from .backoff import backoff_delay
from .budget import RetryBudget
from .classify import (
    DEFAULT_RETRY_STATUSES,
    Classification,
    Classifier,
    parse_retry_after,
)
from .policy import (
    Attempt,
    GiveUp,
    GiveUpCause,
    RetryPolicy,
    RetryScheduled,
    attempts_of,
)

__all__ = [
    "DEFAULT_RETRY_STATUSES",
    "Attempt",
    "Classification",
    "Classifier",
    "GiveUp",
    "GiveUpCause",
    "RetryBudget",
    "RetryPolicy",
    "RetryScheduled",
    "attempts_of",
    "backoff_delay",
    "parse_retry_after",
]

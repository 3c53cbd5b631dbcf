"""Retries: backoff, classification, budget and the ``RetryPolicy`` engine."""

from .attempt import Attempt
from .backoff import backoff_delay
from .budget import RetryBudget
from .classify import (
    DEFAULT_RETRY_STATUSES,
    Classification,
    Classifier,
    parse_retry_after,
)
from .outcome import GiveUp, GiveUpCause, RetryScheduled, attempts_of
from .policy import RetryPolicy

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

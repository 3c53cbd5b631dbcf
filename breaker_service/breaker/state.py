"""Breaker states and call outcomes."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["BreakerState", "Outcome"]


class BreakerState(StrEnum):
    """Where a breaker is. ``FORCED_OPEN`` and ``DISABLED`` are set only by an operator."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    DISABLED = "disabled"


class Outcome(StrEnum):
    """How a guarded call ended, as the breaker counts it."""

    SUCCESS = "success"
    FAILURE = "failure"
    TIMEOUT = "timeout"
    IGNORED = "ignored"  # the caller's fault (a 400) or a cancellation: neither

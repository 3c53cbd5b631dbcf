"""``ListenerHub``: who hears of transitions, scheduled retries and give-ups.

Metrics, dashboards and telemetry subscribe here; a listener that raises is logged
and never breaks the call that triggered it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..events.model import TransitionRecord
from ..retry.policy import GiveUp, RetryScheduled
from .breaker import CircuitBreaker

__all__ = ["ListenerHub", "TransitionListener"]

logger = logging.getLogger("breaker_service.breaker")

TransitionListener = Callable[[CircuitBreaker, TransitionRecord], None]


class ListenerHub:
    """One place for every listener of a registry's breakers and retry policies."""

    def __init__(self) -> None:
        self._transitions: list[TransitionListener] = []
        self._retries: list[Callable[[RetryScheduled], None]] = []
        self._give_ups: list[Callable[[GiveUp], None]] = []

    def add_transition_listener(self, listener: TransitionListener) -> None:
        """Call ``listener(breaker, record)`` after every transition."""
        self._transitions.append(listener)

    def add_retry_listener(
        self,
        on_retry: Callable[[RetryScheduled], None] | None = None,
        on_give_up: Callable[[GiveUp], None] | None = None,
    ) -> None:
        """Hear of every scheduled retry and every give-up."""
        if on_retry is not None:
            self._retries.append(on_retry)
        if on_give_up is not None:
            self._give_ups.append(on_give_up)

    def transition(self, breaker: CircuitBreaker, record: TransitionRecord) -> None:
        """Tell every transition listener; one that fails is logged, not propagated."""
        for listener in self._transitions:
            try:
                listener(breaker, record)
            except Exception:
                logger.exception("[CIRCUIT] transition listener failed")

    def retry_scheduled(self, event: RetryScheduled) -> None:
        """Tell every retry listener that a retry is scheduled."""
        for listener in self._retries:
            listener(event)

    def gave_up(self, event: GiveUp) -> None:
        """Tell every give-up listener that a call gave up."""
        for listener in self._give_ups:
            listener(event)

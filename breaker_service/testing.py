"""Testing mode: run your suite without backoff waits (like ``stamina.set_testing``).

    from breaker_service.testing import set_testing
    set_testing(True)               # retries still happen, but never sleep
    set_testing(True, attempts=1)   # and at most one attempt per call

Also usable as a context manager: ``with testing_mode(): ...``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .clock import FakeClock

__all__ = ["FakeClock", "is_testing", "set_testing", "testing_mode"]


@dataclass(slots=True)
class _TestingState:
    enabled: bool = False
    attempts: int | None = None


STATE = _TestingState()


def set_testing(enabled: bool, *, attempts: int | None = None) -> None:
    """Switch testing mode on or off; ``attempts`` caps attempts per retried call."""
    if attempts is not None and attempts < 1:
        msg = f"attempts must be >= 1, got {attempts}"
        raise ValueError(msg)
    STATE.enabled = enabled
    STATE.attempts = attempts if enabled else None


def is_testing() -> bool:
    """Whether testing mode is on."""
    return STATE.enabled


@contextmanager
def testing_mode(*, attempts: int | None = None) -> Iterator[None]:
    """Testing mode for the duration of a ``with`` block, restoring the previous mode."""
    previous = (STATE.enabled, STATE.attempts)
    set_testing(True, attempts=attempts)
    try:
        yield
    finally:
        STATE.enabled, STATE.attempts = previous

"""A retry budget per provider, so an outage cannot turn into a retry storm.

Envoy-style: retries may be at most ``ratio`` of the requests seen in the recent
window, except that ``min_concurrency`` retries may always be in flight (so quiet
services still retry). A retry is charged when it is scheduled, not when it starts.
"""

from __future__ import annotations

from ..clock import Clock, SystemClock

__all__ = ["RetryBudget"]


class RetryBudget:
    """Counts requests and retries over a sliding window of one-second buckets."""

    __slots__ = (
        "_active_retries",
        "_bucket",
        "_buckets",
        "_clock",
        "_requests",
        "_retries",
        "exhausted",
        "min_concurrency",
        "ratio",
    )

    def __init__(
        self,
        *,
        ratio: float = 0.2,
        min_concurrency: int = 3,
        window: int = 10,
        clock: Clock | None = None,
    ) -> None:
        if not 0.0 <= ratio <= 1.0:
            msg = f"ratio must be within [0, 1], got {ratio}"
            raise ValueError(msg)
        self.ratio = ratio
        self.min_concurrency = min_concurrency
        self._clock = clock or SystemClock()
        self._buckets = max(1, window)
        self._requests = [0] * self._buckets
        self._retries = [0] * self._buckets
        self._bucket = int(self._clock.monotonic())
        self._active_retries = 0
        self.exhausted = 0

    def _rotate(self) -> int:
        now = int(self._clock.monotonic())
        if now != self._bucket:
            stale = min(now - self._bucket, self._buckets)
            for offset in range(1, stale + 1):
                index = (self._bucket + offset) % self._buckets
                self._requests[index] = 0
                self._retries[index] = 0
            self._bucket = now
        return now % self._buckets

    def record_request(self) -> None:
        """Count one original request (not a retry)."""
        self._requests[self._rotate()] += 1

    @property
    def active_retries(self) -> int:
        """Retries scheduled and not yet finished."""
        return self._active_retries

    def try_acquire(self) -> bool:
        """Charge one retry if the budget allows it; ``False`` means fail fast."""
        index = self._rotate()
        allowed = self._active_retries < self.min_concurrency or (
            sum(self._retries) + 1 <= self.ratio * sum(self._requests)
        )
        if not allowed:
            self.exhausted += 1
            return False
        self._retries[index] += 1
        self._active_retries += 1
        return True

    def release(self) -> None:
        """The retry that ``try_acquire`` charged has finished (either way)."""
        self._active_retries = max(0, self._active_retries - 1)

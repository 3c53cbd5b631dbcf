"""Failure-rate trip policy over a sliding window (resilience4j/Polly style).

Count-based: the last ``size`` calls. Time-based: calls in the last ``duration``
seconds, in one-second buckets keyed by the event's wall-clock time, so replaying
the log refills the window exactly as living through it did.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import ResilienceSettings

__all__ = ["FailureRateWindow"]


class FailureRateWindow:
    """Counts calls and failures in a sliding window; says when the rate trips."""

    __slots__ = (
        "_buckets",
        "_calls",
        "duration",
        "kind",
        "minimum_calls",
        "size",
        "threshold",
    )

    def __init__(
        self,
        *,
        threshold: float,
        kind: str = "count",
        size: int = 20,
        duration: float = 60.0,
        minimum_calls: int = 10,
    ) -> None:
        self.threshold = threshold
        self.kind = kind
        self.size = size
        self.duration = duration
        self.minimum_calls = minimum_calls
        self._calls: deque[int] = deque(maxlen=size)  # 1 = failure
        self._buckets: dict[int, list[int]] = {}  # second -> [calls, failures]

    @classmethod
    def from_settings(cls, settings: ResilienceSettings) -> FailureRateWindow | None:
        """The window ``CIRCUIT_BREAKER_*`` describes; None without a rate threshold."""
        if settings.circuit_breaker_failure_rate_threshold is None:
            return None
        return cls(
            threshold=settings.circuit_breaker_failure_rate_threshold,
            kind=settings.circuit_breaker_window_type,
            size=settings.circuit_breaker_window_size,
            duration=settings.circuit_breaker_window_duration,
            minimum_calls=settings.circuit_breaker_minimum_calls,
        )

    def add(self, failed: bool, at: float, count: int = 1) -> None:
        """Record ``count`` calls that failed or not, at wall-clock ``at``."""
        if self.kind == "count":
            self._calls.extend([int(failed)] * min(count, self.size))
            return
        second = int(at)
        bucket = self._buckets.setdefault(second, [0, 0])
        bucket[0] += count
        bucket[1] += count if failed else 0
        horizon = second - int(self.duration)
        for old in [s for s in self._buckets if s <= horizon]:
            del self._buckets[old]

    def totals(self) -> tuple[int, int]:
        """(calls, failures) currently in the window."""
        if self.kind == "count":
            return len(self._calls), sum(self._calls)
        calls = sum(b[0] for b in self._buckets.values())
        failures = sum(b[1] for b in self._buckets.values())
        return calls, failures

    def tripped(self) -> str | None:
        """The trip reason if the failure rate is at or over the threshold, else None."""
        calls, failures = self.totals()
        if calls < self.minimum_calls or calls == 0:
            return None
        rate = failures / calls
        if rate < self.threshold:
            return None
        scope = (
            f"last {calls} calls"
            if self.kind == "count"
            else f"last {self.duration:g}s"
        )
        return f"failure rate {rate:.0%} over {scope}"

    def clear(self) -> None:
        """Forget every call (on entering CLOSED)."""
        self._calls.clear()
        self._buckets.clear()

    def dump(self) -> dict[str, Any]:
        """A JSON-friendly copy for snapshots."""
        if self.kind == "count":
            return {"calls": list(self._calls)}
        return {"buckets": {str(k): list(v) for k, v in self._buckets.items()}}

    def load(self, data: dict[str, Any]) -> None:
        """Restore from ``dump()``."""
        self.clear()
        if self.kind == "count":
            self._calls.extend(int(x) for x in data.get("calls", []))
        else:
            self._buckets = {
                int(k): [int(v[0]), int(v[1])]
                for k, v in data.get("buckets", {}).items()
            }

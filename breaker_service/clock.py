"""Injected time: every duration, timestamp and wait in the library comes from a ``Clock``.

``SystemClock`` is production time; ``FakeClock`` is for tests (yours too): its
``sleep()`` advances time instantly and records each wait.

Background loops (flushing, retention) wait with ``idle(clock, seconds)`` instead:
on a real clock that is a sleep; on a ``FakeClock`` it waits until the test moves
time past the deadline, so a background loop never runs time away from the test.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "FakeClock", "SystemClock", "idle"]


@runtime_checkable
class Clock(Protocol):
    """Where breakers and retries read time and wait."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards, for durations."""
        ...

    def time(self) -> float:
        """Wall-clock seconds since the Unix epoch (UTC), for event timestamps."""
        ...

    def now(self) -> datetime:
        """The current UTC-aware wall-clock time."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (a fake clock only pretends to)."""
        ...


class SystemClock:
    """Real time: ``time.monotonic``, ``time.time`` and ``asyncio.sleep``."""

    __slots__ = ()

    def monotonic(self) -> float:
        """Seconds from ``time.monotonic``."""
        return time.monotonic()

    def time(self) -> float:
        """Seconds since the epoch from ``time.time``."""
        return time.time()

    def now(self) -> datetime:
        """The current UTC time."""
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        """Really wait."""
        await asyncio.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


class FakeClock:
    """A clock for tests: time moves only when told to, and ``sleep`` never blocks.

    ``sleep(s)`` records ``s`` in ``sleeps`` and advances both clocks by ``s``;
    ``advance(s)`` moves time without recording a sleep.
    """

    __slots__ = ("_idlers", "_monotonic", "_wall", "sleeps")

    def __init__(
        self, *, start: float = 1_000.0, wall: float = 1_767_225_600.0
    ) -> None:
        self._monotonic = start
        self._wall = wall  # 2026-01-01T00:00:00Z by default
        self.sleeps: list[float] = []
        self._idlers: list[tuple[float, asyncio.Future[None]]] = []

    def monotonic(self) -> float:
        """The fake monotonic time."""
        return self._monotonic

    def time(self) -> float:
        """The fake wall-clock time in epoch seconds."""
        return self._wall

    def now(self) -> datetime:
        """The fake wall-clock time as a UTC datetime."""
        return datetime.fromtimestamp(self._wall, UTC)

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` without recording a sleep."""
        if seconds < 0:
            msg = f"time cannot go backwards (advance({seconds}))"
            raise ValueError(msg)
        self._monotonic += seconds
        self._wall += seconds
        if self._idlers:
            waiting = []
            for deadline, future in self._idlers:
                if future.done():
                    continue
                if deadline <= self._monotonic:
                    future.set_result(None)
                else:
                    waiting.append((deadline, future))
            self._idlers = waiting

    async def sleep(self, seconds: float) -> None:
        """Record the wait, advance time, and yield to the event loop once."""
        self.sleeps.append(seconds)
        self.advance(max(seconds, 0.0))
        await asyncio.sleep(0)

    async def idle(self, seconds: float) -> None:
        """Wait, without moving time, until time has been moved ``seconds`` on."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future = asyncio.get_running_loop().create_future()
        self._idlers.append((self._monotonic + seconds, future))
        await future

    def __repr__(self) -> str:
        return f"FakeClock(monotonic={self._monotonic!r}, wall={self._wall!r})"


async def idle(clock: Clock, seconds: float) -> None:
    """A background loop's wait: ``clock.idle`` where the clock has one, else ``sleep``.

    A ``FakeClock``'s ``sleep`` moves time; a background task must not, or it would
    race the test's own time steps. ``idle`` waits for the test to move time instead.
    """
    wait = getattr(clock, "idle", None)
    if wait is None:
        await clock.sleep(seconds)
    else:
        await wait(seconds)

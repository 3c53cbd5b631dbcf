"""Simulated time for many concurrent callers: a ``FakeClock`` with a discrete-event driver.

``FakeClock.sleep(s)`` advances the clock by ``s`` for whoever sleeps, which is exact
for one caller; with many concurrent callers their sleeps would add up instead of
overlapping. ``VirtualClock.sleep(s)`` parks the caller until simulated time reaches
``now + s``, and ``run_open_loop`` moves simulated time forward only when every job
is parked on the clock (or finished), straight to the next wake-up or arrival.

So real work (sockets, threads, SQLite) takes no simulated time, while backoffs,
breaker cooldowns and arrival gaps take exactly their simulated length, however many
uploads are in flight: an open-loop workload (jobs arrive on schedule whether or not
earlier ones are done), played out in simulated time with real I/O.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from breaker_service.clock import FakeClock

__all__ = ["VirtualClock", "run_open_loop"]

R = TypeVar("R")


class VirtualClock(FakeClock):
    """A ``FakeClock`` whose ``sleep`` waits for the driver instead of advancing time."""

    def __init__(
        self, *, start: float = 1_000.0, wall: float = 1_767_225_600.0
    ) -> None:
        super().__init__(start=start, wall=wall)
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self.parked = 0
        """Callers parked in ``sleep`` right now."""
        self.parked_real: dict[asyncio.Task[object], float] = {}
        """Real seconds each task spent parked (to separate real work from waiting)."""
        self.changed = asyncio.Event()

    def call_at(self, when: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` when simulated time reaches ``when``."""
        heapq.heappush(self._timers, (when, next(self._seq), callback))

    async def sleep(self, seconds: float) -> None:
        """Record the wait and park until the driver reaches ``now + seconds``."""
        self.sleeps.append(seconds)
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not future.done():
                self.parked -= 1
                future.set_result(None)

        self.call_at(self.monotonic() + seconds, wake)
        self.parked += 1
        self.changed.set()
        started = time.perf_counter()
        try:
            await future
        finally:
            if future.cancelled():
                self.parked -= 1
            task = asyncio.current_task()
            if task is not None:
                self.parked_real[task] = (
                    self.parked_real.get(task, 0.0) + time.perf_counter() - started
                )

    def step(self) -> bool:
        """Advance to the earliest timer and run every timer due then; False if none."""
        if not self._timers:
            return False
        when = self._timers[0][0]
        if when > self.monotonic():
            self.advance(when - self.monotonic())
        while self._timers and self._timers[0][0] <= when:
            _, _, callback = heapq.heappop(self._timers)
            callback()
        return True


async def run_open_loop(
    clock: VirtualClock,
    arrivals: Sequence[float],
    job: Callable[[int], Awaitable[R]],
) -> list[R]:
    """Start ``job(i)`` at simulated time ``start + arrivals[i]``; return every result.

    Simulated time moves only when all started jobs are parked on ``clock`` or done.
    Jobs must handle their own errors.
    """
    start = clock.monotonic()
    results: dict[int, R] = {}
    alive: set[asyncio.Task[R]] = set()

    def finished(task: asyncio.Task[R], index: int) -> None:
        alive.discard(task)
        if not task.cancelled() and task.exception() is None:
            results[index] = task.result()
        clock.changed.set()

    def arrive(index: int) -> None:
        task = asyncio.get_running_loop().create_task(_run(job, index))
        alive.add(task)
        task.add_done_callback(lambda t: finished(t, index))

    for index, offset in enumerate(arrivals):
        clock.call_at(start + offset, functools.partial(arrive, index))
    while True:
        clock.changed.clear()
        if clock.parked >= len(alive):
            if not clock.step():
                break
            await asyncio.sleep(0)
            continue
        await clock.changed.wait()
    failed = [t for t in alive if not t.done()]
    if failed:  # pragma: no cover - a job parked forever
        msg = f"{len(failed)} jobs never finished"
        raise RuntimeError(msg)
    missing = len(arrivals) - len(results)
    if missing:
        msg = f"{missing} jobs raised instead of returning a result"
        raise RuntimeError(msg)
    return [results[i] for i in range(len(arrivals))]


async def _run(job: Callable[[int], Awaitable[R]], index: int) -> R:
    return await job(index)

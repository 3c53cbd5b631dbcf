"""The recorder on an injected clock: commits, retries after an outage, flush timing.

Every test runs on a ``FakeClock``; the event loop reads the same fake time, so the
loop-time waits (``commit_timeout``) expire in fake time too and nothing really sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import pytest

from breaker_service.clock import FakeClock, SystemClock
from breaker_service.events import MemoryEventLog, TransitionRecord
from breaker_service.events.model import DeadLetter, OutcomeRow, Snapshot
from breaker_service.events.recorder import RETRY_INTERVAL, EventRecorder

T0 = 1_767_225_600.0


class SlowLog(MemoryEventLog):
    """A memory log whose every append takes ``seconds`` on the clock, like a busy database."""

    def __init__(self, clock: FakeClock, seconds: float = 0.02) -> None:
        super().__init__()
        self.clock = clock
        self.seconds = seconds
        self.appends = 0

    async def append(
        self,
        outcomes: Sequence[OutcomeRow] = (),
        transitions: Sequence[TransitionRecord] = (),
        snapshots: Sequence[Snapshot] = (),
        *,
        want_ids: bool = True,
        dead_letters: Sequence[DeadLetter] = (),
    ) -> dict[str, int]:
        self.appends += 1
        await self.clock.sleep(self.seconds)
        return await super().append(
            outcomes,
            transitions,
            snapshots,
            want_ids=want_ids,
            dead_letters=dead_letters,
        )


@pytest.fixture
async def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """A fake clock that the running event loop reads too (its timeouts are fake)."""
    clock = FakeClock()
    monkeypatch.setattr(asyncio.get_running_loop(), "time", clock.monotonic)
    return clock


def trip(version: int = 1, breaker: str = "kimi") -> TransitionRecord:
    """A closed -> open transition record."""
    return TransitionRecord(
        breaker, "closed", "open", version, T0, "5 consecutive failures", None, 60.0
    )


def success(breaker: str = "glm", at: float = T0) -> OutcomeRow:
    """One buffered success."""
    return (breaker, "success", 0, at, None, None, None, 1, None)


async def test_commit_returns_once_its_batch_is_written_under_steady_traffic(
    clock: FakeClock,
) -> None:
    """Callers keep refilling the buffer; the trip is committed in well under the timeout."""
    log = SlowLog(clock)
    recorder = EventRecorder(log, batch_size=100, commit_timeout=1.0, clock=clock)
    keep_going = True

    async def traffic() -> None:
        at = T0
        while keep_going:
            recorder.buffer.extend(success(at=at) for _ in range(150))
            at += 1
            await clock.sleep(0.005)

    feeder = asyncio.create_task(traffic())
    await clock.sleep(0.05)
    started = clock.monotonic()
    committed = await recorder.commit_transition(trip())
    waited = clock.monotonic() - started
    keep_going = False
    feeder.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await feeder
    await recorder.aclose()
    assert committed is True
    assert waited < 0.5, f"waited {waited:.2f}s for a flush that never ran dry"
    assert any(e.kind == "transition" for e in log.events)


async def test_a_failed_store_is_retried_only_after_the_retry_interval(
    clock: FakeClock,
) -> None:
    """Degraded: transitions queue without touching the store until the clock says so."""
    log = SlowLog(clock, seconds=0.0)
    log.fail_with = ConnectionRefusedError("down")
    recorder = EventRecorder(log, clock=clock)
    assert await recorder.commit_transition(trip(1)) is False
    assert recorder.degraded
    tried = log.appends

    clock.advance(RETRY_INTERVAL / 2)
    assert await recorder.commit_transition(trip(2)) is False
    assert log.appends == tried  # still backing off: the store was not asked

    log.fail_with = None
    clock.advance(RETRY_INTERVAL / 2)
    assert await recorder.commit_transition(trip(3)) is True
    assert not recorder.degraded
    assert [e.state_version for e in log.events] == [1, 2, 3]
    assert clock.sleeps == [0.0] * log.appends  # no wait but the log's own


async def test_flush_duration_is_measured_on_the_clock(clock: FakeClock) -> None:
    """``last_flush_seconds`` is the clock time one flush took."""
    log = SlowLog(clock, seconds=0.25)
    recorder = EventRecorder(log, clock=clock)
    recorder.buffer.append(success())
    assert await recorder.flush()
    assert recorder.last_flush_seconds == 0.25


def test_the_system_clock_is_the_default() -> None:
    """Embedded users who pass no clock get real time."""
    recorder = EventRecorder(MemoryEventLog())
    assert isinstance(recorder.clock, SystemClock)

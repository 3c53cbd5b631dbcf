"""The injected clocks: ``FakeClock`` for tests, ``SystemClock`` for production."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from breaker_service.clock import Clock, FakeClock, SystemClock


@pytest.mark.parametrize(
    "clock",
    [
        pytest.param(FakeClock(), id="fake"),
        pytest.param(SystemClock(), id="system"),
    ],
)
def test_both_clocks_satisfy_the_protocol(clock: Clock) -> None:
    """FakeClock and SystemClock are both structurally a Clock."""
    assert isinstance(clock, Clock)


def test_fake_clock_starts_at_its_given_times() -> None:
    """The constructor sets the monotonic and wall-clock starting points."""
    clock = FakeClock(start=5.0, wall=86_400.0)
    assert clock.monotonic() == 5.0
    assert clock.time() == 86_400.0
    assert clock.now() == datetime(1970, 1, 2, tzinfo=UTC)
    assert clock.sleeps == []


def test_fake_clock_default_wall_time_is_new_year_2026_utc() -> None:
    """The default wall clock is 2026-01-01T00:00:00Z and UTC-aware."""
    now = FakeClock().now()
    assert now == datetime(2026, 1, 1, tzinfo=UTC)
    assert now.utcoffset() is not None


def test_fake_clock_stands_still_until_told() -> None:
    """Reading the fake clock never moves it."""
    clock = FakeClock()
    readings = {clock.monotonic() for _ in range(100)}
    assert readings == {clock.monotonic()}


async def test_fake_sleep_records_and_advances_both_clocks() -> None:
    """``sleep`` records each wait and moves monotonic and wall time by it."""
    clock = FakeClock(start=0.0, wall=0.0)
    await clock.sleep(0.5)
    await clock.sleep(1.5)
    assert clock.sleeps == [0.5, 1.5]
    assert clock.monotonic() == 2.0
    assert clock.time() == 2.0
    assert clock.now() == datetime.fromtimestamp(2.0, UTC)


async def test_fake_sleep_of_a_negative_duration_records_it_but_keeps_time() -> None:
    """A negative wait is recorded as asked, but time does not go backwards."""
    clock = FakeClock(start=10.0)
    await clock.sleep(-1.0)
    assert clock.sleeps == [-1.0]
    assert clock.monotonic() == 10.0


async def test_fake_sleep_yields_to_the_event_loop() -> None:
    """Another task gets to run while one is in a fake sleep."""
    clock = FakeClock()
    order: list[str] = []

    async def sleeper() -> None:
        order.append("sleeper before")
        await clock.sleep(100.0)
        order.append("sleeper after")

    async def other() -> None:
        order.append("other")

    await asyncio.gather(sleeper(), other())
    assert order == ["sleeper before", "other", "sleeper after"]


def test_advance_moves_time_without_recording_a_sleep() -> None:
    """``advance`` is for time passing outside any sleep."""
    clock = FakeClock(start=0.0, wall=0.0)
    clock.advance(3.25)
    assert clock.monotonic() == 3.25
    assert clock.time() == 3.25
    assert clock.sleeps == []


def test_advance_refuses_to_go_backwards() -> None:
    """Time on a FakeClock is monotonic."""
    clock = FakeClock()
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-0.001)


def test_fake_clock_repr_shows_both_times() -> None:
    """The repr helps when an assertion on a clock fails."""
    assert repr(FakeClock(start=1.0, wall=2.0)) == "FakeClock(monotonic=1.0, wall=2.0)"


def test_system_clock_monotonic_never_goes_backwards() -> None:
    """Consecutive monotonic readings are non-decreasing."""
    clock = SystemClock()
    readings = [clock.monotonic() for _ in range(1000)]
    assert readings == sorted(readings)


def test_system_clock_now_is_utc_aware_and_agrees_with_time() -> None:
    """``now()`` is a UTC datetime matching ``time()`` to within a second."""
    clock = SystemClock()
    before = clock.time()
    now = clock.now()
    after = clock.time()
    assert now.tzinfo is UTC
    assert before - 1 <= now.timestamp() <= after + 1


async def test_system_clock_sleep_of_zero_returns() -> None:
    """``sleep(0)`` is a bare yield on the system clock."""
    await SystemClock().sleep(0)


def test_system_clock_repr() -> None:
    """The system clock has a short, stable repr."""
    assert repr(SystemClock()) == "SystemClock()"

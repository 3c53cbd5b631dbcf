"""Snapshots at shutdown: start-up reads snapshots, not the log."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from breaker_service.breaker import BreakerRegistry, BreakerState
from breaker_service.clock import FakeClock
from breaker_service.config import load_settings
from breaker_service.errors import ProviderUnavailable
from breaker_service.events import MemoryEventLog
from breaker_service.events.model import Snapshot


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)


async def _ok() -> str:
    return "ok"


async def _fail() -> str:
    raise ProviderUnavailable("down", status=503)


async def test_aclose_snapshots_every_breaker_with_events(tmp_path: Path) -> None:
    """Breakers with fewer events than the snapshot interval still get a snapshot at close."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'b.db'}"
    settings = load_settings(env_file=None, event_log_snapshot_every=1000)
    clock = FakeClock()
    registry = await BreakerRegistry.open(url, settings=settings, clock=clock)
    for name in ("kimi", "glm", "openai"):
        for _ in range(3):
            await registry.get(name).call(_ok)
    for _ in range(5):
        with pytest.raises(ProviderUnavailable):
            await registry.get("kimi").call(_fail)
    await registry.aclose()
    with sqlite3.connect(tmp_path / "b.db") as conn:
        snaps = dict(
            conn.execute("select breaker, last_event_id from breaker_snapshots")
        )
        last = dict(
            conn.execute("select breaker, max(id) from breaker_events group by breaker")
        )
    assert snaps == last

    again = await BreakerRegistry.open(url, settings=settings, clock=clock)
    try:
        kimi = again.get("kimi")
        assert kimi.state.value == "open"
        assert (kimi.successes, kimi.failures) == (3, 5)
        assert again.get("glm").successes == 3
    finally:
        await again.aclose()


async def test_snapshot_waits_for_a_transition_being_committed(tmp_path: Path) -> None:
    """A trip committed by the transition path is covered by the next snapshot, never skipped."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'b.db'}"
    settings = load_settings(env_file=None, event_log_snapshot_every=1)
    registry = await BreakerRegistry.open(url, settings=settings, clock=FakeClock())
    for _ in range(5):
        with pytest.raises(ProviderUnavailable):
            await registry.get("kimi").call(_fail)
    await registry.flush()
    await registry.aclose()
    with sqlite3.connect(tmp_path / "b.db") as conn:
        state, version, last_id = conn.execute(
            "select state, state_version, last_event_id from breaker_snapshots where breaker='kimi'"
        ).fetchone()
        newest = conn.execute(
            "select max(id) from breaker_events where breaker='kimi'"
        ).fetchone()[0]
    assert (state, version, last_id) == ("open", 1, newest)


# A snapshot as the code before the counters dataclass wrote it (keep loading these).
STORED_SNAPSHOT_DATA = {
    "consecutive_failures": 0,
    "half_open_successes": 0,
    "reopen_count": 1,
    "opened_at": 1767225600.0,
    "open_timeout": 120.0,
    "successes": 7,
    "failures": 5,
    "timeouts": 2,
    "window": {"calls": [0, 1, 1]},
    "last_transition": {
        "from_state": "half_open",
        "to_state": "open",
        "at": 1767225600.0,
        "reason": "trial call failed (unavailable)",
        "actor": None,
        "open_timeout": 120.0,
    },
}


async def test_snapshots_in_the_stored_format_still_load() -> None:
    """A snapshot written by earlier code restores state, counters, window and history."""
    clock = FakeClock(wall=1767225600.0 + 20)
    log = MemoryEventLog()
    await log.append(
        [],
        snapshots=[
            Snapshot(
                breaker="kimi",
                state="open",
                state_version=3,
                last_event_id=42,
                taken_at=1767225600.0,
                data=STORED_SNAPSHOT_DATA,
            )
        ],
    )
    settings = load_settings(
        env_file=None,
        breaker_instance_id="test",
        circuit_breaker_failure_rate_threshold=0.5,
    )
    registry = await BreakerRegistry.open(settings=settings, clock=clock, log=log)
    try:
        kimi = registry.get("kimi")
        assert (kimi.state, kimi.version, kimi.last_event_id) == (
            BreakerState.OPEN,
            3,
            42,
        )
        assert (kimi.successes, kimi.failures, kimi.timeouts) == (7, 5, 2)
        assert (kimi.reopen_count, kimi.opened_at, kimi.open_timeout) == (
            1,
            1767225600.0,
            120.0,
        )
        assert kimi.retry_after == pytest.approx(100.0)
        last = kimi.last_transition
        assert last is not None
        assert (last.from_state, last.to_state, last.version, last.reason) == (
            "half_open",
            "open",
            3,
            "trial call failed (unavailable)",
        )
        assert last.open_timeout == 120.0
        assert kimi.snapshot_data()["window"] == {"calls": [0, 1, 1]}
    finally:
        await registry.aclose()

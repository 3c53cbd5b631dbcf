"""Store outages: breakers keep protecting in memory, events wait, nothing is lost.

The in-memory log simulates an outage with ``fail_with``; SQLite is made unavailable
by holding an exclusive lock on the file from another connection.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from breaker_helpers import (
    Provider,
    fail_times,
    memory_registry,
    outcome_totals,
    rejected,
    replayed_fingerprint,
    sqlite_path,
    sqlite_registry,
    sqlite_rows,
    succeed_times,
)

from breaker_service.breaker import BreakerState
from breaker_service.clock import FakeClock
from breaker_service.errors import EventLogError
from breaker_service.events import MemoryEventLog
from breaker_service.events.sql import SqlEventLog

CLOSED = BreakerState.CLOSED
OPEN = BreakerState.OPEN
HALF_OPEN = BreakerState.HALF_OPEN
EVENTS_LOGGER = "breaker_service.events"


pytestmark = pytest.mark.usefixtures("clean_environment")


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The event-store warnings logged so far."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == EVENTS_LOGGER and r.levelno == logging.WARNING
    ]


# -- the in-memory store goes down ------------------------------------------------------


async def test_breakers_keep_protecting_while_the_store_is_down(
    clock: FakeClock, kimi: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    """Trip, reject, probe and close with the store down; the backlog lands afterwards."""
    caplog.set_level(logging.WARNING, logger=EVENTS_LOGGER)
    log = MemoryEventLog()
    async with memory_registry(
        clock,
        log=log,
        circuit_breaker_failure_threshold=3,
        circuit_breaker_timeout=10,
    ) as registry:
        breaker = registry.get("kimi")
        await succeed_times(breaker, kimi, 4)
        assert await registry.flush()
        assert not registry.degraded

        log.fail_with = ConnectionRefusedError("connection refused")
        await fail_times(breaker, kimi, 3)
        assert breaker.state is OPEN
        assert (await rejected(breaker, kimi)).breaker == "kimi"
        assert kimi.calls == 7
        assert registry.degraded
        health = registry.health()
        assert health["degraded"] is True
        assert health["backlog"] == 2  # a run of three failures and the transition
        assert "connection refused" in str(health["last_error"])
        assert any("event store unavailable" in w for w in warnings_of(caplog))
        with pytest.raises(EventLogError):
            await registry.ping()

        clock.advance(10)
        await succeed_times(breaker, kimi, 1)
        assert breaker.state is HALF_OPEN
        await succeed_times(breaker, kimi, 1)
        assert breaker.state is CLOSED
        await fail_times(breaker, kimi, 2)
        await succeed_times(breaker, kimi, 1)
        await fail_times(breaker, kimi, 1)
        assert not await registry.flush()
        assert registry.degraded

        log.fail_with = None
        assert await registry.flush()
        assert not registry.degraded
        assert registry.health()["backlog"] == 0
        assert any("event store is back" in w for w in warnings_of(caplog))
        assert outcome_totals(log, "kimi") == {"success": 7, "failure": 6}
        assert kimi.calls == 13
        moves = [e for e in log.events if e.kind == "transition"]
        assert [(e.to_state, e.state_version) for e in moves] == [
            ("open", 1),
            ("half_open", 2),
            ("closed", 3),
        ]
        # The backlog is written in the order it happened: replay equals life.
        assert (
            await replayed_fingerprint(log, registry.settings, clock, "kimi")
            == breaker.fingerprint()
        )


async def test_close_writes_the_backlog_once_the_store_is_back(
    clock: FakeClock, kimi: Provider
) -> None:
    """``aclose`` flushes everything buffered during an outage."""
    log = MemoryEventLog()
    async with memory_registry(
        clock, log=log, circuit_breaker_failure_threshold=2
    ) as registry:
        breaker = registry.get("kimi")
        log.fail_with = TimeoutError("pool timeout")
        await succeed_times(breaker, kimi, 3)
        await fail_times(breaker, kimi, 2)
        assert breaker.state is OPEN
        assert not await registry.flush()
        log.fail_with = None
    assert outcome_totals(log, "kimi") == {"success": 3, "failure": 2}
    assert [e.to_state for e in log.events if e.kind == "transition"] == ["open"]


async def test_close_with_the_store_still_down_says_what_was_lost(
    clock: FakeClock, kimi: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    """Shutting down during an outage logs an error with the unwritten count."""
    caplog.set_level(logging.ERROR, logger=EVENTS_LOGGER)
    log = MemoryEventLog()
    async with memory_registry(clock, log=log) as registry:
        log.fail_with = ConnectionResetError("reset")
        await succeed_times(registry.get("kimi"), kimi, 5)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        "[CIRCUIT] event store unavailable at shutdown: 5 events could not be written"
    ]


async def test_a_full_buffer_coalesces_outcomes_and_keeps_every_transition(
    clock: FakeClock, kimi: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    """Past EVENT_LOG_BUFFER_MAX outcomes merge into counted rows; totals stay exact."""
    caplog.set_level(logging.WARNING, logger=EVENTS_LOGGER)
    log = MemoryEventLog()
    async with memory_registry(
        clock,
        log=log,
        event_log_buffer_max=100,
        circuit_breaker_failure_threshold=10_000,
    ) as registry:
        breaker = registry.get("kimi")
        log.fail_with = ConnectionRefusedError("down")
        made = {"success": 0, "failure": 0}
        for round_ in range(5):
            await succeed_times(breaker, kimi, 150)
            for _ in range(75):  # alternating: no runs to merge in order
                await fail_times(breaker, kimi, 1)
                await succeed_times(breaker, kimi, 1)
            made["success"] += 225
            made["failure"] += 75
            await breaker.force_open(f"drill {round_}", "ops")
            await breaker.reset(f"drill {round_} over", "ops")
            assert not await registry.flush()
            assert len(registry.recorder.buffer) <= 100
        health = registry.health()
        assert health["degraded"] is True
        assert health["coalesced"] > 0
        assert any(
            "coalesced" in w and "nothing dropped" in w for w in warnings_of(caplog)
        )

        log.fail_with = None
        assert await registry.flush()
        assert outcome_totals(log, "kimi") == made
        assert (breaker.successes, breaker.failures) == (
            made["success"],
            made["failure"],
        )
        moves = [e for e in log.events if e.kind == "transition"]
        assert [e.state_version for e in moves] == list(range(1, 11))
        assert [e.reason for e in moves[:2]] == ["drill 0", "drill 0 over"]
        assert max(e.count for e in log.events) > 1
        replayed = await replayed_fingerprint(log, registry.settings, clock, "kimi")
        assert (replayed["state"], replayed["version"]) == ("closed", 10)
        assert (replayed["successes"], replayed["failures"]) == (
            made["success"],
            made["failure"],
        )


# -- SQLite locked or unwritable ------------------------------------------------------


@contextlib.contextmanager
def exclusive_lock(db: Path) -> Iterator[sqlite3.Connection]:
    """Hold ``BEGIN EXCLUSIVE`` on the file from another connection: writers must wait."""
    conn = sqlite3.connect(db, isolation_level=None, timeout=0)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        yield conn
        conn.execute("ROLLBACK")
    finally:
        conn.close()


@contextlib.contextmanager
def read_only(db: Path) -> Iterator[None]:
    """Make the database, its WAL files and its directory read-only, then restore them."""
    paths = [db.parent, *db.parent.glob(db.name + "*")]
    modes = {p: p.stat().st_mode for p in paths}
    for path in paths:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        yield
    finally:
        for path, mode in modes.items():
            path.chmod(mode)


async def test_a_locked_sqlite_store_does_not_stop_the_breaker(
    tmp_path: Path, clock: FakeClock, kimi: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    """With the file locked the breaker still opens at once; the transition lands later."""
    caplog.set_level(logging.WARNING, logger=EVENTS_LOGGER)
    db = sqlite_path(tmp_path)
    async with sqlite_registry(
        db, clock, circuit_breaker_failure_threshold=3
    ) as registry:
        registry.recorder.commit_timeout = 0.05
        breaker = registry.get("kimi")
        await succeed_times(breaker, kimi, 2)
        assert await registry.flush()
        with exclusive_lock(db):
            await fail_times(breaker, kimi, 2)
            started = time.perf_counter()
            await fail_times(breaker, kimi, 1)
            tripping_took = time.perf_counter() - started
            assert breaker.state is OPEN
            assert tripping_took < 1.0  # commit_timeout, not SQLite's busy timeout
            await rejected(breaker, kimi)
            assert kimi.calls == 5
            assert any("slower than" in w for w in warnings_of(caplog))
            transitions = (
                "SELECT to_state FROM breaker_events WHERE kind = 'transition'"
            )
            assert sqlite_rows(db, transitions) == []
        assert await registry.flush()
        assert not registry.degraded
        assert sqlite_rows(db, transitions) == [("open",)]
        kinds = sqlite_rows(
            db, "SELECT kind, sum(count) FROM breaker_events GROUP BY kind"
        )
        assert sorted(kinds) == [("failure", 3), ("success", 2), ("transition", 1)]


# Root ignores file permissions, so as root this test cannot make the store
# unwritable and is skipped; test_a_locked_sqlite_store_does_not_stop_the_breaker
# makes it unavailable with an exclusive lock instead, which works for everyone.
@pytest.mark.skipif(
    os.geteuid() == 0,
    reason="root ignores file permissions; the exclusive-lock test covers an "
    "unwritable SQLite store instead",
)
async def test_a_read_only_sqlite_store_does_not_stop_the_breaker(
    tmp_path: Path, clock: FakeClock, kimi: Provider
) -> None:
    """With the file unwritable the breaker still trips; the backlog lands once writable."""
    db = sqlite_path(tmp_path)
    async with sqlite_registry(
        db, clock, circuit_breaker_failure_threshold=2
    ) as registry:
        registry.recorder.commit_timeout = 0.5
        breaker = registry.get("kimi")
        await succeed_times(breaker, kimi, 1)
        assert await registry.flush()
        assert isinstance(registry.log, SqlEventLog)
        await registry.log.engine.dispose()  # open files stay writable: reconnect
        with read_only(db):
            await fail_times(breaker, kimi, 2)
            assert breaker.state is OPEN
            await rejected(breaker, kimi)
            assert not await registry.flush()
            assert registry.degraded
        assert await registry.flush()
        assert not registry.degraded
    rows = sqlite_rows(db, "SELECT kind, to_state FROM breaker_events ORDER BY id")
    assert rows == [
        ("success", None),
        ("failure", None),
        ("failure", None),
        ("transition", "open"),
    ]

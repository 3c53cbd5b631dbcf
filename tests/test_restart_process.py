"""A real restart: a process trips a breaker and is killed; the next one replays it.

These tests use real time (``SystemClock``): a ``FakeClock`` cannot be shared
between processes. The cooldown is two seconds, so each test waits about that long.
The killed process records its successes as outcome runs first; on SQLite and on
PostgreSQL, nothing it committed is lost and the next process counts every call.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from breaker_helpers import (
    Provider,
    make_settings,
    sqlite_path,
    sqlite_url,
    succeed_times,
)
from sqlalchemy import text

from breaker_service.breaker import BreakerRegistry, BreakerState
from breaker_service.clock import SystemClock
from breaker_service.errors import CircuitOpenError
from breaker_service.events.sql import create_engine

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("clean_environment")]

OPEN = BreakerState.OPEN
HALF_OPEN = BreakerState.HALF_OPEN
CLOSED = BreakerState.CLOSED

SCRIPT = Path(__file__).parent / "scripts" / "trip_and_block.py"
COOLDOWN = 2.0
START_TIMEOUT = 60.0  # generous: the child imports everything and migrates the file
SUCCESSES = 500  # the child's successes before the outage (trip_and_block.py)

DATABASES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@dataclass(frozen=True, slots=True)
class KilledProcess:
    """What the killed process left behind."""

    db: str  # the database URL
    opened_at: float
    returncode: int


async def rows_of(url: str, sql: str) -> list[tuple[object, ...]]:
    """The rows ``sql`` selects from the database at ``url``."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return [tuple(r) for r in (await conn.execute(text(sql))).all()]
    finally:
        await engine.dispose()


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An SQLite file's URL or an empty PostgreSQL database's."""
    if request.param == "sqlite":
        return sqlite_url(sqlite_path(tmp_path))
    return str(request.getfixturevalue("fresh_postgres_url"))


@pytest.fixture
async def killed_after_open(database_url: str) -> KilledProcess:
    """Run the script until it reports OPEN, then SIGKILL it (no shutdown, no flush)."""
    db = database_url
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        db,
        str(COOLDOWN),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    assert child.stderr is not None
    try:
        line = await asyncio.wait_for(child.stdout.readline(), START_TIMEOUT)
    finally:
        if child.returncode is None:
            child.send_signal(signal.SIGKILL)
        await child.wait()
    stderr = (await child.stderr.read()).decode(errors="replace")
    word, _, opened_at = line.decode().partition(" ")
    assert word == "OPEN", f"the child did not report OPEN: {line!r}\n{stderr}"
    assert child.returncode is not None
    return KilledProcess(db, float(opened_at), child.returncode)


async def test_the_transition_is_committed_before_it_takes_effect(
    killed_after_open: KilledProcess,
) -> None:
    """Once the process could say OPEN, the transition (and what led to it) is on disk."""
    assert killed_after_open.returncode == -signal.SIGKILL
    rows = await rows_of(
        killed_after_open.db,
        "SELECT kind, from_state, to_state, at, duration, instance_id, count "
        "FROM breaker_events WHERE breaker = 'kimi' ORDER BY id",
    )
    calls = [row[0] for row in rows for _ in range(int(str(row[6])))]
    assert calls == ["success"] * SUCCESSES + ["failure"] * 3 + ["transition"]
    assert len(rows) < SUCCESSES  # the successes were written as runs
    assert rows[-1][:6] == (
        "transition",
        "closed",
        "open",
        killed_after_open.opened_at,
        COOLDOWN,
        "doomed",
    )


async def test_the_next_process_finds_open_with_the_remaining_cooldown(
    killed_after_open: KilledProcess,
) -> None:
    """Replay restores OPEN with the rest of the cooldown; then half-open, then closed."""
    settings = make_settings(
        circuit_breaker_failure_threshold=3,
        circuit_breaker_timeout=COOLDOWN,
        breaker_instance_id="successor",
    )
    kimi = Provider("kimi")
    async with await BreakerRegistry.open(
        killed_after_open.db, settings=settings, clock=SystemClock()
    ) as registry:
        breaker = registry.get("kimi")
        expected = killed_after_open.opened_at + COOLDOWN - time.time()
        remaining = breaker.retry_after
        assert breaker.state is OPEN
        assert 0 < remaining <= COOLDOWN
        assert remaining == pytest.approx(expected, abs=0.25)
        assert breaker.failures == 3
        assert breaker.successes == SUCCESSES
        with pytest.raises(CircuitOpenError) as refused:
            await breaker.call(kimi.ok)
        assert 0 < refused.value.retry_after <= remaining
        assert kimi.calls == 0
        await asyncio.sleep(breaker.retry_after + 0.05)  # real time: see the docstring
        await succeed_times(breaker, kimi, 1)
        assert breaker.state is HALF_OPEN
        await succeed_times(breaker, kimi, 1)
        assert breaker.state is CLOSED
    moves = await rows_of(
        killed_after_open.db,
        "SELECT from_state, to_state, instance_id FROM breaker_events "
        "WHERE kind = 'transition' ORDER BY state_version",
    )
    assert moves == [
        ("closed", "open", "doomed"),
        ("open", "half_open", "successor"),
        ("half_open", "closed", "successor"),
    ]

"""Replay: restarts on a real SQLite file, snapshots, pruning, audit queries, bad rows.

The last part is the Hypothesis stateful test "replaying the log gives the same
breaker as living through it", with and without snapshots.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
from breaker_helpers import (
    Provider,
    fail_times,
    make_settings,
    rejected,
    replayed_fingerprint,
    sqlite_path,
    sqlite_registry,
    sqlite_rows,
    sqlite_url,
    succeed_times,
    wait_until,
)
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from breaker_service.breaker import BreakerRegistry, BreakerState, CircuitBreaker
from breaker_service.clock import FakeClock
from breaker_service.config import Settings
from breaker_service.errors import (
    CircuitOpenError,
    MalformedEventError,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)
from breaker_service.events import MemoryEventLog
from breaker_service.events.log import EventLog

CLOSED = BreakerState.CLOSED
OPEN = BreakerState.OPEN
HALF_OPEN = BreakerState.HALF_OPEN


pytestmark = pytest.mark.usefixtures("clean_environment")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """The SQLite event-log file of one test."""
    return sqlite_path(tmp_path)


def next_process(clock: FakeClock, downtime: float) -> FakeClock:
    """A clock ``downtime`` later in wall time, with a new monotonic origin."""
    return FakeClock(start=7.0, wall=clock.time() + downtime)


# -- restarts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("downtime", "remaining"),
    [
        pytest.param(0.0, 60.0, id="restart-at-once"),
        pytest.param(20.0, 40.0, id="down-20s"),
        pytest.param(59.5, 0.5, id="down-almost-the-cooldown"),
        pytest.param(600.0, 0.0, id="down-past-the-cooldown"),
    ],
)
async def test_open_breaker_keeps_its_remaining_cooldown_across_a_restart(
    db: Path, clock: FakeClock, kimi: Provider, downtime: float, remaining: float
) -> None:
    """The cooldown runs from the transition's wall-clock time, not from start-up."""
    async with sqlite_registry(db, clock, circuit_breaker_failure_threshold=2) as first:
        await fail_times(first.get("kimi"), kimi, 2)
    later = next_process(clock, downtime)
    async with sqlite_registry(db, later, circuit_breaker_failure_threshold=2) as again:
        breaker = again.get("kimi")
        assert breaker.state is OPEN
        assert breaker.retry_after == pytest.approx(remaining)
        assert (breaker.failures, breaker.version) == (2, 1)
        if remaining > 0:
            assert (await rejected(breaker, kimi)).retry_after == pytest.approx(
                remaining
            )
            later.advance(remaining)
        assert await breaker.call(kimi.ok) == "kimi: ok"
        assert breaker.state is HALF_OPEN
        assert kimi.calls == 3


@pytest.mark.parametrize(
    "then",
    [
        pytest.param("succeeds", id="then-succeeds"),
        pytest.param("fails", id="then-fails"),
        pytest.param("trial-lost", id="trial-in-flight-at-shutdown"),
    ],
)
async def test_restart_in_the_middle_of_half_open(
    db: Path, clock: FakeClock, kimi: Provider, then: str
) -> None:
    """HALF_OPEN comes back with its successful trials; a trial in flight is forgotten."""
    options: dict[str, Any] = {
        "circuit_breaker_failure_threshold": 1,
        "circuit_breaker_success_threshold": 3,
        "circuit_breaker_timeout": 10,
        "circuit_breaker_timeout_multiplier": 2,
    }
    async with sqlite_registry(db, clock, **options) as first:
        breaker = first.get("kimi")
        await fail_times(breaker, kimi, 1)
        clock.advance(10)
        await succeed_times(breaker, kimi, 1)
        lost = asyncio.create_task(breaker.call(kimi.gated))
        await wait_until(lambda: kimi.entered == 1)
        assert (breaker.half_open_successes, breaker.trials_in_flight) == (1, 1)
    async with sqlite_registry(db, next_process(clock, 1), **options) as again:
        breaker = again.get("kimi")
        assert breaker.state is HALF_OPEN
        assert (breaker.half_open_successes, breaker.trials_in_flight) == (1, 0)
        if then == "succeeds":
            await succeed_times(breaker, kimi, 2)
            assert breaker.state is CLOSED
        elif then == "fails":
            await fail_times(breaker, kimi, 1)
            assert breaker.state is OPEN
            # not grown: a trial got through in this half-open, so the provider is
            # healing and the open duration starts over (grows only on outright fails)
            assert breaker.retry_after == pytest.approx(10.0)
        else:
            await breaker.call(Provider("kimi").ok)  # the lost trial's slot is free
            assert breaker.half_open_successes == 2
    lost.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await lost


async def test_a_lower_threshold_after_restart_does_not_rewrite_history(
    db: Path, clock: FakeClock, kimi: Provider
) -> None:
    """Three failures under threshold 5 stay CLOSED under threshold 3; the next one trips."""
    async with sqlite_registry(db, clock, circuit_breaker_failure_threshold=5) as first:
        await fail_times(first.get("kimi"), kimi, 3)
    async with sqlite_registry(db, clock, circuit_breaker_failure_threshold=3) as again:
        breaker = again.get("kimi")
        assert breaker.state is CLOSED
        assert breaker.consecutive_failures == 3
        await fail_times(breaker, kimi, 1)
        assert breaker.state is OPEN
        assert breaker.last_transition is not None
        assert breaker.last_transition.reason == "4 consecutive failures"


async def test_new_settings_after_restart_apply_from_then_on(
    db: Path, clock: FakeClock, kimi: Provider
) -> None:
    """An OPEN breaker keeps its recorded cooldown; new threshold and timeout apply next."""
    async with sqlite_registry(
        db, clock, circuit_breaker_failure_threshold=2, circuit_breaker_timeout=60
    ) as first:
        await fail_times(first.get("kimi"), kimi, 2)
    async with sqlite_registry(
        db, clock, circuit_breaker_failure_threshold=4, circuit_breaker_timeout=5
    ) as again:
        breaker = again.get("kimi")
        assert breaker.state is OPEN
        assert breaker.retry_after == pytest.approx(60.0)  # as recorded, not 5
        clock.advance(60)
        await fail_times(breaker, kimi, 1)  # a failed trial reopens, with the new 5s
        assert breaker.retry_after == pytest.approx(5.0)
        clock.advance(5)
        await succeed_times(breaker, kimi, 2)
        await fail_times(breaker, kimi, 3)
        assert breaker.state is CLOSED
        await fail_times(breaker, kimi, 1)
        assert breaker.state is OPEN
    transitions = sqlite_rows(
        db,
        "SELECT to_state, duration FROM breaker_events "
        "WHERE kind = 'transition' ORDER BY id",
    )
    assert transitions == [
        ("open", 60.0),
        ("half_open", None),
        ("open", 5.0),
        ("half_open", None),
        ("closed", None),
        ("open", 5.0),
    ]


# -- snapshots and pruning --------------------------------------------------------------


def backup(source: Path, target: Path) -> None:
    """Copy a live SQLite database (WAL included) with the backup API."""
    with (
        contextlib.closing(sqlite3.connect(source)) as src,
        contextlib.closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)


async def fingerprint_of(
    path: Path, clock: FakeClock, **options: Any
) -> dict[str, Any]:
    """Open a registry on ``path`` and return kimi's fingerprint."""
    async with sqlite_registry(path, clock, **options) as registry:
        return registry.get("kimi").fingerprint()


async def attempt(breaker: CircuitBreaker, fn: Callable[[], Awaitable[str]]) -> None:
    """One call whose refusal or failure is part of the plan."""
    with contextlib.suppress(CircuitOpenError, ProviderUnavailable, ProviderTimeout):
        await breaker.call(fn)


async def drive(breaker: CircuitBreaker, kimi: Provider, clock: FakeClock) -> None:
    """A varied history: trips, refusals, failed probes, recovery, timeouts."""
    for round_ in range(3):
        for fn in (kimi.ok, kimi.ok, kimi.ok, kimi.fail, kimi.fail, kimi.timeout):
            await attempt(breaker, fn)
        clock.advance(30 + round_)
        await attempt(breaker, kimi.fail)  # refused: still cooling down
        clock.advance(30)
        if round_ == 1:
            await attempt(breaker, kimi.fail)  # a failed probe: the cooldown grows
            clock.advance(120)
        for fn in (kimi.ok, kimi.ok, kimi.ok):
            await attempt(breaker, fn)
        clock.advance(1.5)


SNAPSHOT_OPTIONS: dict[str, Any] = {
    "circuit_breaker_failure_threshold": 3,
    "circuit_breaker_timeout_multiplier": 2,
    "circuit_breaker_failure_rate_threshold": 0.9,
    "circuit_breaker_window_type": "time",
    "circuit_breaker_window_duration": 100,
    "circuit_breaker_minimum_calls": 50,
    "event_log_snapshot_every": 5,
}


async def test_replay_from_snapshot_and_tail_equals_full_replay(
    db: Path, tmp_path: Path, clock: FakeClock, kimi: Provider
) -> None:
    """Snapshots are written every N events; snapshot + tail replays like the whole log."""
    async with sqlite_registry(db, clock, **SNAPSHOT_OPTIONS) as registry:
        breaker = registry.get("kimi")
        await drive(breaker, kimi, clock)
        assert await registry.flush()
        await succeed_times(breaker, kimi, 2)  # a tail shorter than N
        assert await registry.flush()
        live = breaker.fingerprint()
        with_snapshot, without = tmp_path / "snap.db", tmp_path / "full.db"
        backup(db, with_snapshot)
    shutil.copy(with_snapshot, without)
    with contextlib.closing(sqlite3.connect(without)) as conn:
        conn.execute("DELETE FROM breaker_snapshots")
        conn.commit()
    ((snap_version, snap_last_id, data),) = sqlite_rows(
        with_snapshot,
        "SELECT state_version, last_event_id, data FROM breaker_snapshots "
        "WHERE breaker = 'kimi'",
    )
    ((last_id,),) = sqlite_rows(with_snapshot, "SELECT max(id) FROM breaker_events")
    assert 0 < snap_last_id < last_id  # there is a tail to replay
    assert snap_version >= 1
    assert '"successes"' in data
    from_snapshot = await fingerprint_of(with_snapshot, clock, **SNAPSHOT_OPTIONS)
    full = await fingerprint_of(without, clock, **SNAPSHOT_OPTIONS)
    assert from_snapshot == full == live
    assert live["window"]["buckets"]  # the time window came back too


async def test_shutdown_writes_a_snapshot_of_every_breaker_with_pending_events(
    db: Path, clock: FakeClock
) -> None:
    """``aclose`` flushes with fresh snapshots, so the next start reads no tail."""
    kimi, glm = Provider("kimi"), Provider("glm")
    async with sqlite_registry(db, clock, event_log_snapshot_every=1000) as registry:
        await succeed_times(registry.get("kimi"), kimi, 3)
        await fail_times(registry.get("glm"), glm, 2)
    rows = sqlite_rows(
        db, "SELECT breaker, last_event_id FROM breaker_snapshots ORDER BY breaker"
    )
    last = dict(
        sqlite_rows(db, "SELECT breaker, max(id) FROM breaker_events GROUP BY breaker")
    )
    assert rows == [("glm", last["glm"]), ("kimi", last["kimi"])]


async def test_retention_runs_in_the_background_on_the_injected_clock(
    db: Path, clock: FakeClock, kimi: Provider
) -> None:
    """Background retention waits on the injected clock: moving it on prunes, no real sleep."""
    options = {**SNAPSHOT_OPTIONS, "event_log_retention_days": 1}
    async with sqlite_registry(db, clock, **options) as registry:
        breaker = registry.get("kimi")
        await drive(breaker, kimi, clock)
        assert await registry.flush()
        registry.recorder.request_snapshot("kimi")
        assert await registry.flush()
        outcomes = [
            e
            for e in await registry.history("kimi", limit=None)
            if e.kind != "transition"
        ]
        assert outcomes
        sleeps_before = list(clock.sleeps)
        clock.advance(2 * 86400)  # past the first run (a minute) and the retention
        for _ in range(50):
            left = [
                e
                for e in await registry.history("kimi", limit=None)
                if e.kind != "transition"
            ]
            if len(left) < len(outcomes):
                break
            await asyncio.sleep(0.01)
        assert len(left) < len(outcomes)
        assert clock.sleeps == sleeps_before  # the background task moved no time


async def test_prune_keeps_transitions_and_drops_covered_outcomes(
    db: Path, clock: FakeClock, kimi: Provider
) -> None:
    """Old outcome events covered by a snapshot go; transitions and state stay."""
    options = {**SNAPSHOT_OPTIONS, "event_log_retention_days": 1}
    async with sqlite_registry(db, clock, **options) as registry:
        await registry.maintenance.aclose()  # this test prunes by hand
        breaker = registry.get("kimi")
        await drive(breaker, kimi, clock)
        assert await registry.flush()
        before = await registry.history("kimi", limit=None)
        clock.advance(2 * 86400)
        cutoff = clock.time() - 86400
        await succeed_times(breaker, kimi, 2)  # recent: kept
        assert await registry.flush()
        live = breaker.fingerprint()
        dropped = await registry.prune()
        after = await registry.history("kimi", limit=None)
        ((covered,),) = sqlite_rows(
            db, "SELECT last_event_id FROM breaker_snapshots WHERE breaker = 'kimi'"
        )
    old_outcomes = [e for e in before if e.kind != "transition" and e.id <= covered]
    assert dropped == len(old_outcomes) > 0
    assert [e for e in after if e.kind == "transition"] == [
        e for e in before if e.kind == "transition"
    ]
    assert all(
        e.at >= cutoff or e.id > covered for e in after if e.kind != "transition"
    )
    assert await fingerprint_of(db, clock, **options) == live


# -- audit queries ------------------------------------------------------------------


async def test_history_pages_filters_and_state_at_a_past_time(
    db: Path, clock: FakeClock, kimi: Provider
) -> None:
    """History pages by id, filters by kind and time; ``state_at`` answers for the past."""
    start = clock.time()
    async with sqlite_registry(db, clock, circuit_breaker_failure_threshold=2) as reg:
        breaker = reg.get("kimi")
        await succeed_times(breaker, kimi, 3)  # t+0
        clock.advance(10)
        await fail_times(breaker, kimi, 2)  # t+10: opens
        clock.advance(60)
        await succeed_times(breaker, kimi, 2)  # t+70: half-open, closes
        clock.advance(10)
        await succeed_times(reg.get("glm"), Provider("glm"), 1)  # another breaker
        everything = await reg.history("kimi", limit=None)
        # Outcomes are runs: equal consecutive calls in one row with their count.
        assert [(e.kind, e.count) for e in everything] == [
            ("success", 3),
            ("failure", 2),
            ("transition", 1),
            ("transition", 1),
            ("success", 2),
            ("transition", 1),
        ]
        assert all(e.breaker == "kimi" for e in everything)
        pages: list[list[Any]] = []
        after = 0
        while page := await reg.history("kimi", after_id=after, limit=4):
            pages.append(page)
            after = page[-1].id
        assert [len(p) for p in pages] == [4, 2]
        assert [e for p in pages for e in p] == everything
        moves = await reg.history("kimi", kinds=["transition"])
        assert [(e.from_state, e.to_state) for e in moves] == [
            ("closed", "open"),
            ("open", "half_open"),
            ("half_open", "closed"),
        ]
        window = await reg.history(
            "kimi",
            since=datetime.fromtimestamp(start + 5, UTC),
            until=start + 10,
            kinds=["failure", "transition"],
        )
        assert [(e.kind, e.count) for e in window] == [
            ("failure", 2),
            ("transition", 1),
        ]
        assert await reg.history("kimi", since=start + 71) == []
        assert [e.kind for e in await reg.history("kimi", limit=2)] == [
            "success",
            "failure",
        ]
        expected = [
            (start - 1, CLOSED),
            (start + 9, CLOSED),
            (start + 10, OPEN),
            (start + 69.9, OPEN),
            (start + 70, CLOSED),
            (start + 1000, CLOSED),
        ]
        for at, state in expected:
            assert await reg.state_at("kimi", at) is state, at
        assert (
            await reg.state_at("kimi", datetime.fromtimestamp(start + 30, UTC)) is OPEN
        )
        assert await reg.state_at("never-used", start) is CLOSED
        with pytest.raises(ValueError, match="timezone-aware"):
            await reg.state_at("kimi", datetime(2026, 1, 1))


async def test_state_at_sees_half_open_between_its_transitions(
    db: Path, clock: FakeClock, kimi: Provider
) -> None:
    """``state_at`` reports HALF_OPEN while a probe phase lasted."""
    async with sqlite_registry(
        db,
        clock,
        circuit_breaker_failure_threshold=1,
        circuit_breaker_success_threshold=2,
    ) as reg:
        breaker = reg.get("kimi")
        await fail_times(breaker, kimi, 1)
        clock.advance(60)
        await succeed_times(breaker, kimi, 1)
        probing = clock.time()
        clock.advance(5)
        await succeed_times(breaker, kimi, 1)
        assert await reg.state_at("kimi", probing + 1) is HALF_OPEN
        assert await reg.state_at("kimi", clock.time()) is CLOSED


# -- malformed rows -----------------------------------------------------------------


def insert_row(db: Path, **columns: Any) -> int:
    """Insert a raw event row, as a buggy writer or a hand edit might; its id."""
    row = {
        "breaker": "kimi",
        "stream": f"kimi@{socket.gethostname()}",  # the instance-scoped stream
        "state_version": 0,
        "instance_id": "hand",
        "count": 1,
    }
    row.update(columns)
    names = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        cursor = conn.execute(
            f"INSERT INTO breaker_events ({names}) VALUES ({marks})",
            tuple(row.values()),
        )
        conn.commit()
        assert cursor.lastrowid is not None
        return cursor.lastrowid


MALFORMED = [
    pytest.param({"kind": "bogus"}, id="unknown-kind"),
    pytest.param(
        {
            "kind": "transition",
            "state_version": 2,
            "from_state": "open",
            "to_state": "nonsense",
            "reason": "hand edit",
        },
        id="unknown-state",
    ),
    pytest.param(
        {"kind": "transition", "state_version": 2, "from_state": "open"},
        id="transition-without-target",
    ),
]


@pytest.mark.parametrize("columns", MALFORMED)
async def test_a_malformed_row_fails_start_up_naming_the_row(
    db: Path, clock: FakeClock, kimi: Provider, columns: dict[str, Any]
) -> None:
    """By default start-up refuses a log it cannot read, and says which row."""
    async with sqlite_registry(db, clock, circuit_breaker_failure_threshold=1) as reg:
        await fail_times(reg.get("kimi"), kimi, 1)
    row_id = insert_row(db, at=clock.time(), **columns)
    with pytest.raises(MalformedEventError, match=rf"\bid={row_id}\b") as failed:
        await BreakerRegistry.open(
            sqlite_url(db), settings=make_settings(), clock=clock
        )
    assert failed.value.row_id == row_id


@pytest.mark.parametrize("columns", MALFORMED)
async def test_a_malformed_row_is_skipped_loudly_when_configured(
    db: Path,
    clock: FakeClock,
    kimi: Provider,
    columns: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With EVENT_LOG_ON_MALFORMED=skip start-up logs the row and carries on, unstuck."""
    options: dict[str, Any] = {
        "circuit_breaker_failure_threshold": 1,
        "event_log_on_malformed": "skip",
    }
    async with sqlite_registry(db, clock, **options) as reg:
        await fail_times(reg.get("kimi"), kimi, 1)
    row_id = insert_row(db, at=clock.time(), **columns)
    caplog.set_level(logging.ERROR, logger="breaker_service")
    async with sqlite_registry(db, clock, **options) as reg:
        breaker = reg.get("kimi")
        assert breaker.state is OPEN
        assert breaker.version == 1
        skipped = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert skipped
        assert all(f"id={row_id}" in r.getMessage() for r in skipped)
        assert "skipping" in skipped[0].getMessage()
        # The breaker still moves on, even if the bad row holds the next version.
        clock.advance(60)
        async with asyncio.timeout(5):
            await succeed_times(breaker, kimi, 2)
        assert breaker.state is CLOSED
    async with sqlite_registry(db, clock, **options) as reg:
        assert reg.get("kimi").state is CLOSED


# -- replay equals life (Hypothesis) ------------------------------------------------


class Hung:
    """A call held inside the provider until released (or cancelled)."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.error: BaseException | None = None
        self.entered = False
        self.task: asyncio.Task[str] | None = None


OUTCOMES = ["success", "failure", "timeout", "ignored", "slow"]


class ReplayEqualsLife(RuleBasedStateMachine):
    """Drives one breaker at random; replaying its log must give the same breaker."""

    options: ClassVar[dict[str, Any]] = {
        "circuit_breaker_window_type": "count",
        "circuit_breaker_window_size": 6,
        "event_log_snapshot_every": 1_000_000,  # never: the whole log is replayed
    }
    max_calls = 2

    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.clock = FakeClock()
        self.log: EventLog = MemoryEventLog()
        self.config: Settings = make_settings(
            circuit_breaker_failure_threshold=3,
            circuit_breaker_success_threshold=2,
            circuit_breaker_timeout=10,
            circuit_breaker_timeout_multiplier=2,
            circuit_breaker_max_timeout=40,
            circuit_breaker_half_open_max_calls=self.max_calls,
            circuit_breaker_half_open_trial_timeout=20,
            circuit_breaker_failure_rate_threshold=0.5,
            circuit_breaker_minimum_calls=4,
            **self.options,
        )
        self.registry = self.runner.run(
            BreakerRegistry.open(settings=self.config, clock=self.clock, log=self.log)
        )
        self.breaker = self.registry.get("kimi")
        self.provider = Provider("kimi", self.clock)
        self.hung: list[Hung] = []

    @property
    def memory_log(self) -> MemoryEventLog:
        """The log, which this machine keeps in memory."""
        assert isinstance(self.log, MemoryEventLog)
        return self.log

    # -- what a call does inside the provider --

    async def _provider(self, outcome: str) -> str:
        if outcome == "success":
            return await self.provider.ok()
        if outcome == "failure":
            return await self.provider.fail()
        if outcome == "timeout":
            return await self.provider.timeout()
        if outcome == "ignored":
            return await self.provider.fail(ProviderRejected("bad", status=400))
        return await self.provider.slow(6.0)

    async def _through(self, form: str, fn: Callable[[], Awaitable[str]]) -> str:
        if form == "guard":
            async with self.breaker.guard():
                return await fn()
        return await self.breaker.call(fn)

    def _expect_refusal(self) -> bool:
        state, breaker = self.breaker.state, self.breaker
        return state is BreakerState.FORCED_OPEN or (
            state is OPEN and breaker.retry_after > 0
        )

    # -- rules --

    @rule(outcome=st.sampled_from(OUTCOMES), form=st.sampled_from(["call", "guard"]))
    def call(self, outcome: str, form: str) -> None:
        """One call with the given outcome, through ``call`` or ``guard``."""
        must_refuse = self._expect_refusal()
        calls = self.provider.calls

        async def go() -> None:
            with contextlib.suppress(
                ProviderUnavailable, ProviderTimeout, ProviderRejected
            ):
                await self._through(form, lambda: self._provider(outcome))

        try:
            self.runner.run(go())
        except CircuitOpenError:
            assert self.provider.calls == calls, "a refused call reached the provider"
        else:
            assert not must_refuse, f"{self.breaker!r} let a call through"

    @rule(seconds=st.sampled_from([0.5, 3.0, 9.99, 10.0, 21.0, 45.0, 90.0]))
    def advance(self, seconds: float) -> None:
        """Let time pass."""
        self.clock.advance(seconds)

    @rule()
    def tick(self) -> None:
        """Apply time-driven moves now."""
        self.runner.run(self.breaker.tick())

    @rule(actor=st.sampled_from(["alice", None]))
    def force_open(self, actor: str | None) -> None:
        """An operator forces it open."""
        self.runner.run(self.breaker.force_open("incident", actor))

    @rule(actor=st.sampled_from(["bob", None]))
    def reset(self, actor: str | None) -> None:
        """An operator closes it."""
        self.runner.run(self.breaker.reset("all clear", actor))

    @rule()
    def disable(self) -> None:
        """An operator switches it to metrics only."""
        self.runner.run(self.breaker.disable("metrics only", "carol"))

    @precondition(lambda self: len(self.hung) < 3)
    @rule(form=st.sampled_from(["call", "guard"]))
    def start_hanging_call(self, form: str) -> None:
        """A call that enters the provider and stays there (a trial that may never report)."""
        hung = Hung()

        async def inside() -> str:
            self.provider.calls += 1
            hung.entered = True
            await hung.gate.wait()
            if hung.error is not None:
                raise hung.error
            return "kimi: late"

        async def start() -> None:
            task = asyncio.get_running_loop().create_task(self._through(form, inside))
            hung.task = task
            await wait_until(lambda: hung.entered or task.done())

        must_refuse = self._expect_refusal()
        self.runner.run(start())
        assert hung.task is not None
        if hung.task.done():
            assert isinstance(hung.task.exception(), CircuitOpenError)
            assert not hung.entered
        else:
            assert not must_refuse
            self.hung.append(hung)

    @precondition(lambda self: bool(self.hung))
    @rule(
        data=st.data(),
        ending=st.sampled_from(["success", "failure", "ignored", "cancel"]),
    )
    def finish_hanging_call(self, data: st.DataObject, ending: str) -> None:
        """A held call finally reports (or is cancelled)."""
        hung = self.hung.pop(data.draw(st.integers(0, len(self.hung) - 1)))
        assert hung.task is not None
        task = hung.task
        if ending == "cancel":
            task.cancel()
        elif ending == "failure":
            hung.error = ProviderUnavailable("late 503", status=503)
        elif ending == "ignored":
            hung.error = ProviderRejected("late 400", status=400)
        hung.gate.set()

        async def wait() -> None:
            with contextlib.suppress(
                asyncio.CancelledError, ProviderUnavailable, ProviderRejected
            ):
                await task

        self.runner.run(wait())

    # -- invariants --

    @invariant()
    def trials_stay_within_the_limit(self) -> None:
        """Never more half-open trials in flight than allowed."""
        assert self.breaker.trials_in_flight <= self.max_calls
        if self.breaker.state is not HALF_OPEN:
            assert self.breaker.trials_in_flight == 0

    @invariant()
    def replay_equals_life(self) -> None:
        """The log, replayed into a fresh registry, gives the live breaker's fingerprint."""
        assert self.runner.run(self.registry.flush())
        replayed = self.runner.run(
            replayed_fingerprint(self.memory_log, self.config, self.clock, "kimi")
        )
        assert replayed == self.breaker.fingerprint()

    def teardown(self) -> None:
        """Release held calls, compare once more, and close everything."""
        try:
            for hung in self.hung:
                assert hung.task is not None
                hung.task.cancel()
                hung.gate.set()

            async def settle() -> None:
                for hung in self.hung:
                    assert hung.task is not None
                    with contextlib.suppress(asyncio.CancelledError):
                        await hung.task

            self.runner.run(settle())
            self.replay_equals_life()
            self.runner.run(self.registry.aclose())
        finally:
            self.runner.close()


class ReplayEqualsLifeWithSnapshots(ReplayEqualsLife):
    """The same, with a snapshot every three events, a time window and slow calls."""

    options: ClassVar[dict[str, Any]] = {
        "circuit_breaker_window_type": "time",
        "circuit_breaker_window_duration": 30,
        "circuit_breaker_slow_call_duration": 5,
        "event_log_snapshot_every": 3,
    }


STATEFUL = settings(
    max_examples=60, stateful_step_count=30, deadline=None, derandomize=False
)


def test_replay_equals_life() -> None:
    """Any sequence of calls, time steps and operator actions replays to the same breaker."""
    run_state_machine_as_test(ReplayEqualsLife, settings=STATEFUL)


def test_replay_equals_life_with_snapshots() -> None:
    """The same holds when replay starts from a snapshot and folds only the tail."""
    run_state_machine_as_test(ReplayEqualsLifeWithSnapshots, settings=STATEFUL)

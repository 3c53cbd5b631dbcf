"""Outcome runs: what a run holds, compaction folds the same, memory stays bounded."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from breaker_helpers import Provider, memory_registry, per_call
from hypothesis import given, settings
from hypothesis import strategies as st

from breaker_service.breaker import BreakerState
from breaker_service.breaker.core import BreakerCore
from breaker_service.breaker.window import FailureRateWindow
from breaker_service.clock import FakeClock
from breaker_service.errors import CircuitOpenError, ProviderUnavailable
from breaker_service.events import MemoryEventLog
from breaker_service.events.model import OutcomeRow, TransitionRecord
from breaker_service.events.runs import RunLog, compact

T0 = 1_780_000_000.0


def test_equal_calls_in_one_second_are_one_run() -> None:
    """Same kind, version, detail, status and second: one row with the count."""
    runs = RunLog("kimi")
    for i in range(5):
        runs.add("success", 0, T0 + i * 0.1, current=True)
    runs.add("failure", 0, T0 + 0.6, "503", 503)
    runs.add("failure", 0, T0 + 0.7, "503", 503)
    runs.add("failure", 0, T0 + 0.8, "500", 500)
    runs.add("failure", 0, T0 + 1.1, "500", 500)  # the next second: a new run
    runs.add("success", 1, T0 + 1.2, duration=0.5)
    runs.add("success", 1, T0 + 1.3, duration=0.25)
    assert len(runs) == 5  # four closed, one open
    assert runs.drain() == [
        ("kimi", "success", 0, T0, None, None, None, 5, T0 + 0.4),
        ("kimi", "failure", 0, T0 + 0.6, "503", 503, None, 2, T0 + 0.7),
        ("kimi", "failure", 0, T0 + 0.8, "500", 500, None, 1, None),
        ("kimi", "failure", 0, T0 + 1.1, "500", 500, None, 1, None),
        ("kimi", "success", 1, T0 + 1.2, None, None, 0.75, 2, T0 + 1.3),
    ]
    assert len(runs) == 0
    assert runs.drain() == []


def test_the_hot_path_window_covers_only_a_current_plain_success() -> None:
    """``ok_from``/``ok_until`` cover the open run's second, and close on a fence."""
    runs = RunLog("kimi")
    runs.add("success", 3, T0 + 0.5, current=True)
    assert runs.ok_from <= T0 + 0.9 < runs.ok_until
    assert not runs.ok_from <= T0 + 1.0 < runs.ok_until
    runs.fence()
    assert not runs.ok_from <= T0 + 0.9 < runs.ok_until
    runs.add("success", 2, T0 + 0.6)  # a late call of an old version
    assert not runs.ok_from <= T0 + 0.7 < runs.ok_until
    runs.add("success", 3, T0 + 0.6, "slow", current=True)
    assert not runs.ok_from <= T0 + 0.7 < runs.ok_until


# -- compaction folds the same (Hypothesis) ---------------------------------------------

OUTCOMES: list[tuple[str, str | None, int | None]] = [
    ("success", None, None),
    ("success", "slow", None),
    ("failure", "503", 503),
    ("failure", "500", 500),
    ("timeout", "timeout", None),
]
STATES = ["closed", "half_open", "open", "disabled", "forced_open"]


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """Steps: ("call", outcome, dt, late) or ("move", to_state)."""
    steps = draw(
        st.lists(
            st.one_of(
                st.tuples(
                    st.just("call"),
                    st.sampled_from(OUTCOMES),
                    st.sampled_from([0.0, 0.05, 0.4, 1.0, 7.0]),
                    st.booleans(),
                ),
                st.tuples(st.just("move"), st.sampled_from(STATES)),
            ),
            max_size=120,
        )
    )
    return [s for s in steps if s[0] == "call" or draw(st.integers(0, 3)) == 0]


def live_rows(history: list[tuple[Any, ...]]) -> tuple[list[Any], list[OutcomeRow]]:
    """The log a breaker writes for ``history``: rows with transitions cut in."""
    runs = RunLog("kimi", limit=10**9)
    at, version = T0, 0
    log: list[Any] = []
    for step in history:
        if step[0] == "move":
            log.append(("rows", runs.drain()))
            version += 1
            log.append(("move", step[1], version, at))
            continue
        _, (kind, detail, status), dt, late = step
        at += dt
        runs.add(kind, version - 1 if late and version else version, at, detail, status)
    log.append(("rows", runs.drain()))
    return log, [r for item in log if item[0] == "rows" for r in item[1]]


def fold(log: list[Any], window: FailureRateWindow | None) -> dict[str, Any]:
    """Fold rows and transitions as replay does; the fingerprint."""
    core = BreakerCore("kimi", window)
    frm = "closed"
    for item in log:
        if item[0] == "rows":
            for r in item[1]:
                core.apply_outcome(r[1], r[2], r[3], r[7], slow=r[4] == "slow")
            continue
        _, to, version, at = item
        core.apply_transition(TransitionRecord("kimi", frm, to, version, at, "test"))
        frm = to
    return core.fingerprint()


WINDOWS = [
    pytest.param(None, id="consecutive"),
    pytest.param(("count", 5), id="count-window"),
    pytest.param(("time", 10), id="time-window"),
]


@pytest.mark.parametrize("policy", WINDOWS)
@settings(max_examples=300, deadline=None)
@given(history=histories(), target=st.integers(0, 6))
def test_compaction_folds_to_the_same_breaker(
    policy: tuple[str, int] | None, history: list[tuple[Any, ...]], target: int
) -> None:
    """Merged runs fold to the same counters, trailing failures and window."""

    def window() -> FailureRateWindow | None:
        if policy is None:
            return None
        kind, size = policy
        return FailureRateWindow(
            threshold=0.5, kind=kind, size=size, duration=size, minimum_calls=1
        )

    log, _rows = live_rows(history)
    keep_calls = policy[1] if policy is not None and policy[0] == "count" else 0
    keep_seconds = policy[1] + 1 if policy is not None and policy[0] == "time" else 0
    compacted = [
        ("rows", compact(item[1], keep_calls, target, keep_seconds))
        if item[0] == "rows"
        else item
        for item in log
    ]
    calls = sum(r[7] for item in log if item[0] == "rows" for r in item[1])
    assert (
        sum(r[7] for item in compacted if item[0] == "rows" for r in item[1]) == calls
    )
    assert fold(compacted, window()) == fold(log, window())


def test_compaction_merges_what_no_policy_reads_in_order() -> None:
    """Alternating outcomes over many seconds shrink to a few rows per kind."""
    runs = RunLog("kimi", limit=64)
    for i in range(10_000):
        kind, detail = ("success", None) if i % 2 else ("failure", "503")
        runs.add(kind, 0, T0 + i * 0.01, detail)
    assert len(runs) <= 64
    assert runs.merged > 9_000
    assert sum(r[7] for r in runs.drain()) == 10_000


# -- the breaker: bounded whatever the caller does --------------------------------------


async def test_a_caller_that_never_yields_cannot_grow_memory() -> None:
    """A tight loop of mixed outcomes that never lets the flusher run stays bounded."""
    clock = FakeClock(wall=T0)
    log = MemoryEventLog()
    provider = Provider("kimi", clock)
    errors = [
        ProviderUnavailable("down", provider="kimi", status=s) for s in (500, 503)
    ]
    async with memory_registry(
        clock, log=log, circuit_breaker_failure_threshold=100_000
    ) as registry:
        breaker = registry.get("kimi")
        runs = registry.recorder.runs_for("kimi")
        most = 0
        for i in range(30_000):
            with contextlib.suppress(ProviderUnavailable):
                if i % 3 == 2:
                    await breaker.call(provider.ok)
                else:
                    await breaker.call(provider.fail, errors[i % 2])
            if i % 100 == 0:
                clock.advance(0.37)
                most = max(most, len(runs))
        assert most <= registry.recorder.runs_max + 1
        assert runs.merged > 0
        live = breaker.fingerprint()
        assert await registry.flush()
    events = per_call(e for e in log.events if e.kind != "transition")
    assert len(events) == 30_000
    assert sum(e.kind == "success" for e in events) == 10_000
    assert live["successes"] == 10_000
    assert live["failures"] == 20_000


async def test_a_full_run_log_never_drops_a_transition() -> None:
    """Compaction touches outcomes only: every transition is written, in order."""
    clock = FakeClock(wall=T0)
    log = MemoryEventLog()
    provider = Provider("kimi", clock)
    settings_ = {"circuit_breaker_failure_threshold": 2, "circuit_breaker_timeout": 1}
    async with memory_registry(clock, log=log, **settings_) as registry:
        registry.recorder.runs_max = 8
        breaker = registry.get("kimi")
        log.fail_with = ConnectionRefusedError("down")  # nothing is written meanwhile
        for _ in range(40):
            for _ in range(3):
                await breaker.call(provider.ok)
            with contextlib.suppress(ProviderUnavailable, CircuitOpenError):
                await breaker.call(provider.fail)
                await breaker.call(provider.fail)
            clock.advance(1.5)
            with contextlib.suppress(ProviderUnavailable, CircuitOpenError):
                await breaker.call(provider.ok)
                await breaker.call(provider.ok)
        assert breaker.state is BreakerState.CLOSED
        version = breaker.version
        log.fail_with = None
        clock.advance(1)
        assert await registry.flush()
    moves = [e for e in log.events if e.kind == "transition"]
    assert [e.state_version for e in moves] == list(range(1, version + 1))

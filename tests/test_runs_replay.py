"""Replay equals life with outcome runs, for every trip policy, on every backend.

The Hypothesis state machine of ``test_replay.py`` drives one breaker with calls,
bursts of equal calls (so runs form and span seconds), time steps, operator actions
and calls held in flight; a tiny run-log bound makes compaction happen. Replay of
the log (with and without snapshots) must give the live breaker's fingerprint, on
the in-memory log, SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import pytest
from breaker_helpers import Provider, copy_log, make_settings
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import text
from test_replay import ReplayEqualsLife

from breaker_service.breaker import BreakerRegistry
from breaker_service.breaker.registry import replay_cores
from breaker_service.clock import FakeClock
from breaker_service.errors import (
    CircuitOpenError,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)
from breaker_service.events import MemoryEventLog
from breaker_service.events.log import EventLog
from breaker_service.events.sql import SqlEventLog, create_engine
from breaker_service.migrate import upgrade

T0 = 1_780_000_000.0
RUNS_MAX = 6  # tiny: runs compact all the time

BASE: dict[str, Any] = {
    "circuit_breaker_failure_threshold": 3,
    "circuit_breaker_success_threshold": 2,
    "circuit_breaker_timeout": 10,
    "circuit_breaker_timeout_multiplier": 1,
    "circuit_breaker_half_open_max_calls": 2,
    "circuit_breaker_half_open_trial_timeout": 20,
}

POLICIES: dict[str, dict[str, Any]] = {
    "consecutive-failures": {},
    "count-window": {
        "circuit_breaker_failure_threshold": 1000,
        "circuit_breaker_failure_rate_threshold": 0.5,
        "circuit_breaker_window_type": "count",
        "circuit_breaker_window_size": 6,
        "circuit_breaker_minimum_calls": 4,
    },
    "time-window": {
        "circuit_breaker_failure_threshold": 1000,
        "circuit_breaker_failure_rate_threshold": 0.5,
        "circuit_breaker_window_type": "time",
        "circuit_breaker_window_duration": 5,
        "circuit_breaker_minimum_calls": 4,
    },
    "slow-calls": {"circuit_breaker_slow_call_duration": 5},
    "growing-open-duration": {
        "circuit_breaker_failure_threshold": 2,
        "circuit_breaker_timeout_multiplier": 2,
        "circuit_breaker_max_timeout": 40,
    },
    "half-open-trials": {
        "circuit_breaker_failure_threshold": 2,
        "circuit_breaker_half_open_max_calls": 3,
        "circuit_breaker_success_threshold": 3,
    },
}


class RunsReplayEqualsLife(ReplayEqualsLife):
    """``ReplayEqualsLife`` with bursts, a tiny run bound and a log of any backend.

    Replay is compared on a ``check`` rule and at the end, not after every step,
    so runs grow across steps as they do between flushes.
    """

    policy: ClassVar[dict[str, Any]] = {}
    snapshot_every: ClassVar[int] = 1_000_000
    backend: ClassVar[str] = "memory"
    url: ClassVar[str] = ""

    def __init__(self) -> None:
        RuleBasedStateMachine.__init__(self)
        self.runner = asyncio.Runner()
        self.clock = FakeClock(wall=T0)
        self.config = make_settings(
            **{**BASE, **self.policy, "event_log_snapshot_every": self.snapshot_every}
        )
        self.max_calls = self.config.resilience.circuit_breaker_half_open_max_calls
        self.directory: Path | None = None
        self.log = self.runner.run(self._open_log())
        self.registry = self.runner.run(
            BreakerRegistry.restore(self.log, settings=self.config, clock=self.clock)
        )
        self.registry.recorder.runs_max = RUNS_MAX
        self.breaker = self.registry.get("kimi")
        self.provider = Provider("kimi", self.clock)
        self.hung = []

    async def _open_log(self) -> EventLog:
        if self.backend == "memory":
            return MemoryEventLog()
        if self.backend == "sqlite":
            self.directory = Path(tempfile.mkdtemp(prefix="runs-replay-"))
            url = f"sqlite+aiosqlite:///{self.directory / 'log.db'}"
        else:
            url = self.url
        engine = create_engine(url)
        await upgrade(engine)
        if self.backend == "postgres":
            async with engine.begin() as conn:
                await conn.execute(
                    text(
                        "TRUNCATE breaker_events, breaker_snapshots, breaker_trials "
                        "RESTART IDENTITY"
                    )
                )
        return SqlEventLog(engine, instance_id="test", replica_id="test")

    async def _replayed(self) -> dict[str, Any]:
        log = self.log
        if isinstance(log, MemoryEventLog):
            cores = await replay_cores(copy_log(log), self.config, "kimi")
        else:
            assert isinstance(log, SqlEventLog)
            reader = SqlEventLog(
                log.engine, instance_id="replay", replica_id="test", owns_engine=False
            )
            cores = await replay_cores(reader, self.config, "kimi")
        core = cores.get("kimi")
        if core is None:
            return make_fresh_fingerprint(self.config)
        return core.fingerprint()

    def replay_equals_life(self) -> None:
        """The log, replayed, gives the live breaker's fingerprint."""
        assert self.runner.run(self.registry.flush())
        assert self.runner.run(self._replayed()) == self.breaker.fingerprint()

    @rule()
    def check(self) -> None:
        """Flush and compare replay with life now."""
        self.replay_equals_life()

    @rule(
        outcome=st.sampled_from(["success", "failure", "timeout", "ignored", "slow"]),
        n=st.integers(2, 30),
        gap=st.sampled_from([0.0, 0.01, 0.3, 1.0]),
    )
    def burst(self, outcome: str, n: int, gap: float) -> None:
        """``n`` equal calls, ``gap`` seconds apart: a run, or runs across seconds."""

        async def go() -> None:
            for _ in range(n):
                with contextlib.suppress(
                    CircuitOpenError,
                    ProviderUnavailable,
                    ProviderTimeout,
                    ProviderRejected,
                ):
                    await self.breaker.call(lambda: self._provider(outcome))
                self.clock.advance(gap)

        self.runner.run(go())

    def teardown(self) -> None:
        """Compare once more and close; remove the SQLite file."""
        try:
            super().teardown()
        finally:
            if self.directory is not None:
                shutil.rmtree(self.directory, ignore_errors=True)


def make_fresh_fingerprint(config: Any) -> dict[str, Any]:
    """The fingerprint of a breaker with no history."""
    from breaker_service.breaker.core import BreakerCore  # noqa: PLC0415
    from breaker_service.breaker.window import FailureRateWindow  # noqa: PLC0415

    window = FailureRateWindow.from_settings(config.for_provider("kimi"))
    return BreakerCore("kimi", window).fingerprint()


BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]
EXAMPLES = {"memory": 40, "sqlite": 10, "postgres": 8}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "snapshot_every",
    [pytest.param(1_000_000, id="no-snapshots"), pytest.param(3, id="snapshots")],
)
@pytest.mark.parametrize("policy", list(POLICIES))
def test_replay_equals_life_with_runs(
    request: pytest.FixtureRequest, backend: str, snapshot_every: int, policy: str
) -> None:
    """Any history, recorded as runs (and compacted), replays to the same breaker."""
    url = request.getfixturevalue("fresh_postgres_url") if backend == "postgres" else ""
    machine = type(
        f"Runs_{policy}_{backend}",
        (RunsReplayEqualsLife,),
        {
            "policy": POLICIES[policy],
            "snapshot_every": snapshot_every,
            "backend": backend,
            "url": url,
        },
    )
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=EXAMPLES[backend],
            stateful_step_count=30,
            deadline=None,
        ),
    )

"""A shared breaker's fleet side without PostgreSQL: adopting other replicas' events,
and half-open trial slots leased from a (fake) fleet-wide trial gate.

The PostgreSQL end-to-end behaviour is in ``test_fleet.py``; these pin the breaker's
part of it on a ``FakeClock``, with no database.
"""

from __future__ import annotations

import asyncio
from itertools import count
from typing import Any

import pytest
from breaker_helpers import Provider, wait_until

from breaker_service.breaker import BreakerState, CircuitBreaker
from breaker_service.clock import FakeClock
from breaker_service.config import ResilienceSettings
from breaker_service.errors import CircuitOpenError, EventLogError
from breaker_service.events.model import StoredEvent, TransitionRecord

CLOSED = BreakerState.CLOSED
OPEN = BreakerState.OPEN
HALF_OPEN = BreakerState.HALF_OPEN

OTHER = "replica-b"


pytestmark = pytest.mark.usefixtures("clean_environment")


class Heard:
    """Collects transition notifications and reload requests."""

    def __init__(self) -> None:
        self.records: list[TransitionRecord] = []
        self.reloads = 0

    def transition(self, _breaker: CircuitBreaker, record: TransitionRecord) -> None:
        self.records.append(record)

    async def reload(self, _breaker: CircuitBreaker) -> None:
        self.reloads += 1


def shared_breaker(
    clock: FakeClock, heard: Heard | None = None, **settings: Any
) -> CircuitBreaker:
    """A shared-scope breaker on ``clock`` without a recorder or a trial gate."""
    heard = heard or Heard()
    return CircuitBreaker(
        "kimi",
        settings=ResilienceSettings(breaker_scope="shared", **settings),
        clock=clock,
        on_transition=heard.transition,
        reload=heard.reload,
    )


_ids = count(1)


def outcome(kind: str, version: int, at: float, **fields: Any) -> StoredEvent:
    """Another replica's outcome event."""
    return StoredEvent(
        id=next(_ids),
        breaker="kimi",
        kind=kind,
        state_version=version,
        at=at,
        instance_id=OTHER,
        stream="kimi",
        **fields,
    )


def transition(
    frm: str, to: str, version: int, at: float, duration: float | None = None
) -> StoredEvent:
    """Another replica's transition event."""
    return StoredEvent(
        id=next(_ids),
        breaker="kimi",
        kind="transition",
        state_version=version,
        at=at,
        instance_id=OTHER,
        stream="kimi",
        from_state=frm,
        to_state=to,
        reason="5 consecutive failures",
        actor=None,
        duration=duration,
    )


# -- adopting other replicas' events ----------------------------------------------------


async def test_adopted_failures_count_and_trip_the_breaker(clock: FakeClock) -> None:
    """Other replicas' failures move this breaker's counters and can trip it here."""
    heard = Heard()
    breaker = shared_breaker(clock, heard, circuit_breaker_failure_threshold=2)
    first = outcome("failure", 0, clock.time())
    await breaker.adopt(first)
    assert (breaker.failures, breaker.consecutive_failures) == (1, 1)
    assert breaker.last_event_id == first.id
    await breaker.adopt(outcome("timeout", 0, clock.time()))
    assert breaker.state is OPEN
    assert breaker.timeouts == 1
    assert [r.reason for r in heard.records] == ["2 consecutive failures"]


async def test_adopted_outcomes_without_deciding_only_count(clock: FakeClock) -> None:
    """``decide=False`` counts the outcome and leaves the trip to the coming transition."""
    breaker = shared_breaker(clock, circuit_breaker_failure_threshold=1)
    await breaker.adopt(outcome("failure", 0, clock.time()), decide=False)
    assert (breaker.state, breaker.consecutive_failures) == (CLOSED, 1)


async def test_adopted_slow_successes_count_as_failures(clock: FakeClock) -> None:
    """A success marked slow by its replica is a failure for the trip rules."""
    breaker = shared_breaker(clock, circuit_breaker_failure_threshold=1)
    await breaker.adopt(outcome("success", 0, clock.time(), detail="slow"))
    assert breaker.successes == 1
    assert breaker.state is CLOSED  # a success never decides a trip here
    assert breaker.consecutive_failures == 1


async def test_events_already_folded_in_are_skipped(clock: FakeClock) -> None:
    """An event at or below ``last_event_id`` (replay, snapshot) is not counted twice."""
    breaker = shared_breaker(clock)
    event = outcome("failure", 0, clock.time())
    await breaker.adopt(event)
    await breaker.adopt(event)
    assert breaker.failures == 1


async def test_another_replicas_transition_moves_this_breaker(
    clock: FakeClock,
) -> None:
    """The next transition of the stream is applied with the writer's open duration."""
    heard = Heard()
    breaker = shared_breaker(clock, heard, circuit_breaker_timeout=60)
    decided_at = clock.time()
    clock.advance(2)
    event = transition("closed", "open", 1, decided_at, duration=30.0)
    await breaker.adopt(event)
    assert (breaker.state, breaker.version) == (OPEN, 1)
    assert breaker.last_event_id == event.id
    assert breaker.open_timeout == 30.0
    assert breaker.retry_after == pytest.approx(28.0)
    assert [(r.from_state, r.to_state, r.version) for r in heard.records] == [
        ("closed", "open", 1)
    ]
    assert heard.records[0].reason == f"5 consecutive failures (on {OTHER})"
    assert heard.records[0].at == decided_at
    assert heard.reloads == 0


async def test_a_transition_already_applied_only_moves_the_event_id(
    clock: FakeClock,
) -> None:
    """A transition at or below the current version changes nothing but the event id."""
    heard = Heard()
    breaker = shared_breaker(clock, heard)
    await breaker.force_open("maintenance")
    event = transition("closed", "open", 1, clock.time(), duration=30.0)
    await breaker.adopt(event)
    assert (breaker.state, breaker.version) == (BreakerState.FORCED_OPEN, 1)
    assert breaker.last_event_id == event.id
    assert len(heard.records) == 1
    assert heard.reloads == 0


@pytest.mark.parametrize(
    ("frm", "to", "version"),
    [
        pytest.param("closed", "open", 2, id="version-gap"),
        pytest.param("open", "half_open", 1, id="wrong-source-state"),
    ],
)
async def test_a_transition_that_does_not_follow_reloads_the_stream(
    clock: FakeClock, frm: str, to: str, version: int
) -> None:
    """A missed transition (gap) or another source state: re-read the stream instead."""
    heard = Heard()
    breaker = shared_breaker(clock, heard)
    await breaker.adopt(transition(frm, to, version, clock.time(), duration=30.0))
    assert (breaker.state, breaker.version) == (CLOSED, 0)
    assert heard.reloads == 1
    assert heard.records == []


# -- fleet-wide half-open trial slots ---------------------------------------------------


class FakeGate:
    """A trial gate handing out at most ``limit`` leases; can fail like a store."""

    def __init__(self) -> None:
        self.out: list[int] = []
        self.released: list[int] = []
        self.asked: list[tuple[str, int, int, float]] = []
        self.fleet_busy = False
        self.down = False
        self._leases = count(100)

    async def acquire(
        self, stream: str, version: int, limit: int, *, now: float, expires_at: float
    ) -> Any:
        self.asked.append((stream, version, limit, expires_at - now))
        if self.down:
            raise EventLogError("store down")
        if self.fleet_busy or len(self.out) >= limit:
            return None
        lease = next(self._leases)
        self.out.append(lease)
        return lease

    async def release(self, lease: Any) -> None:
        if self.down:
            raise EventLogError("store down")
        self.out.remove(lease)
        self.released.append(lease)


async def half_open_gated(
    clock: FakeClock, gate: FakeGate, **settings: Any
) -> CircuitBreaker:
    """A shared breaker with ``gate``, tripped and cooled down (next call is a trial)."""
    breaker = CircuitBreaker(
        "kimi",
        settings=ResilienceSettings(
            breaker_scope="shared",
            circuit_breaker_failure_threshold=1,
            circuit_breaker_timeout=10,
            circuit_breaker_half_open_trial_timeout=5,
            circuit_breaker_success_threshold=1,
            **settings,
        ),
        clock=clock,
        trial_gate=gate,
        stream="kimi",
    )
    kimi = Provider("kimi", clock)
    with pytest.raises(Exception, match="upstream down"):
        await breaker.call(kimi.fail)
    assert breaker.state is OPEN
    clock.advance(10)
    return breaker


async def test_a_trial_takes_a_fleet_slot_and_gives_it_back(clock: FakeClock) -> None:
    """Each trial call holds a lease of the stream while it runs; it is released after."""
    gate = FakeGate()
    breaker = await half_open_gated(clock, gate, circuit_breaker_half_open_max_calls=2)
    kimi = Provider("kimi", clock)
    trial = asyncio.create_task(breaker.call(kimi.gated))
    await wait_until(lambda: kimi.entered == 1)
    assert breaker.state is HALF_OPEN
    assert gate.out == [100]
    assert gate.asked == [("kimi", 2, 2, 5.0)]
    kimi.gate.set()
    assert await trial == "kimi: ok"
    assert (gate.out, gate.released) == ([], [100])


async def test_a_full_fleet_rejects_the_trial(clock: FakeClock) -> None:
    """When the fleet already has its trials out, the call is refused (retry within 1 s)."""
    gate = FakeGate()
    gate.fleet_busy = True
    breaker = await half_open_gated(clock, gate)
    kimi = Provider("kimi", clock)
    with pytest.raises(CircuitOpenError) as refused:
        await breaker.call(kimi.ok)
    assert (refused.value.state, refused.value.retry_after) == ("half_open", 1.0)
    assert breaker.rejections == 1
    assert breaker.trials_in_flight == 0
    assert kimi.calls == 0


async def test_with_the_store_down_trials_are_bounded_locally(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Trial slots fall back to the local bound when the gate cannot be reached."""
    gate = FakeGate()
    breaker = await half_open_gated(clock, gate)
    gate.down = True
    kimi = Provider("kimi", clock)
    trial = asyncio.create_task(breaker.call(kimi.gated))
    await wait_until(lambda: kimi.entered == 1)
    assert breaker.trials_in_flight == 1
    with pytest.raises(CircuitOpenError):
        await breaker.call(kimi.ok)  # the local bound (one trial) still holds
    kimi.gate.set()
    assert await trial == "kimi: ok"
    assert gate.released == []  # nothing was leased, nothing to give back
    assert "fleet trial slots unavailable" in caplog.text


async def test_a_lost_trial_leaves_its_lease_to_expire(clock: FakeClock) -> None:
    """A trial past its bound reopens the breaker; its lease expires in the store."""
    gate = FakeGate()
    breaker = await half_open_gated(clock, gate)
    kimi = Provider("kimi", clock)
    stuck = asyncio.create_task(breaker.call(kimi.gated))
    await wait_until(lambda: kimi.entered == 1)
    clock.advance(5)
    await breaker.tick()
    assert breaker.state is OPEN
    assert gate.out == [100]
    assert gate.released == []
    kimi.gate.set()
    assert await stuck == "kimi: ok"  # a late report: its slot is no longer held
    assert gate.released == []


async def test_a_lease_that_cannot_be_released_is_logged(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A failed release only logs: the lease expires by itself."""
    gate = FakeGate()
    breaker = await half_open_gated(clock, gate)
    kimi = Provider("kimi", clock)
    trial = asyncio.create_task(breaker.call(kimi.gated))
    await wait_until(lambda: kimi.entered == 1)
    gate.down = True
    kimi.gate.set()
    assert await trial == "kimi: ok"
    assert breaker.state is CLOSED
    assert "could not release a trial slot" in caplog.text

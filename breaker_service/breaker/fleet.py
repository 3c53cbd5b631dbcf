"""A shared breaker's side of the fleet: trial slots leased across replicas, and
other replicas' events adopted into this replica's breaker.

Only shared-scope breakers have one (``BREAKER_SCOPE=shared``, on PostgreSQL): the
registry's log follower hands each event another replica wrote to ``adopt``, and
half-open trials take a slot from a ``TrialGate`` so the whole fleet keeps to
``CIRCUIT_BREAKER_HALF_OPEN_MAX_CALLS``. When the store cannot be reached, trials
fall back to the local bound alone.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Protocol

from ..errors import EventLogError
from ..events.model import KIND_SUCCESS, KIND_TRANSITION, StoredEvent, TransitionRecord
from .state import BreakerState

__all__ = ["Adoptable", "FleetTrials", "TrialGate", "adopt"]

logger = logging.getLogger("breaker_service.breaker")

_LOCAL = object()
"""A trial slot granted on the local bound alone (the fleet's store is down)."""


class TrialGate(Protocol):
    """Fleet-wide half-open trial slots (``events.trials.SqlTrialGate``)."""

    async def acquire(
        self, stream: str, version: int, limit: int, *, now: float, expires_at: float
    ) -> Any:
        """A lease for one trial, or None when the fleet already has ``limit`` out."""
        ...

    async def release(self, lease: Any) -> None:
        """Give a lease back."""
        ...


class FleetTrials:
    """The fleet-wide slots one shared breaker's trial calls hold, by local trial id."""

    __slots__ = ("_gate", "_leases", "name", "stream")

    def __init__(self, gate: TrialGate, name: str, stream: str) -> None:
        self._gate = gate
        self._leases: dict[int, Any] = {}
        self.name = name
        self.stream = stream

    async def acquire(
        self, version: int, limit: int, *, now: float, bound: float
    ) -> object | None:
        """A slot for one trial (a lease; a local-only slot if the store is down); None if full."""
        try:
            lease: object | None = await self._gate.acquire(
                self.stream, version, limit, now=now, expires_at=now + bound
            )
        except EventLogError as exc:
            logger.warning(
                "[CIRCUIT] %s: fleet trial slots unavailable (%s); bounding locally",
                self.name,
                exc,
            )
            return _LOCAL
        return lease

    def hold(self, trial: int, slot: object) -> None:
        """Keep ``slot`` (from ``acquire``) until trial ``trial`` reports."""
        if slot is not _LOCAL:
            self._leases[trial] = slot

    async def release(self, trial: int) -> None:
        """Give a finished trial's slot back to the fleet."""
        lease = self._leases.pop(trial, None)
        if lease is None:
            return
        try:
            await self._gate.release(lease)
        except EventLogError as exc:  # the lease expires by itself
            logger.warning(
                "[CIRCUIT] %s: could not release a trial slot: %s", self.name, exc
            )

    def abandon(self, trial: int) -> None:
        """Forget a lost trial's slot without releasing it: it expires in the store."""
        self._leases.pop(trial, None)


class Adoptable(Protocol):
    """What adopting another replica's events needs of a breaker (``CircuitBreaker``)."""

    last_event_id: int

    @property
    def state(self) -> BreakerState:
        """The current state."""
        ...

    @property
    def version(self) -> int:
        """The current state version."""
        ...

    def apply_event(self, event: StoredEvent) -> None:
        """Fold one stored event into the counters."""
        ...

    async def _maybe_trip(self, version: int) -> None:
        """Open if the trip rules say so."""
        ...

    async def _enter_committed(self, record: TransitionRecord, event_id: int) -> bool:
        """Apply a transition already in the log; False if it does not follow ours."""
        ...

    async def _reload_stream(self) -> None:
        """Re-read this breaker's stream from the log."""
        ...


async def adopt(breaker: Adoptable, event: StoredEvent, *, decide: bool = True) -> None:
    """Apply another replica's event of a shared breaker (from the log follower).

    ``decide=False`` counts an outcome without deciding to trip on it: the caller
    knows a later transition already records what its writer decided. A transition
    that does not follow from this replica's state (one was missed) reloads the
    stream instead.
    """
    if event.id <= breaker.last_event_id:
        return  # already folded in by replay or a snapshot
    if event.kind != KIND_TRANSITION:
        breaker.apply_event(event)
        if (
            decide
            and breaker.state is BreakerState.CLOSED
            and event.kind != KIND_SUCCESS
        ):
            await breaker._maybe_trip(breaker.version)
        return
    record = dataclasses.replace(
        event.as_transition(), reason=f"{event.reason} (on {event.instance_id})"
    )
    if not await breaker._enter_committed(record, event.id):
        await breaker._reload_stream()

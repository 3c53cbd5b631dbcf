"""``MemoryEventLog``: the event log in a Python list, for tests and ephemeral use.

It refuses what the strictest backend refuses (a NUL, a lone surrogate: PostgreSQL),
so code tested in memory meets the same ``UnstorableEvent`` as in production.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from ..errors import ConcurrencyError, EventLogError, UnstorableEvent
from .dead_letters import unstorable_field
from .log import EventQuery
from .model import (
    KIND_TRANSITION,
    OUTCOME_KINDS,
    DeadLetter,
    OutcomeRow,
    Snapshot,
    StoredEvent,
    TransitionRecord,
    stream_name,
)

__all__ = ["MemoryEventLog"]


class MemoryEventLog:
    """Keeps every event and snapshot in memory; ``fail_with`` simulates an outage."""

    def __init__(
        self,
        instance_id: str = "memory",
        *,
        scope_of: Callable[[str], str] | None = None,
    ) -> None:
        self.instance_id = instance_id
        self._scope_of = scope_of or (lambda _name: "instance")
        self.events: list[StoredEvent] = []
        self.dead_letters: list[DeadLetter] = []
        self.snapshots: dict[str, Snapshot] = {}
        self._versions: set[tuple[str, int]] = set()
        self._next_id = 1  # never reused, even after pruning
        self.fail_with: Exception | None = None

    def stream_of(self, breaker: str) -> str:
        """The stream ``breaker``'s events go to (its name, or ``name@instance``)."""
        return stream_name(breaker, self._scope_of(breaker), "memory")

    async def read_shared_after(
        self, after_id: int, limit: int = 10_000
    ) -> list[StoredEvent]:
        """Shared-scope events after ``after_id``."""
        self._check()
        return [e for e in self.events if e.id > after_id and "@" not in e.stream][
            :limit
        ]

    async def last_id(self) -> int:
        """The newest event id (0 for an empty log)."""
        self._check()
        return self._next_id - 1

    def _check(self) -> None:
        if self.fail_with is not None:
            raise EventLogError(
                f"event store unavailable: {self.fail_with}"
            ) from self.fail_with

    async def append(
        self,
        outcomes: Sequence[OutcomeRow] = (),
        transitions: Sequence[TransitionRecord] = (),
        snapshots: Sequence[Snapshot] = (),
        *,
        want_ids: bool = True,
        dead_letters: Sequence[DeadLetter] = (),
    ) -> dict[str, int]:
        """Append atomically (all or nothing) and return each breaker's last id."""
        self._check()
        items: list[OutcomeRow | TransitionRecord] = [*outcomes, *transitions]
        for item in items:
            field = unstorable_field(item)
            if field is not None:
                breaker = (
                    item.breaker if isinstance(item, TransitionRecord) else item[0]
                )
                msg = (
                    f"event store append failed: {field} of a {breaker!r} event "
                    "holds a NUL or a lone surrogate"
                )
                raise UnstorableEvent(msg)
        claimed = set(self._versions)
        for record in transitions:
            key = (self.stream_of(record.breaker), record.version)
            if key in claimed:
                msg = f"breaker {record.breaker!r} already has state version {record.version}"
                raise ConcurrencyError(msg)
            claimed.add(key)
        last: dict[str, int] = {}
        next_id = self._next_id
        for (
            breaker,
            kind,
            version,
            at,
            detail,
            status,
            duration,
            count,
            last_at,
        ) in outcomes:
            self.events.append(
                StoredEvent(
                    next_id,
                    breaker,
                    kind,
                    version,
                    at,
                    self.instance_id,
                    stream=self.stream_of(breaker),
                    detail=detail,
                    status=status,
                    duration=duration,
                    count=count,
                    last_at=last_at,
                )
            )
            last[breaker] = next_id
            next_id += 1
        for record in transitions:
            self._versions.add((self.stream_of(record.breaker), record.version))
            self.events.append(
                StoredEvent(
                    next_id,
                    record.breaker,
                    KIND_TRANSITION,
                    record.version,
                    record.at,
                    self.instance_id,
                    stream=self.stream_of(record.breaker),
                    from_state=record.from_state,
                    to_state=record.to_state,
                    reason=record.reason,
                    actor=record.actor,
                    duration=record.open_timeout,
                )
            )
            last[record.breaker] = next_id
            next_id += 1
        for snapshot in snapshots:
            if snapshot.last_event_id < 0:
                newest = last.get(snapshot.breaker) or max(
                    (e.id for e in self.events if e.breaker == snapshot.breaker),
                    default=0,
                )
                snapshot = dataclasses.replace(snapshot, last_event_id=newest)  # noqa: PLW2901
            self.snapshots[snapshot.breaker] = snapshot
        self.dead_letters.extend(dead_letters)
        self._next_id = next_id
        return last

    async def read(self, query: EventQuery) -> list[StoredEvent]:
        """Matching events in id order."""
        self._check()
        found = [e for e in self.events if query.matches(e)]
        return found[: query.limit] if query.limit is not None else found

    async def read_since_snapshots(
        self, snapshots: dict[str, Snapshot], breaker: str | None = None
    ) -> list[StoredEvent]:
        """Each breaker's events after its snapshot."""
        self._check()
        return [
            e
            for e in self.events
            if (breaker is None or e.breaker == breaker)
            and e.id
            > (snapshots[e.breaker].last_event_id if e.breaker in snapshots else 0)
        ]

    async def load_snapshots(self, breaker: str | None = None) -> dict[str, Snapshot]:
        """The latest snapshots."""
        self._check()
        if breaker is None:
            return dict(self.snapshots)
        return {breaker: self.snapshots[breaker]} if breaker in self.snapshots else {}

    async def last_transition_before(
        self, breaker: str, at: float
    ) -> StoredEvent | None:
        """The last transition at or before ``at``."""
        self._check()
        found = [
            e
            for e in self.events
            if e.breaker == breaker and e.kind == KIND_TRANSITION and e.at <= at
        ]
        return found[-1] if found else None

    async def prune(self, before: float) -> int:
        """Drop old outcome events covered by a snapshot."""
        self._check()
        keep: list[StoredEvent] = []
        dropped = 0
        for e in self.events:
            covered = (
                e.breaker in self.snapshots
                and e.id <= self.snapshots[e.breaker].last_event_id
            )
            if e.kind in OUTCOME_KINDS and e.at < before and covered:
                dropped += 1
            else:
                keep.append(e)
        self.events = keep
        return dropped

    async def ping(self) -> None:
        """Fail while ``fail_with`` is set."""
        self._check()

    async def aclose(self) -> None:
        """Nothing to release."""

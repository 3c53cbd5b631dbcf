"""The ``EventLog`` port: where breaker events are appended and read back.

Two adapters: ``MemoryEventLog`` (tests, embedding without persistence) and
``SqlEventLog`` (SQLite or PostgreSQL). Both pass the same contract tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from .model import DeadLetter, OutcomeRow, Snapshot, StoredEvent, TransitionRecord

__all__ = ["EventLog", "EventQuery"]


class EventQuery:
    """Filters for audit reads: breaker, kinds, time range and paging by id."""

    __slots__ = ("after_id", "breaker", "kinds", "limit", "since", "until")

    def __init__(
        self,
        *,
        breaker: str | None = None,
        after_id: int = 0,
        limit: int | None = None,
        kinds: Iterable[str] | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> None:
        self.breaker = breaker
        self.after_id = after_id
        self.limit = limit
        self.kinds = frozenset(kinds) if kinds is not None else None
        self.since = since
        self.until = until

    def matches(self, event: StoredEvent) -> bool:
        """Whether ``event`` passes every filter but the limit."""
        return (
            event.id > self.after_id
            and (self.breaker is None or event.breaker == self.breaker)
            and (self.kinds is None or event.kind in self.kinds)
            and (self.since is None or event.at >= self.since)
            and (self.until is None or event.at <= self.until)
        )


class EventLog(Protocol):
    """An append-only, ordered log of breaker events with per-breaker snapshots."""

    instance_id: str

    def stream_of(self, breaker: str) -> str:
        """The stream this instance writes ``breaker``'s events to."""
        ...

    async def read_shared_after(
        self, after_id: int, limit: int = 10_000
    ) -> list[StoredEvent]:
        """Shared-scope events after ``after_id``, in id order (for followers)."""
        ...

    async def last_id(self) -> int:
        """The newest event id (0 for an empty log)."""
        ...

    async def append(
        self,
        outcomes: Sequence[OutcomeRow] = (),
        transitions: Sequence[TransitionRecord] = (),
        snapshots: Sequence[Snapshot] = (),
        *,
        want_ids: bool = True,
        dead_letters: Sequence[DeadLetter] = (),
    ) -> dict[str, int]:
        """Write everything in one transaction; return each touched breaker's last id.

        A snapshot whose ``last_event_id`` is -1 is taken "as of now": it gets its
        breaker's last event id in this transaction. ``dead_letters`` are events
        set aside (``breaker_dead_letters``), written with the rest.

        Raises, writing nothing: ``ConcurrencyError`` when a transition's version is
        already taken for its breaker; ``UnstorableEvent`` when the store refuses a
        row for its content (a NUL, a lone surrogate, a value out of range: the same
        write can never succeed); ``EventLogError`` when the store fails otherwise.
        """
        ...

    async def read(self, query: EventQuery) -> list[StoredEvent]:
        """Events matching ``query`` in id order."""
        ...

    async def read_since_snapshots(
        self, snapshots: dict[str, Snapshot], breaker: str | None = None
    ) -> list[StoredEvent]:
        """For replay: each breaker's events after its snapshot (all, without one)."""
        ...

    async def load_snapshots(self, breaker: str | None = None) -> dict[str, Snapshot]:
        """The latest snapshot of each breaker (or of one)."""
        ...

    async def last_transition_before(
        self, breaker: str, at: float
    ) -> StoredEvent | None:
        """The breaker's last transition at or before ``at`` (for "state at time")."""
        ...

    async def prune(self, before: float) -> int:
        """Delete outcome events older than ``before`` already covered by a snapshot."""
        ...

    async def ping(self) -> None:
        """Raise ``EventLogError`` unless the store answers."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...

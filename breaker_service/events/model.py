"""Events in the breaker log: outcomes and transitions, as frozen values.

Outcomes are recorded as runs (``events/runs.py``): plain tuples (``OutcomeRow``)
counting consecutive equal calls, written in batches; everything read back is a
``StoredEvent``. A row written before runs has ``count`` 1 (or a coalesced count)
and no ``last_at``; it folds exactly as a run of that many calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "KIND_FAILURE",
    "KIND_SUCCESS",
    "KIND_TIMEOUT",
    "KIND_TRANSITION",
    "OUTCOME_KINDS",
    "SHARED",
    "DeadLetter",
    "OutcomeRow",
    "Snapshot",
    "StoredEvent",
    "TransitionRecord",
    "stream_name",
]

SHARED = "shared"


def stream_name(breaker: str, scope: str, instance_id: str) -> str:
    """Whose history an event is in: the breaker (shared) or ``breaker@instance``."""
    return breaker if scope == SHARED else f"{breaker}@{instance_id}"


KIND_SUCCESS = "success"
KIND_FAILURE = "failure"
KIND_TIMEOUT = "timeout"
KIND_TRANSITION = "transition"
OUTCOME_KINDS = frozenset({KIND_SUCCESS, KIND_FAILURE, KIND_TIMEOUT})
ALL_KINDS = OUTCOME_KINDS | {KIND_TRANSITION}

# (breaker, kind, state_version, at, detail, status, duration, count, last_at):
# ``count`` equal calls from ``at`` to ``last_at`` (None: the same time),
# ``duration`` their total seconds when timed.
OutcomeRow = tuple[
    str, str, int, float, str | None, int | None, float | None, int, float | None
]


@dataclass(frozen=True, slots=True)
class TransitionRecord:
    """A breaker moved from one state to another; ``version`` is its new state version.

    ``open_timeout`` is the cooldown chosen when entering OPEN, kept so a restart
    honours the remaining cooldown even if the configuration changed.
    """

    breaker: str
    from_state: str
    to_state: str
    version: int
    at: float
    reason: str
    actor: str | None = None
    open_timeout: float | None = None

    @property
    def when(self) -> datetime:
        """``at`` as a UTC datetime."""
        return datetime.fromtimestamp(self.at, UTC)

    def as_dict(self) -> dict[str, Any]:
        """The one dict shape of a transition: ``status()``, snapshots and the API."""
        return asdict(self)

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, breaker: str, version: int
    ) -> TransitionRecord:
        """Read ``as_dict()`` back; ``breaker`` and ``version`` fill in older snapshots."""
        timeout = data.get("open_timeout")
        return cls(
            breaker=str(data.get("breaker", breaker)),
            from_state=str(data["from_state"]),
            to_state=str(data["to_state"]),
            version=int(data.get("version", version)),
            at=float(data["at"]),
            reason=str(data["reason"]),
            actor=data.get("actor"),
            open_timeout=None if timeout is None else float(timeout),
        )


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One row of the log, as read back for replay and audit."""

    id: int
    breaker: str
    kind: str
    state_version: int
    at: float
    instance_id: str
    stream: str = ""
    from_state: str | None = None
    to_state: str | None = None
    reason: str | None = None
    actor: str | None = None
    detail: str | None = None
    status: int | None = None
    duration: float | None = None
    count: int = 1
    last_at: float | None = None  # a run's last call (None: one call, or ``at``)

    @property
    def when(self) -> datetime:
        """``at`` as a UTC datetime."""
        return datetime.fromtimestamp(self.at, UTC)

    def as_transition(self) -> TransitionRecord:
        """This transition row as the record it was written from."""
        return TransitionRecord(
            breaker=self.breaker,
            from_state=self.from_state or "",
            to_state=self.to_state or "",
            version=self.state_version,
            at=self.at,
            reason=self.reason or "",
            actor=self.actor,
            open_timeout=self.duration,
        )

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (with an ISO timestamp) for APIs and the CLI."""
        return {
            "id": self.id,
            "breaker": self.breaker,
            "kind": self.kind,
            "state_version": self.state_version,
            "at": self.when.isoformat(),
            "instance_id": self.instance_id,
            "stream": self.stream,
            "from_state": self.from_state,
            "to_state": self.to_state,
            "reason": self.reason,
            "actor": self.actor,
            "detail": self.detail,
            "status": self.status,
            "duration": self.duration,
            "count": self.count,
            "last_at": datetime.fromtimestamp(
                self.at if self.last_at is None else self.last_at, UTC
            ).isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A breaker's folded state as of ``last_event_id``, so replay need not read it all."""

    breaker: str
    state: str
    state_version: int
    last_event_id: int
    taken_at: float
    data: dict[str, Any] = field(default_factory=dict)
    # The newest event id folded in from the log (replay or other replicas); a shared
    # stream's snapshot is only written when no other replica's event is newer.
    applied_through: int = 0


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event the store refused for its content, set aside for an operator.

    ``content`` is the whole event as JSON with every non-ASCII character escaped
    (``json.loads`` gives it back exactly, NULs and lone surrogates included), so it
    is storable wherever the event was not; ``breaker`` and ``error`` are escaped too.
    """

    breaker: str
    kind: str
    at: float
    error: str
    content: str

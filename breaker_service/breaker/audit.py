"""``AuditReader``: a breaker's past, read from the event log.

Both queries flush the recorder first, so what was just decided is in the answer.
"""

from __future__ import annotations

from datetime import datetime

from ..events.log import EventLog, EventQuery
from ..events.model import StoredEvent
from ..events.recorder import EventRecorder
from .state import BreakerState

__all__ = ["AuditReader", "epoch_seconds"]


class AuditReader:
    """``history`` (events, paged by id) and ``state_at`` (the state at a past time)."""

    def __init__(self, log: EventLog, recorder: EventRecorder) -> None:
        self._log = log
        self._recorder = recorder

    async def history(
        self,
        name: str,
        *,
        after_id: int = 0,
        limit: int | None = 100,
        kinds: list[str] | None = None,
        since: datetime | float | None = None,
        until: datetime | float | None = None,
    ) -> list[StoredEvent]:
        """A breaker's events (transitions and outcomes), oldest first, paged by id."""
        await self._recorder.flush()
        return await self._log.read(
            EventQuery(
                breaker=name,
                after_id=after_id,
                limit=limit,
                kinds=kinds,
                since=epoch_seconds(since),
                until=epoch_seconds(until),
            )
        )

    async def state_at(self, name: str, at: datetime | float) -> BreakerState:
        """The state ``name`` was in at a past time (CLOSED before its first transition)."""
        await self._recorder.flush()
        moment = epoch_seconds(at)
        assert moment is not None
        event = await self._log.last_transition_before(name, moment)
        return (
            BreakerState(event.to_state)
            if event is not None and event.to_state
            else BreakerState.CLOSED
        )


def epoch_seconds(value: datetime | float | None) -> float | None:
    """Epoch seconds from an aware ``datetime`` or a number; naive datetimes refused."""
    if value is None or isinstance(value, int | float):
        return value
    if value.tzinfo is None:
        msg = "timestamps must be timezone-aware (UTC)"
        raise ValueError(msg)
    return value.timestamp()

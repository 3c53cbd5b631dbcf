"""Rebuild breakers from the log: latest snapshot, then the events after it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from ..errors import MalformedEventError
from ..events.model import Snapshot, StoredEvent
from .core import BreakerCore

__all__ = ["fold"]

logger = logging.getLogger("breaker_service.events")


def fold(
    snapshots: dict[str, Snapshot],
    events: Iterable[StoredEvent],
    make_core: Callable[[str], BreakerCore],
    *,
    skip_malformed: bool = False,
) -> dict[str, BreakerCore]:
    """Fold snapshots and events into one ``BreakerCore`` per breaker name."""
    cores: dict[str, BreakerCore] = {}
    for name, snapshot in snapshots.items():
        core = make_core(name)
        try:
            core.load_snapshot(snapshot)
        except (KeyError, TypeError, ValueError) as exc:
            msg = f"malformed snapshot of breaker {name!r}: {exc}"
            raise MalformedEventError(msg) from exc
        cores[name] = core
    for event in events:
        if event.breaker not in cores:
            cores[event.breaker] = make_core(event.breaker)
        core = cores[event.breaker]
        try:
            core.apply_event(event)
        except (KeyError, TypeError, ValueError) as exc:
            msg = (
                f"malformed event row id={event.id} (breaker {event.breaker!r}, "
                f"kind {event.kind!r}): {exc}"
            )
            if not skip_malformed:
                raise MalformedEventError(msg, row_id=event.id) from exc
            logger.error("[CIRCUIT] skipping %s (EVENT_LOG_ON_MALFORMED=skip)", msg)
    return cores

"""All tables of the local database, in one ``MetaData`` (Alembic's target)."""

from __future__ import annotations

from .events.schema import (
    breaker_events,
    breaker_snapshots,
    breaker_trials,
    metadata,
    outbox,
    uploads,
)

__all__ = [
    "breaker_events",
    "breaker_snapshots",
    "breaker_trials",
    "metadata",
    "outbox",
    "uploads",
]

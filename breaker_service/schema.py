"""Every table of the local database in one ``MetaData``: Alembic's target.

Each package defines its own tables on the shared ``metadata`` (the event log in
``events/schema.py``, uploads in ``uploads/tables.py``, the outbox in
``tracking/tables.py``); importing them here is what makes ``metadata`` complete for
``migrations/env.py`` and ``migrate.check_models_match``.
"""

from __future__ import annotations

from .events.schema import breaker_events, breaker_snapshots, breaker_trials, metadata
from .tracking.tables import outbox
from .uploads.tables import uploads

__all__ = [
    "breaker_events",
    "breaker_snapshots",
    "breaker_trials",
    "metadata",
    "outbox",
    "uploads",
]

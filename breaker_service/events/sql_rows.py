"""Rows of ``breaker_events`` as values: read back checked, written as plain tuples."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Row

from ..errors import MalformedEventError
from .model import ALL_KINDS, KIND_TRANSITION, Snapshot, StoredEvent

__all__ = ["OUTCOME_SQL", "row_to_event", "row_to_snapshot"]

_OUTCOME_COLUMNS = (
    "breaker, stream, kind, state_version, at, instance_id, detail, status, "
    "duration, count, last_at"
)
OUTCOME_SQL = {  # constant text: no value is ever formatted into it
    "sqlite": f"INSERT INTO breaker_events ({_OUTCOME_COLUMNS}) "  # noqa: S608
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "postgresql": f"INSERT INTO breaker_events ({_OUTCOME_COLUMNS}) "  # noqa: S608
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
}
"""The hot write: outcome runs straight to the driver's ``executemany``."""


def row_to_event(row: Row[Any]) -> StoredEvent:
    m = row._mapping
    try:
        kind = str(m["kind"])
        if kind not in ALL_KINDS:
            msg = f"unknown event kind {kind!r}"
            raise ValueError(msg)
        if kind == KIND_TRANSITION and not (m["from_state"] and m["to_state"]):
            msg = "transition without from_state/to_state"
            raise ValueError(msg)
        return StoredEvent(
            id=int(m["id"]),
            breaker=str(m["breaker"]),
            kind=kind,
            state_version=int(m["state_version"]),
            at=float(m["at"]),
            instance_id=str(m["instance_id"]),
            stream=str(m["stream"]),
            from_state=m["from_state"],
            to_state=m["to_state"],
            reason=m["reason"],
            actor=m["actor"],
            detail=m["detail"],
            status=None if m["status"] is None else int(m["status"]),
            duration=None if m["duration"] is None else float(m["duration"]),
            count=1 if m["count"] is None else int(m["count"]),
            last_at=None if m.get("last_at") is None else float(m["last_at"]),
        )
    except (TypeError, ValueError, KeyError) as exc:
        row_id = m.get("id")
        msg = f"malformed event row id={row_id} in breaker_events: {exc}"
        raise MalformedEventError(
            msg, row_id=row_id if isinstance(row_id, int) else None
        ) from exc


def row_to_snapshot(row: Row[Any]) -> tuple[Snapshot, str]:
    """A ``breaker_snapshots`` row as (snapshot, its stream)."""
    m = row._mapping
    name = str(m["breaker"])
    data = m["data"]
    if isinstance(data, str):
        data = json.loads(data)
    if not isinstance(data, dict):
        msg = f"malformed snapshot for breaker {name!r}: data is not an object"
        raise MalformedEventError(msg)
    snapshot = Snapshot(
        breaker=name,
        state=str(m["state"]),
        state_version=int(m["state_version"]),
        last_event_id=int(m["last_event_id"]),
        taken_at=float(m["taken_at"]),
        data=data,
    )
    return snapshot, str(m["stream"])

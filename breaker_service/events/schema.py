"""SQL tables of the event log, and the one ``MetaData`` every package's tables join.

The uploads table lives in ``uploads/tables.py``, the outbox in ``tracking/tables.py``;
``breaker_service.schema`` imports them all, so its ``metadata`` is complete (Alembic's
target). Alembic migrations must agree with the tables (a test checks).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

__all__ = [
    "breaker_dead_letters",
    "breaker_events",
    "breaker_snapshots",
    "breaker_trials",
    "metadata",
]

# The same constraint names on SQLite and PostgreSQL, so migrations are portable.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# SQLite needs exactly INTEGER for an auto-incrementing rowid alias.
_ID = BigInteger().with_variant(Integer(), "sqlite")

breaker_events = Table(
    "breaker_events",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("breaker", String(200), nullable=False),
    # Whose state the event belongs to: the breaker's name in shared scope, or
    # "<breaker>@<instance>" in instance scope (each replica decides alone).
    Column("stream", String(400), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("state_version", Integer, nullable=False),
    Column("at", Float, nullable=False),  # UTC epoch seconds
    Column("instance_id", String(200), nullable=False),
    Column("from_state", String(16)),
    Column("to_state", String(16)),
    Column("reason", Text),
    Column("actor", String(200)),
    Column("detail", String(200)),
    Column("status", Integer),
    Column("duration", Float),
    Column("count", Integer, nullable=False, server_default=text("1")),
    # An outcome run's last call (``count`` equal calls from ``at``); NULL: one call.
    Column("last_at", Float),
    Index("ix_breaker_events_breaker_id", "breaker", "id"),
    Index("ix_breaker_events_stream_id", "stream", "id"),
    Index("ix_breaker_events_at", "at"),
    # Optimistic concurrency: one transition per stream and state version, ever.
    Index(
        "uq_breaker_events_transition_version",
        "stream",
        "state_version",
        unique=True,
        sqlite_where=text("kind = 'transition'"),
        postgresql_where=text("kind = 'transition'"),
    ),
    sqlite_autoincrement=True,
)

breaker_snapshots = Table(
    "breaker_snapshots",
    metadata,
    Column("stream", String(400), primary_key=True),
    Column("breaker", String(200), nullable=False),
    Column("state", String(16), nullable=False),
    Column("state_version", Integer, nullable=False),
    Column("last_event_id", BigInteger, nullable=False),
    Column("taken_at", Float, nullable=False),
    Column("instance_id", String(200), nullable=False),
    Column("data", JSON, nullable=False),
)

# Half-open trial slots across the fleet (shared scope): a lease with an expiry, so a
# replica that dies holding one does not block recovery.
breaker_trials = Table(
    "breaker_trials",
    metadata,
    Column("stream", String(400), primary_key=True),
    Column("slot", Integer, primary_key=True),
    Column("state_version", Integer, nullable=False),
    Column("holder", String(300), nullable=False),
    Column("expires_at", Float, nullable=False),
)

# Events the store refused for their content (a NUL, a lone surrogate, a text too
# long), set aside by the recorder so one bad row never stops the log. ``content`` is
# the whole event as ASCII-escaped JSON, storable wherever the event was not.
breaker_dead_letters = Table(
    "breaker_dead_letters",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),  # UTC epoch seconds, when set aside
    Column("instance_id", String(200), nullable=False),
    Column("breaker", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("error", Text, nullable=False),
    Column("content", Text, nullable=False),
)

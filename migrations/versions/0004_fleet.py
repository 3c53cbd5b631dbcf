"""Fleet scale: event streams per scope, snapshots per stream, fleet-wide trial leases.

Existing events become the stream named after their breaker. Snapshots are a cache
of the log, so they are rebuilt rather than converted.

Revision ID: 0004_fleet
Revises: 0003_outbox
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_fleet"
down_revision: str | None = "0003_outbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TRANSITIONS_ONLY = sa.text("kind = 'transition'")
_KEEP = {"sqlite_autoincrement": True}


def upgrade() -> None:
    # SQLite rebuilds the table in batch mode: keep AUTOINCREMENT, so ids are never reused.
    with op.batch_alter_table("breaker_events", table_kwargs=_KEEP) as batch:
        batch.add_column(sa.Column("stream", sa.String(400), nullable=True))
    op.execute("UPDATE breaker_events SET stream = breaker")
    op.drop_index("uq_breaker_events_transition_version", table_name="breaker_events")
    with op.batch_alter_table("breaker_events", table_kwargs=_KEEP) as batch:
        batch.alter_column("stream", existing_type=sa.String(400), nullable=False)
    op.create_index("ix_breaker_events_stream_id", "breaker_events", ["stream", "id"])
    op.create_index(
        "uq_breaker_events_transition_version",
        "breaker_events",
        ["stream", "state_version"],
        unique=True,
        sqlite_where=_TRANSITIONS_ONLY,
        postgresql_where=_TRANSITIONS_ONLY,
    )
    op.drop_table("breaker_snapshots")
    op.create_table(
        "breaker_snapshots",
        sa.Column("stream", sa.String(400), nullable=False),
        sa.Column("breaker", sa.String(200), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("state_version", sa.Integer, nullable=False),
        sa.Column("last_event_id", sa.BigInteger, nullable=False),
        sa.Column("taken_at", sa.Float, nullable=False),
        sa.Column("instance_id", sa.String(200), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("stream", name=op.f("pk_breaker_snapshots")),
    )
    op.create_table(
        "breaker_trials",
        sa.Column("stream", sa.String(400), nullable=False),
        sa.Column("slot", sa.Integer, nullable=False),
        sa.Column("state_version", sa.Integer, nullable=False),
        sa.Column("holder", sa.String(300), nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("stream", "slot", name=op.f("pk_breaker_trials")),
    )


def downgrade() -> None:
    op.drop_table("breaker_trials")
    op.drop_table("breaker_snapshots")
    op.create_table(
        "breaker_snapshots",
        sa.Column("breaker", sa.String(200), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("state_version", sa.Integer, nullable=False),
        sa.Column("last_event_id", sa.BigInteger, nullable=False),
        sa.Column("taken_at", sa.Float, nullable=False),
        sa.Column("instance_id", sa.String(200), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("breaker", name=op.f("pk_breaker_snapshots")),
    )
    op.drop_index("uq_breaker_events_transition_version", table_name="breaker_events")
    op.drop_index("ix_breaker_events_stream_id", table_name="breaker_events")
    # Instance-scoped histories collapse back into one per breaker; keep the oldest
    # transition of each version so the old unique index can be rebuilt.
    op.execute(
        "DELETE FROM breaker_events WHERE kind = 'transition' AND id NOT IN ("
        "SELECT min(id) FROM breaker_events WHERE kind = 'transition' "
        "GROUP BY breaker, state_version)"
    )
    with op.batch_alter_table("breaker_events", table_kwargs=_KEEP) as batch:
        batch.drop_column("stream")
    op.create_index(
        "uq_breaker_events_transition_version",
        "breaker_events",
        ["breaker", "state_version"],
        unique=True,
        sqlite_where=_TRANSITIONS_ONLY,
        postgresql_where=_TRANSITIONS_ONLY,
    )

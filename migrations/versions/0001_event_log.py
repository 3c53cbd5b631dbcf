"""The breaker event log and its snapshots.

Revision ID: 0001_event_log
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_event_log"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "breaker_events",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("breaker", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state_version", sa.Integer, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("instance_id", sa.String(200), nullable=False),
        sa.Column("from_state", sa.String(16)),
        sa.Column("to_state", sa.String(16)),
        sa.Column("reason", sa.Text),
        sa.Column("actor", sa.String(200)),
        sa.Column("detail", sa.String(200)),
        sa.Column("status", sa.Integer),
        sa.Column("duration", sa.Float),
        sa.Column("count", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_breaker_events")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_breaker_events_breaker_id", "breaker_events", ["breaker", "id"])
    op.create_index("ix_breaker_events_at", "breaker_events", ["at"])
    op.create_index(
        "uq_breaker_events_transition_version",
        "breaker_events",
        ["breaker", "state_version"],
        unique=True,
        sqlite_where=sa.text("kind = 'transition'"),
        postgresql_where=sa.text("kind = 'transition'"),
    )
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


def downgrade() -> None:
    op.drop_table("breaker_snapshots")
    op.drop_index("uq_breaker_events_transition_version", table_name="breaker_events")
    op.drop_index("ix_breaker_events_at", table_name="breaker_events")
    op.drop_index("ix_breaker_events_breaker_id", table_name="breaker_events")
    op.drop_table("breaker_events")

"""Outcome runs: a row counts ``count`` equal calls from ``at`` to ``last_at``.

Rows written before keep ``last_at`` NULL (one call, or a coalesced count at one
time) and replay exactly as before: a run of one is the old row.

Revision ID: 0006_outcome_runs
Revises: 0005_dead_letters
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_outcome_runs"
down_revision: str | None = "0005_dead_letters"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("breaker_events", sa.Column("last_at", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("breaker_events") as batch:
        batch.drop_column("last_at")

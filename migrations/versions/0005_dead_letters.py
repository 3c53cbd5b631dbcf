"""Dead letters: events the store refused for their content, kept for an operator.

Revision ID: 0005_dead_letters
Revises: 0004_fleet
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_dead_letters"
down_revision: str | None = "0004_fleet"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "breaker_dead_letters",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("instance_id", sa.String(200), nullable=False),
        sa.Column("breaker", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_breaker_dead_letters")),
    )


def downgrade() -> None:
    op.drop_table("breaker_dead_letters")

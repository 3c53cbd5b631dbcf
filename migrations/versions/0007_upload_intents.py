"""Upload intents (committed before the provider call) and the reconciliation audit.

Revision ID: 0007_upload_intents
Revises: 0006_outcome_runs
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_upload_intents"
down_revision: str | None = "0006_outcome_runs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "upload_intents",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("upload_id", sa.String(36), nullable=False),
        sa.Column("provider", sa.String(100), nullable=False),
        sa.Column("path", sa.String(4096), nullable=False),
        sa.Column("filename", sa.String(500), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("purpose", sa.String(100), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("provider_file_id", sa.String(200), nullable=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_upload_intents")),
    )
    op.create_index("ix_upload_intents_state", "upload_intents", ["state"])
    op.create_index(
        "ix_upload_intents_provider_started",
        "upload_intents",
        ["provider", "started_at"],
    )
    op.create_index("ix_upload_intents_upload_id", "upload_intents", ["upload_id"])
    op.create_table(
        "upload_reconciliations",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("provider", sa.String(100), nullable=False),
        sa.Column("provider_file_id", sa.String(200), nullable=True),
        sa.Column("intent_id", sa.String(36), nullable=False),
        sa.Column("upload_id", sa.String(36), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_upload_reconciliations")),
    )
    op.create_index("ix_upload_reconciliations_at", "upload_reconciliations", ["at"])


def downgrade() -> None:
    op.drop_index("ix_upload_reconciliations_at", table_name="upload_reconciliations")
    op.drop_table("upload_reconciliations")
    op.drop_index("ix_upload_intents_upload_id", table_name="upload_intents")
    op.drop_index("ix_upload_intents_provider_started", table_name="upload_intents")
    op.drop_index("ix_upload_intents_state", table_name="upload_intents")
    op.drop_table("upload_intents")

"""The local record of successful uploads.

Revision ID: 0002_uploads
Revises: 0001_event_log
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_uploads"
down_revision: str | None = "0001_event_log"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("provider", sa.String(100), nullable=False),
        sa.Column("provider_file_id", sa.String(200), nullable=False),
        sa.Column("filename", sa.String(500), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("purpose", sa.String(100), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("elapsed", sa.Float, nullable=False),
        sa.Column("providers_tried", sa.JSON, nullable=False),
        sa.Column("uploaded_at", sa.Float, nullable=False),
        sa.Column("instance_id", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_uploads")),
    )
    op.create_index("ix_uploads_sha256_provider", "uploads", ["sha256", "provider"])
    op.create_index("ix_uploads_uploaded_at", "uploads", ["uploaded_at"])


def downgrade() -> None:
    op.drop_index("ix_uploads_uploaded_at", table_name="uploads")
    op.drop_index("ix_uploads_sha256_provider", table_name="uploads")
    op.drop_table("uploads")

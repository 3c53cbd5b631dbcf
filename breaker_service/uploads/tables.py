"""The ``uploads`` table: the local record of successful uploads (``SqlUploadStore``)."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Float, Index, Integer, String, Table

from ..events.schema import metadata

__all__ = ["uploads"]

uploads = Table(
    "uploads",
    metadata,
    Column("id", String(36), primary_key=True),  # the local upload id (uuid4)
    Column("provider", String(100), nullable=False),
    Column("provider_file_id", String(200), nullable=False),
    Column("filename", String(500), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("purpose", String(100), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("elapsed", Float, nullable=False),
    Column("providers_tried", JSON, nullable=False),
    Column("uploaded_at", Float, nullable=False),
    Column("instance_id", String(200), nullable=False),
    Index("ix_uploads_sha256_provider", "sha256", "provider"),
    Index("ix_uploads_uploaded_at", "uploaded_at"),
)

"""Upload tables: ``uploads`` (the record), ``upload_intents`` (begun before the
provider call), ``upload_reconciliations`` (the audit of adoptions and deletions)."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Float, Index, Integer, String, Table

from ..events.schema import metadata

__all__ = ["upload_intents", "upload_reconciliations", "uploads"]

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

upload_intents = Table(
    "upload_intents",
    metadata,
    Column("id", String(36), primary_key=True),  # the intent (one per provider tried)
    Column("upload_id", String(36), nullable=False),  # the upload's id if it succeeds
    Column("provider", String(100), nullable=False),
    Column("path", String(4096), nullable=False),
    Column("filename", String(500), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("purpose", String(100), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("provider_file_id", String(200), nullable=True),
    Column("owner", String(200), nullable=False),  # the instance that began it
    Column("run_id", String(36), nullable=False),  # the process that began it
    Index("ix_upload_intents_state", "state"),
    Index("ix_upload_intents_provider_started", "provider", "started_at"),
    Index("ix_upload_intents_upload_id", "upload_id"),
)

upload_reconciliations = Table(
    "upload_reconciliations",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("at", Float, nullable=False),
    Column("action", String(16), nullable=False),  # adopted, deleted, abandoned
    Column("provider", String(100), nullable=False),
    Column("provider_file_id", String(200), nullable=True),
    Column("intent_id", String(36), nullable=False),
    Column("upload_id", String(36), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("reason", String(500), nullable=False),
    Index("ix_upload_reconciliations_at", "at"),
)

"""The ``outbox`` table: written with each upload, delivered to Supabase by the relay."""

from __future__ import annotations

from sqlalchemy import JSON, Column, Float, Index, Integer, String, Table, Text, text

from ..events.schema import metadata

__all__ = ["outbox"]

outbox = Table(
    "outbox",
    metadata,
    Column("id", String(36), primary_key=True),  # = uploads.id, the idempotency key
    Column("destination", String(100), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_error", Text),
    Column("created_at", Float, nullable=False),
    Column("next_attempt_at", Float, nullable=False),
    Column("delivered_at", Float),
    Column("lease_owner", String(200)),
    Column("lease_until", Float),
    Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),
)

"""``SqlUploadStore``: the ``uploads`` table, in the same database as the event log.

With tracking on, each upload row is written in one transaction with its outbox row
(``tracking/outbox.py``), so a record exists locally before anyone is told; the same
transaction completes the upload's open intent (``intents.py``). Database errors
leave as ``StorageError`` (``events/sql_errors.py``), never raw.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import RowMapping, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..errors import StorageError
from ..events.sql_errors import sql_errors
from ..tracking.outbox import insert_outbox_row, outbox_row
from ..tracking.tables import outbox
from .intents import COMPLETED, OPEN
from .model import UploadResult
from .tables import upload_intents, uploads

__all__ = ["SqlUploadStore"]


class SqlUploadStore:
    """The ``UploadStore`` contract on an SQLAlchemy async engine (SQLite, PostgreSQL)."""

    def __init__(
        self, engine: AsyncEngine, *, instance_id: str, outbox: bool = False
    ) -> None:
        self.engine = engine
        self.instance_id = instance_id
        self.outbox = outbox

    def tracking_payload(self, result: UploadResult) -> dict[str, Any]:
        """The row Supabase receives (see migrations/supabase/)."""
        return _shared_columns(result) | {
            "uploaded_at": datetime.fromtimestamp(result.uploaded_at, UTC).isoformat(),
            "instance_id": self.instance_id,
        }

    def row(self, result: UploadResult) -> dict[str, Any]:
        """The ``uploads`` row for ``result``."""
        return _shared_columns(result) | {
            "elapsed": result.elapsed,
            "providers_tried": list(result.providers_tried),
            "uploaded_at": result.uploaded_at,
            "instance_id": self.instance_id,
        }

    async def record(self, result: UploadResult) -> None:
        """Insert the upload row and, with tracking on, its outbox row: one transaction.

        Idempotent by upload id: a journal fold, or a retry after a commit whose
        answer was lost, finds the row there and writes nothing (no second outbox
        row either).
        """
        duplicate = False

        def taken() -> StorageError:
            nonlocal duplicate
            duplicate = True
            return StorageError(f"upload {result.upload_id} is already recorded")

        try:
            with sql_errors("upload store record", error=StorageError, on_unique=taken):
                async with self.engine.begin() as conn:
                    await self.insert_in(conn, result)
                    await conn.execute(
                        update(upload_intents)
                        .where(
                            upload_intents.c.upload_id == result.upload_id,
                            upload_intents.c.provider == result.provider,
                            upload_intents.c.state == OPEN,
                        )
                        .values(
                            state=COMPLETED,
                            ended_at=result.uploaded_at,
                            provider_file_id=result.provider_file_id,
                        )
                    )
        except StorageError:
            if not duplicate or not await self._has(result.upload_id):
                raise

    async def insert_in(self, conn: AsyncConnection, result: UploadResult) -> None:
        """The uploads row and, with tracking on, its outbox row, in ``conn``'s transaction."""
        await conn.execute(insert(uploads).values(**self.row(result)))
        if self.outbox:
            payload = self.tracking_payload(result)
            await insert_outbox_row(
                conn, outbox_row(result.upload_id, payload, result.uploaded_at)
            )

    async def _has(self, upload_id: str) -> bool:
        with sql_errors("upload store read", error=StorageError):
            async with self.engine.connect() as conn:
                found = await conn.execute(
                    select(uploads.c.id).where(uploads.c.id == upload_id)
                )
                return found.first() is not None

    async def recent_with_tracking(self, limit: int = 50) -> list[dict[str, Any]]:
        """The latest uploads with their Supabase tracking status (``off`` without a row)."""
        stmt = (
            select(
                uploads,
                outbox.c.status.label("tracking"),
                outbox.c.last_error.label("tracking_error"),
            )
            .select_from(uploads.outerjoin(outbox, outbox.c.id == uploads.c.id))
            .order_by(uploads.c.uploaded_at.desc())
            .limit(limit)
        )
        with sql_errors("upload store read", error=StorageError):
            async with self.engine.connect() as conn:
                rows = (await conn.execute(stmt)).all()
        found = []
        for row in rows:
            item = _row_to_result(row._mapping).as_dict()
            item["tracking"] = row._mapping["tracking"] or "off"
            item["tracking_error"] = row._mapping["tracking_error"]
            found.append(item)
        return found

    async def find(self, sha256: str, provider: str) -> UploadResult | None:
        """The newest upload of this content to this provider."""
        stmt = (
            select(uploads)
            .where(uploads.c.sha256 == sha256, uploads.c.provider == provider)
            .order_by(uploads.c.uploaded_at.desc())
            .limit(1)
        )
        with sql_errors("upload store find", error=StorageError):
            async with self.engine.connect() as conn:
                row = (await conn.execute(stmt)).first()
        return _row_to_result(row._mapping) if row is not None else None

    async def recent(self, limit: int = 50) -> list[UploadResult]:
        """Newest first."""
        stmt = select(uploads).order_by(uploads.c.uploaded_at.desc()).limit(limit)
        with sql_errors("upload store read", error=StorageError):
            async with self.engine.connect() as conn:
                rows = (await conn.execute(stmt)).all()
        return [_row_to_result(r._mapping) for r in rows]


def _row_to_result(m: RowMapping) -> UploadResult:
    tried = m["providers_tried"]
    if isinstance(tried, str):
        tried = json.loads(tried)
    return UploadResult(
        upload_id=str(m["id"]),
        provider=str(m["provider"]),
        provider_file_id=str(m["provider_file_id"]),
        filename=str(m["filename"]),
        sha256=str(m["sha256"]),
        bytes=int(m["bytes"]),
        purpose=str(m["purpose"]),
        attempts=int(m["attempts"]),
        elapsed=float(m["elapsed"]),
        providers_tried=tuple(tried or ()),
        uploaded_at=float(m["uploaded_at"]),
    )


def _shared_columns(result: UploadResult) -> dict[str, Any]:
    """What the local row and Supabase's row both hold, under the same names."""
    return {
        "id": result.upload_id,
        "provider": result.provider,
        "provider_file_id": result.provider_file_id,
        "filename": result.filename,
        "sha256": result.sha256,
        "bytes": result.bytes,
        "purpose": result.purpose,
        "attempts": result.attempts,
    }

"""The local record of successful uploads: the ``UploadStore`` port and its adapters.

A failed upload leaves no record. ``find`` serves de-duplication: the same content
(SHA-256) already uploaded to the same provider.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from ..errors import EventLogError
from .model import UploadResult

__all__ = ["MemoryUploadStore", "SqlUploadStore", "UploadStore"]


class UploadStore(Protocol):
    """Where successful uploads are recorded."""

    async def record(self, result: UploadResult) -> None:
        """Record one successful upload."""
        ...

    async def find(self, sha256: str, provider: str) -> UploadResult | None:
        """The latest successful upload of this content to this provider, if any."""
        ...

    async def recent(self, limit: int = 50) -> list[UploadResult]:
        """The latest uploads, newest first."""
        ...


class MemoryUploadStore:
    """Uploads in a list (tests, embedding without a database)."""

    def __init__(self) -> None:
        self.results: list[UploadResult] = []

    async def record(self, result: UploadResult) -> None:
        """Append."""
        self.results.append(result)

    async def find(self, sha256: str, provider: str) -> UploadResult | None:
        """Latest match."""
        for result in reversed(self.results):
            if result.sha256 == sha256 and result.provider == provider:
                return result
        return None

    async def recent(self, limit: int = 50) -> list[UploadResult]:
        """Newest first."""
        return list(reversed(self.results))[:limit]


def _row_to_result(m: Any) -> UploadResult:
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


def _storage_error(exc: BaseException, action: str) -> EventLogError:
    first_line = str(exc).splitlines()[0] if str(exc) else ""
    return EventLogError(
        f"upload store {action} failed: {type(exc).__name__}: {first_line[:200]}"
    )


class SqlUploadStore:
    """The ``uploads`` table in the same database as the event log."""

    def __init__(self, engine: Any, *, instance_id: str, outbox: bool = False) -> None:
        self.engine = engine
        self.instance_id = instance_id
        self.outbox = outbox

    def tracking_payload(self, result: UploadResult) -> dict[str, Any]:
        """The row Supabase receives (see migrations/supabase/)."""
        from datetime import UTC, datetime  # noqa: PLC0415

        return {
            "id": result.upload_id,
            "provider": result.provider,
            "provider_file_id": result.provider_file_id,
            "filename": result.filename,
            "sha256": result.sha256,
            "bytes": result.bytes,
            "purpose": result.purpose,
            "attempts": result.attempts,
            "uploaded_at": datetime.fromtimestamp(result.uploaded_at, UTC).isoformat(),
            "instance_id": self.instance_id,
        }

    def row(self, result: UploadResult) -> dict[str, Any]:
        """The ``uploads`` row for ``result``."""
        return {
            "id": result.upload_id,
            "provider": result.provider,
            "provider_file_id": result.provider_file_id,
            "filename": result.filename,
            "sha256": result.sha256,
            "bytes": result.bytes,
            "purpose": result.purpose,
            "attempts": result.attempts,
            "elapsed": result.elapsed,
            "providers_tried": list(result.providers_tried),
            "uploaded_at": result.uploaded_at,
            "instance_id": self.instance_id,
        }

    async def record(self, result: UploadResult) -> None:
        """Insert the upload row and, with tracking on, its outbox row: one transaction."""
        from sqlalchemy import insert, select  # noqa: PLC0415 - SQL stays in SQL adapters
        from sqlalchemy.exc import IntegrityError, SQLAlchemyError  # noqa: PLC0415

        from ..schema import uploads  # noqa: PLC0415
        from ..tracking.outbox import insert_with_outbox, outbox_row  # noqa: PLC0415

        try:
            async with self.engine.begin() as conn:
                if self.outbox:
                    row = outbox_row(
                        result.upload_id,
                        self.tracking_payload(result),
                        result.uploaded_at,
                    )
                    await insert_with_outbox(conn, self.row(result), row)
                else:
                    await conn.execute(insert(uploads).values(**self.row(result)))
        except IntegrityError as exc:
            # Recording is idempotent by upload id: a journal fold or a retry after a
            # commit whose answer was lost finds the row already there.
            try:
                async with self.engine.connect() as conn:
                    found = (
                        await conn.execute(
                            select(uploads.c.id).where(uploads.c.id == result.upload_id)
                        )
                    ).first()
            except SQLAlchemyError:
                found = None
            if found is None:
                raise _storage_error(exc, "record") from exc
        except (SQLAlchemyError, OSError) as exc:
            raise _storage_error(exc, "record") from exc

    async def recent_with_tracking(self, limit: int = 50) -> list[dict[str, Any]]:
        """The latest uploads with their Supabase tracking status (``off`` without a row)."""
        from sqlalchemy import select  # noqa: PLC0415

        from ..schema import outbox, uploads  # noqa: PLC0415

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
        """Latest upload of this content to this provider."""
        from sqlalchemy import select  # noqa: PLC0415

        from ..schema import uploads  # noqa: PLC0415

        stmt = (
            select(uploads)
            .where(uploads.c.sha256 == sha256, uploads.c.provider == provider)
            .order_by(uploads.c.uploaded_at.desc())
            .limit(1)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(stmt)).first()
        return _row_to_result(row._mapping) if row is not None else None

    async def recent(self, limit: int = 50) -> list[UploadResult]:
        """Newest first."""
        from sqlalchemy import select  # noqa: PLC0415

        from ..schema import uploads  # noqa: PLC0415

        stmt = select(uploads).order_by(uploads.c.uploaded_at.desc()).limit(limit)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [_row_to_result(r._mapping) for r in rows]

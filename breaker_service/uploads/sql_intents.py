"""``SqlIntentStore``: the ``upload_intents`` and ``upload_reconciliations`` tables.

An adoption writes the uploads row, its outbox row, the intent's new state and the
audit row in one transaction, guarded by ``state = 'open'``: two reconcilers (or a
reconciler and a late completion) can never both claim one intent.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import RowMapping, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..errors import StorageError
from ..events.sql_errors import sql_errors
from .intents import ABANDONED, ADOPTED, FAILED, OPEN, ReconcileAction, UploadIntent
from .model import UploadResult
from .sql_store import SqlUploadStore
from .tables import upload_intents, upload_reconciliations, uploads

__all__ = ["SqlIntentStore"]


class SqlIntentStore:
    """The ``IntentStore`` contract on the engine of a ``SqlUploadStore``."""

    def __init__(self, store: SqlUploadStore) -> None:
        self.store = store
        self.engine: AsyncEngine = store.engine

    async def begin(self, intent: UploadIntent) -> None:
        """Insert the open intent and commit."""
        with sql_errors("upload intent begin", error=StorageError):
            async with self.engine.begin() as conn:
                await conn.execute(insert(upload_intents).values(**intent.as_dict()))

    async def restore(self, intent: UploadIntent) -> None:
        """Insert the intent; one already there only has its attempts raised."""
        exists = False

        def taken() -> StorageError:
            nonlocal exists
            exists = True
            return StorageError(f"upload intent {intent.id} is already there")

        try:
            with sql_errors(
                "upload intent restore", error=StorageError, on_unique=taken
            ):
                async with self.engine.begin() as conn:
                    await conn.execute(
                        insert(upload_intents).values(**intent.as_dict())
                    )
        except StorageError:
            if not exists:
                raise
            await self.attempt(intent.id, intent.attempts)

    async def attempt(self, intent_id: str, attempts: int) -> None:
        """Raise the attempt count (never lowers it)."""
        with sql_errors("upload intent attempt", error=StorageError):
            async with self.engine.begin() as conn:
                await conn.execute(
                    update(upload_intents)
                    .where(
                        upload_intents.c.id == intent_id,
                        upload_intents.c.attempts < attempts,
                    )
                    .values(attempts=attempts)
                )

    async def fail(self, intent_id: str, at: float) -> None:
        """Open -> failed."""
        with sql_errors("upload intent fail", error=StorageError):
            async with self.engine.begin() as conn:
                await conn.execute(
                    update(upload_intents)
                    .where(
                        upload_intents.c.id == intent_id,
                        upload_intents.c.state == OPEN,
                    )
                    .values(state=FAILED, ended_at=at)
                )

    async def open_intents(self) -> list[UploadIntent]:
        """Open intents, oldest first."""
        stmt = (
            select(upload_intents)
            .where(upload_intents.c.state == OPEN)
            .order_by(upload_intents.c.started_at)
        )
        return await self._select(stmt)

    async def since(self, provider: str, started_after: float) -> list[UploadIntent]:
        """The provider's intents started after ``started_after``."""
        stmt = select(upload_intents).where(
            upload_intents.c.provider == provider,
            upload_intents.c.started_at > started_after,
        )
        return await self._select(stmt)

    async def recorded_file_ids(self, provider: str) -> set[str]:
        """Every recorded file id of ``provider`` (uploads rows and closed intents)."""
        with sql_errors("upload intent read", error=StorageError):
            async with self.engine.connect() as conn:
                rows = await conn.execute(
                    select(uploads.c.provider_file_id).where(
                        uploads.c.provider == provider
                    )
                )
                found = {str(r[0]) for r in rows}
                more = await conn.execute(
                    select(upload_intents.c.provider_file_id).where(
                        upload_intents.c.provider == provider,
                        upload_intents.c.provider_file_id.is_not(None),
                    )
                )
                found.update(str(r[0]) for r in more)
        return found

    async def adopt(
        self, intent: UploadIntent, result: UploadResult, action: ReconcileAction
    ) -> bool:
        """Open -> adopted with its uploads, outbox and audit rows, or nothing."""
        with sql_errors("upload intent adopt", error=StorageError):
            async with self.engine.begin() as conn:
                if not await self._close(conn, intent, ADOPTED, action, result):
                    return False
                await self.store.insert_in(conn, result)
                await conn.execute(
                    insert(upload_reconciliations).values(**action.as_dict())
                )
        return True

    async def abandon(self, intent: UploadIntent, action: ReconcileAction) -> bool:
        """Open -> abandoned, audited, or nothing."""
        with sql_errors("upload intent abandon", error=StorageError):
            async with self.engine.begin() as conn:
                if not await self._close(conn, intent, ABANDONED, action, None):
                    return False
                await conn.execute(
                    insert(upload_reconciliations).values(**action.as_dict())
                )
        return True

    async def audit(self, action: ReconcileAction) -> None:
        """Append one audited action."""
        with sql_errors("upload reconciliation audit", error=StorageError):
            async with self.engine.begin() as conn:
                await conn.execute(
                    insert(upload_reconciliations).values(**action.as_dict())
                )

    async def actions(self, limit: int = 50) -> list[ReconcileAction]:
        """Newest first."""
        stmt = (
            select(upload_reconciliations)
            .order_by(upload_reconciliations.c.id.desc())
            .limit(limit)
        )
        with sql_errors("upload reconciliation read", error=StorageError):
            async with self.engine.connect() as conn:
                rows = (await conn.execute(stmt)).all()
        fields = ReconcileAction.__dataclass_fields__
        return [ReconcileAction(**{k: r._mapping[k] for k in fields}) for r in rows]

    async def _close(
        self,
        conn: AsyncConnection,
        intent: UploadIntent,
        state: str,
        action: ReconcileAction,
        result: UploadResult | None,
    ) -> bool:
        values: dict[str, Any] = {"state": state, "ended_at": action.at}
        if result is not None:
            values["provider_file_id"] = result.provider_file_id
        done = await conn.execute(
            update(upload_intents)
            .where(upload_intents.c.id == intent.id, upload_intents.c.state == OPEN)
            .values(**values)
        )
        return bool(done.rowcount)

    async def _select(self, stmt: Any) -> list[UploadIntent]:
        with sql_errors("upload intent read", error=StorageError):
            async with self.engine.connect() as conn:
                rows = (await conn.execute(stmt)).all()
        return [_intent(r._mapping) for r in rows]


def _intent(m: RowMapping) -> UploadIntent:
    return UploadIntent(
        id=str(m["id"]),
        upload_id=str(m["upload_id"]),
        provider=str(m["provider"]),
        path=str(m["path"]),
        filename=str(m["filename"]),
        sha256=str(m["sha256"]),
        bytes=int(m["bytes"]),
        purpose=str(m["purpose"]),
        started_at=float(m["started_at"]),
        owner=str(m["owner"]),
        run_id=str(m["run_id"]),
        attempts=int(m["attempts"]),
        state=str(m["state"]),
        ended_at=float(m["ended_at"]) if m["ended_at"] is not None else None,
        provider_file_id=(
            str(m["provider_file_id"]) if m["provider_file_id"] is not None else None
        ),
    )

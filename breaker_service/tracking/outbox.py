"""The outbox table: rows written with each upload, claimed and delivered by the relay.

Claiming takes a lease (owner and expiry) in one statement; on PostgreSQL the
candidate rows are selected ``FOR UPDATE SKIP LOCKED``, so relays in several
processes never claim the same row, and a relay that dies mid-delivery loses its
lease when it expires. Delivery is idempotent anyway (upsert on the upload id).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..events.sql_errors import sql_errors
from .tables import outbox

__all__ = [
    "OUTBOX_DELIVERED",
    "OUTBOX_FAILED",
    "OUTBOX_PENDING",
    "Outbox",
    "OutboxRow",
    "OutboxStatus",
    "insert_outbox_row",
    "outbox_row",
]

OUTBOX_PENDING = "pending"
OUTBOX_DELIVERED = "delivered"
OUTBOX_FAILED = "failed"


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One record waiting for delivery."""

    id: str
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    """Counts by status and the age of the oldest pending row."""

    pending: int
    delivered: int
    failed: int
    oldest_pending_age: float | None
    last_error: str | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly."""
        return {
            "pending": self.pending,
            "delivered": self.delivered,
            "failed": self.failed,
            "oldest_pending_age_seconds": self.oldest_pending_age,
            "last_error": self.last_error,
        }


def _held_by(owner: str) -> Any:
    """Rows leased by ``owner`` (under any of its claims)."""
    return outbox.c.lease_owner.startswith(owner + "#", autoescape=True)


def outbox_row(
    upload_id: str, payload: dict[str, Any], now: float, destination: str = "supabase"
) -> dict[str, Any]:
    """The outbox row written in the same transaction as the upload."""
    return {
        "id": upload_id,
        "destination": destination,
        "payload": payload,
        "status": OUTBOX_PENDING,
        "attempts": 0,
        "created_at": now,
        "next_attempt_at": now,
    }


class Outbox:
    """Operations on the outbox table."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def _run(self, action: str, stmt: Any) -> Any:
        with sql_errors(f"outbox {action}"):
            async with self.engine.begin() as conn:
                return await conn.execute(stmt)

    async def claim(
        self, *, owner: str, now: float, lease: float, limit: int
    ) -> list[OutboxRow]:
        """Lease up to ``limit`` due pending rows to ``owner`` and return them."""
        due = (
            select(outbox.c.id)
            .where(
                outbox.c.status == OUTBOX_PENDING,
                outbox.c.next_attempt_at <= now,
                or_(outbox.c.lease_until.is_(None), outbox.c.lease_until < now),
            )
            .order_by(outbox.c.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        until = now + lease
        token = (
            f"{owner}#{uuid.uuid4().hex[:16]}"  # unique per claim, even for one owner
        )
        with sql_errors("outbox claim"):
            async with self.engine.begin() as conn:
                await conn.execute(
                    update(outbox)
                    .where(outbox.c.id.in_(due.scalar_subquery()))
                    .values(lease_owner=token, lease_until=until)
                )
                rows = (
                    await conn.execute(
                        select(outbox.c.id, outbox.c.payload, outbox.c.attempts).where(
                            outbox.c.lease_owner == token,
                            outbox.c.status == OUTBOX_PENDING,
                        )
                    )
                ).all()
        return [OutboxRow(str(r.id), _json(r.payload), int(r.attempts)) for r in rows]

    async def delivered(self, ids: list[str], *, owner: str, now: float) -> int:
        """Mark rows delivered (only those this owner still leases)."""
        result = await self._run(
            "mark delivered",
            update(outbox)
            .where(outbox.c.id.in_(ids), _held_by(owner))
            .values(
                status=OUTBOX_DELIVERED,
                delivered_at=now,
                lease_owner=None,
                lease_until=None,
                last_error=None,
            ),
        )
        return int(result.rowcount or 0)

    async def retry_later(
        self, ids: list[str], *, owner: str, error: str, next_attempt_at: float
    ) -> None:
        """Keep rows pending with one more attempt, the error, and when to try again."""
        await self._run(
            "mark retry",
            update(outbox)
            .where(outbox.c.id.in_(ids), _held_by(owner))
            .values(
                attempts=outbox.c.attempts + 1,
                last_error=error[:2000],
                next_attempt_at=next_attempt_at,
                lease_owner=None,
                lease_until=None,
            ),
        )

    async def failed(self, ids: list[str], *, owner: str, error: str) -> None:
        """Park rows as failed (a permanent error): they wait for ``redrive``."""
        await self._run(
            "mark failed",
            update(outbox)
            .where(outbox.c.id.in_(ids), _held_by(owner))
            .values(
                status=OUTBOX_FAILED,
                attempts=outbox.c.attempts + 1,
                last_error=error[:2000],
                lease_owner=None,
                lease_until=None,
            ),
        )

    async def redrive(self, now: float, *, error_contains: str | None = None) -> int:
        """Put failed rows back to pending (after the operator fixed the cause).

        ``error_contains`` limits it to rows whose last error mentions that text.
        """
        where = [outbox.c.status == OUTBOX_FAILED]
        if error_contains is not None:
            where.append(outbox.c.last_error.contains(error_contains, autoescape=True))
        result = await self._run(
            "redrive",
            update(outbox)
            .where(*where)
            .values(
                status=OUTBOX_PENDING,
                next_attempt_at=now,
                lease_owner=None,
                lease_until=None,
            ),
        )
        return int(result.rowcount or 0)

    async def release(self, *, owner: str) -> int:
        """Give back every lease ``owner`` holds (a relay stopping mid-claim), so the
        next process need not wait for them to expire."""
        result = await self._run(
            "release leases",
            update(outbox)
            .where(_held_by(owner), outbox.c.status == OUTBOX_PENDING)
            .values(lease_owner=None, lease_until=None),
        )
        return int(result.rowcount or 0)

    async def due_now(self, now: float) -> int:
        """Make every pending row backing off due now (an operator's ``--deliver``)."""
        result = await self._run(
            "make due",
            update(outbox)
            .where(outbox.c.status == OUTBOX_PENDING, outbox.c.next_attempt_at > now)
            .values(next_attempt_at=now),
        )
        return int(result.rowcount or 0)

    async def status(self, now: float) -> OutboxStatus:
        """Counts by status, the oldest pending age and the latest error."""
        with sql_errors("outbox status"):
            async with self.engine.connect() as conn:
                counts: dict[str, int] = dict(
                    (
                        await conn.execute(
                            select(outbox.c.status, func.count()).group_by(
                                outbox.c.status
                            )
                        )
                    ).all()
                )
                oldest = (
                    await conn.execute(
                        select(func.min(outbox.c.created_at)).where(
                            outbox.c.status == OUTBOX_PENDING
                        )
                    )
                ).scalar()
                error = (
                    await conn.execute(
                        select(outbox.c.last_error)
                        .where(
                            and_(
                                outbox.c.status != OUTBOX_DELIVERED,
                                outbox.c.last_error.is_not(None),
                            )
                        )
                        .order_by(outbox.c.next_attempt_at.desc())
                        .limit(1)
                    )
                ).scalar()
        return OutboxStatus(
            pending=int(counts.get(OUTBOX_PENDING, 0)),
            delivered=int(counts.get(OUTBOX_DELIVERED, 0)),
            failed=int(counts.get(OUTBOX_FAILED, 0)),
            oldest_pending_age=None
            if oldest is None
            else max(0.0, now - float(oldest)),
            last_error=error,
        )


async def insert_outbox_row(conn: AsyncConnection, row: dict[str, Any]) -> None:
    """Insert ``row`` on the caller's open transaction, so it commits with the upload."""
    await conn.execute(insert(outbox).values(**row))


def _json(value: Any) -> dict[str, Any]:
    data = json.loads(value) if isinstance(value, str) else value
    return data if isinstance(data, dict) else {}

"""Fleet-wide half-open trial slots: leases in PostgreSQL with an expiry.

``CIRCUIT_BREAKER_HALF_OPEN_MAX_CALLS`` bounds trial calls across every replica of a
shared breaker, not per replica. A slot is an ``INSERT ... ON CONFLICT DO UPDATE``
that only succeeds when the slot is free: expired, or left over from an earlier
half-open period (a lower state version). A replica that dies holding a slot blocks
recovery only until the lease expires.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import delete, or_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from .schema import breaker_trials as T  # noqa: N812 - short table alias
from .sql_errors import sql_errors

__all__ = ["SqlTrialGate", "TrialLease"]


@dataclass(frozen=True, slots=True)
class TrialLease:
    """A held trial slot."""

    stream: str
    slot: int
    holder: str


class SqlTrialGate:
    """Hands out at most ``limit`` trial slots per stream and state version."""

    def __init__(self, engine: AsyncEngine, *, owner: str) -> None:
        self.engine = engine
        self.owner = owner

    async def acquire(
        self, stream: str, version: int, limit: int, *, now: float, expires_at: float
    ) -> TrialLease | None:
        """A free slot for one trial call, or None when ``limit`` are already out."""
        holder = f"{self.owner}#{uuid.uuid4().hex[:12]}"
        with sql_errors("trial lease"):
            async with self.engine.begin() as conn:
                for slot in range(limit):
                    stmt = (
                        pg_insert(T)
                        .values(
                            stream=stream,
                            slot=slot,
                            state_version=version,
                            holder=holder,
                            expires_at=expires_at,
                        )
                        .on_conflict_do_update(
                            index_elements=[T.c.stream, T.c.slot],
                            set_={
                                "state_version": version,
                                "holder": holder,
                                "expires_at": expires_at,
                            },
                            where=or_(
                                T.c.expires_at < now, T.c.state_version < version
                            ),
                        )
                        .returning(T.c.slot)
                    )
                    if (await conn.execute(stmt)).first() is not None:
                        return TrialLease(stream, slot, holder)
        return None

    async def release(self, lease: TrialLease) -> None:
        """Give the slot back (only if still ours)."""
        with sql_errors("trial release"):
            async with self.engine.begin() as conn:
                await conn.execute(
                    delete(T).where(
                        T.c.stream == lease.stream,
                        T.c.slot == lease.slot,
                        T.c.holder == lease.holder,
                    )
                )

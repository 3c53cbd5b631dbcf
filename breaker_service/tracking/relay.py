"""``OutboxRelay``: delivers pending outbox rows to Supabase, exactly once in effect.

One relay per process. It claims due rows under a lease, upserts them through the
retry engine and the ``supabase`` breaker, and marks them delivered. Transient
failures keep rows pending with attempts, the error and a backed-off next attempt;
permanent ones (bad key, schema mismatch) park them as ``failed`` until an operator
runs ``breaker-service outbox --redrive``; rows parked for a bad key are retried by
themselves when a relay starts (the usual fix is a restart with the right key). Pending rows from before a crash are
delivered at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Protocol

from ..breaker import BreakerRegistry
from ..clock import Clock, SystemClock
from ..errors import CircuitOpenError, EventLogError, ProviderError
from ..tasks import stop_task
from .outbox import Outbox, OutboxRow, OutboxStatus
from .supabase import AUTH_HINT

__all__ = ["OutboxRelay", "TrackingSink"]

logger = logging.getLogger("breaker_service.tracking")

BREAKER_NAME = "supabase"


class TrackingSink(Protocol):
    """Where tracking rows go (Supabase in production)."""

    async def upsert(self, rows: list[dict[str, Any]]) -> int:
        """Idempotently write ``rows`` keyed by their ``id``."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class OutboxRelay:
    """Moves outbox rows to the sink in batches."""

    def __init__(
        self,
        *,
        outbox: Outbox,
        sink: TrackingSink,
        registry: BreakerRegistry,
        owner: str,
        clock: Clock | None = None,
        batch_size: int = 100,
        interval: float = 1.0,
        lease: float = 60.0,
        max_backoff: float = 300.0,
    ) -> None:
        self.outbox = outbox
        self.sink = sink
        self.registry = registry
        self.owner = owner
        self.clock = clock or SystemClock()
        self.batch_size = batch_size
        self.interval = interval
        self.lease = lease
        self.max_backoff = max_backoff
        self.last_error: str | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        """Start the background loop (delivers what is pending from before, too)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="outbox-relay"
            )

    def wake(self) -> None:
        """Deliver soon (a new row was written)."""
        self._wake.set()

    async def aclose(self) -> None:
        """Stop the loop, give back its leases and close the sink; undelivered rows
        stay pending (and claimable at once by the next process)."""
        self._closing = True
        task, self._task = self._task, None
        await stop_task(task)
        try:
            await self.outbox.release(owner=self.owner)
        except EventLogError as exc:  # the leases then expire by themselves
            logger.warning(
                "[RETRY] supabase relay could not release its leases: %s", exc
            )
        await self.sink.aclose()

    async def _run(self) -> None:
        try:
            # A new process may carry a fixed key: rows parked for a bad key get another go.
            again = await self.outbox.redrive(
                self.clock.time(), error_contains=AUTH_HINT
            )
            if again:
                logger.warning(
                    "[RETRY] supabase: retrying %d rows parked for a bad key", again
                )
        except EventLogError as exc:
            logger.warning("[RETRY] supabase relay cannot read the outbox: %s", exc)
        while not self._closing:
            try:
                delivered = await self.run_once()
            except EventLogError as exc:
                logger.warning("[RETRY] supabase relay cannot read the outbox: %s", exc)
                delivered = 0
            except Exception as exc:  # the loop must outlive any one bad batch
                self.last_error = f"supabase relay: unexpected {type(exc).__name__}"
                logger.exception(
                    "[RETRY] supabase relay: unexpected %s; leased rows are retried "
                    "when their lease expires",
                    type(exc).__name__,
                )
                delivered = 0
            if delivered < self.batch_size:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):  # (not wait_for: see follower)
                    async with asyncio.timeout(self.interval):
                        await self._wake.wait()

    async def drain(self, max_batches: int = 1000) -> int:
        """Deliver batches until none is due (tests, CLI); returns rows delivered."""
        total = 0
        for _ in range(max_batches):
            delivered = await self.run_once()
            total += delivered
            if delivered == 0:
                break
        return total

    async def run_once(self) -> int:
        """Claim one batch and deliver it; returns rows delivered."""
        now = self.clock.time()
        rows = await self.outbox.claim(
            owner=self.owner, now=now, lease=self.lease, limit=self.batch_size
        )
        if not rows:
            return 0
        try:
            await self.registry.call(
                BREAKER_NAME, self.sink.upsert, [r.payload for r in rows]
            )
        except CircuitOpenError as exc:
            await self._later(rows, str(exc), delay=exc.retry_after)
            return 0
        except ProviderError as exc:
            if exc.transient:
                await self._later(rows, str(exc))
                return 0
            return await self._permanent(rows, exc)
        await self.outbox.delivered(
            [r.id for r in rows], owner=self.owner, now=self.clock.time()
        )
        self.last_error = None
        return len(rows)

    async def _later(
        self, rows: list[OutboxRow], error: str, delay: float | None = None
    ) -> None:
        attempts = max(r.attempts for r in rows) + 1
        wait = (
            delay
            if delay is not None
            else min(self.max_backoff, 2.0 ** min(attempts, 20))
        )
        self.last_error = error
        logger.warning(
            "[RETRY] supabase: %d tracking rows stay pending (%s); next try in %.1fs",
            len(rows),
            error,
            wait,
        )
        await self.outbox.retry_later(
            [r.id for r in rows],
            owner=self.owner,
            error=error,
            next_attempt_at=self.clock.time() + wait,
        )

    async def _permanent(self, rows: list[OutboxRow], error: ProviderError) -> int:
        """A permanent error: isolate bad rows one by one; park what still fails."""
        if len(rows) > 1 and error.code not in {"auth"}:
            delivered = 0
            for row in rows:
                delivered += await self._deliver_single(row)
            return delivered
        self.last_error = str(error)
        logger.error(
            "[RETRY] supabase rejected %d tracking rows: %s; they wait as failed until "
            "`breaker-service outbox --redrive` after the cause is fixed",
            len(rows),
            error,
        )
        await self.outbox.failed(
            [r.id for r in rows], owner=self.owner, error=str(error)
        )
        return 0

    async def _deliver_single(self, row: OutboxRow) -> int:
        try:
            await self.registry.call(BREAKER_NAME, self.sink.upsert, [row.payload])
        except CircuitOpenError as exc:
            await self._later([row], str(exc), delay=exc.retry_after)
            return 0
        except ProviderError as exc:
            if exc.transient:
                await self._later([row], str(exc))
            else:
                self.last_error = str(exc)
                await self.outbox.failed([row.id], owner=self.owner, error=str(exc))
            return 0
        await self.outbox.delivered([row.id], owner=self.owner, now=self.clock.time())
        return 1

    async def status(self) -> OutboxStatus:
        """Outbox counts and oldest pending age."""
        return await self.outbox.status(self.clock.time())

"""``Maintenance``: the event log's retention, applied on the injected clock.

Outcome events past ``EVENT_LOG_RETENTION_DAYS`` that a snapshot covers are pruned a
minute after start and then hourly; transitions are kept for audit.
"""

from __future__ import annotations

import asyncio
import logging

from ..clock import Clock, idle
from ..errors import EventLogError
from ..events.recorder import EventRecorder
from ..tasks import stop_task

__all__ = ["Maintenance"]

logger = logging.getLogger("breaker_service.breaker")


class Maintenance:
    """Runs retention in the background; ``prune()`` applies it now."""

    def __init__(
        self,
        recorder: EventRecorder,
        clock: Clock,
        *,
        retention_seconds: float,
        every: float = 3600.0,
        first_after: float = 60.0,
    ) -> None:
        self._recorder = recorder
        self._clock = clock
        self.retention_seconds = retention_seconds
        self.every = every
        self.first_after = first_after
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the background retention (idempotent)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="event-log-retention"
            )

    async def prune(self) -> int:
        """Drop outcome events past the retention that snapshots cover (transitions stay)."""
        await self._recorder.flush()
        return await self._recorder.prune(self.retention_seconds, self._clock.time())

    async def _run(self) -> None:
        await idle(self._clock, self.first_after)
        while True:
            try:
                removed = await self.prune()
            except EventLogError as exc:
                logger.warning("[CIRCUIT] retention skipped: %s", exc)
                removed = 0
            if removed:
                logger.info(
                    "[CIRCUIT] pruned %d outcome events past the retention", removed
                )
            await idle(self._clock, self.every)

    async def aclose(self) -> None:
        """Stop the background retention."""
        task, self._task = self._task, None
        await stop_task(task)

"""``LogFollower``: keeps a replica's shared-scope breakers in step with the fleet.

It wakes on PostgreSQL ``LISTEN/NOTIFY`` (a notification is only a wake-up: its
payload is ignored) and catches up by reading shared-stream events after the last
id it applied; it also polls every ``poll_interval`` seconds, so a missed
notification delays, never loses. Writers append under a table lock (see
``SqlEventLog``), so ids become visible in commit order and reading "after the last
id" never skips an event that committed late. The connection is re-established
after a database outage, and catching up resumes from the last applied id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import EventLogError
from ..tasks import stop_task
from .model import StoredEvent

__all__ = ["LogFollower"]

logger = logging.getLogger("breaker_service.events")

Apply = Callable[[list[StoredEvent]], Awaitable[None]]


class LogFollower:
    """Tails the shared streams of an ``SqlEventLog`` on PostgreSQL."""

    def __init__(
        self,
        log: Any,
        apply: Apply,
        *,
        after_id: int,
        poll_interval: float = 1.0,
        dsn: str | None = None,
    ) -> None:
        self.log = log
        self.apply = apply
        self.after_id = after_id
        self.poll_interval = poll_interval
        self.applied = 0
        self.listening = False
        self._dsn = dsn
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._connection: Any = None

    async def start(self) -> None:
        """LISTEN, then follow in the background (idempotent)."""
        if self._task is None:
            await self._listen()
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="log-follower"
            )

    def wake(self) -> None:
        """Catch up now."""
        self._wake.set()

    async def _listen(self) -> None:
        if self._dsn is None or self._connection is not None:
            return
        # deferred: asyncpg is only needed (and only installed to matter) on PostgreSQL.
        import asyncpg  # noqa: PLC0415

        try:
            connection = await asyncpg.connect(self._dsn, timeout=5)
            await connection.add_listener(self.log.NOTIFY_CHANNEL, self._notified)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            logger.warning(
                "[CIRCUIT] follower cannot LISTEN yet (%s); polling", type(exc).__name__
            )
            return
        connection.add_termination_listener(self._terminated)
        self._connection = connection
        self.listening = True

    def _notified(self, *_args: object) -> None:
        self._wake.set()

    def _terminated(self, *_args: object) -> None:
        self._connection = None
        self.listening = False
        self._wake.set()

    async def catch_up(self) -> int:
        """Apply every shared event after the last applied id; returns how many."""
        total = 0
        while True:
            events = await self.log.read_shared_after(self.after_id)
            if not events:
                return total
            self.after_id = events[-1].id
            await self.apply(events)
            total += len(events)
            self.applied += len(events)

    async def _run(self) -> None:
        while True:
            await self._listen()
            # Clear before reading: a notification that lands during the catch-up
            # then wakes the next round instead of being wiped out.
            self._wake.clear()
            try:
                await self.catch_up()
            except EventLogError as exc:
                logger.debug("follower catch-up failed: %s", exc)
            except Exception:
                logger.exception(
                    "[CIRCUIT] follower failed to apply events; will retry"
                )
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that
            # lands as the event is set, and aclose() would wait for ever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()

    async def aclose(self) -> None:
        """Stop following and close the LISTEN connection."""
        task, self._task = self._task, None
        await stop_task(task)
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close(timeout=2)

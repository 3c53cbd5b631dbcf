"""Group commit in front of an ``EventLog``: the hot path bumps a run, nothing more.

Outcomes are counted as runs in each breaker's bounded ``RunLog``
(``events/runs.py``); every ``flush_interval`` seconds a flush takes them all into
``buffer`` and writes them, one transaction per batch, so rows per second follow
the flush rate, not the call rate. Transitions are
committed at once by ``commit_transition`` before they take effect, whenever the
store answers in time. When the store is down, slow or locked, events wait in the
buffer (transitions are never dropped; past ``buffer_max`` outcomes are run-length
coalesced into counts, never silently lost) and the recorder reports itself degraded
until the backlog is written.

A round the store refuses for its content is written apart
(``events/write_apart.py``).

Time comes from the injected ``Clock``: how long a flush took, and when a store that
failed is tried again (``RETRY_INTERVAL`` later). Two waits pace real I/O and stay on
the event loop's time, as the relay's and the follower's do: the background
flusher's tick and ``commit_timeout``. A ``FakeClock`` advances by itself on every
``sleep``, so a background loop sleeping on it would move breakers' cooldowns on
its own; tests that want these waits in fake time run the loop on the fake clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Callable

from ..clock import Clock, SystemClock
from ..errors import ConcurrencyError, EventLogError
from ..tasks import stop_task
from .log import EventLog
from .model import DeadLetter, OutcomeRow, Snapshot, TransitionRecord
from .runs import RUNS_MAX, RunLog, coalesce
from .write_apart import WriteApart

__all__ = ["EventRecorder"]

logger = logging.getLogger("breaker_service.events")

SnapshotSource = Callable[[str], Snapshot | None]

RETRY_INTERVAL = 0.5
"""Seconds on the clock between attempts to write to a store that failed."""

UNWRITTEN_LETTERS_MAX = 1000
"""Dead letters kept in memory when even the dead-letter table refuses them."""

_SYSTEM_CLOCK = SystemClock()


class EventRecorder(WriteApart):
    """Buffers events, writes them in batches, and survives store outages.

    ``clock`` defaults to the system clock; the registry passes its own.
    """

    def __init__(
        self,
        log: EventLog,
        *,
        flush_interval: float = 0.005,
        batch_size: int = 1000,
        buffer_max: int = 200_000,
        runs_max: int = RUNS_MAX,
        snapshot_every: int = 500,
        commit_timeout: float = 1.0,
        snapshot_source: SnapshotSource | None = None,
        on_conflict: Callable[[str], None] | None = None,
        clock: Clock = _SYSTEM_CLOCK,
    ) -> None:
        self.log = log
        self.clock = clock
        # Rows taken from the breakers' run logs and not written yet (with the
        # store down, they wait here, bounded by ``buffer_max``).
        self.buffer: list[OutcomeRow] = []
        self.runs_max = runs_max
        self._runs: dict[str, RunLog] = {}
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.buffer_max = buffer_max
        self.snapshot_every = snapshot_every
        self.commit_timeout = commit_timeout
        self.snapshot_source = snapshot_source
        self.on_conflict = on_conflict
        self.degraded = False
        self.last_error: str | None = None
        self.written = 0
        self.coalesced = 0
        self.dead_lettered = 0
        # Dead letters the store refused too: kept (and logged) here, never dropped silently.
        self.unwritten_letters: deque[DeadLetter] = deque(maxlen=UNWRITTEN_LETTERS_MAX)
        self.last_flush_seconds = 0.0
        self._pending: list[TransitionRecord] = []
        self._committing: set[TransitionRecord] = set()
        self._waiters: dict[TransitionRecord, asyncio.Future[bool]] = {}
        self._flushes: set[asyncio.Future[bool]] = set()
        self._conflicts: set[TransitionRecord] = set()
        self._since_snapshot: Counter[str] = Counter()
        self._force_snapshot: set[str] = set()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._retry_at = 0.0

    @property
    def backlog(self) -> int:
        """Rows waiting to be written (outcome runs and transitions)."""
        return (
            len(self.buffer)
            + len(self._pending)
            + sum(len(runs) for runs in self._runs.values())
        )

    @property
    def unwritten_events(self) -> int:
        """Calls and transitions not written yet (a run counts its calls)."""
        rows = [r for runs in self._runs.values() for r in runs.closed]
        open_calls = sum(runs.count for runs in self._runs.values())
        return (
            sum(r[7] for r in self.buffer)
            + sum(r[7] for r in rows)
            + open_calls
            + len(self._pending)
        )

    @property
    def merged(self) -> int:
        """Runs merged by the breakers' bounded run logs since start."""
        return sum(runs.merged for runs in self._runs.values())

    def runs_for(
        self, breaker: str, *, keep_calls: int = 0, keep_seconds: int = 0
    ) -> RunLog:
        """The run log ``breaker`` counts its outcomes in (one per name, kept).

        ``keep_calls`` and ``keep_seconds`` are what its trip policy reads in order
        (a count window's size, a time window's span): compaction keeps them apart.
        """
        runs = self._runs.get(breaker)
        if runs is None:
            runs = self._runs[breaker] = RunLog(breaker, limit=self.runs_max)
        runs.keep_calls = max(runs.keep_calls, keep_calls)
        runs.keep_seconds = max(runs.keep_seconds, keep_seconds)
        return runs

    def _take_runs(self) -> None:
        """Move every breaker's runs (the open ones closed) to the write buffer."""
        for runs in self._runs.values():
            if runs.count or runs.closed:
                self.buffer.extend(runs.drain())

    def _runs_waiting(self) -> bool:
        return any(runs.count or runs.closed for runs in self._runs.values())

    def start(self) -> None:
        """Start the background flusher (idempotent)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="event-flusher"
            )

    def request_snapshot(self, breaker: str) -> None:
        """Write a snapshot of ``breaker`` with the next flush."""
        self._force_snapshot.add(breaker)

    async def _run(self) -> None:
        while not self._closing:
            # Loop time, not the clock: a FakeClock would advance on every tick.
            await asyncio.sleep(self.flush_interval)
            if self.degraded and self.clock.monotonic() < self._retry_at:
                self._bound_buffer()
                continue
            if self.buffer or self._pending or self._runs_waiting():
                # Shielded: aclose() cancels this loop, and a cancelled flush would roll
                # back a batch already taken from the buffer.
                await asyncio.shield(self.flush())

    def _bound_buffer(self) -> None:
        if len(self.buffer) <= self.buffer_max:
            return
        before = len(self.buffer)
        rows = coalesce(self.buffer, keep_order=True)
        if len(rows) > self.buffer_max:
            rows = coalesce(rows, keep_order=False)
        self.buffer[:] = rows
        self.coalesced += before - len(rows)
        for name in {r[0] for r in rows}:
            self._force_snapshot.add(name)
        logger.warning(
            "[CIRCUIT] event buffer over %d while the store is down: coalesced %d outcome "
            "events into %d counted rows (nothing dropped)",
            self.buffer_max,
            before,
            len(rows),
        )

    def _snapshots_for(
        self, outs: list[OutcomeRow], transitions: list[TransitionRecord]
    ) -> list[Snapshot]:
        """Snapshots to write with this round: due ones whose state matches what is written."""
        for row in outs:
            self._since_snapshot[row[0]] += 1
        for record in transitions:
            self._since_snapshot[record.breaker] += 1
        later = [t for t in self._pending if t not in transitions]
        if self.buffer or later or self.snapshot_source is None:
            return []  # more of the backlog follows: the live state is ahead of this round
        # A breaker with runs counted since the round was taken is ahead of it too.
        ahead = {n for n, runs in self._runs.items() if runs.count or runs.closed}
        due = {n for n, c in self._since_snapshot.items() if c >= self.snapshot_every}
        due |= self._force_snapshot & (
            {r[0] for r in outs} | {t.breaker for t in transitions}
        )
        due -= {t.breaker for t in self._committing}  # not applied in memory yet
        due -= ahead
        snaps = []
        for name in sorted(due):
            snap = self.snapshot_source(name)
            if snap is not None:
                snaps.append(snap)
        return snaps

    async def flush(self) -> bool:
        """Write everything buffered now; ``False`` if the store failed (kept for later)."""
        async with self._lock:
            return await self._flush_locked()

    async def _flush_locked(self) -> bool:
        self._take_runs()
        while self.buffer or self._pending:
            if self._pending:
                # Outcomes counted before a pending transition are written before it.
                self._take_runs()
            outs = self.buffer[: self.batch_size]
            # Write in the order things happened: each breaker's next pending
            # transition, after the outcomes before it and before those recorded
            # once it took effect (possible while the store was down or slow).
            first: dict[str, int] = {}
            for record in self._pending:
                first[record.breaker] = min(
                    first.get(record.breaker, record.version), record.version
                )
            transitions = [t for t in self._pending if t.version == first[t.breaker]]
            for cut, row in enumerate(outs):
                if row[0] in first and row[2] >= first[row[0]]:
                    del outs[cut:]
                    break
            del self.buffer[: len(outs)]
            snaps = self._snapshots_for(outs, transitions)
            started = self.clock.monotonic()
            try:
                await self._append(outs, transitions, snaps)
            except EventLogError as exc:
                # What is left of the round (all of it, unless it was written apart).
                self.buffer[0:0] = outs
                for row in outs:
                    self._since_snapshot[row[0]] -= 1
                for record in transitions:
                    self._since_snapshot[record.breaker] -= 1
                self._enter_degraded(exc)
                for record in self._pending:
                    self._settle(record, committed=False)
                return False
            self.last_flush_seconds = self.clock.monotonic() - started
            for snap in snaps:
                self._since_snapshot.pop(snap.breaker, None)
                self._force_snapshot.discard(snap.breaker)
            if self.degraded:
                self.degraded = False
                self.last_error = None
                logger.warning("[CIRCUIT] event store is back; backlog written")
        return True

    def _enter_degraded(self, exc: EventLogError) -> None:
        if not self.degraded:
            logger.warning(
                "[CIRCUIT] event store unavailable, breakers keep protecting in memory "
                "and buffer events (%d waiting): %s",
                self.backlog,
                exc,
            )
        self.degraded = True
        self.last_error = str(exc)
        self._retry_at = self.clock.monotonic() + RETRY_INTERVAL
        self._bound_buffer()

    async def commit_transition(self, record: TransitionRecord) -> bool:
        """Commit ``record`` (with everything buffered) before it takes effect.

        ``True`` when committed; ``False`` when the store is down or slower than
        ``commit_timeout`` (the record stays queued and is written later). Raises
        ``ConcurrencyError`` when another writer took this version first.
        """
        self._pending.append(record)
        if self.degraded and self.clock.monotonic() < self._retry_at:
            return False
        self._committing.add(record)
        # Wait for this record's own batch, not for the whole flush: under steady
        # traffic callers keep refilling the buffer and a flush may go on writing.
        written = asyncio.get_running_loop().create_future()
        self._waiters[record] = written
        flush = asyncio.ensure_future(self.flush())
        self._flushes.add(flush)
        flush.add_done_callback(self._flushes.discard)
        try:
            async with asyncio.timeout(self.commit_timeout):
                committed = await asyncio.shield(written)
        except TimeoutError:
            if not self.degraded:
                logger.warning(
                    "[CIRCUIT] %s: event store slower than %.1fs; transition applied in memory "
                    "and committed when the store answers",
                    record.breaker,
                    self.commit_timeout,
                )
            return False
        finally:
            self._committing.discard(record)
            self._waiters.pop(record, None)
        if record in self._conflicts:
            self._conflicts.discard(record)
            msg = f"breaker {record.breaker!r}: state version {record.version} taken by another writer"
            raise ConcurrencyError(msg)
        return bool(committed)

    async def prune(self, retention_seconds: float, now: float) -> int:
        """Delete outcome events older than the retention that snapshots cover."""
        try:
            return await self.log.prune(now - retention_seconds)
        except EventLogError as exc:
            logger.warning("[CIRCUIT] pruning the event log failed: %s", exc)
            return 0

    async def aclose(self) -> None:
        """Stop the flusher and write everything, with fresh snapshots."""
        self._closing = True
        task, self._task = self._task, None
        await stop_task(task)
        if not await self.flush():
            logger.error(
                "[CIRCUIT] event store unavailable at shutdown: %d events could not be written",
                self.unwritten_events,
            )
            return
        await self._snapshot_everything_written()

    async def _snapshot_everything_written(self) -> None:
        """Snapshots of breakers with events since their last one (start-up reads less)."""
        if self.snapshot_source is None:
            return
        names = {
            n for n, c in self._since_snapshot.items() if c > 0
        } | self._force_snapshot
        snaps = [s for n in sorted(names) if (s := self.snapshot_source(n)) is not None]
        if not snaps:
            return
        try:
            await self.log.append((), (), snaps)
        except EventLogError as exc:
            logger.warning("[CIRCUIT] could not write snapshots at shutdown: %s", exc)
            return
        self._since_snapshot.clear()
        self._force_snapshot.clear()

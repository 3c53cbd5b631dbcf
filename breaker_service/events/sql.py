"""``SqlEventLog``: the event log in SQLite (aiosqlite) or PostgreSQL (asyncpg).

Appends are batched: one transaction per flush, one ``executemany`` for outcome
runs. The engine (SQLite's pragmas) is made in ``sql_engine.py``; rows become
values in ``sql_rows.py``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Row, and_, delete, func, insert, or_, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..errors import ConcurrencyError, MalformedEventError, UnstorableEvent
from .log import EventQuery
from .model import (
    KIND_TRANSITION,
    OUTCOME_KINDS,
    DeadLetter,
    OutcomeRow,
    Snapshot,
    StoredEvent,
    TransitionRecord,
    stream_name,
)
from .schema import breaker_dead_letters as D  # noqa: N812
from .schema import breaker_events as E  # noqa: N812 - table aliases keep queries short
from .schema import breaker_snapshots as S  # noqa: N812
from .sql_engine import create_engine, redact_url
from .sql_errors import sql_errors
from .sql_rows import OUTCOME_SQL, row_to_event, row_to_snapshot

__all__ = ["SqlEventLog", "create_engine", "redact_url"]

logger = logging.getLogger("breaker_service.events")

# Every distinct stream, by hopping through the (stream, id) index.
_DISTINCT_STREAMS = text(
    "WITH RECURSIVE s(v) AS ("
    " SELECT min(stream) FROM breaker_events"
    " UNION ALL"
    " SELECT (SELECT min(stream) FROM breaker_events WHERE stream > s.v)"
    " FROM s WHERE s.v IS NOT NULL)"
    " SELECT v FROM s WHERE v IS NOT NULL"
)


class SqlEventLog:
    """The event log on an SQLAlchemy async engine.

    Each event belongs to a stream: the breaker's name in shared scope, or
    ``breaker@replica`` in instance scope (``scope_of`` says which; the replica id is
    stable across restarts, unlike the per-process ``instance_id`` recorded on each
    event). Replay and snapshots read this replica's streams; audit reads span all.

    On PostgreSQL, appends take ``LOCK TABLE breaker_events IN EXCLUSIVE MODE`` (as
    the ``eventsourcing`` library does), so ids commit in order and a follower that
    reads "after the last id I applied" can never skip an event committed late; each
    append then ``NOTIFY``s followers. The lock serialises writers only; readers are
    never blocked, and batching keeps the lock held for milliseconds.
    """

    NOTIFY_CHANNEL = "breaker_events"

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        instance_id: str,
        owns_engine: bool = True,
        on_malformed: str = "fail",
        scope_of: Callable[[str], str] | None = None,
        replica_id: str | None = None,
    ) -> None:
        self.engine = engine
        self.instance_id = instance_id
        self.replica_id = replica_id or instance_id
        self.on_malformed = on_malformed
        self._owns_engine = owns_engine
        self._scope_of = scope_of or (lambda _name: "instance")
        self._streams: dict[str, str] = {}
        self.skipped_rows: list[int | None] = []

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        instance_id: str,
        on_malformed: str = "fail",
        scope_of: Callable[[str], str] | None = None,
        replica_id: str | None = None,
    ) -> SqlEventLog:
        """A log with its own engine for ``url``."""
        return cls(
            create_engine(url),
            instance_id=instance_id,
            on_malformed=on_malformed,
            scope_of=scope_of,
            replica_id=replica_id,
        )

    def stream_of(self, breaker: str) -> str:
        """The stream this instance writes ``breaker``'s events to."""
        stream = self._streams.get(breaker)
        if stream is None:
            stream = stream_name(breaker, self._scope_of(breaker), self.replica_id)
            self._streams[breaker] = stream
        return stream

    def _mine(self, stream: Any) -> Any:
        """SQL condition on a ``stream`` column: shared streams and this replica's own."""
        return or_(
            ~stream.contains("@"),
            stream.endswith("@" + self.replica_id, autoescape=True),
        )

    def _events(self, rows: Sequence[Row[Any]]) -> list[StoredEvent]:
        """Rows to events; a malformed row fails, or with ``on_malformed="skip"`` is logged."""
        if self.on_malformed != "skip":
            return [row_to_event(r) for r in rows]
        events: list[StoredEvent] = []
        for row in rows:
            try:
                events.append(row_to_event(row))
            except MalformedEventError as exc:
                logger.error("[CIRCUIT] skipping %s (EVENT_LOG_ON_MALFORMED=skip)", exc)
                self.skipped_rows.append(exc.row_id)
        return events

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    async def append(
        self,
        outcomes: Sequence[OutcomeRow] = (),
        transitions: Sequence[TransitionRecord] = (),
        snapshots: Sequence[Snapshot] = (),
        *,
        want_ids: bool = True,
        dead_letters: Sequence[DeadLetter] = (),
    ) -> dict[str, int]:
        """One transaction: outcomes, transitions, snapshots, dead letters; last id per breaker.

        ``want_ids=False`` skips the last-id query when nothing needs it (the hot flush).
        A row the store refuses for its content raises ``UnstorableEvent``.
        """
        iid = self.instance_id
        stream_of = self.stream_of
        writes = bool(outcomes or transitions)
        with sql_errors(
            "event store append",
            on_unique=_taken(transitions),
            on_data=UnstorableEvent,
        ):
            async with self.engine.begin() as conn:
                if writes and self.dialect == "postgresql":
                    await conn.execute(
                        text("LOCK TABLE breaker_events IN EXCLUSIVE MODE")
                    )
                if outcomes:
                    # The hot write: plain tuples straight to the driver's executemany
                    # (SQLAlchemy's per-row processing cost ~1/3 of the flush).
                    await conn.exec_driver_sql(
                        OUTCOME_SQL[self.dialect],
                        [
                            (b, stream_of(b), k, v, at, iid, d, s, du, c, la)
                            for b, k, v, at, d, s, du, c, la in outcomes
                        ],
                    )
                for record in transitions:
                    await conn.execute(
                        insert(E).values(
                            breaker=record.breaker,
                            stream=stream_of(record.breaker),
                            kind=KIND_TRANSITION,
                            state_version=record.version,
                            at=record.at,
                            instance_id=iid,
                            from_state=record.from_state,
                            to_state=record.to_state,
                            reason=record.reason,
                            actor=record.actor,
                            duration=record.open_timeout,
                            count=1,
                        )
                    )
                touched = {s.breaker for s in snapshots if s.last_event_id < 0}
                if want_ids:
                    touched |= {o[0] for o in outcomes} | {
                        t.breaker for t in transitions
                    }
                last = await self._last_ids(conn, touched) if touched else {}
                for snapshot in snapshots:
                    if await self._behind_the_fleet(conn, snapshot):
                        continue  # taken before this replica applied others' events
                    await self._upsert_snapshot(conn, _stamped(snapshot, last))
                if dead_letters:
                    await conn.execute(
                        insert(D),
                        [
                            {
                                "at": letter.at,
                                "instance_id": iid,
                                "breaker": letter.breaker,
                                "kind": letter.kind,
                                "error": letter.error,
                                "content": letter.content,
                            }
                            for letter in dead_letters
                        ],
                    )
                if writes and self.dialect == "postgresql":
                    # A wake-up only: followers read the log, not the payload.
                    await conn.execute(select(func.pg_notify(self.NOTIFY_CHANNEL, "")))
                return last

    async def _last_ids(
        self, conn: AsyncConnection, breakers: set[str]
    ) -> dict[str, int]:
        """Each breaker's newest id: one indexed ``max(id)`` per stream (a GROUP BY over
        ``IN`` would walk every index entry of those streams)."""
        last: dict[str, int] = {}
        for breaker in breakers:
            newest = (
                await conn.execute(
                    select(func.max(E.c.id)).where(
                        E.c.stream == self.stream_of(breaker)
                    )
                )
            ).scalar()
            if newest is not None:
                last[breaker] = int(newest)
        return last

    async def _behind_the_fleet(
        self, conn: AsyncConnection, snapshot: Snapshot
    ) -> bool:
        """Whether a shared stream holds other replicas' events the snapshot has not seen.

        Stamped "as of now", such a snapshot would claim to cover them, and a replay
        from it would skip them; it is skipped instead (the next one will do).
        """
        stream = self.stream_of(snapshot.breaker)
        if "@" in stream or snapshot.last_event_id >= 0:
            return False
        newest_foreign = (
            await conn.execute(
                select(func.max(E.c.id)).where(
                    E.c.stream == stream, E.c.instance_id != self.instance_id
                )
            )
        ).scalar()
        return (
            newest_foreign is not None
            and int(newest_foreign) > snapshot.applied_through
        )

    async def _upsert_snapshot(self, conn: AsyncConnection, snapshot: Snapshot) -> None:
        values = {
            "stream": self.stream_of(snapshot.breaker),
            "breaker": snapshot.breaker,
            "state": snapshot.state,
            "state_version": snapshot.state_version,
            "last_event_id": snapshot.last_event_id,
            "taken_at": snapshot.taken_at,
            "instance_id": self.instance_id,
            "data": snapshot.data,
        }
        if self.dialect == "postgresql":
            stmt = pg_insert(S).values(**values)
            stmt = stmt.on_conflict_do_update(index_elements=[S.c.stream], set_=values)
            await conn.execute(stmt)
            return
        lite = sqlite_insert(S).values(**values)
        await conn.execute(
            lite.on_conflict_do_update(index_elements=[S.c.stream], set_=values)
        )

    async def read(self, query: EventQuery) -> list[StoredEvent]:
        """Events matching ``query``, in id order (every replica's: the audit view)."""
        stmt = select(E).where(E.c.id > query.after_id).order_by(E.c.id)
        if query.breaker is not None:
            stmt = stmt.where(E.c.breaker == query.breaker)
        if query.kinds is not None:
            stmt = stmt.where(E.c.kind.in_(sorted(query.kinds)))
        if query.since is not None:
            stmt = stmt.where(E.c.at >= query.since)
        if query.until is not None:
            stmt = stmt.where(E.c.at <= query.until)
        if query.limit is not None:
            stmt = stmt.limit(query.limit)
        return await self._select(stmt, "read")

    async def _select(self, stmt: Any, action: str) -> list[StoredEvent]:
        with sql_errors(f"event store {action}"):
            async with self.engine.connect() as conn:
                rows = (await conn.execute(stmt)).all()
        return self._events(rows)

    async def read_since_snapshots(
        self, snapshots: dict[str, Snapshot], breaker: str | None = None
    ) -> list[StoredEvent]:
        """This instance's streams after their snapshots, in id order (for replay).

        The streams are listed by walking the ``(stream, id)`` index (a recursive
        "loose index scan", on SQLite and PostgreSQL alike), then each is read from
        its snapshot on, one indexed range per stream: start-up cost follows the
        number of breakers and the tails, not the length of the log.
        """
        after = {self.stream_of(n): snap.last_event_id for n, snap in snapshots.items()}
        mine = "@" + self.replica_id
        with sql_errors("event store replay read"):
            async with self.engine.connect() as conn:
                if breaker is not None:
                    streams = [self.stream_of(breaker)]
                else:
                    listed = await conn.execute(_DISTINCT_STREAMS)
                    streams = [
                        str(r[0])
                        for r in listed
                        if "@" not in str(r[0]) or str(r[0]).endswith(mine)
                    ]
                rows: list[Row[Any]] = []
                for i in range(0, len(streams), 200):
                    ranges = [
                        and_(E.c.stream == stream, E.c.id > after.get(stream, 0))
                        for stream in streams[i : i + 200]
                    ]
                    stmt = select(E).where(or_(*ranges))
                    rows.extend((await conn.execute(stmt)).all())
        found = sorted(self._events(rows), key=lambda e: e.id)
        return [e for e in found if e.stream == self.stream_of(e.breaker)]

    async def read_shared_after(
        self, after_id: int, limit: int = 10_000
    ) -> list[StoredEvent]:
        """Shared-scope events after ``after_id`` (what a follower catches up on)."""
        stmt = (
            select(E)
            .where(E.c.id > after_id, ~E.c.stream.contains("@"))
            .order_by(E.c.id)
            .limit(limit)
        )
        return await self._select(stmt, "follow read")

    async def last_id(self) -> int:
        """The newest event id (0 for an empty log)."""
        with sql_errors("event store read"):
            async with self.engine.connect() as conn:
                value = (await conn.execute(select(func.max(E.c.id)))).scalar()
        return int(value or 0)

    async def load_snapshots(self, breaker: str | None = None) -> dict[str, Snapshot]:
        """The latest snapshot of each of this instance's streams, keyed by breaker."""
        stmt = select(S)
        if breaker is not None:
            stmt = stmt.where(S.c.stream == self.stream_of(breaker))
        else:
            stmt = stmt.where(self._mine(S.c.stream))
        with sql_errors("event store snapshot read"):
            async with self.engine.connect() as conn:
                rows = (await conn.execute(stmt)).all()
        snapshots = (row_to_snapshot(row) for row in rows)
        # A breaker that changed scope since: its old stream is history.
        return {
            snap.breaker: snap
            for snap, stream in snapshots
            if stream == self.stream_of(snap.breaker)
        }

    async def last_transition_before(
        self, breaker: str, at: float
    ) -> StoredEvent | None:
        """The last transition of ``breaker`` (this instance's stream) at or before ``at``."""
        stmt = (
            select(E)
            .where(
                E.c.stream == self.stream_of(breaker),
                E.c.kind == KIND_TRANSITION,
                E.c.at <= at,
            )
            .order_by(E.c.state_version.desc())
            .limit(1)
        )
        found = await self._select(stmt, "read")
        return found[0] if found else None

    async def prune(self, before: float) -> int:
        """Delete outcome events older than ``before`` that a snapshot already covers."""
        covered = (
            select(S.c.last_event_id).where(S.c.stream == E.c.stream).scalar_subquery()
        )
        stmt = delete(E).where(
            E.c.kind.in_(sorted(OUTCOME_KINDS)), E.c.at < before, E.c.id <= covered
        )
        with sql_errors("event store prune"):
            async with self.engine.begin() as conn:
                result = await conn.execute(stmt)
        return int(result.rowcount or 0)

    async def ping(self) -> None:
        """Raise ``EventLogError`` unless a trivial query succeeds."""
        with sql_errors("event store ping"):
            async with self.engine.connect() as conn:
                await conn.execute(select(1))

    async def aclose(self) -> None:
        """Dispose of the engine if this log created it."""
        if self._owns_engine:
            await self.engine.dispose()


def _stamped(snapshot: Snapshot, last: dict[str, int]) -> Snapshot:
    """A snapshot taken "as of now" (id -1) gets its breaker's last event id."""
    if snapshot.last_event_id >= 0:
        return snapshot
    return dataclasses.replace(snapshot, last_event_id=last.get(snapshot.breaker, 0))


def _taken(
    transitions: Sequence[TransitionRecord],
) -> Callable[[], ConcurrencyError] | None:
    """What a unique violation means for an append: a version another writer took."""
    if not transitions:
        return None
    names = ", ".join(f"{t.breaker}@v{t.version}" for t in transitions)
    msg = f"another writer already recorded a transition for {names}"
    return lambda: ConcurrencyError(msg)

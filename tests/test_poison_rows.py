"""One bad row never stops the event log (issue 12.1), on memory, SQLite and PostgreSQL.

A row the store refuses for its content (a NUL on PostgreSQL, a lone surrogate on
every backend) is found by halving the refused batch, set aside in
``breaker_dead_letters`` with its whole content, and written as a stand-in with its
text escaped; every other event lands in order, the log is not degraded, and replay
gives the state the process had. A connection error still buffers and retries.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import api_helpers
import pytest
from api_helpers import OpenService, samples
from breaker_helpers import per_call
from pg import PostgresCluster, fresh_database
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError, OperationalError, StatementError

from breaker_service import BreakerRegistry, BreakerState, FakeClock, load_settings
from breaker_service.breaker.judge import default_judge
from breaker_service.breaker.state import Outcome
from breaker_service.config import Settings
from breaker_service.errors import (
    EventLogError,
    ProviderUnavailable,
    UnstorableEvent,
)
from breaker_service.events import sql_engine
from breaker_service.events.dead_letters import escape_unstorable
from breaker_service.events.log import EventLog, EventQuery
from breaker_service.events.memory import MemoryEventLog
from breaker_service.events.model import (
    DeadLetter,
    OutcomeRow,
    Snapshot,
    StoredEvent,
    TransitionRecord,
)
from breaker_service.events.recorder import EventRecorder
from breaker_service.events.schema import breaker_dead_letters as D  # noqa: N812
from breaker_service.events.schema import breaker_snapshots
from breaker_service.events.sql import SqlEventLog, create_engine
from breaker_service.events.sql_errors import is_data_error, sql_errors
from breaker_service.migrate import upgrade

T0 = 1_767_225_600.0
NUL = "x\x00y"  # refused by PostgreSQL only
SURROGATE = "bad \ud800"  # refused by every backend (no UTF-8 encoding)
EVENTS_LOGGER = "breaker_service.events"

BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]
SQL_BACKENDS = BACKENDS[1:]

# The API fixtures (readyz and metrics), bound to names pytest finds here.
pytestmark = pytest.mark.usefixtures("clean_environment")
upstream_server = api_helpers.upstream_server
upstream = api_helpers.upstream
open_service = api_helpers.open_service


def refused(backend: str, text: str) -> bool:
    """Whether ``backend`` refuses ``text`` (memory refuses what PostgreSQL does)."""
    return "\ud800" in text or ("\x00" in text and backend != "sqlite")


def stored(backend: str, text: str) -> str:
    """``text`` as the log holds it: escaped by its stand-in where it was refused."""
    return escape_unstorable(text) if refused(backend, text) else text


def outcome(
    breaker: str, kind: str = "success", *, detail: str | None = None, at: float = T0
) -> OutcomeRow:
    """An outcome row as the breakers buffer it."""
    return (breaker, kind, 0, at, detail, None, None, 1, None)


def trip(
    breaker: str, version: int = 1, reason: str = "3 consecutive failures"
) -> TransitionRecord:
    """A closed -> open transition."""
    return TransitionRecord(breaker, "closed", "open", version, T0, reason, None, 30.0)


def shape(event: StoredEvent) -> tuple[str, str, int, str | None]:
    """What a test compares of an event: breaker, kind, version, its text."""
    text = event.reason if event.kind == "transition" else event.detail
    return (event.breaker, event.kind, event.state_version, text)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """The backend's name and URL (``memory`` for the in-memory log)."""
    name: str = request.param
    if name == "memory":
        return name, "memory"
    if name == "sqlite":
        return name, f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return name, url


@pytest.fixture
async def log(backend: tuple[str, str]) -> AsyncIterator[EventLog]:
    """An empty event log of each backend (SQL ones migrated to head)."""
    name, url = backend
    if name == "memory":
        yield MemoryEventLog("poison")
        return
    engine = create_engine(url)
    await upgrade(engine)
    sql = SqlEventLog(engine, instance_id="poison")
    try:
        yield sql
    finally:
        await sql.aclose()


async def dead_letters_of(log: EventLog) -> list[DeadLetter]:
    """Every dead letter the log holds, oldest first."""
    if isinstance(log, MemoryEventLog):
        return list(log.dead_letters)
    assert isinstance(log, SqlEventLog)
    async with log.engine.connect() as conn:
        rows = (await conn.execute(select(D).order_by(D.c.id))).all()
    return [DeadLetter(r.breaker, r.kind, r.at, r.error, r.content) for r in rows]


# -- the store's verdict: the row, or the connection -------------------------------------


async def test_an_unencodable_row_is_refused_as_unstorable_and_nothing_is_written(
    log: EventLog,
) -> None:
    """A lone surrogate: ``UnstorableEvent`` from every backend, the batch all or nothing."""
    good = outcome("kimi")
    with pytest.raises(UnstorableEvent):
        await log.append([good, outcome("kimi", "failure", detail=SURROGATE)])
    with pytest.raises(UnstorableEvent):
        await log.append([good], [trip("kimi", reason=SURROGATE)])
    assert await log.read(EventQuery()) == []
    await log.append([good])  # the log itself is fine
    assert len(await log.read(EventQuery())) == 1


async def test_a_nul_is_refused_where_postgresql_would_refuse_it(
    log: EventLog, backend: tuple[str, str]
) -> None:
    """PostgreSQL (and the memory log, which copies it) refuse a NUL; SQLite stores it."""
    row = outcome("kimi", "failure", detail=NUL)
    if backend[0] == "sqlite":
        await log.append([row])
        assert [e.detail for e in await log.read(EventQuery())] == [NUL]
    else:
        with pytest.raises(UnstorableEvent):
            await log.append([row])


@pytest.mark.parametrize(
    ("error", "data"),
    [
        pytest.param(
            UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates"),
            True,
            id="unencodable",
        ),
        pytest.param(OverflowError("Python int too large"), True, id="int-too-large"),
        pytest.param(
            IntegrityError("INSERT", (), Exception("NOT NULL constraint failed: x")),
            True,
            id="not-null",
        ),
        pytest.param(
            IntegrityError("INSERT", (), Exception("UNIQUE constraint failed: x")),
            False,
            id="unique",
        ),
        pytest.param(
            OperationalError("INSERT", (), Exception("database is locked")),
            False,
            id="locked",
        ),
        pytest.param(
            StatementError("bind", "INSERT", (), TypeError("not JSON serializable")),
            True,
            id="unprocessable-bound-value",
        ),
        pytest.param(ConnectionRefusedError("refused"), False, id="refused"),
        pytest.param(TimeoutError("timed out"), False, id="timeout"),
    ],
)
def test_data_errors_are_told_from_connection_errors(
    error: BaseException, *, data: bool
) -> None:
    """The row itself (encoding, range, NOT NULL) versus the store (lock, network)."""
    assert is_data_error(error) is data
    expected = UnstorableEvent if data else EventLogError
    with (
        pytest.raises(EventLogError) as caught,
        sql_errors("event store append", on_data=UnstorableEvent),
    ):
        raise error
    assert type(caught.value) is expected


class _PgError(Exception):
    """A driver error carrying a PostgreSQL SQLSTATE, as asyncpg's do."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("sqlstate", "data"),
    [
        pytest.param("22021", True, id="invalid-byte-sequence"),
        pytest.param("22001", True, id="value-too-long"),
        pytest.param("22003", True, id="out-of-range"),
        pytest.param("23502", True, id="not-null"),
        pytest.param("23514", True, id="check"),
        pytest.param("08006", False, id="connection-failure"),
        pytest.param("57P01", False, id="admin-shutdown"),
        pytest.param("40P01", False, id="deadlock"),
        pytest.param("55P03", False, id="lock-not-available"),
    ],
)
def test_postgresql_data_errors_are_known_by_sqlstate(
    sqlstate: str, *, data: bool
) -> None:
    """SQLSTATE classes 22 and 23 are about the row; the rest about the server."""
    from sqlalchemy.exc import DBAPIError  # noqa: PLC0415

    wrapped = DBAPIError("INSERT", (), _PgError(sqlstate))
    assert is_data_error(wrapped) is data


# -- the recorder writes a refused batch apart -------------------------------------------


async def test_bad_rows_are_set_aside_and_every_good_row_lands_in_order(
    log: EventLog, backend: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Bad rows amid good rows of two breakers: the rest lands in order, once each."""
    caplog.set_level(logging.WARNING, logger=EVENTS_LOGGER)
    name = backend[0]
    recorder = EventRecorder(log, clock=FakeClock())
    rows = [
        outcome("kimi", at=T0 + 1),
        outcome("glm", at=T0 + 2),
        outcome("kimi", "failure", detail=SURROGATE, at=T0 + 3),
        outcome("glm", "failure", detail="503", at=T0 + 4),
        outcome("kimi", "failure", detail=NUL, at=T0 + 5),
        outcome("\ud800", "failure", at=T0 + 6),  # the name itself: no stand-in fits
        outcome("glm", at=T0 + 7),
        outcome("kimi", at=T0 + 8),
    ]
    recorder.buffer.extend(rows)
    kimi_trip = trip("kimi", reason="3 consecutive failures")
    glm_trip = trip("glm", reason=f"trial call failed ({SURROGATE})")
    ghost_trip = trip("\udfff")  # its stand-in cannot land either

    committed = await asyncio.gather(
        recorder.commit_transition(kimi_trip),
        recorder.commit_transition(glm_trip),
        recorder.commit_transition(ghost_trip),
    )

    # glm's stand-in landed (its state change is in the log); nothing of the ghost's did.
    assert list(committed) == [True, True, False]
    assert not recorder.degraded
    assert recorder.backlog == 0
    bad = [rows[2], rows[5], glm_trip, ghost_trip] + (
        [rows[4]] if refused(name, NUL) else []
    )
    assert recorder.dead_lettered == len(bad)

    events = await log.read(EventQuery())
    expected = [
        ("kimi", "success", 0, None),
        ("glm", "success", 0, None),
        ("kimi", "failure", 0, escape_unstorable(SURROGATE)),
        ("glm", "failure", 0, "503"),
        ("kimi", "failure", 0, stored(name, NUL)),
        ("glm", "success", 0, None),
        ("kimi", "success", 0, None),
        ("kimi", "transition", 1, "3 consecutive failures"),
        ("glm", "transition", 1, escape_unstorable(glm_trip.reason)),
    ]
    assert [shape(e) for e in events] == expected
    assert [e.at for e in events if e.kind != "transition"] == [
        T0 + 1,
        T0 + 2,
        T0 + 3,
        T0 + 4,
        T0 + 5,
        T0 + 7,
        T0 + 8,
    ]

    letters = await dead_letters_of(log)
    assert len(letters) == len(bad)
    contents = [json.loads(letter.content) for letter in letters]
    # The whole original event, exactly: json gives NULs and surrogates back.
    assert {c.get("detail") for c in contents if c["kind"] != "transition"} >= {
        SURROGATE
    }
    breakers = sorted(c["breaker"] for c in contents)
    assert breakers.count("kimi") == len(bad) - 3
    assert "glm" in breakers
    assert "\ud800" in breakers
    assert "\udfff" in breakers
    assert any(c.get("reason") == glm_trip.reason for c in contents)
    assert all(letter.error for letter in letters)
    assert all(letter.content.isascii() for letter in letters)
    # One line for the round written apart (all three commits shared it), not one per
    # row or per retry.
    reports = [
        r
        for r in caplog.records
        if "set aside in breaker_dead_letters" in r.getMessage()
    ]
    assert len(reports) == 1


async def test_a_clean_batch_after_a_poisoned_one_is_written_at_once(
    log: EventLog,
) -> None:
    """The bad row is set aside once, never retried: the next batch simply lands."""
    recorder = EventRecorder(log, clock=FakeClock())
    recorder.buffer.extend(
        [outcome("kimi"), outcome("kimi", "failure", detail=SURROGATE), outcome("kimi")]
    )
    assert await recorder.flush()
    assert recorder.dead_lettered == 1
    recorder.buffer.extend([outcome("glm"), outcome("glm")])
    assert await recorder.flush()
    assert recorder.dead_lettered == 1
    assert recorder.written == 5
    assert len(await log.read(EventQuery())) == 5


# -- a failing store while writing apart, a refused dead letter, a refused snapshot ----


class FlakyLog(MemoryEventLog):
    """A memory log that can go down after a number of appends, or refuse some writes."""

    def __init__(self) -> None:
        super().__init__("flaky")
        self.appends = 0
        self.down_after: int | None = None
        self.refuse_letters = False
        self.refuse_snapshots = False

    async def append(
        self,
        outcomes: Sequence[OutcomeRow] = (),
        transitions: Sequence[TransitionRecord] = (),
        snapshots: Sequence[Snapshot] = (),
        *,
        want_ids: bool = True,
        dead_letters: Sequence[DeadLetter] = (),
    ) -> dict[str, int]:
        self.appends += 1
        if self.down_after is not None and self.appends > self.down_after:
            msg = "event store append failed: connection reset"
            raise EventLogError(msg)
        if self.refuse_letters and dead_letters:
            msg = "event store append failed: dead letters refused"
            raise UnstorableEvent(msg)
        if self.refuse_snapshots and snapshots:
            msg = "event store append failed: snapshot refused"
            raise UnstorableEvent(msg)
        return await super().append(
            outcomes,
            transitions,
            snapshots,
            want_ids=want_ids,
            dead_letters=dead_letters,
        )


async def test_a_store_failure_while_writing_apart_keeps_what_is_left() -> None:
    """Down mid-way: what landed stays landed, the rest waits in order, nothing twice."""
    log = FlakyLog()
    clock = FakeClock()
    recorder = EventRecorder(log, clock=clock)
    rows = [outcome("kimi", at=T0 + i) for i in range(8)]
    rows[6] = outcome("kimi", "failure", detail=SURROGATE, at=T0 + 6)
    recorder.buffer.extend(rows)
    log.down_after = 2  # the whole batch fails, then the first half lands, then down
    assert not await recorder.flush()
    assert recorder.degraded
    assert recorder.dead_lettered == 0
    landed = [e.at for e in log.events]
    assert landed == [T0 + i for i in range(4)]
    assert recorder.buffer == rows[4:]

    log.down_after = None
    clock.advance(1)
    assert await recorder.flush()
    assert not recorder.degraded
    assert recorder.dead_lettered == 1
    assert [e.at for e in log.events] == [T0 + i for i in range(8)]
    assert log.events[6].detail == escape_unstorable(SURROGATE)


async def test_a_dead_letter_the_store_refuses_too_is_kept_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Even the dead-letter insert refused: the escaped content is logged at ERROR, kept."""
    caplog.set_level(logging.ERROR, logger=EVENTS_LOGGER)
    log = FlakyLog()
    log.refuse_letters = True
    recorder = EventRecorder(log, clock=FakeClock())
    recorder.buffer.extend(
        [outcome("kimi", "failure", detail=SURROGATE), outcome("glm")]
    )
    assert await recorder.flush()
    assert not recorder.degraded
    assert recorder.dead_lettered == 1
    assert [e.breaker for e in log.events] == ["glm"]
    [kept] = recorder.unwritten_letters
    assert json.loads(kept.content)["detail"] == SURROGATE
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("kept in memory only" in m and "\\ud800" in m for m in errors)


async def test_a_refused_snapshot_does_not_hold_the_events_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The snapshot is skipped (and said so); the events land; the next round is clean."""
    caplog.set_level(logging.WARNING, logger=EVENTS_LOGGER)
    log = FlakyLog()
    log.refuse_snapshots = True
    recorder = EventRecorder(
        log,
        clock=FakeClock(),
        snapshot_every=2,
        snapshot_source=lambda name: Snapshot(name, "closed", 0, -1, T0),
    )
    recorder.buffer.extend([outcome("kimi"), outcome("kimi")])
    assert await recorder.flush()
    assert len(log.events) == 2
    assert recorder.dead_lettered == 0
    assert any("refused a snapshot of kimi" in r.getMessage() for r in caplog.records)
    appends = log.appends
    recorder.buffer.append(outcome("glm"))
    assert await recorder.flush()
    assert log.appends == appends + 1  # glm is not due: no snapshot, one append


# -- breakers whose own events carry text no store keeps --------------------------------


class Garbled(Exception):
    """An upstream error whose code holds text no store can keep."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def garbling_judge(exc: BaseException) -> tuple[Outcome, str, int | None]:
    """A custom judge that takes the upstream's code as the event's kind."""
    if isinstance(exc, Garbled):
        return Outcome.FAILURE, exc.code, None
    return default_judge(exc)


def registry_settings(url: str) -> Settings:
    """A small threshold and no background flush to race the test's own."""
    return load_settings(
        env_file=None,
        database_url=url,
        breaker_instance_id="poison-test",
        circuit_breaker_failure_threshold=3,
        circuit_breaker_success_threshold=1,
        circuit_breaker_timeout=30.0,
        event_log_flush_interval=60.0,
    )


async def succeed(registry: BreakerRegistry, name: str, times: int = 1) -> None:
    """``times`` successful calls through ``name``'s breaker."""
    for _ in range(times):
        async with registry.get(name).guard():
            pass


async def garbled(registry: BreakerRegistry, name: str, code: str) -> None:
    """One failing call whose error code the store cannot keep."""
    with pytest.raises(Garbled):
        async with registry.get(name).guard():
            raise Garbled(code)


async def fail(registry: BreakerRegistry, name: str) -> None:
    """One ordinary transient failure."""
    with pytest.raises(ProviderUnavailable):
        async with registry.get(name).guard():
            raise ProviderUnavailable("upstream 503", provider=name, status=503)


@pytest.fixture(params=SQL_BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """The backend's name and the URL of an empty database."""
    if request.param == "sqlite":
        return "sqlite", f"sqlite+aiosqlite:///{tmp_path / 'breakers.db'}"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return "postgres", url


async def reopen(settings: Settings, clock: FakeClock) -> dict[str, dict[str, Any]]:
    """Replay the database into a new registry; the fingerprints of kimi and glm."""
    registry = await BreakerRegistry.open(
        settings=settings, clock=clock, judge=garbling_judge, migrate=False
    )
    try:
        assert registry.recorder.dead_lettered == 0
        return {n: registry.get(n).fingerprint() for n in ("kimi", "glm")}
    finally:
        await registry.aclose()


async def test_a_breakers_refused_events_replay_to_the_state_it_had(
    database: tuple[str, str],
) -> None:
    """Live through refused events, restart: the same state, with or without snapshots."""
    name, url = database
    settings = registry_settings(url)
    clock = FakeClock()
    registry = await BreakerRegistry.open(
        settings=settings, clock=clock, judge=garbling_judge
    )
    try:
        await succeed(registry, "kimi", 2)
        await succeed(registry, "glm")
        await garbled(registry, "glm", NUL)
        await garbled(registry, "kimi", SURROGATE)
        await fail(registry, "kimi")
        await garbled(
            registry, "kimi", SURROGATE
        )  # the third: trips, commits the batch
        assert registry.get("kimi").state is BreakerState.OPEN
        assert registry.get("kimi").last_transition_durable
        await succeed(registry, "glm")
        clock.advance(31)
        await garbled(registry, "kimi", NUL)  # the trial fails: reopened, NUL in reason
        assert registry.get("kimi").state is BreakerState.OPEN
        assert registry.get("kimi").last_transition_durable
        await succeed(registry, "glm", 2)
        assert await registry.flush()

        health = registry.health()
        assert health["degraded"] is False
        assert health["backlog"] == 0
        refused_here = 2 + (3 if refused(name, NUL) else 0)
        assert health["dead_lettered"] == refused_here
        before = {n: registry.get(n).fingerprint() for n in ("kimi", "glm")}
        kimi_events = [shape(e) for e in per_call(await registry.history("kimi"))]
        glm_events = [shape(e) for e in per_call(await registry.history("glm"))]
    finally:
        await registry.aclose()

    trial_reason = f"trial call failed ({NUL})"
    assert kimi_events == [
        ("kimi", "success", 0, None),
        ("kimi", "success", 0, None),
        ("kimi", "failure", 0, escape_unstorable(SURROGATE)),
        ("kimi", "failure", 0, "503"),
        ("kimi", "failure", 0, escape_unstorable(SURROGATE)),
        ("kimi", "transition", 1, "3 consecutive failures"),
        ("kimi", "transition", 2, "cooldown of 30s elapsed"),
        ("kimi", "failure", 2, stored(name, NUL)),
        ("kimi", "transition", 3, stored(name, trial_reason)),
    ]
    assert glm_events == [
        ("glm", "success", 0, None),
        ("glm", "failure", 0, stored(name, NUL)),
        ("glm", "success", 0, None),
        ("glm", "success", 0, None),
        ("glm", "success", 0, None),
    ]

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(D).order_by(D.c.id))).all()
        contents = [json.loads(r.content) for r in rows]
        assert len(rows) == refused_here
        assert [c["detail"] for c in contents if c["kind"] == "failure"].count(
            SURROGATE
        ) == 2
        if refused(name, NUL):
            assert any(c.get("reason") == trial_reason for c in contents)
            assert any(
                c.get("detail") == NUL and c["breaker"] == "glm" for c in contents
            )
        assert all(r.instance_id == "poison-test" for r in rows)

        # With the snapshots aclose() wrote: exactly the state it had.
        assert await reopen(settings, clock) == before
        # From the log alone: the same, the reason as its stand-in holds it.
        async with engine.begin() as conn:
            await conn.execute(delete(breaker_snapshots))
        from_log = await reopen(settings, clock)
    finally:
        await engine.dispose()
    expected = json.loads(json.dumps(before))
    expected["kimi"]["last_transition"]["reason"] = stored(name, trial_reason)
    assert from_log == expected


# -- a connection error is not a data error ----------------------------------------------


async def test_a_locked_sqlite_store_buffers_and_retries_without_dead_letters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Locked: everything waits (bad row too), nothing is set aside; then it is written."""
    import sqlite3  # noqa: PLC0415

    monkeypatch.setattr(sql_engine, "SQLITE_BUSY_TIMEOUT_MS", 100)
    db = tmp_path / "events.db"
    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    await upgrade(engine)
    log = SqlEventLog(engine, instance_id="poison")
    clock = FakeClock()
    recorder = EventRecorder(log, clock=clock)
    try:
        rows = [
            outcome("kimi"),
            outcome("kimi", "failure", detail=SURROGATE),
            outcome("glm"),
        ]
        recorder.buffer.extend(rows)
        locker = sqlite3.connect(db, isolation_level=None, timeout=0)
        try:
            locker.execute("BEGIN EXCLUSIVE")
            assert not await recorder.flush()
            assert not await recorder.flush()  # retried, still locked
            locker.execute("ROLLBACK")
        finally:
            locker.close()
        assert recorder.degraded
        assert "locked" in str(recorder.last_error)
        assert recorder.dead_lettered == 0
        assert recorder.buffer == rows
        assert await log.read(EventQuery()) == []

        clock.advance(1)
        assert await recorder.flush()
        assert not recorder.degraded
        assert recorder.dead_lettered == 1
        assert [e.breaker for e in await log.read(EventQuery())] == [
            "kimi",
            "kimi",
            "glm",
        ]
    finally:
        await log.aclose()


@pytest.mark.slow
async def test_a_stopped_postgresql_buffers_and_retries_without_dead_letters(
    postgres_cluster: PostgresCluster,
) -> None:
    """PostgreSQL stopped: the batch (bad row and all) waits; once back, only the bad row
    is set aside."""
    postgres_cluster.ensure_running()
    async with fresh_database(
        postgres_cluster.url, prefix="poison", settings={"synchronous_commit": "on"}
    ) as url:
        engine = create_engine(url)
        await upgrade(engine)
        log = SqlEventLog(engine, instance_id="poison")
        clock = FakeClock()
        recorder = EventRecorder(log, clock=clock)
        try:
            rows = [
                outcome("kimi"),
                outcome("kimi", "failure", detail=NUL),
                outcome("glm"),
            ]
            await asyncio.to_thread(postgres_cluster.stop, "fast")
            try:
                recorder.buffer.extend(rows)
                async with asyncio.timeout(30):
                    assert not await recorder.flush()
                assert recorder.degraded
                assert recorder.dead_lettered == 0
                assert recorder.buffer == rows
            finally:
                await asyncio.to_thread(postgres_cluster.ensure_running)
            clock.advance(1)
            async with asyncio.timeout(30):
                assert await recorder.flush()
            assert not recorder.degraded
            assert recorder.dead_lettered == 1
            events = await log.read(EventQuery())
            assert [shape(e) for e in events] == [
                ("kimi", "success", 0, None),
                ("kimi", "failure", 0, escape_unstorable(NUL)),
                ("glm", "success", 0, None),
            ]
        finally:
            await log.aclose()


# -- what an operator sees: readyz, metrics, status --------------------------------------


async def test_readyz_and_metrics_show_dead_letters_without_failing(
    open_service: OpenService,
) -> None:
    """A set-aside event: /readyz stays 200 with a warning; the gauge and health count it."""
    async with open_service() as service:
        registry: BreakerRegistry = service.app.state.registry
        registry.recorder.buffer.append(outcome("kimi", "failure", detail=SURROGATE))
        assert await registry.flush()
        reader = service.auth("breakers:read")
        ready = await service.client.get("/readyz", headers=reader)
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert body["status"] == "ready"
        assert body["event_log"]["dead_lettered"] == 1
        assert body["event_log"]["degraded"] is False
        assert "breaker_dead_letters" in body["event_log_warning"]
        metrics = await service.client.get("/metrics", headers=reader)
        found = samples(metrics.text)
        assert found[("breaker_service_event_log_dead_letters", ())] == 1.0

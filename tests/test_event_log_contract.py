"""The ``EventLog`` contract, one suite for every backend: memory, SQLite, PostgreSQL."""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from breaker_service.errors import ConcurrencyError, MalformedEventError
from breaker_service.events.log import EventLog, EventQuery
from breaker_service.events.memory import MemoryEventLog
from breaker_service.events.model import (
    KIND_FAILURE,
    KIND_SUCCESS,
    KIND_TIMEOUT,
    KIND_TRANSITION,
    OutcomeRow,
    Snapshot,
    StoredEvent,
    TransitionRecord,
)
from breaker_service.events.schema import breaker_events
from breaker_service.events.sql import SqlEventLog, create_engine
from breaker_service.migrate import upgrade

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
INSTANCE = "contract-instance"

BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]
SQL_BACKENDS = BACKENDS[1:]


def outcome(
    breaker: str,
    kind: str = KIND_SUCCESS,
    *,
    version: int = 0,
    at: float = T0,
    detail: str | None = None,
    status: int | None = None,
    duration: float | None = None,
    count: int = 1,
) -> OutcomeRow:
    """An outcome row as the breakers buffer it."""
    return (breaker, kind, version, at, detail, status, duration, count, None)


def transition(
    breaker: str,
    version: int,
    *,
    at: float = T0,
    frm: str = "closed",
    to: str = "open",
    reason: str = "test",
    actor: str | None = None,
    open_timeout: float | None = None,
) -> TransitionRecord:
    """A transition record."""
    return TransitionRecord(
        breaker=breaker,
        from_state=frm,
        to_state=to,
        version=version,
        at=at,
        reason=reason,
        actor=actor,
        open_timeout=open_timeout,
    )


async def read_all(log: EventLog) -> list[StoredEvent]:
    """Every event in the log."""
    return await log.read(EventQuery())


@pytest.fixture(params=BACKENDS)
def backend_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """``memory``, or the URL of an empty database of the backend under test."""
    backend: str = request.param
    if backend == "memory":
        return "memory"
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


@pytest.fixture
async def log(backend_url: str) -> AsyncIterator[EventLog]:
    """An empty event log of each backend (SQL ones migrated to head)."""
    if backend_url == "memory":
        yield MemoryEventLog(INSTANCE)
        return
    engine = create_engine(backend_url)
    await upgrade(engine)
    sql = SqlEventLog(engine, instance_id=INSTANCE)
    try:
        yield sql
    finally:
        await sql.aclose()


@pytest.fixture(params=SQL_BACKENDS)
def sql_backend_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """The URL of an empty SQLite or PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


@pytest.fixture
async def engine(sql_backend_url: str) -> AsyncIterator[AsyncEngine]:
    """A migrated engine on SQLite or PostgreSQL, for tests that need raw SQL."""
    engine = create_engine(sql_backend_url)
    await upgrade(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


# -- append ----------------------------------------------------------------------------


async def test_append_returns_last_id_per_breaker(log: EventLog) -> None:
    """append writes outcomes, transitions and snapshots and returns each breaker's last id."""
    last = await log.append(
        [outcome("kimi"), outcome("glm"), outcome("kimi", KIND_FAILURE)],
        [transition("kimi", 1)],
    )
    events = await read_all(log)
    assert len(events) == 4
    assert last == {
        "kimi": max(e.id for e in events if e.breaker == "kimi"),
        "glm": max(e.id for e in events if e.breaker == "glm"),
    }
    assert last["kimi"] == events[-1].id  # the transition, written after the outcomes


async def test_empty_append_writes_nothing(log: EventLog) -> None:
    """An empty append is a no-op returning no ids."""
    assert await log.append() == {}
    assert await read_all(log) == []


async def test_ids_strictly_increase_in_append_order(log: EventLog) -> None:
    """Ids are global and strictly increasing: outcomes, then transitions, batch after batch."""
    await log.append([outcome("a"), outcome("b")], [transition("a", 1)])
    await log.append([outcome("b", KIND_FAILURE, version=0)])
    await log.append([], [transition("b", 1), transition("c", 1)])
    await log.append([outcome("c", KIND_TIMEOUT, version=1)] * 3)
    events = await read_all(log)
    ids = [e.id for e in events]
    assert ids == sorted(set(ids))
    assert [(e.breaker, e.kind) for e in events] == [
        ("a", KIND_SUCCESS),
        ("b", KIND_SUCCESS),
        ("a", KIND_TRANSITION),
        ("b", KIND_FAILURE),
        ("b", KIND_TRANSITION),
        ("c", KIND_TRANSITION),
        ("c", KIND_TIMEOUT),
        ("c", KIND_TIMEOUT),
        ("c", KIND_TIMEOUT),
    ]


async def test_stored_fields_round_trip(log: EventLog) -> None:
    """Every field of outcome and transition events reads back as written."""
    await log.append(
        [
            outcome(
                "kimi",
                KIND_FAILURE,
                version=3,
                at=T0 + 0.125,
                detail="503",
                status=503,
                duration=1.5,
                count=7,
            )
        ],
        [
            transition(
                "kimi",
                4,
                at=T0 + 1.25,
                frm="half_open",
                to="open",
                reason="trial call failed (503)",
                actor="ops@example.com",
                open_timeout=120.0,
            )
        ],
    )
    failure, opened = await read_all(log)
    assert (failure.breaker, failure.kind, failure.state_version) == (
        "kimi",
        KIND_FAILURE,
        3,
    )
    assert failure.at == pytest.approx(T0 + 0.125, abs=1e-6)
    assert (failure.detail, failure.status, failure.duration, failure.count) == (
        "503",
        503,
        1.5,
        7,
    )
    assert failure.instance_id == INSTANCE
    assert failure.from_state is None
    assert failure.to_state is None
    assert (opened.kind, opened.state_version, opened.from_state, opened.to_state) == (
        KIND_TRANSITION,
        4,
        "half_open",
        "open",
    )
    assert opened.at == pytest.approx(T0 + 1.25, abs=1e-6)
    assert (opened.reason, opened.actor) == (
        "trial call failed (503)",
        "ops@example.com",
    )
    assert opened.duration == 120.0  # the chosen cooldown
    assert opened.count == 1
    assert opened.instance_id == INSTANCE


# -- read ------------------------------------------------------------------------------

# (breaker, kind, at) appended one per batch, so the read order is this order.
DATASET: list[tuple[str, str, float]] = [
    ("a", KIND_SUCCESS, T0 + 0),
    ("a", KIND_FAILURE, T0 + 1),
    ("b", KIND_TIMEOUT, T0 + 2),
    ("a", KIND_TRANSITION, T0 + 3),
    ("b", KIND_SUCCESS, T0 + 4),
    ("a", KIND_SUCCESS, T0 + 5),
    ("b", KIND_TRANSITION, T0 + 6),
    ("c", KIND_FAILURE, T0 + 7),
]


async def load_dataset(log: EventLog) -> list[StoredEvent]:
    """Write ``DATASET`` and return it as stored."""
    versions: dict[str, int] = {}
    for breaker, kind, at in DATASET:
        if kind == KIND_TRANSITION:
            versions[breaker] = versions.get(breaker, 0) + 1
            await log.append([], [transition(breaker, versions[breaker], at=at)])
        else:
            await log.append(
                [outcome(breaker, kind, version=versions.get(breaker, 0), at=at)]
            )
    events = await read_all(log)
    assert [(e.breaker, e.kind, e.at) for e in events] == DATASET
    return events


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param({}, [0, 1, 2, 3, 4, 5, 6, 7], id="everything"),
        pytest.param({"breaker": "a"}, [0, 1, 3, 5], id="breaker"),
        pytest.param({"breaker": "nobody"}, [], id="unknown-breaker"),
        pytest.param({"kinds": [KIND_TRANSITION]}, [3, 6], id="kind"),
        pytest.param(
            {"kinds": [KIND_SUCCESS, KIND_FAILURE]}, [0, 1, 4, 5, 7], id="kinds"
        ),
        pytest.param({"kinds": []}, [], id="no-kinds"),
        pytest.param({"since": T0 + 5}, [5, 6, 7], id="since-inclusive"),
        pytest.param({"until": T0 + 2}, [0, 1, 2], id="until-inclusive"),
        pytest.param({"since": T0 + 1.5, "until": T0 + 4.5}, [2, 3, 4], id="window"),
        pytest.param(
            {"breaker": "b", "kinds": [KIND_SUCCESS, KIND_TIMEOUT]},
            [2, 4],
            id="breaker-and-kinds",
        ),
        pytest.param({"limit": 3}, [0, 1, 2], id="limit"),
        pytest.param({"limit": 0}, [], id="limit-zero"),
        pytest.param({"after": 3}, [4, 5, 6, 7], id="after-id"),
        pytest.param(
            {"after": 1, "breaker": "a", "limit": 1}, [3], id="after-breaker-limit"
        ),
        pytest.param(
            {"after": 2, "kinds": [KIND_SUCCESS], "until": T0 + 4},
            [4],
            id="after-kind-until",
        ),
    ],
)
async def test_read_filters(
    log: EventLog, query: dict[str, Any], expected: list[int]
) -> None:
    """read applies breaker, kinds, since/until (inclusive), after_id and limit together."""
    events = await load_dataset(log)
    kwargs = dict(query)
    if "after" in kwargs:
        kwargs["after_id"] = events[kwargs.pop("after")].id
    found = await log.read(EventQuery(**kwargs))
    assert found == [events[i] for i in expected]


async def test_paging_with_after_id_reads_everything_once(log: EventLog) -> None:
    """Paging by after_id and limit visits every event exactly once, in order."""
    await log.append([outcome(f"p{i % 3}", at=T0 + i) for i in range(25)])
    everything = await read_all(log)
    pages: list[list[StoredEvent]] = []
    after = 0
    while page := await log.read(EventQuery(after_id=after, limit=7)):
        pages.append(page)
        after = page[-1].id
    assert [len(p) for p in pages] == [7, 7, 7, 4]
    assert [e for p in pages for e in p] == everything


# -- snapshots and replay --------------------------------------------------------------


def snapshot(breaker: str, last_event_id: int, **data: Any) -> Snapshot:
    """A snapshot with some JSON data."""
    return Snapshot(
        breaker=breaker,
        state="closed",
        state_version=0,
        last_event_id=last_event_id,
        taken_at=T0 + 100,
        data=data,
    )


async def test_read_since_snapshots_skips_what_snapshots_cover(log: EventLog) -> None:
    """Replay reads only each breaker's events after its snapshot, and all of the others."""
    await log.append([outcome("a", at=T0 + i) for i in range(3)])
    await log.append([outcome("b"), outcome("c"), outcome("b")])
    covered = await log.append([outcome("a", KIND_FAILURE)])
    await log.append([outcome("a", KIND_TIMEOUT), outcome("c", KIND_FAILURE)])
    b_last = (await log.read(EventQuery(breaker="b")))[-1].id
    await log.append(snapshots=[snapshot("a", covered["a"]), snapshot("b", b_last)])
    snapshots = await log.load_snapshots()
    assert set(snapshots) == {"a", "b"}

    events = await log.read_since_snapshots(snapshots)
    assert [(e.breaker, e.kind) for e in events] == [
        ("c", KIND_SUCCESS),
        ("a", KIND_TIMEOUT),
        ("c", KIND_FAILURE),
    ]
    assert [e.id for e in events] == sorted(e.id for e in events)

    only_a = await log.read_since_snapshots(snapshots, "a")
    assert [(e.breaker, e.kind) for e in only_a] == [("a", KIND_TIMEOUT)]
    assert await log.read_since_snapshots(snapshots, "b") == []
    only_c = await log.read_since_snapshots(snapshots, "c")
    assert [e.kind for e in only_c] == [KIND_SUCCESS, KIND_FAILURE]
    assert len(await log.read_since_snapshots({})) == 9


async def test_snapshots_round_trip_json(log: EventLog) -> None:
    """Snapshots come back equal, JSON data included; a newer one replaces the old."""
    last = await log.append([outcome("kimi"), outcome("glm")])
    data: dict[str, Any] = {
        "consecutive_failures": 3,
        "opened_at": T0 + 0.5,
        "open_timeout": None,
        "window": [[True, T0], [False, T0 + 1.25]],
        "nested": {"ok": True, "name": "ünïcødé ✓"},
    }
    kimi = Snapshot(
        breaker="kimi",
        state="open",
        state_version=5,
        last_event_id=last["kimi"],
        taken_at=T0 + 2.5,
        data=data,
    )
    glm = snapshot("glm", last["glm"])
    await log.append(snapshots=[kimi, glm])
    assert await log.load_snapshots() == {"kimi": kimi, "glm": glm}
    assert await log.load_snapshots("kimi") == {"kimi": kimi}
    assert await log.load_snapshots("nobody") == {}

    newer = Snapshot(
        breaker="kimi",
        state="closed",
        state_version=6,
        last_event_id=last["kimi"],
        taken_at=T0 + 3,
        data={},
    )
    await log.append(snapshots=[newer])
    assert await log.load_snapshots("kimi") == {"kimi": newer}
    assert len(await read_all(log)) == 2  # snapshots are not events


# -- optimistic concurrency ------------------------------------------------------------


async def test_taken_version_raises_concurrency_error_and_writes_nothing(
    log: EventLog,
) -> None:
    """A transition whose (breaker, version) is taken fails the whole append: nothing written."""
    await log.append([outcome("kimi")], [transition("kimi", 1)])
    before_events = await read_all(log)
    before_snapshots = await log.load_snapshots()

    with pytest.raises(ConcurrencyError):
        await log.append(
            [outcome("kimi", version=1), outcome("glm")],
            [transition("glm", 1), transition("kimi", 1, frm="open", to="half_open")],
            [snapshot("kimi", before_events[-1].id)],
        )

    assert await read_all(log) == before_events
    assert await log.load_snapshots() == before_snapshots
    # The failed append reserved nothing: the next version and glm's first are free.
    last = await log.append([], [transition("kimi", 2), transition("glm", 1)])
    assert set(last) == {"kimi", "glm"}


async def test_duplicate_version_within_one_append_conflicts(log: EventLog) -> None:
    """Two transitions of one breaker with the same version in one batch conflict too."""
    with pytest.raises(ConcurrencyError):
        await log.append(
            [outcome("kimi")],
            [transition("kimi", 1), transition("kimi", 1, to="forced_open")],
        )
    assert await read_all(log) == []


async def test_versions_are_per_breaker_and_only_for_transitions(log: EventLog) -> None:
    """Different breakers share version numbers; outcome rows never conflict."""
    await log.append(
        [outcome("a", version=1), outcome("a", version=1)],
        [transition("a", 1), transition("b", 1)],
    )
    await log.append([outcome("a", version=1)] * 3)
    assert len(await read_all(log)) == 7


# -- audit -----------------------------------------------------------------------------


async def test_last_transition_before(log: EventLog) -> None:
    """The last transition at or before a time, per breaker; outcomes never count."""
    await log.append([], [transition("a", 1, at=T0 + 10)])
    await log.append([], [transition("b", 1, at=T0 + 15)])
    await log.append([], [transition("a", 2, at=T0 + 20, frm="open", to="half_open")])
    await log.append([outcome("a", version=2, at=T0 + 25)])
    await log.append([], [transition("a", 3, at=T0 + 30, frm="half_open", to="closed")])

    async def version_at(breaker: str, at: float) -> int | None:
        found = await log.last_transition_before(breaker, at)
        if found is None:
            return None
        assert found.kind == KIND_TRANSITION
        assert found.breaker == breaker
        return found.state_version

    assert await version_at("a", T0 + 5) is None
    assert await version_at("a", T0 + 10) == 1
    assert await version_at("a", T0 + 26) == 2
    assert await version_at("a", T0 + 1000) == 3
    assert await version_at("b", T0 + 12) is None
    assert await version_at("b", T0 + 16) == 1
    assert await version_at("nobody", T0 + 1000) is None
    found = await log.last_transition_before("a", T0 + 21)
    assert found is not None
    assert (found.from_state, found.to_state) == ("open", "half_open")


# -- retention -------------------------------------------------------------------------


async def test_prune_drops_only_old_covered_outcomes(log: EventLog) -> None:
    """prune removes outcome events older than the cutoff that a snapshot covers; transitions stay."""
    await log.append([outcome("a", at=T0 + i) for i in range(4)])  # a0..a3
    await log.append([], [transition("a", 1, at=T0 + 4)])
    await log.append([outcome("b", KIND_FAILURE, at=T0 + i) for i in range(3)])
    covered = await log.append([outcome("a", version=1, at=T0 + 50)])
    await log.append([outcome("a", version=1, at=T0 + 5)])  # old but after the snapshot
    await log.append(snapshots=[snapshot("a", covered["a"])])
    before = await read_all(log)

    removed = await log.prune(T0 + 10)

    after = await read_all(log)
    assert removed == 4
    gone = [e for e in before if e not in after]
    assert [(e.breaker, e.kind, e.at) for e in gone] == [
        ("a", KIND_SUCCESS, T0 + i) for i in range(4)
    ]
    kept = {(e.breaker, e.kind, e.at) for e in after}
    assert ("a", KIND_TRANSITION, T0 + 4) in kept  # transitions are kept for audit
    assert ("a", KIND_SUCCESS, T0 + 50) in kept  # covered, but newer than the cutoff
    assert ("a", KIND_SUCCESS, T0 + 5) in kept  # old, but not covered by the snapshot
    assert sum(e.breaker == "b" for e in after) == 3  # no snapshot: nothing pruned
    assert await log.prune(T0 + 10) == 0


async def test_ids_keep_increasing_after_prune(log: EventLog) -> None:
    """Pruning the newest events never lets a later append reuse their ids."""
    last = await log.append([outcome("a", at=T0 + i) for i in range(5)])
    await log.append(snapshots=[snapshot("a", last["a"])])
    assert await log.prune(T0 + 100) == 5
    again = await log.append([outcome("a", at=T0 + 200)])
    assert again["a"] > last["a"]


# -- health and volume -----------------------------------------------------------------


async def test_ping(log: EventLog) -> None:
    """ping answers on a healthy store."""
    await log.ping()


async def test_large_batch_in_one_append(log: EventLog) -> None:
    """10,000 outcome rows go in one append and come back complete and in order."""
    kinds = (KIND_SUCCESS, KIND_FAILURE, KIND_TIMEOUT)
    rows = [
        outcome(f"bulk{i % 4}", kinds[i % 3], at=T0 + i / 1000, count=1 + i % 2)
        for i in range(10_000)
    ]
    last = await log.append(rows)
    events = await read_all(log)
    assert len(events) == 10_000
    assert all(x.id < y.id for x, y in itertools.pairwise(events))
    assert [(e.breaker, e.kind, e.count) for e in events] == [
        (r[0], r[1], r[7]) for r in rows
    ]
    assert sum(e.count for e in events) == 15_000
    assert last == {
        name: max(e.id for e in events if e.breaker == name)
        for name in ("bulk0", "bulk1", "bulk2", "bulk3")
    }


# -- SQL backends: malformed rows ------------------------------------------------------

MALFORMED_ROWS = [
    pytest.param({"kind": "bogus"}, "unknown event kind 'bogus'", id="unknown-kind"),
    pytest.param(
        {"kind": KIND_TRANSITION, "from_state": None, "to_state": "open"},
        "transition without from_state/to_state",
        id="transition-without-from-state",
    ),
]


async def insert_raw(engine: AsyncEngine, **values: Any) -> int:
    """Insert one row with plain SQL, bypassing the log, and return its id."""
    row = {
        "breaker": "kimi",
        "stream": f"kimi@{INSTANCE}",
        "kind": KIND_SUCCESS,
        "state_version": 0,
        "at": T0,
        "instance_id": "raw-sql",
        "count": 1,
        **values,
    }
    async with engine.begin() as conn:
        result = await conn.execute(
            insert(breaker_events).values(**row).returning(breaker_events.c.id)
        )
        return int(result.scalar_one())


@pytest.mark.parametrize(("row", "problem"), MALFORMED_ROWS)
async def test_malformed_row_fails_naming_the_row(
    engine: AsyncEngine, row: dict[str, Any], problem: str
) -> None:
    """A row the log cannot read makes reads fail with MalformedEventError naming its id."""
    log = SqlEventLog(engine, instance_id=INSTANCE, owns_engine=False)
    await log.append([outcome("kimi")])
    bad = await insert_raw(engine, **row)
    await log.append([outcome("kimi", KIND_FAILURE)])

    with pytest.raises(MalformedEventError, match=f"id={bad}\\b") as caught:
        await log.read(EventQuery())
    assert caught.value.row_id == bad
    assert problem in str(caught.value)

    with pytest.raises(MalformedEventError, match=f"id={bad}\\b"):
        await log.read_since_snapshots(await log.load_snapshots())


@pytest.mark.parametrize(("row", "problem"), MALFORMED_ROWS)
async def test_malformed_row_is_skipped_loudly_on_request(
    engine: AsyncEngine,
    row: dict[str, Any],
    problem: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With on_malformed="skip" the bad row is left out, logged as an error and remembered."""
    log = SqlEventLog(
        engine, instance_id=INSTANCE, owns_engine=False, on_malformed="skip"
    )
    await log.append([outcome("kimi")])
    bad = await insert_raw(engine, **row)
    await log.append([outcome("kimi", KIND_FAILURE)])

    with caplog.at_level(logging.ERROR, logger="breaker_service.events"):
        events = await log.read(EventQuery())
    assert [e.kind for e in events] == [KIND_SUCCESS, KIND_FAILURE]
    assert bad not in [e.id for e in events]
    assert log.skipped_rows == [bad]
    assert any(
        f"id={bad}" in r.getMessage() and problem in r.getMessage()
        for r in caplog.records
    )


async def test_raw_rows_are_visible_through_the_log(engine: AsyncEngine) -> None:
    """Rows written by other processes (plain SQL) are read like the log's own."""
    log = SqlEventLog(engine, instance_id=INSTANCE, owns_engine=False)
    first = await insert_raw(engine, kind=KIND_TIMEOUT, count=3, detail="trial_lost")
    events = await log.read(EventQuery())
    assert [(e.id, e.kind, e.count, e.detail, e.instance_id) for e in events] == [
        (first, KIND_TIMEOUT, 3, "trial_lost", "raw-sql")
    ]
    async with engine.connect() as conn:
        assert (await conn.execute(select(breaker_events.c.id))).scalars().all() == [
            first
        ]

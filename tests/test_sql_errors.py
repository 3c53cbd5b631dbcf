"""Database errors are translated at one point: no SQLAlchemy, driver or socket error escapes.

``events.sql_errors`` maps them into ``StorageError`` (``EventLogError`` for the event
log, trial gate, outbox and migrations). Every public coroutine of every SQL adapter
is called against a database that cannot be reached; a new method without a row in
``CALLS`` fails ``test_every_sql_coroutine_is_covered``.
"""

from __future__ import annotations

import contextlib
import inspect
import socket
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from breaker_service import migrate
from breaker_service.errors import (
    ConcurrencyError,
    EventLogError,
    MalformedEventError,
    StorageError,
)
from breaker_service.events.log import EventQuery
from breaker_service.events.sql import SqlEventLog, create_engine
from breaker_service.events.sql_errors import sql_errors
from breaker_service.events.trials import SqlTrialGate, TrialLease
from breaker_service.tracking.outbox import Outbox
from breaker_service.uploads.model import UploadResult
from breaker_service.uploads.sql_store import SqlUploadStore

T0 = 1_767_225_600.0

RESULT = UploadResult(
    upload_id="00000000-0000-4000-8000-000000000001",
    provider="kimi",
    provider_file_id="file-1",
    filename="a.pdf",
    sha256="ab" * 32,
    bytes=10,
    purpose="file-extract",
    attempts=1,
    elapsed=0.1,
    providers_tried=("kimi",),
    uploaded_at=T0,
)
OUTCOME = ("kimi", "success", 0, T0, None, None, None, 1, None)


def driver_error(message: str) -> OperationalError:
    """What SQLAlchemy raises for a failing statement: SQL, parameters and all."""
    return OperationalError(
        "INSERT INTO uploads (id) VALUES (?)",
        ("secret-id",),
        sqlite3.OperationalError(message),
    )


# -- the translation itself --------------------------------------------------------------


def test_a_driver_error_becomes_event_log_error_naming_the_action() -> None:
    """The first line of the driver's message, the action, the cause; no SQL, no data."""
    original = driver_error("database is locked")
    with pytest.raises(EventLogError) as caught, sql_errors("event store append"):
        raise original
    assert str(caught.value) == (
        "event store append failed: OperationalError: database is locked"
    )
    assert caught.value.__cause__ is original
    assert "secret-id" not in str(caught.value)
    assert "INSERT" not in str(caught.value)


@pytest.mark.parametrize(
    "raised",
    [
        pytest.param(ConnectionRefusedError(111, "Connection refused"), id="refused"),
        pytest.param(ConnectionResetError("reset by peer"), id="reset"),
        pytest.param(TimeoutError("connect timed out"), id="timeout"),
        pytest.param(driver_error("disk I/O error"), id="sqlalchemy"),
    ],
)
def test_the_store_neutral_error_class_is_used_when_given(raised: Exception) -> None:
    """``error=StorageError`` raises exactly that, not the event log's subclass."""
    with (
        pytest.raises(StorageError) as caught,
        sql_errors("upload store record", error=StorageError),
    ):
        raise raised
    assert type(caught.value) is StorageError
    assert str(caught.value).startswith("upload store record failed: ")


def unique_violation() -> IntegrityError:
    """What SQLite reports when a unique index refuses a row."""
    return IntegrityError(
        "INSERT ...", (), sqlite3.IntegrityError("UNIQUE constraint failed: uploads.id")
    )


def test_a_unique_violation_gets_the_meaning_the_caller_gives_it() -> None:
    """``on_unique`` builds the error; any other integrity error stays generic."""
    taken = ConcurrencyError("kimi@v3 taken")
    with (
        pytest.raises(ConcurrencyError) as caught,
        sql_errors("append", on_unique=lambda: taken),
    ):
        raise unique_violation()
    assert caught.value is taken
    assert isinstance(caught.value.__cause__, IntegrityError)

    not_null = IntegrityError(
        "INSERT ...",
        (),
        sqlite3.IntegrityError("NOT NULL constraint failed: uploads.sha256"),
    )
    with (
        pytest.raises(EventLogError) as generic,
        sql_errors("append", on_unique=lambda: taken),
    ):
        raise not_null
    assert type(generic.value) is EventLogError
    with pytest.raises(EventLogError) as unasked, sql_errors("append"):
        raise unique_violation()
    assert type(unasked.value) is EventLogError


@pytest.mark.parametrize(
    "raised",
    [
        pytest.param(MalformedEventError("row 7", row_id=7), id="ours"),
        pytest.param(ValueError("a bug"), id="a-bug"),
    ],
)
def test_other_errors_pass_through_untouched(raised: Exception) -> None:
    """Only database errors are translated: ours and programming errors stay as raised."""
    with pytest.raises(type(raised)) as caught, sql_errors("event store read"):
        raise raised
    assert caught.value is raised


# -- every SQL adapter, against a database it cannot reach ------------------------------

Call = Callable[[AsyncEngine], Awaitable[object]]

CALLS: dict[tuple[type | ModuleType, str], Call] = {
    (SqlEventLog, "append"): lambda e: SqlEventLog(e, instance_id="i").append(
        [OUTCOME]
    ),
    (SqlEventLog, "read"): lambda e: SqlEventLog(e, instance_id="i").read(EventQuery()),
    (SqlEventLog, "read_since_snapshots"): lambda e: SqlEventLog(
        e, instance_id="i"
    ).read_since_snapshots({}),
    (SqlEventLog, "read_shared_after"): lambda e: SqlEventLog(
        e, instance_id="i"
    ).read_shared_after(0),
    (SqlEventLog, "last_id"): lambda e: SqlEventLog(e, instance_id="i").last_id(),
    (SqlEventLog, "load_snapshots"): lambda e: SqlEventLog(
        e, instance_id="i"
    ).load_snapshots(),
    (SqlEventLog, "last_transition_before"): lambda e: SqlEventLog(
        e, instance_id="i"
    ).last_transition_before("kimi", T0),
    (SqlEventLog, "prune"): lambda e: SqlEventLog(e, instance_id="i").prune(T0),
    (SqlEventLog, "ping"): lambda e: SqlEventLog(e, instance_id="i").ping(),
    (SqlTrialGate, "acquire"): lambda e: SqlTrialGate(e, owner="o").acquire(
        "kimi", 2, 1, now=T0, expires_at=T0 + 5
    ),
    (SqlTrialGate, "release"): lambda e: SqlTrialGate(e, owner="o").release(
        TrialLease("kimi", 0, "o#1")
    ),
    (SqlUploadStore, "record"): lambda e: SqlUploadStore(e, instance_id="i").record(
        RESULT
    ),
    (SqlUploadStore, "find"): lambda e: SqlUploadStore(e, instance_id="i").find(
        RESULT.sha256, "kimi"
    ),
    (SqlUploadStore, "recent"): lambda e: SqlUploadStore(e, instance_id="i").recent(),
    (SqlUploadStore, "recent_with_tracking"): lambda e: SqlUploadStore(
        e, instance_id="i"
    ).recent_with_tracking(),
    (Outbox, "claim"): lambda e: Outbox(e).claim(owner="o", now=T0, lease=60, limit=10),
    (Outbox, "delivered"): lambda e: Outbox(e).delivered(["x"], owner="o", now=T0),
    (Outbox, "retry_later"): lambda e: Outbox(e).retry_later(
        ["x"], owner="o", error="503", next_attempt_at=T0
    ),
    (Outbox, "failed"): lambda e: Outbox(e).failed(["x"], owner="o", error="401"),
    (Outbox, "redrive"): lambda e: Outbox(e).redrive(T0),
    (Outbox, "due_now"): lambda e: Outbox(e).due_now(T0),
    (Outbox, "release"): lambda e: Outbox(e).release(owner="relay"),
    (Outbox, "status"): lambda e: Outbox(e).status(T0),
    (migrate, "upgrade"): migrate.upgrade,
    (migrate, "downgrade"): migrate.downgrade,
    (migrate, "current_revision"): migrate.current_revision,
    (migrate, "check_models_match"): migrate.check_models_match,
    (migrate, "ensure_schema"): lambda e: migrate.ensure_schema(e, migrate=True),
}

# The upload store answers in the store-neutral class; everything else as it always has.
EXPECTED: dict[type | ModuleType, type[StorageError]] = {
    SqlEventLog: EventLogError,
    SqlTrialGate: EventLogError,
    Outbox: EventLogError,
    migrate: EventLogError,
    SqlUploadStore: StorageError,
}
NOT_DATABASE_WORK = {"aclose"}
IN_CALLERS_TRANSACTION = {"insert_in"}
"""Steps run on a connection the caller opened (and translates errors for)."""


def public_coroutines(owner: type | ModuleType) -> set[str]:
    """The public ``async def``s of a class, or those a module exports."""
    names = owner.__all__ if isinstance(owner, ModuleType) else dir(owner)
    return {
        name
        for name in names
        if not name.startswith("_")
        and name not in NOT_DATABASE_WORK | IN_CALLERS_TRANSACTION
        and inspect.iscoroutinefunction(getattr(owner, name))
    }


def test_every_sql_coroutine_is_covered() -> None:
    """Each public coroutine of each SQL adapter has a row in ``CALLS``."""
    for owner in EXPECTED:
        covered = {name for o, name in CALLS if o is owner}
        assert covered == public_coroutines(owner), owner


def free_port() -> int:
    """A local TCP port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(params=["sqlite-not-a-database", "postgres-refused"])
async def unreachable(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[AsyncEngine]:
    """An engine on a database that cannot be used: a file of garbage, a closed port."""
    if request.param == "sqlite-not-a-database":
        # (A missing directory fails too, but leaves aiosqlite's thread answering a
        # loop that may be closed by then.)
        garbage = tmp_path / "breakers.db"
        garbage.write_bytes(b"this is not an SQLite database\n" * 200)
        url = f"sqlite+aiosqlite:///{garbage}"
    else:
        url = f"postgresql+asyncpg://u:p@127.0.0.1:{free_port()}/breakers"
    engine = create_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("owner", "name"),
    list(CALLS),
    ids=[f"{getattr(o, '__name__', o)}.{n}" for o, n in CALLS],
)
async def test_no_database_error_escapes(
    unreachable: AsyncEngine, owner: type | ModuleType, name: str
) -> None:
    """An unreachable database is our ``StorageError``, caused by the driver's error."""
    with pytest.raises(StorageError) as caught:  # anything else propagates and fails
        await CALLS[owner, name](unreachable)
    error = caught.value
    assert type(error) is EXPECTED[owner], repr(error)
    assert isinstance(error.__cause__, SQLAlchemyError | OSError), repr(error.__cause__)
    assert "[SQL:" not in str(error)


# -- the upload store on a real SQLite file ----------------------------------------------


@contextlib.contextmanager
def exclusive_lock(db: Path) -> Iterator[None]:
    """Hold ``BEGIN EXCLUSIVE`` on the file from another connection: writers must wait."""
    conn = sqlite3.connect(db, isolation_level=None, timeout=0)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


async def test_a_locked_database_makes_record_raise_storage_error(
    tmp_path: Path,
) -> None:
    """``record`` on a locked SQLite file: ``StorageError`` saying so, not ``sqlalchemy.exc``."""
    db = tmp_path / "uploads.db"
    url = f"sqlite+aiosqlite:///{db}"
    migrated = create_engine(url)
    await migrate.upgrade(migrated)
    await migrated.dispose()
    # A short busy timeout instead of the service's five seconds: the test need not wait.
    engine = create_async_engine(url, connect_args={"timeout": 0.05})
    store = SqlUploadStore(engine, instance_id="i", outbox=True)
    try:
        with exclusive_lock(db), pytest.raises(StorageError) as caught:
            await store.record(RESULT)
        assert str(caught.value) == (
            "upload store record failed: OperationalError: database is locked"
        )
        await store.record(RESULT)  # the lock is gone: the same upload records fine
        assert [r.upload_id for r in await store.recent()] == [RESULT.upload_id]
    finally:
        await engine.dispose()


async def test_an_unmigrated_database_makes_every_read_raise_storage_error(
    tmp_path: Path,
) -> None:
    """No ``uploads`` table yet: ``StorageError`` naming the missing table."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    store = SqlUploadStore(engine, instance_id="i")
    try:
        for call in (
            store.find(RESULT.sha256, "kimi"),
            store.recent(),
            store.record(RESULT),
        ):
            with pytest.raises(StorageError, match="no such table: uploads"):
                await call
    finally:
        await engine.dispose()

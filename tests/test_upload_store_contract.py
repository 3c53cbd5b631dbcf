"""The ``UploadStore`` contract, one suite for every backend: memory, SQLite, PostgreSQL."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from breaker_service.errors import StorageError
from breaker_service.events.sql import create_engine
from breaker_service.migrate import upgrade
from breaker_service.schema import outbox, uploads
from breaker_service.tracking.outbox import outbox_row
from breaker_service.uploads import MemoryUploadStore, SqlUploadStore, UploadStore
from breaker_service.uploads.model import UploadResult

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
INSTANCE = "contract-instance"

BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]
SQL_BACKENDS = BACKENDS[1:]


def upload(
    n: int,
    *,
    at: float | None = None,
    provider: str = "kimi",
    sha256: str | None = None,
    upload_id: str | None = None,
) -> UploadResult:
    """The ``n``-th upload: its own id, content and time unless told otherwise."""
    return UploadResult(
        upload_id=upload_id or f"00000000-0000-4000-8000-{n:012d}",
        provider=provider,
        provider_file_id=f"file-{n}",
        filename=f"report-{n}.pdf",
        sha256=sha256 or f"{n:064x}",
        bytes=1000 + n,
        purpose="file-extract",
        attempts=1 + n % 3,
        elapsed=0.25 * n,
        providers_tried=("glm", provider) if n % 2 else (provider,),
        uploaded_at=T0 + n if at is None else at,
    )


@pytest.fixture(params=BACKENDS)
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """``memory``, or the URL of an empty database of the backend under test."""
    backend: str = request.param
    if backend == "memory":
        return "memory"
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'uploads.db'}"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


@pytest.fixture(params=SQL_BACKENDS)
def sql_backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty SQLite or PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'uploads.db'}"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


@contextlib.asynccontextmanager
async def sql_store(url: str, *, outbox: bool) -> AsyncIterator[SqlUploadStore]:
    """An SQL upload store on a migrated database, its engine disposed afterwards."""
    engine = create_engine(url)
    await upgrade(engine)
    try:
        yield SqlUploadStore(engine, instance_id=INSTANCE, outbox=outbox)
    finally:
        await engine.dispose()


@pytest.fixture
async def store(backend_url: str) -> AsyncIterator[UploadStore]:
    """An empty upload store of each backend (SQL ones with tracking off)."""
    if backend_url == "memory":
        yield MemoryUploadStore()
        return
    async with sql_store(backend_url, outbox=False) as store:
        yield store


@pytest.fixture
async def tracked(sql_backend_url: str) -> AsyncIterator[SqlUploadStore]:
    """An empty SQL upload store with tracking on (an outbox row per upload)."""
    async with sql_store(sql_backend_url, outbox=True) as store:
        yield store


@pytest.fixture
async def untracked(sql_backend_url: str) -> AsyncIterator[SqlUploadStore]:
    """An empty SQL upload store with tracking off."""
    async with sql_store(sql_backend_url, outbox=False) as store:
        yield store


async def rows_of(engine: AsyncEngine, table: Any) -> list[dict[str, Any]]:
    """Every row of ``table``."""
    async with engine.connect() as conn:
        return [dict(r._mapping) for r in (await conn.execute(select(table))).all()]


# -- every backend ---------------------------------------------------------------------


async def test_an_empty_store_knows_nothing(store: UploadStore) -> None:
    """No uploads: ``recent`` is empty and ``find`` answers None."""
    assert await store.recent() == []
    assert await store.find(f"{1:064x}", "kimi") is None


async def test_a_recorded_upload_reads_back_field_for_field(store: UploadStore) -> None:
    """What ``recent`` and ``find`` return equals what was recorded."""
    for n in (1, 2):
        await store.record(upload(n))
    assert await store.recent() == [upload(2), upload(1)]
    assert await store.find(upload(1).sha256, "kimi") == upload(1)
    assert (await store.recent())[0].providers_tried == ("kimi",)


async def test_deduplicated_is_an_answer_not_part_of_the_record(
    store: UploadStore,
) -> None:
    """A result flagged ``deduplicated`` is recorded without the flag."""
    await store.record(dataclasses.replace(upload(1), deduplicated=True))
    assert await store.recent() == [upload(1)]


async def test_recent_is_newest_first_by_upload_time_and_limited(
    store: UploadStore,
) -> None:
    """Recorded out of order, uploads come back by ``uploaded_at``, newest first."""
    for n in (3, 1, 5, 2, 4):
        await store.record(upload(n))
    assert [r.upload_id for r in await store.recent()] == [
        upload(n).upload_id for n in (5, 4, 3, 2, 1)
    ]
    assert await store.recent(limit=2) == [upload(5), upload(4)]


async def test_find_answers_the_newest_upload_of_that_content_to_that_provider(
    store: UploadStore,
) -> None:
    """Same content twice to kimi and once to glm: kimi's newer one, glm's own."""
    digest = "ab" * 32
    await store.record(upload(2, sha256=digest))
    await store.record(upload(1, sha256=digest))
    await store.record(upload(3, sha256=digest, provider="glm"))
    await store.record(upload(9))
    assert await store.find(digest, "kimi") == upload(2, sha256=digest)
    assert await store.find(digest, "glm") == upload(3, sha256=digest, provider="glm")
    assert await store.find(digest, "openai") is None
    assert await store.find("cd" * 32, "kimi") is None
    assert len(await store.recent()) == 4  # the same content is recorded each time


async def test_an_upload_id_is_recorded_once(store: UploadStore) -> None:
    """Recording an id again is a no-op (a journal fold, a retried commit) that leaves
    the first record as it was."""
    await store.record(upload(1))
    again = dataclasses.replace(upload(2), upload_id=upload(1).upload_id)
    await store.record(again)
    await store.record(upload(1))
    assert await store.recent() == [upload(1)]
    assert await store.find(again.sha256, "kimi") is None


# -- SQL backends: the outbox row is written with the upload ----------------------------


async def test_tracking_writes_a_pending_outbox_row_with_each_upload(
    tracked: SqlUploadStore,
) -> None:
    """With tracking on, each upload has its outbox row carrying the Supabase payload."""
    await tracked.record(upload(1))
    [row] = await rows_of(tracked.engine, outbox)
    assert row["id"] == upload(1).upload_id
    assert row["status"] == "pending"
    assert row["attempts"] == 0
    assert row["payload"] == tracked.tracking_payload(upload(1))
    assert row["payload"]["uploaded_at"] == "2026-01-01T00:00:01+00:00"
    assert (row["created_at"], row["next_attempt_at"]) == (T0 + 1, T0 + 1)
    listed = await tracked.recent_with_tracking()
    assert [(r["upload_id"], r["tracking"]) for r in listed] == [
        (upload(1).upload_id, "pending")
    ]


async def test_upload_and_outbox_row_commit_together_or_not_at_all(
    tracked: SqlUploadStore,
) -> None:
    """When the outbox row cannot be written, the upload row is rolled back with it."""
    taken = outbox_row(upload(1).upload_id, {"stale": True}, T0)
    async with tracked.engine.begin() as conn:
        await conn.execute(insert(outbox).values(**taken))
    with pytest.raises(StorageError):
        await tracked.record(upload(1))
    assert await rows_of(tracked.engine, uploads) == []
    assert [r["payload"] for r in await rows_of(tracked.engine, outbox)] == [
        {"stale": True}
    ]


async def test_a_duplicate_upload_writes_no_second_outbox_row(
    tracked: SqlUploadStore,
) -> None:
    """Recording an id again writes nothing: one upload row and one outbox row."""
    await tracked.record(upload(1))
    await tracked.record(upload(1))
    assert len(await rows_of(tracked.engine, uploads)) == 1
    assert len(await rows_of(tracked.engine, outbox)) == 1


async def test_without_tracking_no_outbox_row_is_written(
    untracked: SqlUploadStore,
) -> None:
    """Tracking off: the upload row only, listed with tracking ``off``."""
    await untracked.record(upload(1))
    assert await rows_of(untracked.engine, outbox) == []
    [listed] = await untracked.recent_with_tracking()
    assert (listed["tracking"], listed["tracking_error"]) == ("off", None)

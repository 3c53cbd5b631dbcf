"""The reconciler against the flaky provider's own file list: adopt, delete, report.

A real flaky server on 127.0.0.1 and a real SQLite file; a ``FakeClock`` whose wall
time is now (the provider stamps ``created_at`` from real time), so retries never
really sleep.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from upload_helpers import (
    KEY_VARIABLES,
    FlakyServer,
    flaky_server,
    make_settings,
    reusing_servers,
    write_file,
)

from breaker_service.breaker import BreakerState
from breaker_service.clock import FakeClock
from breaker_service.errors import ProviderQuotaExceeded
from breaker_service.events import sql_engine as sql_module
from breaker_service.providers.flaky import _StoredFile
from breaker_service.service import Service
from breaker_service.uploads.intents import (
    ABANDONED,
    ADOPTED,
    COMPLETED,
    FAILED,
    OPEN,
    UploadIntent,
)
from breaker_service.uploads.reconcile import ProviderReconciliation


@pytest.fixture(scope="module", autouse=True)
def _servers() -> Iterator[None]:
    """One pool of flaky servers for the module."""
    with reusing_servers():
        yield


@pytest.fixture(autouse=True)
def _no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KEY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@asynccontextmanager
async def service_for(
    tmp_path: Path, kimi: FlakyServer, **values: Any
) -> AsyncIterator[Service]:
    """A service on ``tmp_path/db.sqlite`` uploading to ``kimi``; time is now."""
    values.setdefault("upload_reconcile_interval", 0)
    settings = make_settings(
        tmp_path / "allowed",
        kimi_url=kimi.url,
        glm_key=None,
        upload_provider_order="kimi",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        breaker_replica_id="replica-a",
        **values,
    )
    clock = FakeClock(wall=time.time())
    async with await Service.open(settings, clock=clock, reconcile=True) as service:
        yield service


def left_open(path: Path, *, attempts: int = 1, ago: float = 2.0) -> UploadIntent:
    """An intent a killed earlier run of this replica left open for ``path``."""
    return UploadIntent(
        id=str(uuid.uuid4()),
        upload_id=str(uuid.uuid4()),
        provider="kimi",
        path=str(path),
        filename=path.name,
        sha256="0" * 64,
        bytes=path.stat().st_size,
        purpose="file-extract",
        started_at=time.time() - ago,
        owner="replica-a",
        run_id="a-dead-run",
        attempts=attempts,
    )


def store_at(kimi: FlakyServer, path: Path, *, created: float | None = None) -> str:
    """Put a copy of ``path`` at the provider as its upload would have; its id."""
    file_id = f"file-{uuid.uuid4().hex[:24]}"
    kimi.state.files[file_id] = _StoredFile(
        id=file_id,
        filename=path.name,
        bytes=path.stat().st_size,
        purpose="file-extract",
        sha256="",
        created_at=int(created if created is not None else time.time()),
    )
    return file_id


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` on the service's database."""
    with sqlite3.connect(db) as conn:
        found = list(conn.execute(sql))
    conn.close()
    return found


async def seed(tmp_path: Path, kimi: FlakyServer, *intents: UploadIntent) -> None:
    """Journal ``intents`` as an earlier run would have (no reconcile yet)."""
    async with service_for(tmp_path, kimi) as service:
        assert service.intents is not None
        for intent in intents:
            await service.intents.begin(intent)


async def test_an_ambiguous_failure_leaves_a_copy_that_is_deleted(
    tmp_path: Path,
) -> None:
    """Stored then 500, retried: two copies; the extra goes, the recorded one stays."""
    path = write_file(tmp_path / "allowed" / "a.txt")
    with flaky_server("kimi", script=["store_500"]) as kimi:
        async with service_for(tmp_path, kimi) as service:
            result = await service.orchestrator.upload(path, "kimi")
            assert len(kimi.state.files) == 2
            assert service.reconciler is not None
            await service.reconciler.reconcile(actor="test")
            assert set(kimi.state.files) == {result.provider_file_id}
            assert service.intents is not None
            actions = await service.intents.actions()
    assert [a.action for a in actions] == ["deleted"]
    assert actions[0].upload_id == result.upload_id
    assert actions[0].provider_file_id != result.provider_file_id
    db = tmp_path / "db.sqlite"
    assert rows(db, "SELECT state, attempts FROM upload_intents") == [(COMPLETED, 2)]


async def test_dropped_connection_after_storing_is_ambiguous_too(
    tmp_path: Path,
) -> None:
    """Stored then the connection dropped: the same outcome, and a pass is asked for."""
    path = write_file(tmp_path / "allowed" / "a.txt")
    with flaky_server("kimi", script=["store_drop"]) as kimi:
        async with service_for(tmp_path, kimi) as service:
            assert service.reconciler is not None
            result = await service.orchestrator.upload(path, "kimi")
            assert service.reconciler._wanted.is_set()
            await service.reconciler.reconcile()
            assert set(kimi.state.files) == {result.provider_file_id}


async def test_an_intent_left_open_by_a_crash_is_adopted_at_start_up(
    tmp_path: Path,
) -> None:
    """The provider kept the file, we died before recording: adopt it, do not resend."""
    path = write_file(tmp_path / "allowed" / "a.txt")
    with flaky_server("kimi") as kimi:
        intent = left_open(path)
        await seed(tmp_path, kimi, intent)
        file_id = store_at(kimi, path)
        async with service_for(tmp_path, kimi) as service:
            recent = await service.orchestrator.store.recent()
        assert [(r.upload_id, r.provider_file_id) for r in recent] == [
            (intent.upload_id, file_id)
        ]
        assert kimi.uploaded == 0
    db = tmp_path / "db.sqlite"
    assert rows(db, "SELECT state, provider_file_id FROM upload_intents") == [
        (ADOPTED, file_id)
    ]
    audit = rows(db, "SELECT action, intent_id, actor FROM upload_reconciliations")
    assert audit == [("adopted", intent.id, "reconciler")]


async def test_an_intent_the_provider_kept_nothing_of_is_abandoned(
    tmp_path: Path,
) -> None:
    """Died before the provider stored anything: the intent is closed, audited."""
    path = write_file(tmp_path / "allowed" / "a.txt")
    with flaky_server("kimi") as kimi:
        intent = left_open(path)
        await seed(tmp_path, kimi, intent)
        async with service_for(tmp_path, kimi):
            pass
    db = tmp_path / "db.sqlite"
    assert rows(db, "SELECT state FROM upload_intents") == [(ABANDONED,)]


async def test_a_file_we_did_not_create_is_never_touched(tmp_path: Path) -> None:
    """Another client's file of another name, or from long before: left alone."""
    path = write_file(tmp_path / "allowed" / "a.txt")
    other = write_file(tmp_path / "elsewhere" / "b.txt")
    with flaky_server("kimi") as kimi:
        mine = store_at(kimi, path, created=time.time() - 3600)  # before any intent
        theirs = store_at(kimi, other)
        failed = left_open(path)
        await seed(tmp_path, kimi, failed)
        async with service_for(tmp_path, kimi) as service:
            assert service.reconciler is not None
            [report] = await service.reconciler.reconcile()
        assert set(kimi.state.files) == {mine, theirs}
    assert report.foreign == 2


async def test_paging_reads_every_page(tmp_path: Path) -> None:
    """Five crashed uploads, two files a page: all five adopted."""
    paths = [write_file(tmp_path / "allowed" / f"f{i}.txt") for i in range(5)]
    with flaky_server("kimi", page_size=2) as kimi:
        intents = [left_open(p) for p in paths]
        await seed(tmp_path, kimi, *intents)
        for p in paths:
            store_at(kimi, p)
        async with service_for(tmp_path, kimi) as service:
            assert service.reconciler is not None
            assert service.reconciler.file_counts["kimi"]["count"] == 5
            assert service.reconciler.file_counts["kimi"]["limit"] == 1000
        assert kimi.state.stats["list_requests"] == 3
    db = tmp_path / "db.sqlite"
    assert rows(db, "SELECT DISTINCT state FROM upload_intents") == [(ADOPTED,)]


async def test_list_failures_are_retried_through_the_breaker(tmp_path: Path) -> None:
    """Two 503s on the list, then an answer: retried, and the crash is settled."""
    path = write_file(tmp_path / "allowed" / "a.txt")
    with flaky_server("kimi", catalog_faults=True, script=["503", "503"]) as kimi:
        intent = left_open(path)
        await seed(tmp_path, kimi, intent)
        store_at(kimi, path)
        async with service_for(tmp_path, kimi) as service:
            assert service.registry.get("kimi").state is BreakerState.CLOSED
        assert kimi.state.stats["list_requests"] == 3
    db = tmp_path / "db.sqlite"
    assert rows(db, "SELECT state FROM upload_intents") == [(ADOPTED,)]


async def test_a_provider_that_cannot_list_settles_nothing(tmp_path: Path) -> None:
    """Every list fails: the breaker opens, nothing is adopted or abandoned."""
    path = write_file(tmp_path / "allowed" / "a.txt")
    with flaky_server(
        "kimi", catalog_faults=True, error_rate=1.0, mix={"503": 1}
    ) as kimi:
        await seed(tmp_path, kimi, left_open(path))
        store_at(kimi, path)
        async with service_for(
            tmp_path, kimi, circuit_breaker_failure_threshold=2
        ) as service:
            assert service.reconciler is not None
            [report] = await service.reconciler.reconcile()  # the 2nd failed pass
            assert report.error is not None
            assert service.registry.get("kimi").state is BreakerState.OPEN
            requests = kimi.state.stats["list_requests"]
            [report] = await service.reconciler.reconcile()
            assert report.error is not None
            assert "CircuitOpenError" in report.error
            assert kimi.state.stats["list_requests"] == requests  # not even sent
    db = tmp_path / "db.sqlite"
    assert rows(db, "SELECT state FROM upload_intents") == [(OPEN,)]
    assert rows(db, "SELECT count(*) FROM uploads") == [(0,)]


async def test_delete_failures_are_retried(tmp_path: Path) -> None:
    """A 503 on the delete, then success; an ambiguous delete (404 on retry) is done."""
    path = write_file(tmp_path / "allowed" / "a.txt")
    with flaky_server("kimi", script=["store_500"]) as kimi:
        async with service_for(tmp_path, kimi) as service:
            result = await service.orchestrator.upload(path, "kimi")
            kimi.state.reconfigure({"catalog_faults": True})
            kimi.state.script = [None, "503", "store_500"]  # list, delete, delete
            assert service.reconciler is not None
            [report] = await service.reconciler.reconcile()
            assert set(kimi.state.files) == {result.provider_file_id}
        assert kimi.state.stats["delete_requests"] == 3
    assert len(report.deleted) == 1


async def test_report_policy_deletes_nothing(tmp_path: Path) -> None:
    """``UPLOAD_ORPHANS=report``: the extra copy is reported, not deleted."""
    path = write_file(tmp_path / "allowed" / "a.txt")
    with flaky_server("kimi", script=["store_500"]) as kimi:
        async with service_for(tmp_path, kimi, upload_orphans="report") as service:
            await service.orchestrator.upload(path, "kimi")
            assert service.reconciler is not None
            [report] = await service.reconciler.reconcile()
        assert len(kimi.state.files) == 2
    assert report.orphans == 1
    assert report.deleted == []


async def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    """``--dry-run`` says what it would adopt; nothing is written or deleted."""
    path = write_file(tmp_path / "allowed" / "a.txt")
    with flaky_server("kimi") as kimi:
        intent = left_open(path)
        store_at(kimi, path)
        async with service_for(tmp_path, kimi) as service:
            assert service.intents is not None
            await service.intents.begin(intent)
            assert service.reconciler is not None
            service.reconciler._startup = True
            reports: list[ProviderReconciliation] = await service.reconciler.reconcile(
                dry_run=True, startup=True
            )
            assert [a["intent"] for a in reports[0].adopted] == [intent.id]
            assert await service.orchestrator.store.recent() == []
            assert [i.id for i in await service.intents.open_intents()] == [intent.id]


async def test_a_full_file_quota_is_its_own_error_and_asks_for_a_pass(
    tmp_path: Path,
) -> None:
    """Moonshot's "exceeded the max file count": ``ProviderQuotaExceeded``, reconcile."""
    first = write_file(tmp_path / "allowed" / "a.txt")
    second = write_file(tmp_path / "allowed" / "b.txt")
    with flaky_server("kimi", max_files=1) as kimi:
        async with service_for(tmp_path, kimi) as service:
            await service.orchestrator.upload(first, "kimi")
            with pytest.raises(ProviderQuotaExceeded, match="max file count"):
                await service.orchestrator.upload(second, "kimi")
            assert service.reconciler is not None
            assert service.reconciler._wanted.is_set()
            assert "kimi" in service.orchestrator.quota_full
        assert kimi.requests == 2  # not retried
    db = tmp_path / "db.sqlite"
    assert sorted(rows(db, "SELECT state FROM upload_intents")) == [
        (COMPLETED,),
        (FAILED,),
    ]


async def test_a_list_that_fails_on_a_later_page_settles_nothing(
    tmp_path: Path,
) -> None:
    """Page 1 answers, page 2 never does: no half-listed verdict, nothing abandoned."""
    paths = [write_file(tmp_path / "allowed" / f"f{i}.txt") for i in range(3)]
    with flaky_server("kimi", page_size=2, catalog_faults=True) as kimi:
        await seed(tmp_path, kimi, *(left_open(p) for p in paths))
        for p in paths:
            store_at(kimi, p)
        kimi.state.script = [None, "503", "503", "503"]  # page 1, then page 2 x 3
        async with service_for(tmp_path, kimi) as service:
            assert service.reconciler is not None
            [report] = service.reconciler.last
            assert report.error is not None
    db = tmp_path / "db.sqlite"
    assert rows(db, "SELECT DISTINCT state FROM upload_intents") == [(OPEN,)]
    assert rows(db, "SELECT count(*) FROM upload_reconciliations") == [(0,)]


async def test_an_ambiguous_failure_wakes_the_background_pass(tmp_path: Path) -> None:
    """Stored then 500: the background reconciler runs soon after, without being asked."""
    path = write_file(tmp_path / "allowed" / "a.txt")
    with flaky_server("kimi", script=["store_500"]) as kimi:
        async with service_for(tmp_path, kimi) as service:
            result = await service.orchestrator.upload(path, "kimi")
            clock = service.clock
            assert isinstance(clock, FakeClock)
            for _ in range(200):  # bounded: about 10 s of real time at most
                clock.advance(1.0)
                await asyncio.sleep(0.05)
                if set(kimi.state.files) == {result.provider_file_id}:
                    break
            assert set(kimi.state.files) == {result.provider_file_id}


@pytest.fixture
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite gives up on a lock after 0.3 s."""
    monkeypatch.setattr(sql_module, "SQLITE_BUSY_TIMEOUT_MS", 300)


@pytest.mark.usefixtures("short_busy_timeout")
async def test_a_locked_database_journals_the_intent_too(tmp_path: Path) -> None:
    """Database locked throughout an ambiguous upload: intent and record go to the
    journals, fold once it is free, and the extra copy is reconciled away."""
    path = write_file(tmp_path / "allowed" / "a.txt")
    db = tmp_path / "db.sqlite"
    with flaky_server("kimi", script=["store_500"]) as kimi:
        async with service_for(tmp_path, kimi) as service:
            assert service.keeper is not None
            await service.keeper.aclose()  # no background fold: the test folds
            with sqlite3.connect(db, isolation_level=None, timeout=30) as lock:
                lock.execute("BEGIN EXCLUSIVE")
                try:
                    result = await service.orchestrator.upload(path, "kimi")
                finally:
                    lock.execute("ROLLBACK")
            lock.close()
            assert result.recorded == "journal"
            assert service.orchestrator.ledger.unjournaled_total == 0
            assert len(kimi.state.files) == 2
            assert service.reconciler is not None
            await service.reconciler.reconcile()  # folds both journals first
            assert set(kimi.state.files) == {result.provider_file_id}
    assert rows(db, "SELECT state, attempts, provider_file_id FROM upload_intents") == [
        (COMPLETED, 2, result.provider_file_id)
    ]

"""Storage faults never cost a record: damaged files, locked databases, journals."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from upload_helpers import flaky_server, make_settings, open_orchestrator, write_file

from breaker_service.breaker import BreakerState
from breaker_service.clock import FakeClock
from breaker_service.config import Settings, load_settings
from breaker_service.errors import ConfigError, StorageCorrupt
from breaker_service.events import sql_engine
from breaker_service.integrity import check_sqlite_file
from breaker_service.service import Service
from breaker_service.uploads.keeper import RecordNotSaved

SCRIPT = Path(sys.executable).with_name("breaker-service")


def _settings(db: Path) -> Settings:
    return load_settings(env_file=None, database_url=f"sqlite+aiosqlite:///{db}")


async def _write_some_history(db: Path) -> None:
    async with await Service.open(
        _settings(db), clock=FakeClock(), uploads=False
    ) as svc:
        breaker = svc.registry.get("kimi")
        await breaker.force_open("maintenance", "ops")
        await breaker.reset("done", "ops")
        assert await svc.registry.flush()


def _damage_an_index(db: Path, index: str = "ix_breaker_events_at") -> None:
    """Overwrite half of an index's root page, as a bad disk or a stray write would."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (root,) = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = ?", (index,)
        ).fetchone()
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    conn.close()
    with db.open("r+b") as stream:
        stream.seek((root - 1) * page_size)
        stream.write(bytes(range(256)) * (page_size // 512))


async def test_a_sound_file_passes_the_check(tmp_path: Path) -> None:
    """A file written by the service is sound; a missing one is too (created later)."""
    db = tmp_path / "ok.db"
    assert check_sqlite_file(db) == []
    await _write_some_history(db)
    assert check_sqlite_file(db) == []


async def test_a_damaged_file_refuses_to_start(tmp_path: Path) -> None:
    """A damaged index: start-up fails with one line naming the file and the way out."""
    db = tmp_path / "damaged.db"
    await _write_some_history(db)
    _damage_an_index(db)
    with pytest.raises(StorageCorrupt) as caught:
        await Service.open(_settings(db), uploads=False)
    message = str(caught.value)
    assert str(db) in message
    assert "restore it from a backup" in message
    assert "breaker-service db check" in message
    assert "\n" not in message


def test_the_cli_says_so_in_one_line(tmp_path: Path) -> None:
    """``breaker-service status`` on a damaged file: exit 1, one line, no traceback."""
    db = tmp_path / "damaged.db"
    asyncio.run(_write_some_history(db))
    _damage_an_index(db)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RETRY_", "CIRCUIT_", "RESILIENCE_", "DATABASE_"))
    }
    env["DATABASE_URL"] = f"sqlite+aiosqlite:///{db}"
    result = subprocess.run(
        [str(SCRIPT), "status"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "is damaged" in lines[0]
    assert "Traceback" not in result.stderr


def _settings_on_host(db: Path, host: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(socket, "gethostname", lambda: host)
    return _settings(db)


async def test_a_new_host_name_restores_the_same_breakers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """State written as container-aaa is restored as container-bbb (same database)."""
    db = tmp_path / "data.db"
    first = _settings_on_host(db, "container-aaa", monkeypatch)
    async with await Service.open(first, clock=FakeClock(), uploads=False) as svc:
        await svc.registry.get("kimi").force_open("incident 42", "ops")
    second = _settings_on_host(db, "container-bbb", monkeypatch)
    async with await Service.open(second, clock=FakeClock(), uploads=False) as svc:
        assert svc.registry.get("kimi").state is BreakerState.FORCED_OPEN
        assert svc.settings.breaker_replica_id == "container-aaa"
    assert (tmp_path / "data.db.replica-id").read_text().strip() == "container-aaa"


async def test_a_database_from_before_the_kept_id_still_restores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the kept id (an older database), the log's one replica is taken."""
    db = tmp_path / "data.db"
    first = _settings_on_host(db, "container-aaa", monkeypatch)
    async with await Service.open(first, clock=FakeClock(), uploads=False) as svc:
        await svc.registry.get("kimi").force_open("incident 42", "ops")
    (tmp_path / "data.db.replica-id").unlink()
    second = _settings_on_host(db, "container-bbb", monkeypatch)
    async with await Service.open(second, clock=FakeClock(), uploads=False) as svc:
        assert svc.registry.get("kimi").state is BreakerState.FORCED_OPEN


async def test_an_explicit_replica_id_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``BREAKER_REPLICA_ID`` set: used as is, the kept one ignored."""
    db = tmp_path / "data.db"
    async with await Service.open(
        _settings_on_host(db, "aaa", monkeypatch), clock=FakeClock(), uploads=False
    ) as svc:
        await svc.registry.get("kimi").force_open("x", "ops")
    explicit = load_settings(
        env_file=None,
        database_url=f"sqlite+aiosqlite:///{db}",
        breaker_replica_id="node-7",
    )
    async with await Service.open(explicit, clock=FakeClock(), uploads=False) as svc:
        assert svc.registry.get("kimi").state is BreakerState.CLOSED  # node-7's own


async def test_shared_postgres_without_a_replica_id_is_refused() -> None:
    """PostgreSQL in shared scope with no ``BREAKER_REPLICA_ID``: a start-up error."""
    settings = load_settings(
        env_file=None,
        database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none",
        breaker_scope="shared",
    )
    with pytest.raises(ConfigError, match="BREAKER_REPLICA_ID must be set"):
        await Service.open(settings, uploads=False)


@contextlib.contextmanager
def _exclusive_lock(db: Path) -> Iterator[sqlite3.Connection]:
    """Another process's ``BEGIN EXCLUSIVE`` on the file, held for the block."""
    conn = sqlite3.connect(db, isolation_level=None, timeout=30)
    conn.execute("BEGIN EXCLUSIVE")
    try:
        yield conn
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def _upload_rows(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        rows = {r[0] for r in conn.execute("SELECT provider_file_id FROM uploads")}
    conn.close()
    return rows


@pytest.fixture
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite gives up on a lock after 0.3 s instead of 5 s (the test stays quick)."""
    monkeypatch.setattr(sql_engine, "SQLITE_BUSY_TIMEOUT_MS", 300)


@pytest.mark.usefixtures("short_busy_timeout")
async def test_a_locked_database_journals_the_upload_and_folds_it_later(
    tmp_path: Path,
) -> None:
    """Provider said yes, database locked: recorded in the journal, folded once free."""
    db = tmp_path / "uploads.db"
    with flaky_server("kimi") as kimi:
        allowed = tmp_path / "allowed"
        settings = make_settings(
            allowed, kimi_url=kimi.url, database_url=f"sqlite+aiosqlite:///{db}"
        )
        first, second = write_file(allowed / "a.txt"), write_file(allowed / "b.txt")
        async with open_orchestrator(settings, sql=True) as orchestrator:
            assert (await orchestrator.upload(first, "kimi")).recorded == "database"
            with _exclusive_lock(db):
                journaled = await orchestrator.upload(second, "kimi")
                assert journaled.recorded == "journal"
                assert orchestrator.keeper.pending() == 1
            assert await orchestrator.keeper.fold() == 1
            assert orchestrator.keeper.pending() == 0
        assert journaled.provider_file_id in _upload_rows(db)
        assert kimi.uploaded == 2


@pytest.mark.usefixtures("short_busy_timeout")
async def test_the_journal_is_folded_at_the_next_start(tmp_path: Path) -> None:
    """A journaled upload reaches the database when the service starts again."""
    db = tmp_path / "uploads.db"
    with flaky_server("kimi") as kimi:
        allowed = tmp_path / "allowed"
        settings = make_settings(
            allowed, kimi_url=kimi.url, database_url=f"sqlite+aiosqlite:///{db}"
        )
        path = write_file(allowed / "a.txt")
        async with open_orchestrator(settings, sql=True) as orchestrator:
            with _exclusive_lock(db):
                journaled = await orchestrator.upload(path, "kimi")
            await (
                orchestrator.keeper.aclose()
            )  # no background fold: the restart does it
        assert journaled.provider_file_id not in _upload_rows(db)
        async with open_orchestrator(settings, sql=True) as orchestrator:
            again = await orchestrator.upload(path, "kimi")  # deduplicated, not resent
        assert again.deduplicated
        assert again.provider_file_id == journaled.provider_file_id
        assert journaled.provider_file_id in _upload_rows(db)
        assert kimi.uploaded == 1


@pytest.mark.usefixtures("short_busy_timeout")
async def test_nothing_persisted_says_so_with_the_provider_file_id(
    tmp_path: Path,
) -> None:
    """Database locked and journal unwritable: ``RecordNotSaved`` names the file id."""
    db = tmp_path / "uploads.db"
    with flaky_server("kimi") as kimi:
        allowed = tmp_path / "allowed"
        settings = make_settings(
            allowed, kimi_url=kimi.url, database_url=f"sqlite+aiosqlite:///{db}"
        )
        path = write_file(allowed / "a.txt")
        async with open_orchestrator(settings, sql=True) as orchestrator:
            assert orchestrator.keeper.journal is not None
            orchestrator.keeper.journal.path = tmp_path / "gone" / "journal"
            with _exclusive_lock(db), pytest.raises(RecordNotSaved) as caught:
                await orchestrator.upload(path, "kimi")
        stored = kimi.state.files  # what the provider holds
        assert caught.value.result.provider_file_id in stored
        assert "do not upload it again" in str(caught.value)


def test_cli_force_open_that_cannot_be_saved_exits_1(tmp_path: Path) -> None:
    """``force-open`` while another process locks the database: exit 1, says NOT saved."""
    db = tmp_path / "cli.db"
    asyncio.run(_write_some_history(db))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RETRY_", "CIRCUIT_", "RESILIENCE_", "DATABASE_"))
    }
    env["DATABASE_URL"] = f"sqlite+aiosqlite:///{db}"
    with _exclusive_lock(db):
        result = subprocess.run(
            [str(SCRIPT), "force-open", "kimi", "--reason", "incident"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "NOT saved" in result.stderr

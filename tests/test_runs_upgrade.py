"""A log written one row per call (schema 0005) replays the same after migration 0006.

The fixtures were made by ``tests/scripts/make_v5_log.py`` with the code before
outcome runs: an SQL dump of the SQLite log and the live breakers' fingerprints at
shutdown. Here the dump is loaded (into SQLite, or its rows into PostgreSQL at
0005), migrated to head and replayed, with and without its snapshots; then the
breakers live on, writing runs after the old rows, and a restart still agrees.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from breaker_helpers import Provider, make_settings
from sqlalchemy import text

from breaker_service.breaker import BreakerRegistry
from breaker_service.clock import FakeClock
from breaker_service.errors import CircuitOpenError, ProviderUnavailable
from breaker_service.events.sql import create_engine
from breaker_service.migrate import SCHEMA_HEAD, current_revision, upgrade

FIXTURES = Path(__file__).parent / "fixtures"
SCRIPT = Path(__file__).parent / "scripts" / "make_v5_log.py"
BREAKERS = ("kimi", "glm")


def scenarios() -> dict[str, dict[str, Any]]:
    """The settings each fixture log was written with."""
    spec = importlib.util.spec_from_file_location("make_v5_log", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found: dict[str, dict[str, Any]] = module.SCENARIOS
    return found


SCENARIOS = scenarios()


pytestmark = pytest.mark.usefixtures("clean_environment")


def load_dump(name: str, path: Path, *, snapshots: bool) -> None:
    """The fixture's SQL dump as an SQLite file (snapshots deleted if asked)."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.executescript((FIXTURES / f"v5_{name}.sql").read_text())
        if not snapshots:
            conn.execute("DELETE FROM breaker_snapshots")
        conn.commit()


async def copy_to_postgres(source: Path, url: str) -> None:
    """The fixture's rows in a PostgreSQL database migrated to 0005."""
    engine = create_engine(url)
    try:
        await upgrade(engine, "0005_dead_letters")
        with contextlib.closing(sqlite3.connect(source)) as conn:
            conn.row_factory = sqlite3.Row
            tables = {
                t: [dict(r) for r in conn.execute(f"SELECT * FROM {t}")]
                for t in ("breaker_events", "breaker_snapshots")
            }
        async with engine.begin() as pg:
            for table, rows in tables.items():
                for row in rows:
                    names = ", ".join(row)
                    marks = ", ".join(
                        f"CAST(:{k} AS JSON)" if k == "data" else f":{k}" for k in row
                    )
                    await pg.execute(
                        text(f"INSERT INTO {table} ({names}) VALUES ({marks})"),
                        row,
                    )
            await pg.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence('breaker_events', 'id'), "
                    "(SELECT max(id) FROM breaker_events))"
                )
            )
    finally:
        await engine.dispose()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def backend(request: pytest.FixtureRequest) -> str:
    """Where the old log is upgraded."""
    return str(request.param)


@pytest.fixture
def target_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of ``backend`` (SQLite: the file the dump is loaded into)."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'upgraded.db'}"
    return str(request.getfixturevalue("fresh_postgres_url"))


@pytest.mark.parametrize("snapshots", [True, False], ids=["snapshots", "no-snapshots"])
@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_an_old_log_replays_the_same_after_the_upgrade(
    name: str, snapshots: bool, backend: str, target_url: str, tmp_path: Path
) -> None:
    """Migrated to head, the old log gives the fingerprints it was written with."""
    expected = json.loads((FIXTURES / f"v5_{name}.json").read_text())
    dump = tmp_path / "dump.db"
    load_dump(name, dump, snapshots=snapshots)
    if backend == "sqlite":
        dump.rename(tmp_path / "upgraded.db")
    else:
        await copy_to_postgres(dump, target_url)
    settings = make_settings(**SCENARIOS[name], breaker_replica_id="vm")
    clock = FakeClock(start=50.0, wall=expected["wall"])
    async with await BreakerRegistry.open(
        target_url, settings=settings, clock=clock
    ) as registry:
        assert {b: registry.get(b).fingerprint() for b in BREAKERS} == expected[
            "fingerprints"
        ]
        # Living on: runs are written after the one-row-per-call history.
        kimi = registry.get("kimi")
        provider = Provider("kimi", clock)
        for _ in range(3):
            for _ in range(40):
                with contextlib.suppress(CircuitOpenError, ProviderUnavailable):
                    await kimi.call(provider.ok)
            with contextlib.suppress(CircuitOpenError, ProviderUnavailable):
                await kimi.call(provider.fail)
            clock.advance(0.7)
        live = {b: registry.get(b).fingerprint() for b in BREAKERS}
    engine = create_engine(target_url)
    try:
        assert await current_revision(engine) == SCHEMA_HEAD
        async with engine.connect() as conn:
            runs = (
                await conn.execute(
                    text("SELECT count(*) FROM breaker_events WHERE count > 1")
                )
            ).scalar()
    finally:
        await engine.dispose()
    assert runs
    async with await BreakerRegistry.open(
        target_url, settings=settings, clock=clock
    ) as again:
        assert {b: again.get(b).fingerprint() for b in BREAKERS} == live

"""Alembic migrations on SQLite and PostgreSQL: upgrade, downgrade, models agree, CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from breaker_service import (
    BreakerRegistry,
    BreakerState,
    CircuitOpenError,
    EventLogError,
    FakeClock,
    ProviderUnavailable,
    load_settings,
)
from breaker_service.events.sql import create_engine
from breaker_service.migrate import (
    SCHEMA_HEAD,
    check_models_match,
    current_revision,
    downgrade,
    ensure_schema,
    upgrade,
)

ROOT = Path(__file__).resolve().parent.parent
ALEMBIC = Path(sys.executable).with_name("alembic")
TABLES = {"breaker_events", "breaker_snapshots"}

DATABASES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty SQLite file or an empty PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'breakers.db'}"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the empty database."""
    engine = create_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def table_names(engine: AsyncEngine) -> set[str]:
    """The tables that exist now."""
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def test_upgrade_downgrade_upgrade(engine: AsyncEngine) -> None:
    """upgrade on an empty database reaches head, models agree, downgrade undoes it all."""
    assert await current_revision(engine) is None

    await upgrade(engine)
    assert await current_revision(engine) == SCHEMA_HEAD
    assert await table_names(engine) >= TABLES
    assert await check_models_match(engine) == []

    await downgrade(engine, "base")
    assert await current_revision(engine) is None
    assert not TABLES & await table_names(engine)

    await upgrade(engine)
    assert await current_revision(engine) == SCHEMA_HEAD
    assert await check_models_match(engine) == []


async def test_upgrade_is_idempotent(engine: AsyncEngine) -> None:
    """Upgrading a database already at head changes nothing."""
    await upgrade(engine)
    await upgrade(engine)
    assert await current_revision(engine) == SCHEMA_HEAD
    assert await check_models_match(engine) == []


async def test_ensure_schema_without_migrate_fails_clearly(engine: AsyncEngine) -> None:
    """An empty database with auto-migration off fails naming the command to run."""
    with pytest.raises(EventLogError, match="breaker-service db upgrade") as caught:
        await ensure_schema(engine, migrate=False)
    message = str(caught.value)
    assert "at nothing" in message
    assert SCHEMA_HEAD in message
    assert "DATABASE_AUTO_MIGRATE" in message
    assert await current_revision(engine) is None  # nothing was created

    await ensure_schema(engine, migrate=True)
    assert await current_revision(engine) == SCHEMA_HEAD
    await ensure_schema(engine, migrate=False)  # at head: the fast path, no error


async def test_registry_open_without_migrate_fails_clearly(database_url: str) -> None:
    """BreakerRegistry.open on an empty database with migrate=False says what to run."""
    settings = load_settings(env_file=None, database_url=database_url)
    with pytest.raises(EventLogError, match="breaker-service db upgrade"):
        await BreakerRegistry.open(settings=settings, clock=FakeClock(), migrate=False)


def run_alembic(
    *args: str, database_url: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    """Run the ``alembic`` command line of this environment against ``database_url``."""
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        [str(ALEMBIC), "-c", str(ROOT / "alembic.ini"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
async def test_alembic_command_line_upgrade_and_check(
    engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    """`alembic upgrade head` then `alembic check` work with DATABASE_URL, from any directory."""
    upgraded = run_alembic("upgrade", "head", database_url=database_url, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert await current_revision(engine) == SCHEMA_HEAD

    checked = run_alembic("check", database_url=database_url, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "No new upgrade operations detected" in checked.stdout + checked.stderr


def registry_settings(url: str, **values: Any) -> Any:
    """Settings for ``url`` with a small threshold and no surprises from the environment."""
    return load_settings(
        env_file=None,
        database_url=url,
        breaker_instance_id="migration-test",
        circuit_breaker_failure_threshold=3,
        circuit_breaker_success_threshold=1,
        circuit_breaker_timeout=30.0,
        **values,
    )


async def fail(registry: BreakerRegistry, name: str) -> None:
    """One transient failure through ``name``'s breaker."""
    with pytest.raises(ProviderUnavailable):
        async with registry.get(name).guard():
            raise ProviderUnavailable("upstream 503", provider=name, status=503)


@pytest.mark.postgres
async def test_registry_on_postgres_restores_state(fresh_postgres_url: str) -> None:
    """On PostgreSQL: trip a breaker, close the registry, reopen: state and cooldown are back."""
    settings = registry_settings(fresh_postgres_url)
    clock = FakeClock()

    registry = await BreakerRegistry.open(settings=settings, clock=clock)
    async with registry.get("glm").guard():
        pass
    for _ in range(3):
        await fail(registry, "kimi")
    assert registry.get("kimi").state is BreakerState.OPEN
    with pytest.raises(CircuitOpenError):
        async with registry.get("kimi").guard():
            pass
    assert not registry.degraded
    await registry.aclose()

    clock.advance(10)
    registry = await BreakerRegistry.open(settings=settings, clock=clock, migrate=False)
    try:
        kimi = registry.get("kimi")
        assert kimi.state is BreakerState.OPEN
        assert kimi.retry_after == pytest.approx(20.0)
        assert registry.get("glm").state is BreakerState.CLOSED
        assert registry.get("glm").successes == 1
        history = await registry.history("kimi", kinds=["transition"])
        assert [(e.from_state, e.to_state) for e in history] == [("closed", "open")]
        assert await registry.state_at("kimi", clock.time()) is BreakerState.OPEN

        clock.advance(21)  # cooldown over: the next call is the trial, which closes it
        async with kimi.guard():
            pass
        assert registry.get("kimi").state is BreakerState.CLOSED
    finally:
        await registry.aclose()

    registry = await BreakerRegistry.open(settings=settings, clock=clock, migrate=False)
    try:
        kimi = registry.get("kimi")
        assert kimi.state is BreakerState.CLOSED
        assert kimi.version == 3
        history = await registry.history("kimi", kinds=["transition"])
        assert [e.to_state for e in history] == ["open", "half_open", "closed"]
        outcomes = await registry.history("kimi", kinds=["failure", "success"])
        assert sum(e.count for e in outcomes if e.kind == "failure") == 3
    finally:
        await registry.aclose()

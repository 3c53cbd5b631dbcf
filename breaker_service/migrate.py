"""Apply and check the Alembic migrations from Python (start-up, CLI and tests).

Start-up takes a fast path: if ``alembic_version`` already holds the head revision,
Alembic is not loaded at all. On PostgreSQL the upgrade runs under an advisory lock
so replicas starting together do not race.
"""

from __future__ import annotations

import asyncio
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from .errors import EventLogError
from .events.sql_errors import sql_errors

__all__ = [
    "SCHEMA_HEAD",
    "check_models_match",
    "current_revision",
    "downgrade",
    "ensure_schema",
    "migrations_dir",
    "upgrade",
]

SCHEMA_HEAD = "0006_outcome_runs"
_ADVISORY_LOCK_KEY = 0x6272_6B73  # "brks"


def migrations_dir() -> Path:
    """The Alembic scripts: packaged in the wheel, or ``migrations/`` in a checkout."""
    here = Path(__file__).resolve().parent
    packaged = here / "_migrations"
    return packaged if packaged.is_dir() else here.parent / "migrations"


def _config(connection: Connection | None = None) -> Any:
    from alembic.config import Config  # noqa: PLC0415 - alembic only when migrating

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _upgrade_sync(connection: Connection, revision: str) -> None:
    from alembic import command  # noqa: PLC0415

    if connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK_KEY}
        )
    command.upgrade(_config(connection), revision)


def _downgrade_sync(connection: Connection, revision: str) -> None:
    from alembic import command  # noqa: PLC0415

    command.downgrade(_config(connection), revision)


def _current_sync(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext  # noqa: PLC0415

    return MigrationContext.configure(connection).get_current_revision()


def _diff_sync(connection: Connection) -> list[Any]:
    from alembic.autogenerate import compare_metadata  # noqa: PLC0415
    from alembic.runtime.migration import MigrationContext  # noqa: PLC0415

    from .schema import metadata  # noqa: PLC0415

    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def _migration_lock() -> asyncio.Lock:
    """Alembic keeps its context per process: one migration at a time per event loop."""
    loop = asyncio.get_running_loop()
    return _LOCKS.setdefault(loop, asyncio.Lock())


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Run ``alembic upgrade`` on ``engine``'s database."""
    with sql_errors("database migration"):
        async with _migration_lock(), engine.begin() as conn:
            await conn.run_sync(_upgrade_sync, revision)


async def downgrade(engine: AsyncEngine, revision: str = "base") -> None:
    """Run ``alembic downgrade`` (tests and operators rolling back)."""
    with sql_errors("database downgrade"):
        async with _migration_lock(), engine.begin() as conn:
            await conn.run_sync(_downgrade_sync, revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    with sql_errors("reading the schema revision"):
        async with engine.connect() as conn:
            return await conn.run_sync(_current_sync)


async def check_models_match(engine: AsyncEngine) -> list[Any]:
    """Differences between the tables and the models (empty when they agree)."""
    with sql_errors("comparing the schema with the models"):
        async with engine.connect() as conn:
            return await conn.run_sync(_diff_sync)


async def ensure_schema(engine: AsyncEngine, *, migrate: bool) -> None:
    """Make sure the schema is at head: upgrade if allowed, else fail clearly."""
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(text("SELECT version_num FROM alembic_version"))
            ).first()
        if row is not None and row[0] == SCHEMA_HEAD:
            return
    except (SQLAlchemyError, OSError):
        pass  # no table yet, or the store is down: the slow path says which
    if not migrate:
        current = await current_revision(engine)
        msg = (
            f"database schema is at {current or 'nothing'}, not {SCHEMA_HEAD}: run "
            "`breaker-service db upgrade` or set DATABASE_AUTO_MIGRATE=true"
        )
        raise EventLogError(msg)
    await upgrade(engine)

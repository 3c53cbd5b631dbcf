"""``db upgrade|current|check``: the database schema, through Alembic."""

from __future__ import annotations

import argparse

from ..config import Settings
from .command import EXIT_FAILED, EXIT_OK, async_command
from .render import console, errors

__all__ = ["db"]


@async_command
async def db(args: argparse.Namespace, settings: Settings) -> int:
    """Migrate to head, name the current revision, or check models against migrations."""
    # deferred: SQLAlchemy and Alembic take about a second to import; only the
    # commands that touch the database pay for them.
    from ..events.sql import redact_url  # noqa: PLC0415
    from ..integrity import check_sqlite_file, sqlite_path  # noqa: PLC0415
    from ..migrate import (  # noqa: PLC0415
        SCHEMA_HEAD,
        check_models_match,
        current_revision,
        upgrade,
    )
    from ..service import database_engine  # noqa: PLC0415

    if args.action == "check":
        path = sqlite_path(settings.database_url)
        if path is not None:
            problems = check_sqlite_file(path, timeout=600.0)
            if problems is None:
                errors.print(f"{path}: integrity check did not finish in 600 s")
                return EXIT_FAILED
            if problems:
                for problem in problems:
                    errors.print(f"{path}: {problem}")
                errors.print(
                    f"{path} is damaged: restore it from a backup (or try "
                    "`sqlite3 FILE .recover`)"
                )
                return EXIT_FAILED
            console.print(f"{path}: integrity ok")
    async with database_engine(settings) as engine:
        if args.action == "upgrade":
            await upgrade(engine)
            console.print(f"{redact_url(settings.database_url)}: at {SCHEMA_HEAD}")
            return EXIT_OK
        current = await current_revision(engine)
        if args.action == "current":
            console.print(current or "empty (no revision)")
            return EXIT_OK
        if current != SCHEMA_HEAD:
            errors.print(
                f"database is at {current or 'nothing'}, head is {SCHEMA_HEAD}"
            )
            return EXIT_FAILED
        diff = await check_models_match(engine)
        if diff:
            errors.print(f"models and database differ: {diff}")
            return EXIT_FAILED
        console.print(f"up to date at {SCHEMA_HEAD}; models and migrations agree")
        return EXIT_OK

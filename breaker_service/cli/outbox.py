"""``outbox [--redrive]``: the Supabase tracking outbox's backlog, and re-driving failures."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from ..config import Settings
from .command import EXIT_OK, async_command
from .render import console, fields_table, print_json

__all__ = ["outbox"]


@async_command
async def outbox(args: argparse.Namespace, settings: Settings) -> int:
    """Pending, delivered and failed rows; ``--redrive`` puts failed rows back first."""
    # SQLAlchemy and Alembic take about a second to import: only the commands that
    # touch the database pay for them.
    from ..events.sql import create_engine  # noqa: PLC0415
    from ..migrate import ensure_schema  # noqa: PLC0415
    from ..tracking import Outbox  # noqa: PLC0415

    engine = create_engine(settings.database_url)
    try:
        await ensure_schema(engine, migrate=settings.database_auto_migrate)
        rows = Outbox(engine)
        now = datetime.now(UTC).timestamp()
        redriven = await rows.redrive(now) if args.redrive else None
        status = (await rows.status(now)).as_dict()
    finally:
        await engine.dispose()
    status["tracking_enabled"] = settings.supabase_enabled
    if redriven is not None:
        status["redriven"] = redriven
    if args.json:
        print_json(status)
    else:
        console.print(fields_table("Supabase tracking outbox", status))
    return EXIT_OK

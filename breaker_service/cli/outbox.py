"""``outbox [--redrive] [--deliver]``: the Supabase tracking outbox: backlog, re-drive, deliver."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from ..config import Settings
from .command import EXIT_FAILED, EXIT_OK, async_command
from .render import console, errors, fields_table, print_json

__all__ = ["outbox"]


@async_command
async def outbox(args: argparse.Namespace, settings: Settings) -> int:
    """Pending, delivered and failed rows; ``--redrive`` puts failed rows back first,
    ``--deliver`` delivers what is pending now (bounded by ``--tracking-timeout``)."""
    # deferred: SQLAlchemy and Alembic take about a second to import; only the
    # commands that touch the database pay for them.
    from ..service import Service, database_engine  # noqa: PLC0415
    from ..tracking import Outbox  # noqa: PLC0415

    async with database_engine(
        settings, migrate=settings.database_auto_migrate
    ) as engine:
        rows = Outbox(engine)
        now = datetime.now(UTC).timestamp()
        redriven = await rows.redrive(now) if args.redrive else None
        if args.deliver:
            await rows.due_now(now)  # the operator asks for now: skip the backoff
    delivery = None
    if args.deliver:
        if not settings.supabase_enabled:
            errors.print(
                "outbox --deliver: tracking is off (set SUPABASE_URL and "
                "SUPABASE_SERVICE_KEY)"
            )
            return EXIT_FAILED
        async with await Service.open(settings) as service:
            delivery = await service.deliver_tracking(within=args.tracking_timeout)
    async with database_engine(settings) as engine:
        status = (await Outbox(engine).status(datetime.now(UTC).timestamp())).as_dict()
    status["tracking_enabled"] = settings.supabase_enabled
    if redriven is not None:
        status["redriven"] = redriven
    if delivery is not None:
        status["delivered_now"] = delivery.delivered
    if args.json:
        print_json(status)
    else:
        console.print(fields_table("Supabase tracking outbox", status))
    return EXIT_OK

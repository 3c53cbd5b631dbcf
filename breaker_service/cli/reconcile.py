"""``reconcile [--dry-run] [--list]``: settle orphans at the providers, or list open intents."""

from __future__ import annotations

import argparse
from typing import Any

from ..config import Settings
from .command import EXIT_FAILED, EXIT_OK, async_command
from .render import console, errors, fields_table, print_json

__all__ = ["reconcile"]


@async_command
async def reconcile(args: argparse.Namespace, settings: Settings) -> int:
    """Adopt, delete (per ``UPLOAD_ORPHANS``) and report against every provider's list.

    ``--list`` only shows the open intents. Another process's open intent counts as
    under way until ``UPLOAD_INTENT_STALE_AFTER``, unless ``--after-crash`` says no
    other process of this replica is running. Exit 1 when a provider could not be
    reconciled or orphans remain.
    """
    # deferred: the composition root (httpx, providers, SQL) is slow to import.
    from ..service import Service  # noqa: PLC0415

    async with await Service.open(settings) as service:
        assert service.intents is not None
        assert service.reconciler is not None
        if args.list:
            found = [i.as_dict() for i in await service.intents.open_intents()]
            if args.json:
                print_json({"open": found})
            else:
                console.print(f"{len(found)} open upload intent(s)")
                for intent in found:
                    console.print(fields_table(f"intent {intent['id']}", intent))
            return EXIT_OK
        reports = await service.reconciler.reconcile(
            dry_run=args.dry_run,
            actor="cli",
            reason="breaker-service reconcile",
            startup=args.after_crash,
            providers=[args.provider.lower()] if args.provider else None,
        )
    body: dict[str, Any] = {
        "dry_run": args.dry_run,
        "policy": settings.upload_orphans,
        "providers": [r.as_dict() for r in reports],
        "orphans": sum(r.orphans for r in reports),
    }
    if args.json:
        print_json(body)
    else:
        for report in reports:
            row = report.as_dict()
            summary = {
                k: (len(v) if isinstance(v, list) else v)
                for k, v in row.items()
                if k != "provider"
            }
            console.print(fields_table(f"reconcile {report.provider}", summary))
            for item in report.reported:
                errors.print(
                    f"{report.provider}: {item['file_id']} left: {item['why']}"
                )
    failed = any(r.error for r in reports) or body["orphans"]
    return EXIT_FAILED if failed else EXIT_OK

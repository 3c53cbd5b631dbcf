"""``upload PATH...``: files through retries, breakers and fallback, with a progress bar."""

from __future__ import annotations

import argparse

from rich.progress import Progress

from ..config import Settings
from .command import EXIT_FAILED, EXIT_OK, async_command
from .render import console, errors, print_json, uploads_table

__all__ = ["upload"]


@async_command
async def upload(args: argparse.Namespace, settings: Settings) -> int:
    """Upload every path; exit 1 unless all of them were uploaded."""
    # httpx, the providers and the SQL store: slow to import, unused by other commands.
    from ..uploads import UploadOrchestrator  # noqa: PLC0415

    async with await UploadOrchestrator.open(settings) as orchestrator:
        with Progress(console=errors, transient=True, disable=args.json) as bar:
            task = bar.add_task("uploading", total=len(args.paths))
            items = await orchestrator.upload_many(
                args.paths,
                concurrency=args.concurrency,
                provider=args.provider,
                purpose=args.purpose,
                force=args.force,
                progress=lambda done, _total, _item: bar.update(task, completed=done),
            )
    if args.json:
        print_json(
            [
                {
                    "path": i.path,
                    "ok": i.ok,
                    "result": i.result.as_dict() if i.result else None,
                    "error": f"{type(i.error).__name__}: {i.error}"
                    if i.error
                    else None,
                }
                for i in items
            ]
        )
    else:
        console.print(uploads_table(items))
        console.print(f"{sum(i.ok for i in items)}/{len(items)} uploaded")
    return EXIT_OK if all(i.ok for i in items) else EXIT_FAILED

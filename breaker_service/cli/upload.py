"""``upload PATH...``: files through retries, breakers and fallback, with a progress bar."""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable

from rich.progress import Progress

from ..config import Settings
from ..errors import ConfigError
from .command import EXIT_FAILED, EXIT_OK, async_command
from .render import console, errors, print_json, uploads_table

__all__ = ["upload"]


def _announce_waits(now: Callable[[], float]) -> Callable[[str, float], None]:
    """A progress line when the batch waits for an open breaker (once per 5 s each)."""
    last: dict[str, float] = {}

    def waiting(breaker: str, seconds: float) -> None:
        if now() - last.get(breaker, -1e9) >= _ANNOUNCE_EVERY:
            last[breaker] = now()
            errors.print(
                f"{breaker}'s breaker is open and no other provider can take the "
                f"files: waiting {seconds:.1f}s before trying again"
            )

    return waiting


_ANNOUNCE_EVERY = 5.0


def _printable_names() -> None:
    """Paths that are not UTF-8 print as ``\\udcXX`` escapes, never an encoding error.

    Such a name (bytes Python keeps as lone surrogates) is uploaded by its real path
    and recorded with U+FFFD in their place (``uploads.validation.text_name``); only
    its display is left, in the table, the JSON, an error message or a log line.
    """
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")


@async_command
async def upload(args: argparse.Namespace, settings: Settings) -> int:
    """Upload every path; exit 1 unless all of them were uploaded."""
    if not settings.allowed_dirs:
        # One line (exit 2) rather than the same refusal once per file.
        msg = (
            "UPLOAD_ALLOWED_DIRS is not set: name the directories uploads may come "
            "from (there is no default)"
        )
        raise ConfigError(msg, variable="UPLOAD_ALLOWED_DIRS")
    # deferred: the composition root (httpx, providers, SQL) is slow to import.
    from ..service import Service  # noqa: PLC0415

    _printable_names()
    async with await Service.open(settings) as service:
        orchestrator = service.orchestrator
        with Progress(console=errors, transient=True, disable=args.json) as bar:
            task = bar.add_task("uploading", total=len(args.paths))
            items = await orchestrator.upload_many(
                args.paths,
                concurrency=args.concurrency,
                provider=args.provider,
                purpose=args.purpose,
                force=args.force,
                progress=lambda done, _total, _item: bar.update(task, completed=done),
                deadline=args.deadline,
                waiting=_announce_waits(service.clock.monotonic),
            )
        delivery = await service.deliver_tracking(within=args.tracking_timeout)
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
    if delivery is not None:
        line = (
            f"tracking: {delivery.delivered} delivered now, "
            f"{delivery.pending} pending, {delivery.failed} failed"
        )
        if delivery.pending or delivery.failed:
            errors.print(
                f"warning: {line}; they are delivered by the next process that runs "
                "a relay (or `breaker-service outbox --deliver`)"
            )
        elif not args.json:
            console.print(line)
    return EXIT_OK if all(i.ok for i in items) else EXIT_FAILED

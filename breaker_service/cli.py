"""The ``breaker-service`` command line: argparse for parsing, Rich for output.

Exit codes: 0 ok, 1 the operation failed, 2 usage or configuration error. Errors
are one line on stderr; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from . import __version__
from .config import Settings, load_settings
from .errors import BreakerServiceError, ConfigError

__all__ = ["main"]

console = Console()
errors = Console(stderr=True)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="breaker-service",
        description=(
            "Retries and event-sourced circuit breakers for flaky upstream APIs. "
            "Configuration comes from the environment and .env (see README)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("--database-url", help="override DATABASE_URL for this command")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="run the resilience demo on a local SQLite file")
    demo.add_argument("--once", action="store_true", help="exit after the scenario")
    demo.add_argument("--seed", type=int, default=7, help="fault-injection seed")

    status = sub.add_parser("status", help="show every breaker (from the event log)")
    status.add_argument("--json", action="store_true", help="print JSON")

    events = sub.add_parser("events", help="show a breaker's audit trail")
    events.add_argument("name")
    events.add_argument("--since", help="ISO time (UTC if no offset)")
    events.add_argument("--kind", action="append", help="filter by kind (repeatable)")
    events.add_argument("--limit", type=int, default=100)
    events.add_argument("--after", type=int, default=0, help="page: events after this id")
    events.add_argument("--json", action="store_true", help="print JSON")

    for name, helptext in (("force-open", "force a breaker open"), ("reset", "reset a breaker to closed")):
        cmd = sub.add_parser(name, help=helptext)
        cmd.add_argument("name")
        cmd.add_argument("--reason", required=True)
        cmd.add_argument("--actor", default="cli")

    db = sub.add_parser("db", help="database schema (Alembic)")
    db.add_argument("action", choices=["upgrade", "current", "check"])
    return parser


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        msg = f"--since {value!r} is not an ISO date/time"
        raise ConfigError(msg, variable="--since") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


async def _with_registry(settings: Settings, body: Callable[[Any], Awaitable[int]]) -> int:
    from .breaker import BreakerRegistry  # noqa: PLC0415 - keep --help fast

    registry = await BreakerRegistry.open(settings=settings)
    try:
        return await body(registry)
    finally:
        await registry.aclose()


def _status_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="breakers")
    for column in ("name", "state", "failures", "successes", "rejections", "retry after", "last transition"):
        table.add_column(column)
    colours = {"closed": "green", "open": "red", "half_open": "yellow", "forced_open": "magenta"}
    for row in rows:
        last = row["last_transition"]
        table.add_row(
            row["name"],
            f"[{colours.get(row['state'], 'white')}]{row['state']}[/]",
            str(row["failures"]),
            str(row["successes"]),
            str(row["rejections"]),
            f"{row['retry_after']:.1f}s" if row["retry_after"] else "-",
            f"{last['from']} -> {last['to']}: {last['reason']}" if last else "-",
        )
    return table


async def _status(settings: Settings, as_json: bool) -> int:  # noqa: FBT001
    async def body(registry: Any) -> int:
        rows = [b.status() for b in registry.breakers()]
        if as_json:
            print(json.dumps({"breakers": rows, "store": registry.health()}, indent=2))
        else:
            console.print(_status_table(rows))
        return EXIT_OK

    return await _with_registry(settings, body)


async def _events(settings: Settings, args: argparse.Namespace) -> int:
    since = _since(args.since)

    async def body(registry: Any) -> int:
        found = await registry.history(
            args.name, after_id=args.after, limit=args.limit, kinds=args.kind, since=since
        )
        if args.json:
            print(json.dumps([e.as_dict() for e in found], indent=2))
            return EXIT_OK
        table = Table(title=f"events of {args.name}")
        for column in ("id", "at", "kind", "detail", "by", "instance"):
            table.add_column(column)
        for e in found:
            if e.kind == "transition":
                detail = f"{e.from_state} -> {e.to_state}: {e.reason}"
            else:
                detail = f"{e.detail or ''} x{e.count}" if e.count != 1 else (e.detail or "")
            table.add_row(str(e.id), e.when.isoformat(timespec="milliseconds"), e.kind, detail, e.actor or "", e.instance_id)
        console.print(table)
        return EXIT_OK

    return await _with_registry(settings, body)


async def _manual(settings: Settings, args: argparse.Namespace) -> int:
    async def body(registry: Any) -> int:
        breaker = registry.get(args.name)
        if args.command == "force-open":
            await breaker.force_open(args.reason, args.actor)
        else:
            await breaker.reset(args.reason, args.actor)
        console.print(f"{args.name}: {breaker.state.value}")
        return EXIT_OK

    return await _with_registry(settings, body)


async def _db(settings: Settings, action: str) -> int:
    from .events.sql import create_engine, redact_url  # noqa: PLC0415
    from .migrate import SCHEMA_HEAD, check_models_match, current_revision, upgrade  # noqa: PLC0415

    engine = create_engine(settings.database_url)
    try:
        if action == "upgrade":
            await upgrade(engine)
            console.print(f"{redact_url(settings.database_url)}: at {SCHEMA_HEAD}")
            return EXIT_OK
        current = await current_revision(engine)
        if action == "current":
            console.print(current or "empty (no revision)")
            return EXIT_OK
        if current != SCHEMA_HEAD:
            errors.print(f"database is at {current or 'nothing'}, head is {SCHEMA_HEAD}")
            return EXIT_FAILED
        diff = await check_models_match(engine)
        if diff:
            errors.print(f"models and database differ: {diff}")
            return EXIT_FAILED
        console.print(f"up to date at {SCHEMA_HEAD}; models and migrations agree")
        return EXIT_OK
    finally:
        await engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``breaker-service`` script."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    if args.command is None:
        parser.print_help()
        return EXIT_OK
    try:
        overrides = {"database_url": args.database_url} if args.database_url else {}
        settings = load_settings(**overrides)
        if args.command == "demo":
            from .demo import run_demo  # noqa: PLC0415

            return asyncio.run(run_demo(settings, once=args.once, seed=args.seed))
        if args.command == "status":
            return asyncio.run(_status(settings, args.json))
        if args.command == "events":
            return asyncio.run(_events(settings, args))
        if args.command in {"force-open", "reset"}:
            return asyncio.run(_manual(settings, args))
        if args.command == "db":
            return asyncio.run(_db(settings, args.action))
    except ConfigError as exc:
        print(f"breaker-service: {exc}", file=sys.stderr)
        if args.debug:
            raise
        return EXIT_USAGE
    except BreakerServiceError as exc:
        print(f"breaker-service: {exc}", file=sys.stderr)
        if args.debug:
            raise
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_FAILED
    parser.error(f"unknown command {args.command!r}")
    return EXIT_USAGE  # pragma: no cover - parser.error exits

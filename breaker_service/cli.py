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
from collections.abc import Awaitable, Callable, Coroutine, Sequence
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


def _parser() -> argparse.ArgumentParser:  # noqa: PLR0915 - the whole command line in one place
    parser = argparse.ArgumentParser(
        prog="breaker-service",
        description=(
            "Retries and event-sourced circuit breakers for flaky upstream APIs. "
            "Configuration comes from the environment and .env (see README)."
        ),
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks and debug logs"
    )
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
    events.add_argument(
        "--after", type=int, default=0, help="page: events after this id"
    )
    events.add_argument("--json", action="store_true", help="print JSON")

    for name, helptext in (
        ("force-open", "force a breaker open"),
        ("reset", "reset a breaker to closed"),
    ):
        cmd = sub.add_parser(name, help=helptext)
        cmd.add_argument("name")
        cmd.add_argument("--reason", required=True)
        cmd.add_argument("--actor", default="cli")

    upload = sub.add_parser("upload", help="upload files through retries and breakers")
    upload.add_argument("paths", nargs="+", metavar="PATH")
    upload.add_argument(
        "--provider", help="this provider only (default: UPLOAD_PROVIDER_ORDER)"
    )
    upload.add_argument("--purpose", help="the provider's purpose field")
    upload.add_argument("--concurrency", type=int, default=None)
    upload.add_argument(
        "--force", action="store_true", help="upload even if already uploaded"
    )
    upload.add_argument("--json", action="store_true", help="print JSON")

    flaky = sub.add_parser(
        "flaky-provider", help="run the local fault-injecting files API"
    )
    flaky.add_argument("--host", default="127.0.0.1")
    flaky.add_argument("--port", type=int, default=8081)
    flaky.add_argument("--error-rate", type=float, default=0.15)
    flaky.add_argument("--seed", type=int, default=None)
    flaky.add_argument("--flavor", choices=["openai", "kimi", "glm"], default="openai")
    flaky.add_argument(
        "--latency-ms", type=float, nargs=2, default=(0.0, 0.0), metavar=("MIN", "MAX")
    )
    flaky.add_argument("--retry-after", type=float, default=1.0)
    flaky.add_argument(
        "--mix",
        default="429:1,429_retry_after:1,500:1,502:1,503:3,504:1",
        help="fault weights, e.g. 503:3,hang:1,drop:1,quota:1",
    )
    flaky.add_argument(
        "--outage",
        action="append",
        default=[],
        metavar="START-END",
        help="down from START to END seconds after start",
    )
    flaky.add_argument("--api-key", help="require this bearer token")

    serve = sub.add_parser("serve", help="run the HTTP service (uvicorn)")
    serve.add_argument("--host", default=None, help="default SERVICE_HOST (127.0.0.1)")
    serve.add_argument(
        "--port", type=int, default=None, help="default SERVICE_PORT (8080)"
    )
    serve.add_argument("--workers", type=int, default=1)

    token = sub.add_parser("token", help="mint a JWT for local use")
    token.add_argument(
        "--sub", required=True, help="the subject (recorded as the actor)"
    )
    token.add_argument(
        "--scope",
        action="append",
        required=True,
        help="breakers:read, uploads:write, breakers:admin",
    )
    token.add_argument("--ttl", default="1h", help="lifetime: 90s, 15m, 1h, 7d")

    outbox_cmd = sub.add_parser(
        "outbox", help="Supabase tracking outbox: status, redrive"
    )
    outbox_cmd.add_argument(
        "--redrive", action="store_true", help="put failed rows back to pending"
    )
    outbox_cmd.add_argument("--json", action="store_true", help="print JSON")

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


async def _with_registry(
    settings: Settings, body: Callable[[Any], Awaitable[int]]
) -> int:
    from .breaker import BreakerRegistry  # noqa: PLC0415 - keep --help fast

    registry = await BreakerRegistry.open(settings=settings)
    try:
        return await body(registry)
    finally:
        await registry.aclose()


def _status_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="breakers")
    for column in (
        "name",
        "state",
        "failures",
        "successes",
        "rejections",
        "retry after",
        "last transition",
    ):
        table.add_column(column)
    colours = {
        "closed": "green",
        "open": "red",
        "half_open": "yellow",
        "forced_open": "magenta",
    }
    for row in rows:
        last = row["last_transition"]
        table.add_row(
            row["name"],
            f"[{colours.get(row['state'], 'white')}]{row['state']}[/]",
            str(row["failures"]),
            str(row["successes"]),
            str(row["rejections"]),
            f"{row['retry_after']:.1f}s" if row["retry_after"] else "-",
            f"{last['from_state']} -> {last['to_state']}: {last['reason']}"
            if last
            else "-",
        )
    return table


async def _status(settings: Settings, as_json: bool) -> int:
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
            args.name,
            after_id=args.after,
            limit=args.limit,
            kinds=args.kind,
            since=since,
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
                detail = (
                    f"{e.detail or ''} x{e.count}" if e.count != 1 else (e.detail or "")
                )
            table.add_row(
                str(e.id),
                e.when.isoformat(timespec="milliseconds"),
                e.kind,
                detail,
                e.actor or "",
                e.instance_id,
            )
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
    finally:
        await engine.dispose()


async def _upload(settings: Settings, args: argparse.Namespace) -> int:
    from rich.progress import Progress  # noqa: PLC0415

    from .uploads import UploadOrchestrator  # noqa: PLC0415

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
        print(
            json.dumps(
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
                ],
                indent=2,
            )
        )
    else:
        table = Table(title="uploads")
        for column in ("path", "result", "provider", "file id", "attempts", "tried"):
            table.add_column(column)
        for item in items:
            r = item.result
            if r is not None:
                note = (
                    "deduplicated"
                    if r.deduplicated
                    else ("ok (fallback)" if r.fallback else "ok")
                )
                table.add_row(
                    item.path,
                    f"[green]{note}[/]",
                    r.provider,
                    r.provider_file_id,
                    str(r.attempts),
                    ", ".join(r.providers_tried),
                )
            else:
                table.add_row(
                    item.path,
                    f"[red]{type(item.error).__name__}[/]: {item.error}",
                    "",
                    "",
                    "",
                    "",
                )
        console.print(table)
        console.print(f"{sum(i.ok for i in items)}/{len(items)} uploaded")
    return EXIT_OK if all(i.ok for i in items) else EXIT_FAILED


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn  # noqa: PLC0415

    from .api import create_app  # noqa: PLC0415

    host = args.host or settings.service_host
    port = args.port if args.port is not None else settings.service_port
    if args.workers > 1:
        # Each worker process builds its own app from the environment.
        uvicorn.run(
            "breaker_service.api:create_app",
            factory=True,
            host=host,
            port=port,
            workers=args.workers,
        )
        return EXIT_OK
    app = create_app(settings)  # fails here, before binding, on a bad configuration
    uvicorn.run(app, host=host, port=port, log_level="info")
    return EXIT_OK


async def _outbox(settings: Settings, args: argparse.Namespace) -> int:
    from .events.sql import create_engine  # noqa: PLC0415
    from .migrate import ensure_schema  # noqa: PLC0415
    from .tracking import Outbox  # noqa: PLC0415

    engine = create_engine(settings.database_url)
    try:
        await ensure_schema(engine, migrate=settings.database_auto_migrate)
        outbox = Outbox(engine)
        now = datetime.now(UTC).timestamp()
        redriven = await outbox.redrive(now) if args.redrive else None
        status = (await outbox.status(now)).as_dict()
    finally:
        await engine.dispose()
    status["tracking_enabled"] = settings.supabase_enabled
    if redriven is not None:
        status["redriven"] = redriven
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        table = Table(title="Supabase tracking outbox")
        table.add_column("field")
        table.add_column("value")
        for key, value in status.items():
            table.add_row(key, str(value))
        console.print(table)
    return EXIT_OK


def _flaky(args: argparse.Namespace) -> int:
    import uvicorn  # noqa: PLC0415

    from .providers.flaky import FaultConfig, FlakyProvider, create_app  # noqa: PLC0415

    try:
        mix = {
            k: float(v)
            for k, v in (part.split(":") for part in args.mix.split(",") if part)
        }
        outages = [tuple(float(x) for x in o.split("-", 1)) for o in args.outage]
        config = FaultConfig(
            error_rate=args.error_rate,
            seed=args.seed,
            flavor=args.flavor,
            latency_ms=tuple(args.latency_ms),
            retry_after=args.retry_after,
            mix=mix,
            outages=outages,
            api_key=args.api_key,
        )
    except ValueError as exc:
        msg = f"flaky-provider: invalid fault options: {str(exc).splitlines()[0]}"
        raise ConfigError(msg) from None
    console.print(
        f"flaky provider on http://{args.host}:{args.port} (admin: /admin/faults, /admin/stats)"
    )
    uvicorn.run(
        create_app(FlakyProvider(config)),
        host=args.host,
        port=args.port,
        log_level="warning",
    )
    return EXIT_OK


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    """Run the chosen command."""
    command = args.command
    if command == "demo":
        from .demo import run_demo  # noqa: PLC0415

        return asyncio.run(run_demo(settings, once=args.once, seed=args.seed))
    if command == "flaky-provider":
        return _flaky(args)
    if command == "serve":
        return _serve(settings, args)
    if command == "token":
        from .api.auth import mint_token, parse_ttl  # noqa: PLC0415

        print(
            mint_token(
                settings, subject=args.sub, scopes=args.scope, ttl=parse_ttl(args.ttl)
            )
        )
        return EXIT_OK
    runners: dict[str, Callable[[], Coroutine[Any, Any, int]]] = {
        "status": lambda: _status(settings, args.json),
        "events": lambda: _events(settings, args),
        "force-open": lambda: _manual(settings, args),
        "reset": lambda: _manual(settings, args),
        "db": lambda: _db(settings, args.action),
        "upload": lambda: _upload(settings, args),
        "outbox": lambda: _outbox(settings, args),
    }
    return asyncio.run(runners[command]())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``breaker-service`` script."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    if args.command is None:
        parser.print_help()
        return EXIT_OK
    try:
        overrides = {"database_url": args.database_url} if args.database_url else {}
        settings = load_settings(**overrides)
        return _dispatch(args, settings)
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

"""The ``breaker-service`` argument parser: every command and option, in one place.

``breaker_service.cli.app.COMMANDS`` maps each command name here to the function
that runs it; the commands appear in ``--help`` in the order they are added here.
"""

from __future__ import annotations

import argparse
from typing import TypeAlias

from .. import __version__
from ..events.model import ALL_KINDS

__all__ = ["build_parser"]

Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What ``add_subparsers`` returns; each ``_add_*`` adds one command group to it."""


def build_parser() -> argparse.ArgumentParser:
    """Every command, option and help text of ``breaker-service``."""
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
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also show third-party logs (httpx requests, uvicorn access, Alembic)",
    )
    parser.add_argument("--database-url", help="override DATABASE_URL for this command")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_demo(sub)
    _add_breakers(sub)
    _add_upload(sub)
    _add_flaky_provider(sub)
    _add_serve(sub)
    _add_token(sub)
    _add_outbox(sub)
    _add_reconcile(sub)
    _add_db(sub)
    return parser


def _add_demo(sub: Subcommands) -> None:
    demo = sub.add_parser("demo", help="run the resilience demo on a local SQLite file")
    demo.add_argument("--once", action="store_true", help="exit after the scenario")
    demo.add_argument("--seed", type=int, default=7, help="fault-injection seed")


def _add_breakers(sub: Subcommands) -> None:
    status = sub.add_parser("status", help="show every breaker (from the event log)")
    status.add_argument("--json", action="store_true", help="print JSON")

    events = sub.add_parser("events", help="show a breaker's audit trail")
    events.add_argument("name")
    events.add_argument("--since", help="ISO time (UTC if no offset)")
    events.add_argument(
        "--kind",
        action="append",
        choices=sorted(ALL_KINDS),
        help="filter by kind (repeatable)",
    )
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


def _add_upload(sub: Subcommands) -> None:
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
    upload.add_argument(
        "--deadline",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long the batch may wait for an open breaker when no other "
        "provider can take a file (default UPLOAD_BATCH_DEADLINE; 0: fail at once)",
    )
    upload.add_argument(
        "--tracking-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="deliver pending Supabase tracking for up to this long before exiting",
    )


def _add_flaky_provider(sub: Subcommands) -> None:
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
        help="fault weights, e.g. 503:3,hang:1,drop:1,quota:1,store_500:1,store_drop:1",
    )
    flaky.add_argument(
        "--outage",
        action="append",
        default=[],
        metavar="START-END",
        help="down from START to END seconds after start",
    )
    flaky.add_argument("--api-key", help="require this bearer token")
    flaky.add_argument(
        "--max-files",
        type=int,
        default=None,
        help="file-count quota (uploads past it: 400)",
    )
    flaky.add_argument(
        "--page-size", type=int, default=100, help="largest page of GET files"
    )
    flaky.add_argument(
        "--catalog-faults",
        action="store_true",
        help="listing and deleting draw faults too",
    )


def _add_serve(sub: Subcommands) -> None:
    serve = sub.add_parser("serve", help="run the HTTP service (uvicorn)")
    serve.add_argument("--host", default=None, help="default SERVICE_HOST (127.0.0.1)")
    serve.add_argument(
        "--port", type=int, default=None, help="default SERVICE_PORT (8080)"
    )
    serve.add_argument("--workers", type=int, default=1)


def _add_token(sub: Subcommands) -> None:
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


def _add_outbox(sub: Subcommands) -> None:
    outbox = sub.add_parser(
        "outbox", help="Supabase tracking outbox: status, redrive, deliver"
    )
    outbox.add_argument(
        "--redrive", action="store_true", help="put failed rows back to pending"
    )
    outbox.add_argument(
        "--deliver", action="store_true", help="deliver pending rows now, then report"
    )
    outbox.add_argument(
        "--tracking-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="with --deliver: how long to keep delivering",
    )
    outbox.add_argument("--json", action="store_true", help="print JSON")


def _add_reconcile(sub: Subcommands) -> None:
    rec = sub.add_parser(
        "reconcile", help="orphans at the providers: adopt, delete extra copies, report"
    )
    rec.add_argument(
        "--dry-run", action="store_true", help="say what would be done, do nothing"
    )
    rec.add_argument("--list", action="store_true", help="only list open intents")
    rec.add_argument("--provider", help="only this provider")
    rec.add_argument(
        "--after-crash",
        action="store_true",
        help="no other process of this replica runs: its open intents are dead",
    )
    rec.add_argument("--json", action="store_true", help="print JSON")


def _add_db(sub: Subcommands) -> None:
    db = sub.add_parser("db", help="database schema (Alembic)")
    db.add_argument("action", choices=["upgrade", "current", "check"])

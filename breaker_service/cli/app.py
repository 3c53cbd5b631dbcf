"""``main``: parse, configure logging, load the settings, run the command, map errors.

Exit codes: 0 ok, 1 the operation failed, 2 usage or configuration error. Errors
are one line on stderr; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

from ..config import load_settings
from ..errors import BreakerServiceError, ConfigError
from ..logs import configure_logging
from . import breakers, db, demo, flaky, outbox, reconcile, serve, token, upload
from .command import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Command
from .parser import build_parser

__all__ = ["COMMANDS", "main"]

COMMANDS: Mapping[str, Command] = {
    "demo": demo.demo,
    "status": breakers.status,
    "events": breakers.events,
    "force-open": breakers.force_open,
    "reset": breakers.reset,
    "upload": upload.upload,
    "flaky-provider": flaky.flaky_provider,
    "serve": serve.serve,
    "token": token.token,
    "outbox": outbox.outbox,
    "reconcile": reconcile.reconcile,
    "db": db.db,
}
"""Every command of the parser, by name, and the function that runs it."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``breaker-service`` script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(
        level="DEBUG" if args.debug else "INFO", verbose=args.verbose or args.debug
    )
    if args.command is None:
        parser.print_help()
        return EXIT_OK
    try:
        overrides = {"database_url": args.database_url} if args.database_url else {}
        settings = load_settings(**overrides)
        configure_logging(
            level="DEBUG" if args.debug else settings.log_level,
            log_format=settings.log_format,
            verbose=args.verbose or args.debug,
        )
        return COMMANDS[args.command](args, settings)
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

"""``serve``: the HTTP service under uvicorn.

A start-up that fails for a reason we know (the database unreachable, a schema it
cannot migrate: a ``BreakerServiceError``) ends the command with our one line and
exit 1 (2 for configuration), as every other command does, instead of uvicorn's
traceback and exit 3; uvicorn's informational lines before start-up is done are
left out. Anything else keeps its traceback: that is a bug.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ..config import Settings
from ..errors import BreakerServiceError
from .command import EXIT_FAILED, EXIT_OK

__all__ = ["StartupGuard", "serve"]

_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]
_App = Callable[[MutableMapping[str, Any], _Receive, _Send], Awaitable[None]]


class StartupGuard:
    """ASGI wrapper: keeps a known start-up failure for the CLI to report in one line.

    Starlette reports a failed lifespan to the server with the formatted traceback,
    which uvicorn logs; the guard sends the failure without it and holds the error.
    """

    def __init__(self, app: _App) -> None:
        self.app = app
        self.failure: BreakerServiceError | None = None
        self.started = False

    async def __call__(
        self, scope: MutableMapping[str, Any], receive: _Receive, send: _Send
    ) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        failed = False

        async def quiet_send(message: _Message) -> None:
            nonlocal failed
            if message["type"] == "lifespan.startup.failed":
                failed = True
                message = {"type": message["type"], "message": ""}
            elif message["type"] == "lifespan.startup.complete":
                self.started = True
            await send(message)

        try:
            await self.app(scope, receive, quiet_send)
        except BreakerServiceError as exc:
            if not failed:
                raise
            self.failure = exc

    def filter(self, record: logging.LogRecord) -> bool:
        """uvicorn's lines, less those before start-up is done ("Waiting for ...").

        A failed start-up then shows only our line; a good one shows uvicorn's
        "startup complete" and "running on" as before.
        """
        if self.failure is not None and "startup failed" in record.getMessage():
            return False
        return self.started or record.levelno >= logging.WARNING


def serve(args: argparse.Namespace, settings: Settings) -> int:
    """Run the service until interrupted; several workers each build their own app."""
    # deferred: FastAPI, uvicorn and the whole service stack: the slowest imports.
    import uvicorn  # noqa: PLC0415

    from ..api import create_app  # noqa: PLC0415

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
    guard = StartupGuard(app)
    config = uvicorn.Config(
        guard,
        host=host,
        port=port,
        log_level="info",
        log_config=None,  # our handler and format (configure_logging), not uvicorn's
        access_log=args.verbose,
    )
    server = uvicorn.Server(config)
    uvicorn_error = logging.getLogger("uvicorn.error")
    uvicorn_error.addFilter(guard)
    try:
        server.run()
    except SystemExit:  # uvicorn exits (3) when the lifespan fails to start
        if guard.failure is None:
            raise
    finally:
        uvicorn_error.removeFilter(guard)
    if guard.failure is not None:
        raise guard.failure  # main prints it in one line: exit 1, or 2 for ConfigError
    return EXIT_OK if server.started else EXIT_FAILED

"""``serve``: the HTTP service under uvicorn."""

from __future__ import annotations

import argparse

from ..config import Settings
from .command import EXIT_OK

__all__ = ["serve"]


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
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        log_config=None,  # our handler and format (configure_logging), not uvicorn's
        access_log=args.verbose,
    )
    return EXIT_OK

"""``flaky-provider``: the local fault-injecting files API (tests, demo, benchmarks)."""

from __future__ import annotations

import argparse

from ..config import Settings
from ..errors import ConfigError
from .command import EXIT_OK
from .render import console

__all__ = ["flaky_provider"]


def flaky_provider(args: argparse.Namespace, _settings: Settings) -> int:
    """Serve the fault-injecting API with the faults the options describe."""
    # deferred: FastAPI and uvicorn are slow to import, needed only to serve.
    import uvicorn  # noqa: PLC0415

    from ..providers.flaky import FaultConfig, FlakyProvider, create_app  # noqa: PLC0415

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
            max_files=args.max_files,
            page_size=args.page_size,
            catalog_faults=args.catalog_faults,
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

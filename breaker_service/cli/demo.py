"""``demo [--once] [--seed N]``: the resilience scenario of ``breaker_service.demo``."""

from __future__ import annotations

import argparse

from ..config import Settings
from .command import async_command

__all__ = ["demo"]


@async_command
async def demo(args: argparse.Namespace, settings: Settings) -> int:
    """Run the scenario; exit 1 if an upload failed."""
    # deferred: the demo runs the whole service (FastAPI, uvicorn, httpx): slow import.
    from ..demo import run_demo  # noqa: PLC0415

    return await run_demo(settings, once=args.once, seed=args.seed)

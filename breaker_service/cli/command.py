"""What every command shares: its signature, the exit codes, and how it runs.

A command takes the parsed arguments and the settings and returns the exit code:
0 ok, 1 the operation failed, 2 usage or configuration error (``ConfigError``).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from ..breaker import BreakerRegistry
from ..config import Settings

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "AsyncBody",
    "Command",
    "async_command",
    "open_registry",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

Command = Callable[[argparse.Namespace, Settings], int]
"""A command: parsed arguments and settings in, exit code out."""

AsyncBody = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]


def async_command(body: AsyncBody) -> Command:
    """``body`` as a ``Command`` that runs it in an event loop of its own."""

    @functools.wraps(body)
    def command(args: argparse.Namespace, settings: Settings) -> int:
        return asyncio.run(body(args, settings))

    return command


@asynccontextmanager
async def open_registry(settings: Settings) -> AsyncIterator[BreakerRegistry]:
    """The registry replayed from the configured event log, flushed and closed after."""
    # deferred: the composition root pulls in SQLAlchemy; only commands needing it pay.
    from ..service import Service  # noqa: PLC0415

    async with await Service.open(settings, uploads=False) as service:
        yield service.registry

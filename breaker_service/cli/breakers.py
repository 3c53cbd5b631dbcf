"""``status``, ``events``, ``force-open`` and ``reset``: the breakers, from the event log."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from ..breaker import CircuitBreaker
from ..config import Settings
from ..errors import ConfigError
from .command import EXIT_FAILED, EXIT_OK, async_command, open_registry
from .render import console, errors, events_table, print_json, status_table

__all__ = ["events", "force_open", "reset", "status"]

ManualAction = Callable[[CircuitBreaker, str, str | None], Awaitable[bool]]
"""An operator action: ``CircuitBreaker.force_open`` or ``CircuitBreaker.reset``."""


@async_command
async def status(args: argparse.Namespace, settings: Settings) -> int:
    """Every breaker's state and counters, with the event store's health in JSON."""
    async with open_registry(settings) as registry:
        rows = [b.status() for b in registry.breakers()]
        if args.json:
            print_json({"breakers": rows, "store": registry.health()})
        else:
            console.print(status_table(rows))
    return EXIT_OK


@async_command
async def events(args: argparse.Namespace, settings: Settings) -> int:
    """One breaker's audit trail, oldest first, paged by id."""
    since = _since(args.since)
    async with open_registry(settings) as registry:
        found = await registry.history(
            args.name,
            after_id=args.after,
            limit=args.limit,
            kinds=args.kind,
            since=since,
        )
    if args.json:
        print_json([e.as_dict() for e in found])
    else:
        console.print(events_table(args.name, found))
    return EXIT_OK


@async_command
async def force_open(args: argparse.Namespace, settings: Settings) -> int:
    """Reject every call through the breaker until it is reset."""
    return await _manual(args, settings, CircuitBreaker.force_open)


@async_command
async def reset(args: argparse.Namespace, settings: Settings) -> int:
    """Back to closed."""
    return await _manual(args, settings, CircuitBreaker.reset)


async def _manual(
    args: argparse.Namespace, settings: Settings, action: ManualAction
) -> int:
    """Apply an operator action with its reason and actor, then print the new state."""
    async with open_registry(settings) as registry:
        breaker = registry.get(args.name)
        durable = await action(breaker, args.reason, args.actor)
        if not durable:
            errors.print(
                f"{args.name}: {breaker.state.value} was NOT saved: the event log "
                "could not write it (this process exits, so it is lost); check the "
                "database and try again"
            )
            return EXIT_FAILED
        console.print(f"{args.name}: {breaker.state.value}")
    return EXIT_OK


def _since(value: str | None) -> datetime | None:
    """``--since`` as an aware time (UTC when it has no offset)."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        msg = f"--since {value!r} is not an ISO date/time"
        raise ConfigError(msg, variable="--since") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)

"""Drive "kimi" to OPEN on an event log, print ``OPEN <opened_at>``, then block.

Run by ``tests/test_restart_process.py`` as ``python trip_and_block.py URL COOLDOWN``
and killed with SIGKILL while blocked: the registry is never closed or flushed.
First ``SUCCESSES`` calls succeed, so the log holds outcome runs before the trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

from breaker_service.breaker import BreakerRegistry, BreakerState
from breaker_service.clock import SystemClock
from breaker_service.config import load_settings
from breaker_service.errors import ProviderUnavailable

FAILURE_THRESHOLD = 3
SUCCESSES = 500


async def upstream_up() -> None:
    """The provider before the outage."""


async def upstream_down() -> None:
    """The provider: always a 503."""
    raise ProviderUnavailable("upstream down", provider="kimi", status=503)


async def main(url: str, cooldown: float) -> None:
    """Trip the breaker, report it, and wait to be killed."""
    settings = load_settings(
        env_file=None,
        circuit_breaker_failure_threshold=FAILURE_THRESHOLD,
        circuit_breaker_timeout=cooldown,
        breaker_instance_id="doomed",
    )
    registry = await BreakerRegistry.open(url, settings=settings, clock=SystemClock())
    breaker = registry.get("kimi")
    for _ in range(SUCCESSES):
        await breaker.call(upstream_up)
    while breaker.state is not BreakerState.OPEN:
        with contextlib.suppress(ProviderUnavailable):
            await breaker.call(upstream_down)
    sys.stdout.write(f"OPEN {breaker.opened_at!r}\n")
    sys.stdout.flush()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2])))

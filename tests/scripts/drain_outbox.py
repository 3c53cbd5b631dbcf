"""One relay process: drain a shared outbox to Supabase, then print what it delivered.

Run by ``tests/test_tracking.py`` as
``python drain_outbox.py DB_URL SUPABASE_URL KEY OWNER BATCH_SIZE``. It prints
``READY`` once connected, waits for a line on stdin (so that several relays start
draining together), drains with its own lease owner, and prints
``DELIVERED <count>``.
"""

from __future__ import annotations

import asyncio
import sys

from sqlalchemy.ext.asyncio import create_async_engine

from breaker_service.breaker import BreakerRegistry
from breaker_service.clock import SystemClock
from breaker_service.config import load_settings
from breaker_service.events import MemoryEventLog
from breaker_service.tracking import Outbox, OutboxRelay, SupabaseSink


async def main(argv: list[str]) -> None:
    """Connect, wait for the go, drain, report."""
    db_url, supabase_url, key, owner, batch_size = argv
    settings = load_settings(
        env_file=None, breaker_instance_id=owner, retry_base_delay=0.01
    )
    clock = SystemClock()
    engine = create_async_engine(db_url)
    registry = await BreakerRegistry.open(
        settings=settings, clock=clock, log=MemoryEventLog()
    )
    relay = OutboxRelay(
        outbox=Outbox(engine),
        sink=SupabaseSink(supabase_url, key, settings.supabase_table, timeout=5.0),
        registry=registry,
        owner=owner,
        clock=clock,
        batch_size=int(batch_size),
    )
    try:
        await relay.status()  # connected
        sys.stdout.write("READY\n")
        sys.stdout.flush()
        await asyncio.to_thread(sys.stdin.readline)
        delivered = await relay.drain()
        sys.stdout.write(f"DELIVERED {delivered}\n")
        sys.stdout.flush()
    finally:
        await relay.aclose()
        await registry.aclose()
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))

"""Shared helpers for the Supabase tracking tests (a plain module, not a conftest).

The PostgREST-compatible stub (``postgrest_stub.py``) served by uvicorn on
127.0.0.1, the real ``supabase`` client talking to it, orchestrators on a real SQLite
file and a ``FakeClock``, and bounded polls for what the relay does in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from postgrest_stub import PostgrestStub, create_postgrest_app
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from upload_helpers import make_settings

from breaker_service.breaker import BreakerRegistry
from breaker_service.clock import Clock, FakeClock
from breaker_service.config import Settings, load_settings
from breaker_service.events import MemoryEventLog
from breaker_service.providers.flaky import free_port, serve_in_thread
from breaker_service.schema import outbox, uploads
from breaker_service.tracking import (
    Outbox,
    OutboxRelay,
    OutboxStatus,
    SupabaseSink,
    TrackingSink,
)
from breaker_service.tracking.outbox import outbox_row
from breaker_service.uploads import UploadOrchestrator
from breaker_service.uploads.model import UploadResult
from breaker_service.uploads.sql_store import SqlUploadStore

__all__ = [
    "SERVICE_KEY",
    "SUPABASE_VARIABLES",
    "SupabaseServer",
    "dead_url",
    "direct_relay",
    "eventually",
    "local_outbox",
    "local_upload_ids",
    "make_files",
    "open_tracked",
    "relay_of",
    "seed_outbox",
    "stub_ids",
    "supabase_server",
    "tracking_settings",
    "wait_delivered",
]

SERVICE_KEY = "sb-service-role-7Qx2LmP9vTz4"
"""The stub's service key: distinctive, so a test can look for it in every message."""

SUPABASE_VARIABLES = (
    "SUPABASE_URL",
    "SUPABASE_SERVICE_KEY",
    "SUPABASE_KEY",
    "SUPABASE_TABLE",
)
"""Environment variables that would turn tracking on behind a test's back."""

POLL_TIMEOUT = 15.0
"""Real seconds a bounded poll waits for the background relay before failing."""


@dataclass
class SupabaseServer:
    """A running PostgREST-compatible stub: its base URL and its state."""

    url: str
    stub: PostgrestStub


@contextlib.contextmanager
def supabase_server(
    db_path: Path,
    *,
    port: int = 0,
    service_key: str = SERVICE_KEY,
    stub: PostgrestStub | None = None,
) -> Iterator[SupabaseServer]:
    """Serve the stub on 127.0.0.1 (a given ``port`` brings it back at that address)."""
    stub = stub or PostgrestStub(db_path, service_key=service_key)
    with serve_in_thread(create_postgrest_app(stub), port=port) as url:
        yield SupabaseServer(url, stub)


def dead_url() -> tuple[str, int]:
    """A base URL on a free loopback port with nothing listening (connection refused)."""
    port = free_port("127.0.0.1")
    return f"http://127.0.0.1:{port}", port


def tracking_settings(
    tmp_path: Path,
    *,
    kimi_url: str,
    supabase_url: str | None,
    key: str | None = SERVICE_KEY,
    **values: Any,
) -> Settings:
    """Settings for an orchestrator on ``tmp_path/local.db`` tracking to ``supabase_url``."""
    values.setdefault("database_url", f"sqlite+aiosqlite:///{tmp_path / 'local.db'}")
    values.setdefault("supabase_timeout", 0.5)
    values.setdefault("outbox_interval", 0.05)
    values.setdefault("upload_provider_order", "kimi")
    if supabase_url is not None:
        values["SUPABASE_URL"] = supabase_url
    if key is not None:
        values["SUPABASE_SERVICE_KEY"] = key
    return make_settings(tmp_path / "files", kimi_url=kimi_url, **values)


@contextlib.asynccontextmanager
async def open_tracked(
    settings: Settings, clock: FakeClock
) -> AsyncIterator[UploadOrchestrator]:
    """The orchestrator of ``settings`` (SQL registry, relay started when configured)."""
    async with await UploadOrchestrator.open(settings, clock=clock) as orchestrator:
        yield orchestrator


def relay_of(orchestrator: UploadOrchestrator) -> OutboxRelay:
    """The orchestrator's relay (tracking must be on)."""
    relay = orchestrator.relay
    assert relay is not None, "Supabase tracking is off: no relay"
    return relay


def make_files(tmp_path: Path, count: int, prefix: str = "f") -> list[Path]:
    """``count`` files of distinct content under ``tmp_path/files``."""
    folder = tmp_path / "files"
    folder.mkdir(exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{prefix}{i:03d}.txt"
        path.write_bytes(os.urandom(256))
        paths.append(path)
    return paths


async def eventually(
    check: Callable[[], Awaitable[bool]],
    what: str,
    within: float = POLL_TIMEOUT,
) -> None:
    """Poll ``check`` (real time, bounded) until it holds; fail naming ``what``."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            msg = f"timed out after {within}s waiting for {what}"
            raise AssertionError(msg)
        await asyncio.sleep(0.02)


async def wait_delivered(
    relay: OutboxRelay,
    expected: int,
    *,
    wake: bool = True,
    clock: FakeClock | None = None,
    step: float = 0.0,
) -> OutboxStatus:
    """Wait until ``expected`` rows are delivered and none is pending.

    With ``wake`` the relay is nudged on every poll; without, it must get there by
    itself (start-up delivery). With ``clock`` and ``step``, fake time moves on by
    ``step`` on every poll, so a batch that was in flight when the outage ended
    (and backed off) comes due too.
    """
    last: list[OutboxStatus] = []

    async def done() -> bool:
        if clock is not None and step:
            clock.advance(step)
        if wake:
            relay.wake()
        status = await relay.status()
        last[:] = [status]
        return status.delivered == expected and status.pending == 0

    try:
        await eventually(done, f"{expected} delivered rows")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last status {last}") from None
    return last[0]


@contextlib.asynccontextmanager
async def direct_relay(
    engine: AsyncEngine,
    supabase_url: str,
    *,
    owner: str,
    clock: Clock,
    key: str = SERVICE_KEY,
    batch_size: int = 10,
    sink: TrackingSink | None = None,
    **values: Any,
) -> AsyncIterator[OutboxRelay]:
    """A relay on ``engine`` (not started) with its own registry on an in-memory log.

    The sink is the real Supabase one for ``supabase_url`` unless ``sink`` is given.
    """
    values.setdefault("retry_base_delay", 0.001)
    values.setdefault("retry_max_delay", 0.01)
    settings = load_settings(env_file=None, breaker_instance_id=owner, **values)
    registry = await BreakerRegistry.open(
        settings=settings, clock=clock, log=MemoryEventLog()
    )
    relay = OutboxRelay(
        outbox=Outbox(engine),
        sink=sink
        or SupabaseSink(supabase_url, key, settings.supabase_table, timeout=5.0),
        registry=registry,
        owner=owner,
        clock=clock,
        batch_size=batch_size,
    )
    try:
        yield relay
    finally:
        await relay.aclose()
        await registry.aclose()


def _sqlite_rows(db: Path, sql: str) -> list[dict[str, Any]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(sql)]


def local_upload_ids(db: Path) -> set[str]:
    """The ids in the local ``uploads`` table."""
    return {str(r["id"]) for r in _sqlite_rows(db, "SELECT id FROM uploads")}


def local_outbox(db: Path) -> list[dict[str, Any]]:
    """The local ``outbox`` rows."""
    return _sqlite_rows(db, "SELECT * FROM outbox ORDER BY created_at")


def stub_ids(stub: PostgrestStub) -> list[str]:
    """The ids of the rows on the Supabase side, one entry per row (duplicates show)."""
    return [str(r["id"]) for r in stub.rows()]


async def seed_outbox(
    engine: AsyncEngine, count: int, *, now: float, instance_id: str = "seed"
) -> list[str]:
    """Write ``count`` uploads and their pending outbox rows in one transaction."""
    import uuid  # noqa: PLC0415

    store = SqlUploadStore(engine, instance_id=instance_id, outbox=True)
    upload_rows = []
    outbox_rows = []
    for i in range(count):
        result = UploadResult(
            upload_id=str(uuid.uuid4()),
            provider="kimi",
            provider_file_id=f"file-seed-{i:05d}",
            filename=f"seed{i:05d}.txt",
            sha256=f"{i:064x}",
            bytes=100 + i,
            purpose="file-extract",
            attempts=1,
            elapsed=0.01,
            providers_tried=("kimi",),
            uploaded_at=now - count + i,
        )
        upload_rows.append(store.row(result))
        outbox_rows.append(
            outbox_row(
                result.upload_id, store.tracking_payload(result), result.uploaded_at
            )
        )
    async with engine.begin() as conn:
        await conn.execute(insert(uploads), upload_rows)
        await conn.execute(insert(outbox), outbox_rows)
    return [str(r["id"]) for r in upload_rows]

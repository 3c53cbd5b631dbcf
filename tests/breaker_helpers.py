"""Shared helpers for the breaker, replay, restart and store-outage tests.

A plain module (not a conftest): scripted providers, settings without ``.env``,
registries on an in-memory or SQLite log, and replaying a log into fresh breakers.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from breaker_service import testing
from breaker_service.breaker import BreakerRegistry, CircuitBreaker
from breaker_service.clock import Clock, FakeClock
from breaker_service.config import Settings, load_settings
from breaker_service.errors import (
    CircuitOpenError,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)
from breaker_service.events import MemoryEventLog
from breaker_service.events.model import StoredEvent

__all__ = [
    "Provider",
    "copy_log",
    "fail_times",
    "make_settings",
    "memory_registry",
    "outcome_totals",
    "real_backoff",
    "rejected",
    "replayed_fingerprint",
    "sqlite_path",
    "sqlite_registry",
    "sqlite_rows",
    "sqlite_url",
    "succeed_times",
    "wait_until",
]


def make_settings(**values: Any) -> Settings:
    """Settings from keyword values only (no ``.env``), with a fixed instance id."""
    values.setdefault("breaker_instance_id", "test")
    return load_settings(env_file=None, **values)


class Provider:
    """A scripted upstream: counts calls; succeeds, fails, hangs or takes fake time."""

    def __init__(self, name: str = "kimi", clock: FakeClock | None = None) -> None:
        self.name = name
        self.clock = clock
        self.calls = 0
        self.gate = asyncio.Event()
        self.entered = 0
        self.script: list[BaseException | None] = []

    async def ok(self) -> str:
        """Answer at once."""
        self.calls += 1
        return f"{self.name}: ok"

    async def fail(self, exc: BaseException | None = None) -> str:
        """Fail with ``exc`` (a transient 503 by default)."""
        self.calls += 1
        raise exc or ProviderUnavailable(
            "upstream down", provider=self.name, status=503
        )

    async def timeout(self) -> str:
        """Fail with the provider's own timeout error."""
        return await self.fail(ProviderTimeout("no answer", provider=self.name))

    async def reject(self) -> str:
        """Fail with a 400: the caller's fault."""
        return await self.fail(
            ProviderRejected("bad request", provider=self.name, status=400)
        )

    async def gated(self) -> str:
        """Wait for ``gate`` to be set before answering (a call in flight)."""
        self.calls += 1
        self.entered += 1
        await self.gate.wait()
        return f"{self.name}: ok"

    async def slow(self, seconds: float) -> str:
        """Take ``seconds`` of fake time, then answer."""
        self.calls += 1
        assert self.clock is not None, "a slow provider needs the FakeClock"
        self.clock.advance(seconds)
        return f"{self.name}: ok"

    async def scripted(self) -> str:
        """Pop the next scripted result: ``None`` succeeds, an exception is raised."""
        self.calls += 1
        step = self.script.pop(0) if self.script else None
        if step is not None:
            raise step
        return f"{self.name}: ok"


async def wait_until(condition: Callable[[], bool], *, limit: float = 5.0) -> None:
    """Let other tasks run until ``condition`` holds; no clock time passes meanwhile."""
    async with asyncio.timeout(limit):
        while not condition():  # noqa: ASYNC110 - polls state other tasks change
            await asyncio.sleep(0)


async def fail_times(breaker: CircuitBreaker, provider: Provider, n: int) -> None:
    """Make ``n`` failing calls through ``breaker`` (each must reach the provider)."""
    for _ in range(n):
        with contextlib.suppress(ProviderUnavailable):
            await breaker.call(provider.fail)


async def succeed_times(breaker: CircuitBreaker, provider: Provider, n: int) -> None:
    """Make ``n`` successful calls through ``breaker``."""
    for _ in range(n):
        await breaker.call(provider.ok)


async def rejected(breaker: CircuitBreaker, provider: Provider) -> CircuitOpenError:
    """Call once, expecting a rejection; return the ``CircuitOpenError``."""
    try:
        await breaker.call(provider.ok)
    except CircuitOpenError as exc:
        return exc
    msg = f"{breaker!r} let a call through"
    raise AssertionError(msg)


@contextlib.contextmanager
def real_backoff() -> Iterator[None]:
    """Outside testing mode (backoff waits really go through the clock), then restore."""
    previous = (testing.STATE.enabled, testing.STATE.attempts)
    testing.set_testing(False)
    try:
        yield
    finally:
        testing.STATE.enabled, testing.STATE.attempts = previous


@contextlib.asynccontextmanager
async def memory_registry(
    clock: Clock,
    *,
    log: MemoryEventLog | None = None,
    **settings: Any,
) -> AsyncIterator[BreakerRegistry]:
    """A registry on a ``MemoryEventLog``, closed (and flushed) afterwards."""
    registry = await BreakerRegistry.open(
        settings=make_settings(**settings),
        clock=clock,
        log=log if log is not None else MemoryEventLog(),
    )
    try:
        yield registry
    finally:
        await registry.aclose()


def sqlite_path(directory: Path) -> Path:
    """The event-log file inside ``directory``."""
    return directory / "breakers.db"


def sqlite_url(path: Path) -> str:
    """The async SQLAlchemy URL of an SQLite file."""
    return f"sqlite+aiosqlite:///{path}"


@contextlib.asynccontextmanager
async def sqlite_registry(
    path: Path, clock: Clock, **settings: Any
) -> AsyncIterator[BreakerRegistry]:
    """A registry on the SQLite file ``path`` (migrated on open), closed afterwards."""
    registry = await BreakerRegistry.open(
        sqlite_url(path), settings=make_settings(**settings), clock=clock
    )
    try:
        yield registry
    finally:
        await registry.aclose()


def sqlite_rows(path: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    """Run one query on the SQLite file with the standard library driver."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return list(conn.execute(sql, params))


def copy_log(log: MemoryEventLog) -> MemoryEventLog:
    """An independent copy of an in-memory log (events and snapshots)."""
    copy = MemoryEventLog(instance_id="replay")
    copy.events = list(log.events)
    copy.snapshots = dict(log.snapshots)
    return copy


async def replayed_fingerprint(
    log: MemoryEventLog, settings: Settings, clock: Clock, name: str
) -> dict[str, Any]:
    """Replay a copy of ``log`` into a fresh registry; the breaker's fingerprint."""
    registry = await BreakerRegistry.open(
        settings=settings, clock=clock, log=copy_log(log)
    )
    try:
        return registry.get(name).fingerprint()
    finally:
        await registry.aclose()


def per_call(events: Iterable[StoredEvent]) -> list[StoredEvent]:
    """Events with each outcome run repeated once per call it counts (audit order)."""
    return [e for e in events for _ in range(e.count)]


def call_kinds(events: Iterable[StoredEvent]) -> list[str]:
    """The kind of every call and transition, in order, runs expanded."""
    return [e.kind for e in per_call(events)]


def outcome_totals(log: MemoryEventLog, name: str) -> dict[str, int]:
    """Outcome events of ``name`` per kind, counting coalesced rows by their count."""
    totals: dict[str, int] = {}
    for event in log.events:
        if event.breaker == name and event.kind != "transition":
            totals[event.kind] = totals.get(event.kind, 0) + event.count
    return totals

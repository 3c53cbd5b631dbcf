"""PostgreSQL stopped mid-run: breakers keep protecting, events wait, nothing is lost.

These tests stop and restart the session's throwaway cluster (never an external
``BREAKER_TEST_POSTGRES_URL`` server); the fixture restarts it whatever happens, so
the other tests see a running server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pg import PostgresCluster, fresh_database
from sqlalchemy import func, select

from breaker_service import (
    BreakerRegistry,
    BreakerState,
    CircuitOpenError,
    EventLogError,
    FakeClock,
    ProviderUnavailable,
    Settings,
    load_settings,
)
from breaker_service.events.log import EventQuery
from breaker_service.events.schema import breaker_events as E  # noqa: N812
from breaker_service.events.sql import SqlEventLog, create_engine
from breaker_service.migrate import upgrade

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

BOUND = 30.0  # seconds: no step of these tests may hang longer than this
# Seconds a transition waits for the store before it is applied in memory only.
COMMIT_TIMEOUT = 0.5


@pytest.fixture
async def outage(
    postgres_cluster: PostgresCluster,
) -> AsyncIterator[tuple[PostgresCluster, str]]:
    """The throwaway cluster and a fresh database on it; the server runs again after."""
    postgres_cluster.ensure_running()
    # The cluster commits asynchronously for speed; an immediate stop is a crash, so
    # here a commit must survive it, as it does on a production server.
    async with fresh_database(
        postgres_cluster.url, prefix="outage", settings={"synchronous_commit": "on"}
    ) as url:
        try:
            yield postgres_cluster, url
        finally:
            await asyncio.to_thread(postgres_cluster.ensure_running)


def outage_settings(url: str) -> Settings:
    """Small threshold, short cooldown, and a buffer small enough to coalesce."""
    return load_settings(
        env_file=None,
        database_url=url,
        breaker_instance_id="outage-test",
        circuit_breaker_failure_threshold=3,
        circuit_breaker_success_threshold=1,
        circuit_breaker_timeout=30.0,
        event_log_buffer_max=100,
        event_log_flush_interval=0.005,
    )


async def succeed(registry: BreakerRegistry, name: str, times: int = 1) -> None:
    """``times`` successful calls through ``name``'s breaker."""
    breaker = registry.get(name)
    for _ in range(times):
        async with breaker.guard():
            pass


async def fail(registry: BreakerRegistry, name: str) -> None:
    """One transient failure through ``name``'s breaker."""
    with pytest.raises(ProviderUnavailable):
        async with registry.get(name).guard():
            raise ProviderUnavailable("upstream 503", provider=name, status=503)


async def stored_counts(url: str) -> dict[tuple[str, str], int]:
    """Events per (breaker, kind) in the database, counting coalesced rows by ``count``."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(E.c.breaker, E.c.kind, func.sum(E.c.count)).group_by(
                    E.c.breaker, E.c.kind
                )
            )
            return {(str(b), str(k)): int(n) for b, k, n in rows}
    finally:
        await engine.dispose()


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_breakers_survive_postgres_outage_and_backlog_is_flushed(
    outage: tuple[PostgresCluster, str], mode: str
) -> None:
    """Stop PostgreSQL mid-run: breakers protect in memory, then every event is written."""
    cluster, url = outage
    clock = FakeClock()
    settings = outage_settings(url)
    async with asyncio.timeout(BOUND):
        registry = await BreakerRegistry.open(settings=settings, clock=clock)
    registry.recorder.commit_timeout = COMMIT_TIMEOUT
    glm_calls = 0
    driving = True

    async def drive_glm() -> None:
        """Steady traffic on another breaker, across the stop."""
        nonlocal glm_calls
        while driving:
            await succeed(registry, "glm")
            glm_calls += 1
            await asyncio.sleep(0.001)

    try:
        async with asyncio.timeout(BOUND):
            await succeed(registry, "kimi", 50)
            assert await registry.flush()
            driver = asyncio.create_task(drive_glm())
            await asyncio.sleep(0.05)

            await asyncio.to_thread(cluster.stop, mode)  # mid-run: glm keeps calling

            for _ in range(3):
                await fail(registry, "kimi")
            kimi = registry.get("kimi")
            assert kimi.state is BreakerState.OPEN  # applied in memory, store down
            with pytest.raises(CircuitOpenError):
                async with kimi.guard():
                    pytest.fail("the provider must not be called while open")
            assert not await registry.flush()
            assert registry.degraded
            health = registry.health()
            assert health["degraded"]
            assert health["backlog"] > 0
            assert health["last_error"]

            await succeed(registry, "glm", 1000)  # past buffer_max in calls: runs
            glm_calls += 1000
            await asyncio.sleep(0.05)  # the flusher bounds the buffer meanwhile
            assert registry.recorder.backlog <= 100  # rows: a thousand calls in runs

            clock.advance(31)  # cooldown over while the store is still down
            await succeed(registry, "kimi")  # the trial call: half-open, then closed
            assert registry.get("kimi").state is BreakerState.CLOSED
            assert registry.degraded

            driving = False
            await driver
            await asyncio.to_thread(cluster.start)
            assert await registry.flush()
            assert not registry.degraded
            assert registry.health()["backlog"] == 0

            counts = await stored_counts(url)
            assert counts == {
                ("kimi", "success"): 51,
                ("kimi", "failure"): 3,
                ("kimi", "transition"): 3,
                ("glm", "success"): glm_calls,
            }
            history = await registry.history("kimi", kinds=["transition"])
            assert [(e.state_version, e.from_state, e.to_state) for e in history] == [
                (1, "closed", "open"),
                (2, "open", "half_open"),
                (3, "half_open", "closed"),
            ]
    finally:
        driving = False
        await registry.aclose()

    async with asyncio.timeout(BOUND):
        registry = await BreakerRegistry.open(
            settings=settings, clock=clock, migrate=False
        )
    try:
        kimi = registry.get("kimi")
        assert (kimi.state, kimi.version) == (BreakerState.CLOSED, 3)
        assert registry.get("glm").successes == glm_calls
    finally:
        await registry.aclose()


async def test_transition_while_down_is_committed_after_restart(
    outage: tuple[PostgresCluster, str],
) -> None:
    """A breaker that opens while PostgreSQL is down is still OPEN after a restart of the service."""
    cluster, url = outage
    clock = FakeClock()
    settings = outage_settings(url)
    async with asyncio.timeout(BOUND):
        registry = await BreakerRegistry.open(settings=settings, clock=clock)
        registry.recorder.commit_timeout = COMMIT_TIMEOUT
        try:
            await asyncio.to_thread(cluster.stop)
            for _ in range(3):
                await fail(registry, "kimi")
            assert registry.get("kimi").state is BreakerState.OPEN
            assert not await registry.flush()
            await asyncio.to_thread(cluster.start)
        finally:
            await registry.aclose()  # flushes the backlog now that the store is back

        clock.advance(5)
        registry = await BreakerRegistry.open(
            settings=settings, clock=clock, migrate=False
        )
        try:
            kimi = registry.get("kimi")
            assert kimi.state is BreakerState.OPEN
            assert kimi.retry_after == pytest.approx(25.0)
            assert not registry.degraded
        finally:
            await registry.aclose()


async def test_first_transition_after_an_idle_restart_is_committed(
    outage: tuple[PostgresCluster, str],
) -> None:
    """A restart while the registry is idle leaves no stale connection to fail the next commit."""
    cluster, url = outage
    clock = FakeClock()
    async with asyncio.timeout(BOUND):
        registry = await BreakerRegistry.open(
            settings=outage_settings(url), clock=clock
        )
        registry.recorder.commit_timeout = COMMIT_TIMEOUT
        try:
            await succeed(registry, "kimi", 5)
            assert await registry.flush()  # the pool now holds a connection
            await asyncio.to_thread(cluster.restart)
            for _ in range(3):
                await fail(registry, "kimi")
            assert registry.get("kimi").state is BreakerState.OPEN
            # The store is up: the transition was committed before it took effect.
            assert not registry.degraded
            assert registry.health()["backlog"] == 0
            history = await registry.history("kimi", kinds=["transition"])
            assert [e.to_state for e in history] == ["open"]
        finally:
            await registry.aclose()


async def test_sql_event_log_reports_outage_as_event_log_error(
    outage: tuple[PostgresCluster, str],
) -> None:
    """While PostgreSQL is down every call fails fast with EventLogError; then it works again."""
    cluster, url = outage
    engine = create_engine(url)
    await upgrade(engine)
    log = SqlEventLog(engine, instance_id="outage-test")
    row = ("kimi", "success", 0, 1_767_225_600.0, None, None, None, 1, None)
    try:
        async with asyncio.timeout(BOUND):
            await log.append([row])
            await asyncio.to_thread(cluster.stop, "immediate")
            with pytest.raises(EventLogError, match="event store ping failed"):
                await log.ping()
            with pytest.raises(EventLogError, match="event store append failed"):
                await log.append([row])
            with pytest.raises(EventLogError):
                await log.read(EventQuery())
            await asyncio.to_thread(cluster.start)
            await log.ping()  # no stale pooled connection survives the outage
            await log.append([row])
            assert len(await log.read(EventQuery())) == 2
    finally:
        await log.aclose()

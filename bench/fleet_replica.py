"""One replica process of ``bench_fleet.py``: JSON lines in on stdin, out on stdout.

    python bench/fleet_replica.py latency    URL REPLICA
    python bench/fleet_replica.py throughput URL REPLICA SCOPE TASKS BREAKERS
    python bench/fleet_replica.py raw        URL REPLICA TABLE BATCH LOCKED
    python bench/fleet_replica.py startup    URL REPLICA

Every mode prints ``{"ev": "ready", ...}`` once it is set up, then obeys commands
(``{"op": ...}``) line by line; ``{"op": "quit"}`` closes it cleanly. Times are
``time.time()`` (every process of the benchmark runs on one machine, one clock).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import json
import logging
import os
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

from breaker_service import (
    BreakerRegistry,
    CircuitBreaker,
    CircuitOpenError,
    ProviderUnavailable,
    TransitionRecord,
    load_settings,
)
from breaker_service.config import Settings

# A tripped breaker stays OPEN for the whole run (no half-open probe mid-episode).
LONG_OPEN = 3600.0
LATENCY_BREAKER = "fleet"
POLL_SECONDS = 0.0005  # how often the poller looks at the breaker's state
STUCK_SECONDS = 120.0  # aclose() taking longer than this is reported as a hang


def emit(**fields: Any) -> None:
    """One JSON line to the controller."""
    sys.stdout.write(json.dumps(fields, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def close(registry: BreakerRegistry, who: str) -> int:
    """``registry.aclose()``, rescuing a follower that ignored its cancellation.

    On Python 3.11 ``asyncio.wait_for`` swallows a cancellation that arrives as the
    awaited event is set (here: a NOTIFY at that instant), so the follower's loop,
    and ``aclose()`` waiting for it, would run forever. Cancelling again releases
    it; the count of such rescues is reported. Every task's stack is printed if
    closing still takes longer than ``STUCK_SECONDS``.
    """
    closing = asyncio.create_task(registry.aclose())
    rescued = 0
    started = time.monotonic()
    dumped = False
    while True:
        done, _ = await asyncio.wait({closing}, timeout=0.5)
        if done:
            closing.result()
            return rescued
        follower = registry.follower
        task = None if follower is None else getattr(follower, "_task", None)
        if task is not None and not task.done() and task.cancelling():
            task.cancel()
            rescued += 1
            print(f"{who}: the log follower ignored its cancellation", file=sys.stderr)
        if not dumped and time.monotonic() - started > STUCK_SECONDS:
            dumped = True
            print(f"{who}: still closing after {STUCK_SECONDS:g} s:", file=sys.stderr)
            for stuck in asyncio.all_tasks():
                stuck.print_stack(file=sys.stderr)


def settings_for(
    url: str, replica: str, scope: str = "shared", **values: Any
) -> Settings:
    """A replica's settings: its ids, the scope, and a cooldown longer than the run."""
    return load_settings(
        env_file=None,
        database_url=url,
        database_auto_migrate=False,  # the controller migrated the database
        breaker_scope=scope,
        breaker_instance_id=f"{replica}-{os.getpid()}",
        breaker_replica_id=replica,
        circuit_breaker_timeout=LONG_OPEN,
        circuit_breaker_max_timeout=LONG_OPEN,
        **values,
    )


async def commands() -> Any:
    """Yield the controller's commands (one JSON object a line) until stdin closes."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    while True:
        line = await reader.readline()
        if not line:
            return
        yield json.loads(line)


async def fail() -> None:
    """A transient provider failure."""
    raise ProviderUnavailable("bench failure", provider="bench", status=503)


async def io_fn() -> int:
    """A provider call that yields to the loop once, as real I/O would."""
    await asyncio.sleep(0)
    return 1


# -- propagation latency ---------------------------------------------------------------


class LostRaces(logging.Handler):
    """Counts transitions this replica tried to commit and lost to another writer."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "lost to another writer" in record.getMessage():
            self.count += 1


class LatencyReplica:
    """Trips or resets on command; reports every state change it sees, as it sees it."""

    def __init__(self, registry: BreakerRegistry, lost: LostRaces) -> None:
        self.registry = registry
        self.lost = lost
        self.breaker = registry.get(LATENCY_BREAKER)
        self.load: list[asyncio.Task[int]] = []
        self.committed: dict[
            int, float
        ] = {}  # state version -> when its append returned
        registry.add_listener(self.on_transition)
        # Instrumentation: note when the append carrying a transition of the breaker
        # returns (its commit), whoever called it (commit_transition or the flusher).
        original = registry.log.append

        async def append(*args: Any, **kwargs: Any) -> dict[str, int]:
            result = await original(*args, **kwargs)
            now = time.time()
            records = args[1] if len(args) > 1 else kwargs.get("transitions", ())
            for record in records:
                if record.breaker == LATENCY_BREAKER:
                    self.committed.setdefault(record.version, now)
            return result

        registry.log.append = append  # type: ignore[method-assign]

    def on_transition(self, b: CircuitBreaker, record: TransitionRecord) -> None:
        """Registry listener: a transition applied here (own or adopted)."""
        if b.name == LATENCY_BREAKER:
            emit(
                ev="seen",
                via="listener",
                t=time.time(),
                state=record.to_state,
                version=record.version,
            )

    async def poll(self) -> None:
        """Sees changes that bypass the listener too (a reload after a lost race)."""
        b = self.breaker
        last = (b.state, b.version)
        while True:
            now = (b.state, b.version)
            if now != last:
                emit(
                    ev="seen",
                    via="poll",
                    t=time.time(),
                    state=now[0].value,
                    version=now[1],
                )
                last = now
            await asyncio.sleep(POLL_SECONDS)

    async def trip(self, how: str) -> None:
        """Five failed calls (the failure threshold), or ``force_open``."""
        b = self.breaker
        t0 = time.time()
        if how == "force":
            await b.force_open("bench trip", actor="bench")
        else:
            for _ in range(b.settings.circuit_breaker_failure_threshold):
                try:
                    await b.call(fail)
                except ProviderUnavailable:
                    pass
                except CircuitOpenError:
                    break
        t1 = time.time()
        for _ in range(500):  # a commit slower than the call: wait for it (5 s at most)
            if b.version in self.committed:
                break
            await asyncio.sleep(0.01)
        last = b.last_transition
        emit(
            ev="tripped",
            t0=t0,
            t1=t1,
            committed=self.committed.get(b.version),
            at=None if last is None else last.at,
            state=b.state.value,
            version=b.version,
        )

    async def reset(self) -> None:
        """Back to CLOSED."""
        await self.breaker.reset("bench reset", actor="bench")
        emit(
            ev="reset",
            t=time.time(),
            state=self.breaker.state.value,
            version=self.breaker.version,
        )

    async def steady(self, b: CircuitBreaker, gap: float) -> int:
        """Successful calls, one every ``gap`` seconds, until cancelled."""
        made = 0
        try:
            while True:
                await b.call(io_fn)
                made += 1
                await asyncio.sleep(gap)
        except asyncio.CancelledError:
            return made

    def start_load(self, rate: float, tasks: int) -> None:
        """Background calls on ten other shared breakers, about ``rate`` a second."""
        gap = tasks / rate
        self.load.extend(
            asyncio.create_task(self.steady(self.registry.get(f"load-{i % 10}"), gap))
            for i in range(tasks)
        )
        emit(ev="loaded", t=time.time())

    async def stop_load(self) -> None:
        """Stop the background calls; report how many were made."""
        for task in self.load:
            task.cancel()
        made = sum(await asyncio.gather(*self.load))
        self.load.clear()
        emit(ev="unloaded", t=time.time(), calls=made)

    def status(self) -> None:
        """State and counters."""
        follower = self.registry.follower
        emit(
            ev="status",
            state=self.breaker.state.value,
            version=self.breaker.version,
            applied=0 if follower is None else follower.applied,
            written=self.registry.recorder.written,
            lost_races=self.lost.count,
        )


async def latency(url: str, replica: str) -> None:
    """Serve a ``LatencyReplica`` until ``quit``."""
    lost = LostRaces()
    events_logger = logging.getLogger("breaker_service.events")
    # WARNING reaches the counter; the stderr handler still shows errors only.
    events_logger.setLevel(logging.WARNING)
    events_logger.addHandler(lost)
    registry = await BreakerRegistry.open(url, settings=settings_for(url, replica))
    me = LatencyReplica(registry, lost)
    poller = asyncio.create_task(me.poll())
    follower = registry.follower
    assert follower is not None
    for _ in range(200):  # LISTEN is set up in the background: wait for it
        if follower.listening:
            break
        await asyncio.sleep(0.01)
    emit(ev="ready", listening=follower.listening, state=me.breaker.state.value)
    try:
        async for cmd in commands():
            op = cmd["op"]
            if op == "quit":
                break
            if op == "trip":
                await me.trip(str(cmd["how"]))
            elif op == "reset":
                await me.reset()
            elif op == "load":
                me.start_load(float(cmd["rate"]), int(cmd["tasks"]))
            elif op == "unload":
                await me.stop_load()
            elif op == "status":
                me.status()
    finally:
        for task in me.load:
            task.cancel()
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
        rescued = await close(registry, replica)
    emit(ev="closed", rescued=rescued)


# -- sustained events/s -----------------------------------------------------------------


async def throughput(
    url: str, replica: str, scope: str, *, tasks: int, breakers: int, batch: int
) -> None:
    """On ``go``: ``tasks`` tasks make successful guarded calls until ``until``, then
    aclose; the recorder writes at most ``batch`` events a transaction."""
    settings = settings_for(url, replica, scope, event_log_batch_size=batch)
    registry = await BreakerRegistry.open(url, settings=settings)
    guarded = [registry.get(f"tp-{i}") for i in range(breakers)]
    emit(ev="ready")
    loop = asyncio.get_running_loop()
    async for cmd in commands():
        if cmd["op"] == "quit":
            await close(registry, replica)
            break
        if cmd["op"] != "go":
            continue
        start_at, until = float(cmd["start_at"]), float(cmd["until"])
        await asyncio.sleep(max(0.0, start_at - time.time()))
        started = time.time()
        deadline = loop.time() + (until - started)

        async def worker(i: int, deadline: float = deadline) -> int:
            b = guarded[i % len(guarded)]
            made = 0
            while loop.time() < deadline:
                await b.call(io_fn)
                made += 1
            return made

        cpu0 = time.process_time()
        made = await asyncio.gather(*(worker(i) for i in range(tasks)))
        calls_done = time.time()
        backlog = registry.recorder.backlog
        follower = registry.follower
        applied = follower.applied if follower is not None else 0
        follow_lag = 0
        if follower is not None:
            follow_lag = max(0, await registry.log.last_id() - follower.after_id)
        rescued = await close(registry, replica)
        emit(
            ev="done",
            calls=sum(made),
            started=started,
            calls_done=calls_done,
            closed=time.time(),
            backlog=backlog,
            written=registry.recorder.written,
            coalesced=registry.recorder.coalesced,
            applied=applied,
            follow_lag=follow_lag,
            rescued=rescued,
            cpu=time.process_time() - cpu0,
        )
        break


# -- raw asyncpg reference -------------------------------------------------------------


RAW_COLUMNS = [
    "breaker",
    "stream",
    "kind",
    "state_version",
    "at",
    "instance_id",
    "count",
]


async def raw(url: str, replica: str, table: str, batch: int, how: str) -> None:
    """On ``go``: ``batch``-row batches into ``table`` until ``until``: ``plain``
    executemany, or ``locked`` (in a transaction with ``LOCK TABLE`` and
    ``pg_notify``, as the service writes), or ``copy`` (the same with COPY)."""
    import asyncpg  # noqa: PLC0415 - only this mode talks to asyncpg directly

    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    conn = await asyncpg.connect(dsn)
    sql = (
        f"INSERT INTO {table} (breaker, stream, kind, state_version, at, instance_id,"
        " count) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    )
    iid = f"{replica}-{os.getpid()}"
    emit(ev="ready")
    try:
        async for cmd in commands():
            if cmd["op"] == "quit":
                break
            if cmd["op"] != "go":
                continue
            start_at, until = float(cmd["start_at"]), float(cmd["until"])
            await asyncio.sleep(max(0.0, start_at - time.time()))
            started = time.time()
            cpu0 = time.process_time()
            rows = 0
            n = 0
            while time.time() < until:
                at = time.time()
                names = [f"tp-{(n + i) % 10}" for i in range(batch)]
                records = [(b, b, "success", 0, at, iid, 1) for b in names]
                n += batch
                if how == "plain":
                    await conn.executemany(sql, records)
                else:
                    async with conn.transaction():
                        await conn.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
                        if how == "copy":
                            await conn.copy_records_to_table(
                                table, records=records, columns=RAW_COLUMNS
                            )
                        else:
                            await conn.executemany(sql, records)
                        await conn.execute("SELECT pg_notify('bench_raw', $1)", str(n))
                rows += batch
            emit(
                ev="done",
                calls=rows,
                started=started,
                calls_done=time.time(),
                closed=time.time(),
                cpu=time.process_time() - cpu0,
            )
            break
    finally:
        await conn.close()


# -- start-up ----------------------------------------------------------------------------


async def startup(url: str, replica: str) -> None:
    """Time ``BreakerRegistry.open`` + materialising every breaker; report what came back."""
    settings = settings_for(url, replica)
    # Imports are a per-process cost, not the log's (and this environment may not
    # cache bytecode): load what ``open`` would import lazily before timing it.
    i0 = time.perf_counter()
    for module in (
        "asyncpg",
        "sqlalchemy.dialects.postgresql.asyncpg",
        "breaker_service.events.sql",
        "breaker_service.events.follower",
        "breaker_service.events.trials",
        "breaker_service.migrate",
    ):
        importlib.import_module(module)
    imports = time.perf_counter() - i0
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    gc.collect()
    t0 = time.perf_counter()
    registry = await BreakerRegistry.open(url, settings=settings)
    opened = time.perf_counter()
    breakers = registry.breakers()
    seconds = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    prints = {b.name: b.fingerprint() for b in breakers}
    # Where the time goes: the two reads of the replay, timed again on their own.
    r0 = time.perf_counter()
    snaps = await registry.log.load_snapshots()
    r1 = time.perf_counter()
    events = await registry.log.read_since_snapshots(snaps)
    r2 = time.perf_counter()
    rescued = await close(registry, replica)
    emit(
        ev="done",
        rescued=rescued,
        seconds=seconds,
        open_seconds=opened - t0,
        imports=imports,
        rss_before_mb=rss0 / 1024,
        rss_peak_mb=rss / 1024,
        snapshots=len(snaps),
        events_read=len(events),
        snapshot_read=r1 - r0,
        event_read=r2 - r1,
        prints=prints,
    )


def main(argv: list[str]) -> int:
    """Dispatch on the mode."""
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.ERROR)
    mode, url, replica, *rest = argv
    runners: dict[str, Callable[[], Any]] = {
        "latency": lambda: latency(url, replica),
        "throughput": lambda: throughput(
            url,
            replica,
            rest[0],
            tasks=int(rest[1]),
            breakers=int(rest[2]),
            batch=int(rest[3]),
        ),
        "raw": lambda: raw(url, replica, rest[0], int(rest[1]), rest[2]),
        "startup": lambda: startup(url, replica),
    }
    asyncio.run(runners[mode]())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""Fleet benchmarks on a real PostgreSQL: replicas sharing breaker state (issue 7).

Every replica is its own process (``bench/fleet_replica.py``); all of them run on
one machine, so their ``time.time()`` clocks are one clock.

* propagation: 4 replicas in shared scope; a breaker trips on one of them (five
  failed calls, or ``force_open``) and the others report when they see it OPEN;
  p50/p99 from the commit on the tripping replica to OPEN on each of the others;
* throughput: 4 replicas making successful guarded calls for a few seconds, then
  ``aclose()``: rows in ``breaker_events`` per second, against raw asyncpg batched
  inserts (``executemany`` of 1000-row batches) into a table like it;
* start-up: a replica joining a 1M-event log, with and without snapshots.

    python bench/bench_fleet.py             # full run, rewrites the "fleet" section
    python bench/bench_fleet.py --quick     # smoke run (< 60 s), prints only
    python bench/bench_fleet.py --no-write  # full run, prints only

PostgreSQL: a throwaway cluster from the server binaries (``tests/pg.py``), or the
server of ``BREAKER_BENCH_POSTGRES_URL`` (its user must be allowed to create
databases; each measurement gets a fresh one, dropped afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import json
import logging
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import asyncpg
from _report import machine_info, median, percentile, write_section
from pg import PostgresCluster, fresh_database

from breaker_service.config import normalize_database_url
from breaker_service.events.sql import create_engine
from breaker_service.migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent
REPLICA_SCRIPT = Path(__file__).resolve().parent / "fleet_replica.py"
URL_ENV = "BREAKER_BENCH_POSTGRES_URL"

# What the issue asks for.
TARGET_P99_MS = 100.0
TARGET_EVENTS_PER_S = 50_000
ISSUE_RAW_ROWS_PER_S = 86_000  # the issue's asyncpg batched-insert figure
ISSUE_EVENTSOURCING_PER_S = 1_500

LONG_OPEN = 3600.0
STUCK_SECONDS = 120.0  # a replica silent this long after its work is reported as hung
OPEN_STATES = {"open", "forced_open"}

# Replicas whose aclose() hung until the log follower was cancelled a second time,
# by mode (see fleet_replica.close).
RESCUED: collections.Counter[str] = collections.Counter()
SPAWNED: collections.Counter[str] = collections.Counter()


@dataclasses.dataclass(frozen=True)
class Plan:
    """How much work each measurement does."""

    replicas: int = 4
    episodes: int = 50
    loaded_episodes: int = 50
    episode_timeout: float = 5.0
    load_rate: float = 4000.0  # background calls/s per replica for the loaded series
    load_tasks: int = 10
    throughput_seconds: float = 5.0
    tasks: int = 50
    throughput_breakers: int = 10
    raw_batch: int = 1000
    big_batch: int = 5000  # EVENT_LOG_BATCH_SIZE of the last service run
    extra_runs: bool = True  # the long-log, big-batch and 1-process raw runs
    prefill_events: int = 1_000_000  # old events of the breakers already in the log
    startup_events: int = 1_000_000
    startup_breakers: int = 100
    startup_reps: int = 3


FULL = Plan()
QUICK = Plan(
    episodes=8,
    loaded_episodes=3,
    throughput_seconds=0.5,
    tasks=20,
    extra_runs=False,
    prefill_events=50_000,
    startup_events=50_000,
    startup_reps=1,
)

_STARTED = time.perf_counter()


def progress(phase: str) -> None:
    """Say which measurement runs, and since when the run started."""
    print(f"[{time.perf_counter() - _STARTED:6.1f} s] {phase}", file=sys.stderr)


# -- replica processes --------------------------------------------------------------------


def dsn_of(url: str) -> str:
    """The asyncpg DSN of an SQLAlchemy URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


class Replica:
    """One ``fleet_replica.py`` process: commands in, JSON events out."""

    def __init__(self, name: str, mode: str, proc: asyncio.subprocess.Process) -> None:
        self.name = name
        self.mode = mode
        self.proc = proc
        self.inbox: list[dict[str, Any]] = []
        self.ready: dict[str, Any] = {}
        self.eof = False
        self._changed = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def spawn(cls, mode: str, url: str, name: str, *args: object) -> Replica:
        """Start a replica process in ``mode``."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(REPLICA_SCRIPT),
            mode,
            url,
            name,
            *(str(a) for a in args),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
            limit=1 << 24,
        )
        SPAWNED[mode] += 1
        return cls(name, mode, proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                break
            try:
                message = json.loads(line)
                self.inbox.append(message)
                if message.get("rescued"):
                    RESCUED[self.mode] += int(message["rescued"])
            except json.JSONDecodeError:
                print(f"{self.name}: {line.decode(errors='replace')}", file=sys.stderr)
            self._changed.set()
        self.eof = True
        self._changed.set()

    async def send(self, **command: Any) -> None:
        """Write one command."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command).encode() + b"\n")
        await self.proc.stdin.drain()

    async def take(
        self, match: Callable[[dict[str, Any]], bool], within: float
    ) -> dict[str, Any]:
        """The first message matching ``match`` (removed from the inbox); waits for it
        up to ``within`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            for i, message in enumerate(self.inbox):
                if match(message):
                    del self.inbox[i]
                    return message
            if self.eof:
                msg = f"{self.name} exited (status {await self.proc.wait()})"
                raise RuntimeError(msg)
            self._changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def event(self, ev: str, within: float = 60.0) -> dict[str, Any]:
        """The next message of kind ``ev``."""
        return await self.take(lambda m: m.get("ev") == ev, within)

    async def finish(self, within: float = 60.0) -> int:
        """Close stdin and wait for the process to exit; kill it if it does not."""
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        try:
            code = await asyncio.wait_for(self.proc.wait(), within)
        except TimeoutError:
            self.proc.kill()
            code = await self.proc.wait()
        await self._reader
        return code


@contextlib.asynccontextmanager
async def fleet(
    mode: str, url: str, count: int, *args: object
) -> Any:  # AsyncIterator[list[Replica]]
    """``count`` replicas in ``mode``, ready; each is finished (or killed) on exit."""
    replicas = [
        await Replica.spawn(mode, url, f"replica-{i}", *args) for i in range(count)
    ]
    try:
        for r in replicas:
            r.ready = await r.event("ready", within=120)
        yield replicas
    finally:
        for r in replicas:
            with contextlib.suppress(Exception):
                await r.send(op="quit")
        codes = [await r.finish() for r in replicas]
        if any(codes):
            print(f"replica exit statuses: {codes}", file=sys.stderr)


async def migrated(url: str) -> None:
    """Bring ``url``'s database to the schema head (before the replicas start)."""
    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


# -- 1. propagation latency -------------------------------------------------------------


@dataclasses.dataclass
class Series:
    """Propagation of one kind of trip, over every episode and observer."""

    how: str
    load: str
    episodes: int
    latencies_ms: list[float] = dataclasses.field(default_factory=list)
    """An observer saw OPEN - the tripper's append of the transition returned (commit)."""
    from_record_ms: list[float] = dataclasses.field(default_factory=list)
    """An observer saw OPEN - the tripper decided (the record's stamp, pre-commit)."""
    commit_ms: list[float] = dataclasses.field(default_factory=list)
    """The tripper decided -> its append of the transition returned."""
    call_ms: list[float] = dataclasses.field(default_factory=list)
    """The tripper decided -> its trip call returned (the breaker OPEN there too)."""
    via_listener: int = 0
    via_reload: int = 0
    missed: int = 0
    transitions: int = 0
    lost_races: int = 0


def saw(states: set[str], version: int) -> Callable[[dict[str, Any]], bool]:
    """Matches a replica's report of a state in ``states`` at ``version`` or later."""

    def match(message: dict[str, Any]) -> bool:
        return (
            message.get("ev") == "seen"
            and message["state"] in states
            and int(message["version"]) >= version
        )

    return match


async def run_series(
    replicas: list[Replica],
    how: str,
    load: str,
    *,
    episodes: int,
    plan: Plan,
    rng: random.Random,
) -> Series:
    """``episodes`` trips (rotating the tripper), each followed by a reset."""
    series = Series(how, load, episodes)
    for k in range(episodes):
        tripper = replicas[k % len(replicas)]
        others = [r for r in replicas if r is not tripper]
        for r in replicas:
            r.inbox.clear()
        await asyncio.sleep(rng.uniform(0.02, 0.06))  # no lock-step with any timer
        await tripper.send(op="trip", how=how)
        tripped = await tripper.event("tripped", within=30)
        version = int(tripped["version"])
        assert tripped["state"] in OPEN_STATES, tripped
        decided = float(tripped["at"])
        committed = tripped["committed"]
        assert committed is not None, f"no commit seen for {tripped}"
        series.commit_ms.append((committed - decided) * 1000)
        series.call_ms.append((tripped["t1"] - decided) * 1000)
        for other in others:
            try:
                seen = await other.take(saw(OPEN_STATES, version), plan.episode_timeout)
            except TimeoutError:
                series.missed += 1
                continue
            series.latencies_ms.append((seen["t"] - committed) * 1000)
            series.from_record_ms.append((seen["t"] - decided) * 1000)
            if seen["via"] == "listener":
                series.via_listener += 1
            else:
                series.via_reload += 1
        await tripper.send(op="reset")
        reset = await tripper.event("reset", within=30)
        for other in others:
            await other.take(saw({"closed"}, int(reset["version"])), 30)
    return series


async def propagation(server_url: str, plan: Plan) -> tuple[list[Series], bool]:
    """Both kinds of trip on an idle 4-replica fleet, then trips under steady load.

    Checks that the log holds exactly one transition per trip and per reset.
    """
    rng = random.Random(7)
    async with fresh_database(server_url, prefix="fleet_lat") as url:
        await migrated(url)
        async with fleet("latency", url, plan.replicas) as replicas:
            listening = all(r.ready.get("listening") for r in replicas)
            results = []
            for how in ("failures", "force"):
                progress(f"propagation: {plan.episodes} trips by {how}, idle fleet")
                results.append(
                    await run_series(
                        replicas,
                        how,
                        "idle",
                        episodes=plan.episodes,
                        plan=plan,
                        rng=rng,
                    )
                )
            progress(
                f"propagation: {plan.loaded_episodes} trips by failures, each replica making"
                f" {plan.load_rate:g} background calls/s"
            )
            for r in replicas:
                await r.send(op="load", rate=plan.load_rate, tasks=plan.load_tasks)
            loaded = [await r.event("loaded") for r in replicas]
            await asyncio.sleep(1.0)  # let the load settle
            series = await run_series(
                replicas,
                "failures",
                "",
                episodes=plan.loaded_episodes,
                plan=plan,
                rng=rng,
            )
            for r in replicas:
                await r.send(op="unload")
            unloaded = [await r.event("unloaded") for r in replicas]
            span = max(u["t"] for u in unloaded) - min(lo["t"] for lo in loaded)
            rate = sum(int(u["calls"]) for u in unloaded) / span
            series.load = f"{rate:,.0f} events/s from the fleet"
            results.append(series)
            lost = 0
            for r in replicas:
                await r.send(op="status")
                lost += int((await r.event("status"))["lost_races"])
        conn = await asyncpg.connect(dsn_of(url))
        try:
            rows = await conn.fetch(
                "SELECT to_state, count(*) AS n FROM breaker_events"
                " WHERE kind = 'transition' GROUP BY to_state"
            )
        finally:
            await conn.close()
    moved = {str(r["to_state"]): int(r["n"]) for r in rows}
    # Exactly one transition per trip and per reset, however many replicas raced.
    trips = plan.episodes + plan.loaded_episodes
    assert moved.get("open", 0) == trips, moved
    assert moved.get("forced_open", 0) == plan.episodes, moved
    assert moved.get("closed", 0) == trips + plan.episodes, moved
    assert set(moved) == {"open", "forced_open", "closed"}, moved
    for one in results:
        one.transitions = one.episodes
    results[0].lost_races = lost  # force_open never races: every loss is a trip's
    return results, listening


# -- 2. sustained events/s --------------------------------------------------------------


@dataclasses.dataclass
class Run:
    """One write-throughput configuration."""

    label: str
    processes: int
    calls: int
    rows: int
    counted: int
    seconds: float  # the calling window
    elapsed: float  # from the common start to the last process done (flush included)
    cpu: list[float]
    backlog: int = 0
    applied: int = 0
    follow_lag: int = 0
    coalesced: int = 0
    prefilled: int = 0

    @property
    def lost(self) -> int:
        """Calls made whose event never reached the table (should be 0)."""
        return self.calls - self.counted

    @property
    def per_s(self) -> float:
        """Events (sum of counts) per second of wall time, final flush included."""
        return self.counted / self.elapsed


RAW_TABLE_DDL = """
CREATE TABLE {t} (
    id BIGSERIAL PRIMARY KEY,
    breaker VARCHAR(200) NOT NULL, stream VARCHAR(400) NOT NULL,
    kind VARCHAR(16) NOT NULL, state_version INTEGER NOT NULL,
    at DOUBLE PRECISION NOT NULL, instance_id VARCHAR(200) NOT NULL,
    from_state VARCHAR(16), to_state VARCHAR(16), reason TEXT, actor VARCHAR(200),
    detail VARCHAR(200), status INTEGER, duration DOUBLE PRECISION,
    count INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX ix_{t}_breaker_id ON {t} (breaker, id);
CREATE INDEX ix_{t}_stream_id ON {t} (stream, id);
CREATE INDEX ix_{t}_at ON {t} (at);
CREATE UNIQUE INDEX uq_{t}_transition_version ON {t} (stream, state_version)
    WHERE kind = 'transition';
"""


async def server_activity(url: str) -> str:
    """What every session of ``url``'s database is doing (for diagnosing a hang)."""
    conn = await asyncpg.connect(dsn_of(url))
    try:
        rows = await conn.fetch(
            "SELECT a.pid, a.state, a.wait_event_type, a.wait_event,"
            " now() - a.xact_start AS xact_age, left(a.query, 100) AS query,"
            " (SELECT string_agg(l.mode || CASE WHEN l.granted THEN '' ELSE ' (waiting)'"
            " END, ', ') FROM pg_locks l WHERE l.pid = a.pid"
            " AND l.relation = 'breaker_events'::regclass) AS locks"
            " FROM pg_stat_activity a"
            " WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return "\n".join(str(dict(r)) for r in rows)


async def timed_fleet(
    label: str,
    url: str,
    table: str,
    processes: int,
    seconds: float,
    *args: object,
    after_id: int = 0,
) -> Run:
    """Start ``processes`` replicas together, let them work, count what landed."""
    mode = "raw" if label.startswith("raw") else "throughput"
    async with fleet(mode, url, processes, *args) as replicas:
        start_at = time.time() + 0.3
        for r in replicas:
            await r.send(op="go", start_at=start_at, until=start_at + seconds)
        done: list[dict[str, Any]] = []
        for r in replicas:
            try:
                done.append(await r.event("done", within=seconds + STUCK_SECONDS))
            except TimeoutError:
                activity = await server_activity(url)
                print(f"{r.name} hangs; server sessions:\n{activity}", file=sys.stderr)
                raise
    conn = await asyncpg.connect(dsn_of(url))
    try:
        row = await conn.fetchrow(
            f"SELECT count(*) AS n, coalesce(sum(count), 0) AS c FROM {table}"
            " WHERE kind = 'success' AND id > $1",
            after_id,
        )
    finally:
        await conn.close()
    assert row is not None
    return Run(
        label=label,
        processes=processes,
        calls=sum(int(d["calls"]) for d in done),
        rows=int(row["n"]),
        counted=int(row["c"]),
        seconds=seconds,
        elapsed=max(float(d["closed"]) for d in done) - start_at,
        cpu=[float(d["cpu"]) for d in done],
        backlog=sum(int(d.get("backlog", 0)) for d in done),
        applied=sum(int(d.get("applied", 0)) for d in done),
        follow_lag=max(int(d.get("follow_lag", 0)) for d in done),
        coalesced=sum(int(d.get("coalesced", 0)) for d in done),
    )


async def prefill(url: str, events: int, breakers: int) -> int:
    """``events`` old successes of the benchmark's shared breakers, with snapshots
    (a log as a fleet that has run for a while leaves it); returns the last id."""
    conn = await asyncpg.connect(dsn_of(url))
    try:
        t0 = time.time() - 86400
        await conn.execute(
            "INSERT INTO breaker_events (breaker, stream, kind, state_version, at,"
            f" instance_id, count) SELECT 'tp-' || (g % {breakers}),"
            f" 'tp-' || (g % {breakers}), 'success', 0, {t0} + g * 0.001,"
            f" 'old-replica', 1 FROM generate_series(1, {events}) AS g"
        )
        await conn.execute(
            "INSERT INTO breaker_snapshots (stream, breaker, state, state_version,"
            " last_event_id, taken_at, instance_id, data) SELECT stream, breaker,"
            " 'closed', 0, max(id), extract(epoch FROM now()), 'old-replica',"
            " json_build_object('successes', count(*)) FROM breaker_events"
            " GROUP BY stream, breaker"
        )
        await conn.execute("ANALYZE breaker_events")
        return int(
            await conn.fetchval("SELECT coalesce(max(id), 0) FROM breaker_events")
        )
    finally:
        await conn.close()


async def throughput(server_url: str, plan: Plan) -> list[Run]:
    """The service (both scopes, a long log, bigger batches), then raw asyncpg."""
    runs: list[Run] = []
    n, secs = plan.replicas, plan.throughput_seconds
    batch = 1000  # the default EVENT_LOG_BATCH_SIZE
    configs = [("shared", 0, batch), ("instance", 0, batch)]
    if plan.extra_runs:
        configs += [
            ("shared", plan.prefill_events, batch),
            ("shared", 0, plan.big_batch),
        ]
    for scope, old, size in configs:
        label = f"service, {scope} scope"
        if old:
            label += f", on a {old:,}-event log"
        if size != batch:
            label += f", EVENT_LOG_BATCH_SIZE={size}"
        progress(f"throughput: {n} replicas, {label}, {secs:g} s")
        async with fresh_database(server_url, prefix="fleet_tp") as url:
            await migrated(url)
            after = await prefill(url, old, plan.throughput_breakers) if old else 0
            run = await timed_fleet(
                label,
                url,
                "breaker_events",
                n,
                secs,
                scope,
                plan.tasks,
                plan.throughput_breakers,
                size,
                after_id=after,
            )
            run.prefilled = old
            runs.append(run)
    raw_configs = [("executemany", 1, "plain")] if plan.extra_runs else []
    raw_configs += [
        ("executemany", n, "plain"),
        ("executemany + LOCK TABLE + NOTIFY", n, "locked"),
        ("COPY + LOCK TABLE + NOTIFY", n, "copy"),
    ]
    for label, processes, how in raw_configs:
        progress(
            f"throughput: raw asyncpg {label}, {processes} process(es), {secs:g} s"
        )
        async with fresh_database(server_url, prefix="fleet_raw") as url:
            conn = await asyncpg.connect(dsn_of(url))
            try:
                await conn.execute(RAW_TABLE_DDL.format(t="bench_raw"))
            finally:
                await conn.close()
            runs.append(
                await timed_fleet(
                    f"raw asyncpg {label}",
                    url,
                    "bench_raw",
                    processes,
                    secs,
                    "bench_raw",
                    plan.raw_batch,
                    how,
                )
            )
    return runs


# -- 3. start-up of a replica joining a big log -----------------------------------------


@dataclasses.dataclass
class Startup:
    """Start-up timings of a replica joining the log."""

    breakers: int
    events: int
    build_seconds: float
    with_snapshots: list[dict[str, Any]]
    without_snapshots: list[dict[str, Any]]

    @staticmethod
    def seconds(reps: list[dict[str, Any]], key: str = "seconds") -> list[float]:
        """One figure of every repetition."""
        return [float(r[key]) for r in reps]


def build_log_sql(events: int, breakers: int, now: float) -> tuple[list[str], int]:
    """Statements writing a consistent ``events``-row log of shared breakers.

    Four replicas' outcomes interleaved (a failure every 37th call of a breaker, never
    five in a row); every 10th breaker trips and recovers mid-log (OPEN, HALF_OPEN, two
    successful trials, CLOSED; later outcomes are at state version 3); every 25th ends
    OPEN with an hour's cooldown, tripped 5 s ago. Ids are explicit and in time order.
    """
    cycled = [b for b in range(breakers) if b % 10 == 0]
    tripped = [b for b in range(breakers) if b % 25 == 0]
    middle = 10 * len(cycled)  # 5 failures, 3 transitions, 2 successes each
    tail = 6 * len(tripped)  # 5 failures and a transition each
    outcomes = events - middle - tail
    first = outcomes // 2
    second = outcomes - first
    t0 = now - 3600.0
    step = 3000.0 / outcomes

    def name(expr: str) -> str:
        return f"'provider-' || lpad(({expr})::text, 3, '0')"

    cols = (
        "id, breaker, stream, kind, state_version, at, instance_id, from_state,"
        " to_state, reason, actor, detail, status, duration, count"
    )

    def outcome_rows(lo: int, count: int, id0: int, version_expr: str) -> str:
        b = f"(g % {breakers})"
        fail = f"((g / {breakers}) % 37 = 36)"
        return (
            f"INSERT INTO breaker_events ({cols}) SELECT {id0} + g - {lo}, "
            f"{name(b)}, {name(b)}, "
            f"CASE WHEN {fail} THEN 'failure' ELSE 'success' END, {version_expr}, "
            f"{t0} + g * {step}, 'replica-' || ((g / {breakers}) % 4) || '-1', "
            "NULL, NULL, NULL, NULL, "
            f"CASE WHEN {fail} THEN 'ProviderUnavailable' END, "
            f"CASE WHEN {fail} THEN 503 END, NULL, 1 "
            f"FROM generate_series({lo}, {lo + count - 1}) AS g"
        )

    statements = [outcome_rows(0, first, 1, "0")]
    # The mid-log cycles, breaker by breaker.
    at = t0 + first * step
    rows: list[str] = []
    for b in cycled:
        n = f"'provider-{b:03d}'"
        rows.extend(
            f"({n}, 'failure', 0, {at}, 'ProviderUnavailable', 503, NULL, NULL, NULL, NULL)"
            for _ in range(5)
        )
        rows.append(
            f"({n}, 'transition', 1, {at}, NULL, NULL, 'closed', 'open', "
            "'5 consecutive failures', 30.0)"
        )
        rows.append(
            f"({n}, 'transition', 2, {at + 30}, NULL, NULL, 'open', 'half_open', "
            "'cooldown of 30s elapsed', NULL)"
        )
        rows.extend(
            f"({n}, 'success', 2, {at + 30}, NULL, NULL, NULL, NULL, NULL, NULL)"
            for _ in range(2)
        )
        rows.append(
            f"({n}, 'transition', 3, {at + 30}, NULL, NULL, 'half_open', 'closed', "
            "'2 successful trial calls', NULL)"
        )
    id0 = first + 1
    statements.append(
        f"INSERT INTO breaker_events ({cols}) SELECT {id0} - 1 + row_number() OVER (), "
        "v.b, v.b, v.k, v.sv, v.at, 'replica-0-1', v.fs, v.ts, v.r, NULL, v.d, v.s, "
        "v.du, 1 FROM (VALUES " + ", ".join(rows) + ") AS v(b, k, sv, at, d, s, fs, ts,"
        " r, du)"
    )
    id0 += middle
    statements.append(
        outcome_rows(
            first,
            second,
            id0,
            f"CASE WHEN (g % {breakers}) % 10 = 0 THEN 3 ELSE 0 END",
        )
    )
    id0 += second
    rows = []
    at = now - 5.0
    for b in tripped:
        n = f"'provider-{b:03d}'"
        version = 4 if b % 10 == 0 else 1
        rows.extend(
            f"({n}, 'failure', {version - 1}, {at}, 'ProviderUnavailable', 503, NULL,"
            " NULL, NULL, NULL)"
            for _ in range(5)
        )
        rows.append(
            f"({n}, 'transition', {version}, {at}, NULL, NULL, 'closed', 'open', "
            f"'5 consecutive failures', {LONG_OPEN})"
        )
    statements.append(
        f"INSERT INTO breaker_events ({cols}) SELECT {id0} - 1 + row_number() OVER (), "
        "v.b, v.b, v.k, v.sv, v.at, 'replica-1-1', v.fs, v.ts, v.r, NULL, v.d, v.s, "
        "v.du, 1 FROM (VALUES " + ", ".join(rows) + ") AS v(b, k, sv, at, d, s, fs, ts,"
        " r, du)"
    )
    statements.append(
        "SELECT setval(pg_get_serial_sequence('breaker_events', 'id'),"
        " (SELECT max(id) FROM breaker_events))"
    )
    statements.append("ANALYZE breaker_events")
    return statements, events


async def join_once(url: str) -> dict[str, Any]:
    """One replica process joins the log; its timings and fingerprints."""
    replica = await Replica.spawn("startup", url, "replica-new")
    try:
        return await replica.event("done", within=600)
    finally:
        await replica.finish()


async def startup(server_url: str, plan: Plan) -> Startup:
    """Build the log, then time replicas joining it without, then with, snapshots."""
    progress(f"start-up: building a {plan.startup_events:,}-event log")
    async with fresh_database(server_url, prefix="fleet_start") as url:
        await migrated(url)
        b0 = time.perf_counter()
        statements, events = build_log_sql(
            plan.startup_events, plan.startup_breakers, time.time()
        )
        conn = await asyncpg.connect(dsn_of(url))
        try:
            for sql in statements:
                await conn.execute(sql)
            total = int(await conn.fetchval("SELECT count(*) FROM breaker_events"))
            assert total == events, (total, events)
            expected = {
                str(r["breaker"]): int(r["s"])
                for r in await conn.fetch(
                    "SELECT breaker, sum(count) AS s FROM breaker_events"
                    " WHERE kind = 'success' GROUP BY breaker"
                )
            }
            build = time.perf_counter() - b0
            without: list[dict[str, Any]] = []
            for i in range(plan.startup_reps):
                await conn.execute("DELETE FROM breaker_snapshots")
                progress(f"start-up without snapshots ({i + 1}/{plan.startup_reps})")
                without.append(await join_once(url))
            # The last replica's aclose() wrote a snapshot of every breaker.
            snaps = int(await conn.fetchval("SELECT count(*) FROM breaker_snapshots"))
            assert snaps == plan.startup_breakers, snaps
            with_snap: list[dict[str, Any]] = []
            for i in range(plan.startup_reps):
                progress(f"start-up with snapshots ({i + 1}/{plan.startup_reps})")
                with_snap.append(await join_once(url))
        finally:
            await conn.close()
    reference = without[0]["prints"]
    for rep in [*without, *with_snap]:
        prints = rep.pop("prints")
        assert prints == reference, "a replica restored different breakers"
    assert set(reference) == set(expected), sorted(set(reference) ^ set(expected))
    for name, fp in reference.items():
        b = int(name.rsplit("-", 1)[1])
        want = "open" if b % 25 == 0 else "closed"
        assert fp["state"] == want, (name, fp["state"])
        assert fp["successes"] == expected[name], (name, fp["successes"])
    return Startup(plan.startup_breakers, events, build, with_snap, without)


# -- report -----------------------------------------------------------------------------


def met(ok: bool) -> str:
    """A verdict cell."""
    return "met" if ok else "**missed**"


def ms(value: float) -> str:
    """Milliseconds, to a sensible precision."""
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def dist(values: Sequence[float]) -> tuple[str, str, str, str]:
    """p50, p90, p99 and max, formatted (dashes when empty)."""
    if not values:
        return ("-", "-", "-", "-")
    return (
        ms(percentile(values, 50)),
        ms(percentile(values, 90)),
        ms(percentile(values, 99)),
        ms(max(values)),
    )


def p99_of(series: Series) -> float:
    """The p99 from the commit, a missed observation counting as never (1e9 ms)."""
    values = list(series.latencies_ms) + [1e9] * series.missed
    return percentile(values, 99) if values else 1e9


@dataclasses.dataclass
class Results:
    """Everything measured in one run."""

    plan: Plan
    server: str
    propagation: list[Series]
    runs: list[Run]
    startup: Startup
    load: tuple[float, float]
    rescued: dict[str, int] = dataclasses.field(default_factory=dict)
    spawned: dict[str, int] = dataclasses.field(default_factory=dict)


def series_label(s: Series) -> str:
    """How the breaker was tripped, and under what load."""
    how = (
        "5 failed calls (CLOSED -> OPEN)"
        if s.how == "failures"
        else "`force_open` (-> FORCED_OPEN)"
    )
    return f"{how}, {s.load}"


def everyone_ms(s: Series) -> list[float]:
    """Decision -> OPEN on every replica, the tripper included (the issue's wording)."""
    return [*s.from_record_ms, *s.call_ms, *([1e9] * s.missed)]


def propagation_lines(res: Results) -> list[str]:
    """The propagation table."""
    plan = res.plan
    lines = [
        "### Propagation: a trip on one replica -> OPEN on the other three",
        "",
        f"{plan.replicas} replica processes in shared scope on one database;"
        f" {plan.episodes} episodes per idle row, {plan.loaded_episodes} loaded; the"
        " tripping replica rotating, each"
        " followed by a reset every replica sees before the next. An observer notes"
        " the time it sees OPEN (its registry transition listener; a 0.5 ms poll of"
        " `breaker.state` would catch changes that bypass the listener: *via reload*)."
        " *commit*: when the tripper's append carrying the transition returned;"
        " *decision*: the transition record's stamp, taken before the commit. The"
        f" loaded row adds {plan.load_tasks} tasks per replica making successful calls"
        f" on 10 other shared breakers, about {plan.load_rate:g} calls/s per replica.",
        "",
        "| trip | observations | commit -> seen p50 ms | p90 ms | p99 ms | max ms"
        " | decision -> seen p99 ms | decision -> commit p50 ms"
        " | decision -> OPEN on the tripper p50 / max ms | via listener / via reload"
        " | missed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in res.propagation:
        p50, p90, p99, top = dist(s.latencies_ms)
        rec = ms(percentile(s.from_record_ms, 99)) if s.from_record_ms else "-"
        commit = ms(median(s.commit_ms)) if s.commit_ms else "-"
        call = f"{ms(median(s.call_ms))} / {ms(max(s.call_ms))}" if s.call_ms else "-"
        lines.append(
            f"| {series_label(s)} | {len(s.latencies_ms)} | {p50} | {p90} | {p99}"
            f" | {top} | {rec} | {commit} | {call} | {s.via_listener} / {s.via_reload}"
            f" | {s.missed} |"
        )
    opens = sum(x.transitions for x in res.propagation if x.how == "failures")
    trips = sum(x.episodes for x in res.propagation if x.how == "failures")
    lines += [
        "",
        f"The log holds exactly one transition per trip and per reset ({opens} `open`"
        f" rows for {trips} trips by failures, checked). Transition commits that"
        " observers attempted and lost to the tripper (unique state version):"
        f" {res.propagation[0].lost_races}.",
    ]
    return lines


def throughput_lines(res: Results) -> list[str]:
    """The events/s table."""
    plan = res.plan
    raw_fleet = next(
        (
            r
            for r in res.runs
            if r.label == "raw asyncpg executemany" and r.processes > 1
        ),
        None,
    )
    lines = [
        "### Sustained events/s into PostgreSQL",
        "",
        f"Each service replica runs {plan.tasks} tasks making successful guarded calls"
        f" (`await breaker.call(fn)`, `fn` yields once) on {plan.throughput_breakers}"
        f" breakers for {plan.throughput_seconds:g} s, then `aclose()`s. events/s ="
        " rows written / (last process done - common start): the drain of what the"
        " callers produced faster than it could be written is included. *lost* ="
        " calls made - sum(count) of their rows. *unwritten*: events still buffered in"
        " the replicas (summed); *follower lag*: committed shared events the most"
        " behind follower had not applied yet."
        + (
            f" The long-log row starts with {plan.prefill_events:,} old events (and"
            " snapshots) of the same breakers."
            if plan.extra_runs
            else ""
        )
        + f" Raw rows: {plan.raw_batch}-row batches from asyncpg straight into a table"
        " with the same columns and indexes, as fast as they go (the issue measured"
        f" ~{ISSUE_RAW_ROWS_PER_S:,} rows/s for such batches, and"
        f" ~{ISSUE_EVENTSOURCING_PER_S:,} events/s for the `eventsourcing` library"
        " writing one event per transaction).",
        "",
        "| configuration | processes | calls / rows made | rows written | lost"
        " | elapsed s | events/s | of raw 4-process executemany"
        " | unwritten when the calls stopped | follower lag then | CPU s per process |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res.runs:
        share = f"{r.per_s / raw_fleet.per_s:.0%}" if raw_fleet else "-"
        cpu = ", ".join(f"{c:.1f}" for c in r.cpu)
        service = r.label.startswith("service")
        backlog = f"{r.backlog:,}" if service else "-"
        lag = f"{r.follow_lag:,}" if service and "shared" in r.label else "-"
        lost = f"**{r.lost:,}**" if r.lost else "0"
        lines.append(
            f"| {r.label} | {r.processes} | {r.calls:,} | {r.rows:,} | {lost}"
            f" | {r.elapsed:.2f} | {r.per_s:,.0f} | {share} | {backlog} | {lag}"
            f" | {cpu} |"
        )
    return lines


def startup_lines(res: Results) -> list[str]:
    """The start-up table."""
    s = res.startup
    lines = [
        f"### Start-up: a replica joining a {s.events:,}-event log",
        "",
        f"{s.breakers} shared breakers, outcomes of 4 replicas interleaved, every 10th"
        " breaker trips and recovers mid-log, every 25th ends OPEN (checked after each"
        " start, with the success counts; every start restores identical breakers)."
        f" Log built with `generate_series` in {s.build_seconds:.1f} s. Timed:"
        " `BreakerRegistry.open` (shared scope: replay, then the follower starts) +"
        " `registry.breakers()`, in a fresh process with the modules already imported;"
        f" median of {len(s.with_snapshots)}. The snapshots are the ones the previous"
        " replica's `aclose()` wrote.",
        "",
        "| log | median s | min s | max s | events replayed"
        " | replay read alone s (SQL + rows) | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, reps in (
        ("a snapshot per breaker", s.with_snapshots),
        ("no snapshots (full replay)", s.without_snapshots),
    ):
        secs = Startup.seconds(reps)
        lines.append(
            f"| {label} | {median(secs):.3f} | {min(secs):.3f} | {max(secs):.3f}"
            f" | {int(reps[0]['events_read']):,}"
            f" | {median(Startup.seconds(reps, 'event_read')):.3f}"
            f" | {median(Startup.seconds(reps, 'rss_peak_mb')):.0f} |"
        )
    return lines


def targets_lines(res: Results) -> list[str]:
    """Targets against what was measured."""
    lines = [
        "### Targets",
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
    ]
    for s in res.propagation:
        p99 = p99_of(s)
        lines.append(
            f"| trip -> OPEN on the other replicas, p99 <= {TARGET_P99_MS:g} ms after"
            f" the commit: {series_label(s)} | {ms(p99)} ms | {met(p99 <= TARGET_P99_MS)} |"
        )
    for s in res.propagation:
        p99 = percentile(everyone_ms(s), 99)
        lines.append(
            f"| the issue's reading: trip *decided* -> OPEN on *every* replica (the"
            f" tripper too), p99 <= {TARGET_P99_MS:g} ms: {series_label(s)}"
            f" | {ms(p99)} ms | {met(p99 <= TARGET_P99_MS)} |"
        )
    for r in res.runs:
        if r.label.startswith("service") and not r.prefilled and "BATCH" not in r.label:
            lines.append(
                f"| >= {TARGET_EVENTS_PER_S:,} events/s from {r.processes} replicas,"
                f" {r.label.removeprefix('service, ')} | {r.per_s:,.0f} events/s"
                f" | {met(r.per_s >= TARGET_EVENTS_PER_S)} |"
            )
    service = [r for r in res.runs if r.label.startswith("service")]
    lines.append(
        f"| every call's event in the log (sum(count) == calls) |"
        f" {sum(r.lost for r in service):,} lost of {sum(r.calls for r in service):,}"
        f" | {met(not any(r.lost for r in res.runs))} |"
    )
    closes, hung = sum(res.spawned.values()), sum(res.rescued.values())
    lines.append(
        f"| `BreakerRegistry.aclose()` returns on its own | {hung} of {closes}"
        f" replicas hung until their log follower was cancelled again | {met(not hung)} |"
    )
    joined = res.startup
    lines.append(
        f"| start-up joining a {joined.events:,}-event log (no target set) |"
        f" {median(Startup.seconds(joined.with_snapshots)):.3f} s with snapshots,"
        f" {median(Startup.seconds(joined.without_snapshots)):.3f} s without | - |"
    )
    return lines


def render(res: Results, info: str, analysis: list[str]) -> str:
    """The BENCHMARKS.md section."""
    lines = [
        "## Fleet on PostgreSQL (`bench/bench_fleet.py`)",
        "",
        f"Machine: {info}",
        "",
        f"PostgreSQL: {res.server}. Every process (the replicas, PostgreSQL, the"
        " controller) shares this machine's CPUs: slower than a fleet on separate"
        " hosts, faster than a durable server (fsync off)."
        f" Load average {res.load[0]:.2f} before the run, {res.load[1]:.2f} after.",
        "",
        *targets_lines(res),
        "",
        *propagation_lines(res),
        "",
        *throughput_lines(res),
        "",
        *startup_lines(res),
    ]
    if analysis:
        lines += ["", *analysis]
    lines += [
        "",
        "Reproduce: `python3 scripts/dev.py bench` (every benchmark) or"
        " `.venv/bin/python bench/bench_fleet.py` (`--quick`: a smoke run that writes"
        f" nothing; `{URL_ENV}`: use that server instead of a throwaway cluster).",
    ]
    return "\n".join(lines) + "\n"


def _run(res: Results, label: str) -> Run | None:
    return next((r for r in res.runs if r.label == label), None)


def analysis_lines(res: Results) -> list[str]:
    """What limits the figures, from this run's numbers."""
    lines = ["### What limits it", ""]
    idle = res.propagation[0]
    lines.append(
        f"* **Propagation** (idle: p99 {ms(p99_of(idle))} ms after the commit). The path"
        " is: commit on the tripper -> `NOTIFY` -> each follower wakes, reads the"
        " shared events after the last id it applied (one indexed `SELECT`) and"
        " adopts them -> the transition fires on its breaker. A missed notification"
        " would cost up to the follower's 1 s poll; none was missed here."
    )
    loaded = [x for x in res.propagation if x.load != "idle"]
    if loaded and loaded[0].call_ms:
        x = loaded[0]
        own = median(x.call_ms)
        text = (
            f"  Under load ({x.load}) the others still see the trip"
            f" {ms(p99_of(x))} ms after the commit at p99 ({ms(percentile(x.from_record_ms, 99))}"
            f" ms after the decision): the commit takes {ms(median(x.commit_ms))} ms"
            " (it queues behind the recorder's current flush, then for the table lock),"
            " and each follower reads and adopts every other replica's outcomes in id"
            " order before it reaches the transition."
        )
        if own > TARGET_P99_MS:
            text += (
                f" But the tripping replica applies its own trip only {ms(own)} ms"
                " after deciding it: `EventRecorder.commit_transition` waits for a"
                " `flush()` that keeps writing as long as callers keep refilling the"
                " buffer, so under steady traffic it returns only at `commit_timeout`"
                " (1 s), although the transition was committed in the first batch. For"
                " that second the tripper keeps sending calls to the failing provider"
                " while the rest of the fleet already rejects them."
            )
        lines.append(text)
    shared = _run(res, "service, shared scope")
    instance = _run(res, "service, instance scope")
    raw1 = next(
        (
            r
            for r in res.runs
            if r.label == "raw asyncpg executemany" and r.processes == 1
        ),
        None,
    )
    locked = _run(res, "raw asyncpg executemany + LOCK TABLE + NOTIFY")
    copied = _run(res, "raw asyncpg COPY + LOCK TABLE + NOTIFY")
    raw_fleet = next(
        (
            r
            for r in res.runs
            if r.label == "raw asyncpg executemany" and r.processes > 1
        ),
        None,
    )
    if shared and instance and locked and raw_fleet:
        verdict = " and ".join(
            f"{'meets' if r.per_s >= TARGET_EVENTS_PER_S else 'misses'}"
            f" {TARGET_EVENTS_PER_S:,} in {scope} scope"
            for r, scope in ((shared, "shared"), (instance, "instance"))
        )
        cpu = median([c for r in (shared, instance) for c in r.cpu])
        wall = median([shared.elapsed, instance.elapsed])
        text = (
            f"* **Events/s** ({shared.per_s:,.0f} shared, {instance.per_s:,.0f} instance"
            f" scope: {verdict}). Every append takes `LOCK TABLE"
            " breaker_events IN EXCLUSIVE MODE` so ids commit in order, which makes the"
            " fleet one writer at a time: raw `executemany` under the same lock and"
            f" `NOTIFY` reaches {locked.per_s:,.0f} rows/s from 4 processes, against"
            f" {raw_fleet.per_s:,.0f} without the lock"
            + (f" ({raw1.per_s:,.0f} from one process)" if raw1 else "")
            + ". The service's own work inside each locked transaction (SQL"
            " building, the last-id and snapshot queries, the round trips) takes it"
            " lower still. The replicas wait rather than compute: a median"
            f" {cpu:.1f} CPU s per replica over {wall:.0f} s of wall time."
        )
        if copied:
            text += (
                f" COPY inside the same lock reaches {copied.per_s:,.0f} rows/s: writing"
                " outcome batches with `copy_records_to_table` would shorten the lock"
                " hold the most."
            )
        big = next((r for r in res.runs if "BATCH_SIZE" in r.label), None)
        if big:
            gain = big.per_s / shared.per_s - 1
            effect = (
                "help"
                if gain > 0.1
                else "make no clear difference"
                if gain > -0.1
                else "did not help"
            )
            text += (
                f" Fewer, larger transactions {effect} ({big.label.split(', ')[-1]}:"
                f" {big.per_s:,.0f} events/s, {gain:+.0%})."
            )
        lines.append(text)
        over = max(r.backlog for r in res.runs if r.label.startswith("service"))
        lines.append(
            "  The callers outrun the writer: up to"
            f" {over:,} events per fleet were still buffered when the calls stopped"
            " (then written by `aclose()`, inside the elapsed time). Nothing bounds that"
            " buffer while the store answers (`EVENT_LOG_BUFFER_MAX` coalescing applies"
            " only when degraded), so a sustained overload grows memory without limit."
        )
    hung = sum(res.rescued.values())
    if hung:
        where = ", ".join(f"{n} in {mode}" for mode, n in sorted(res.rescued.items()))
        lines.append(
            f"* **Hung shutdowns** ({where}): `aclose()` waits for the log follower's"
            " task, which ignored its cancellation: on Python 3.11 `asyncio.wait_for`"
            " returns normally, swallowing the `CancelledError`, when the awaited"
            " `Event` is set at the same moment (here a `NOTIFY` from a busy fleet),"
            " and the follower's `while True` loop then runs forever. The benchmark"
            " cancels such a follower again so the run can finish; a service would"
            " hang at shutdown. `async with asyncio.timeout(...)` does not have"
            " this flaw."
        )
    st = res.startup
    with_s = median(Startup.seconds(st.with_snapshots))
    without = median(Startup.seconds(st.without_snapshots))
    read = median(Startup.seconds(st.without_snapshots, "event_read"))
    rss = median(Startup.seconds(st.without_snapshots, "rss_peak_mb"))
    lines.append(
        f"* **Start-up** ({with_s:.3f} s with snapshots, {without:.1f} s without). With"
        " a snapshot per breaker the replay reads nothing: a few indexed queries. A"
        f" full replay of {st.events:,} events is Python-bound: fetching them as"
        f" SQLAlchemy rows and building `StoredEvent`s alone takes {read:.1f} s (timed"
        " again on its own after the start),"
        f" and the whole log is held in memory at once (peak RSS {rss:.0f} MB). Snapshots"
        " are written every `EVENT_LOG_SNAPSHOT_EVERY` events and at shutdown, so only"
        " a first start on an old log pays this."
    )
    return lines


# -- main ---------------------------------------------------------------------------------


async def server_description(server_url: str, cluster: PostgresCluster | None) -> str:
    """The server's version and the settings that matter for these figures."""
    conn = await asyncpg.connect(dsn_of(server_url))
    try:
        version = str(await conn.fetchval("SHOW server_version"))
        settings = {
            name: str(await conn.fetchval(f"SHOW {name}"))
            for name in ("fsync", "synchronous_commit", "shared_buffers")
        }
    finally:
        await conn.close()
    where = (
        "a throwaway local cluster (`tests/pg.py`, data on tmpfs)"
        if cluster is not None
        else f"the server of `{URL_ENV}`"
    )
    shown = ", ".join(f"{k}={v}" for k, v in settings.items())
    return f"{version}, {where}, {shown}"


async def run(plan: Plan, server_url: str, cluster: PostgresCluster | None) -> Results:
    """Every measurement, each on a fresh database."""
    load_before = os.getloadavg()[0]
    server = await server_description(server_url, cluster)
    series, _ = await propagation(server_url, plan)
    runs = await throughput(server_url, plan)
    joined = await startup(server_url, plan)
    return Results(
        plan,
        server,
        series,
        runs,
        joined,
        (load_before, os.getloadavg()[0]),
        dict(RESCUED),
        {k: v for k, v in SPAWNED.items() if k != "raw"},
    )


def main(argv: list[str] | None = None) -> int:
    """Start (or find) PostgreSQL, run the benchmarks, print and write the section."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument(
        "--no-write", action="store_true", help="print only, leave BENCHMARKS.md alone"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    plan = QUICK if args.quick else FULL
    cluster: PostgresCluster | None = None
    given = os.environ.get(URL_ENV)
    if given:
        server_url = normalize_database_url(given)
    else:
        progress("starting a throwaway PostgreSQL cluster")
        cluster = PostgresCluster.create()
        server_url = cluster.url
    try:
        results = asyncio.run(run(plan, server_url, cluster))
    finally:
        if cluster is not None:
            cluster.cleanup()
    info = machine_info()
    if args.quick:
        info += " Quick smoke run (`--quick`): small counts, figures indicative only."
    section = render(results, info, analysis_lines(results))
    print(section)
    progress("done")
    if not (args.quick or args.no_write):
        write_section("fleet", section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

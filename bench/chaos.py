"""The seed's success metrics, measured against the local fault-injecting provider.

    python bench/chaos.py                 # full run, rewrites the "chaos" and "chaos-breaker" sections
    python bench/chaos.py --quick         # smoke run, prints only
    python bench/chaos.py --only breaker  # metric 7 alone (~4 min), rewrites "chaos-breaker"
    python bench/chaos.py --only breaker --set circuit_breaker_failure_threshold=10
    python bench/chaos.py --only orphans  # metric 8 alone, rewrites "chaos-orphans"
    python bench/chaos.py --only overhead # metric 2 alone, printed (issue 13)

``--set KEY=VALUE`` (repeatable) puts a setting on top of the seed's defaults for
metric 7's runs, so a changed breaker is measured against the same seeds.

Settings are the seed's defaults, pinned here so the environment cannot change them:
RETRY_MAX_ATTEMPTS=3, RETRY_BASE_DELAY=1, RETRY_MAX_DELAY=60, jitter on,
CIRCUIT_BREAKER_FAILURE_THRESHOLD=5, CIRCUIT_BREAKER_SUCCESS_THRESHOLD=2,
CIRCUIT_BREAKER_TIMEOUT=60; everything else (retry budget, half-open limits) is the
project's default.

Two kinds of figures:

* **real sockets**: the fault-injecting server (``breaker_service.providers.flaky``)
  runs in its own process (``bench/chaos_server.py``) on 127.0.0.1 and the client
  uploads 1 KiB files through ``UploadOrchestrator`` with the SQLite event log and
  upload table, as deployed.
* **simulated time**: backoffs, cooldowns and arrival gaps run on a ``VirtualClock``
  (``bench/chaos_clock.py``), a ``FakeClock`` whose ``sleep`` parks the caller until
  a discrete-event driver reaches its wake-up time. Metrics 1 and 5 combine both:
  every request really goes over a socket, but the 1-60 s waits between them are
  simulated, so a 1000-upload run takes seconds instead of minutes. Metrics 3 and 4
  simulate the provider in-process too. Metrics 2 and 6 (no faults, so no waits)
  are plain wall-clock on the system clock. Metric 7 (``bench/chaos_breaker.py``,
  issue 17) is real sockets with simulated waits and a simulated service time.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import math
import multiprocessing
import os
import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from _report import machine_info, median, percentile, write_section
from chaos_breaker import (
    BREAKER_FULL,
    BREAKER_QUICK,
    BreakerPlan,
    measure_breaker,
    report_breaker,
)
from chaos_clock import VirtualClock, run_open_loop
from chaos_orphans import (
    ORPHANS_FULL,
    ORPHANS_QUICK,
    measure_orphans,
    report_orphans,
)
from chaos_server import TRANSIENT_MIX, Endpoint, FlakyServers

from breaker_service.breaker import BreakerRegistry
from breaker_service.config import Settings, load_settings
from breaker_service.errors import CircuitOpenError, ProviderError, ProviderUnavailable
from breaker_service.events.memory import MemoryEventLog
from breaker_service.events.model import TransitionRecord
from breaker_service.events.sql import SqlEventLog
from breaker_service.migrate import ensure_schema
from breaker_service.providers.base import ProviderFile, UploadBody
from breaker_service.providers.catalog import http_client_for
from breaker_service.providers.flaky import free_port
from breaker_service.uploads import (
    MemoryUploadStore,
    SqlUploadStore,
    UploadOrchestrator,
)

SEED_DEFAULTS: dict[str, Any] = {
    "retry_max_attempts": 3,
    "retry_base_delay": 1.0,
    "retry_max_delay": 60.0,
    "retry_exponential_base": 2.0,
    "retry_jitter": True,
    "circuit_breaker_failure_threshold": 5,
    "circuit_breaker_success_threshold": 2,
    "circuit_breaker_timeout": 60.0,
}
KIMI_KEY = "bench-kimi-key"
GLM_KEY = "bench-glm-key"
FILE_BYTES = 1024
NOT_CLOSED = {"open", "half_open", "forced_open"}


@dataclass(frozen=True)
class Plan:
    """How much of everything one run measures."""

    files: int
    m1_uploads: int
    m1_seeds: int
    m1_interval: float
    m2_uploads: int
    m2_block: int
    m3_phases: int
    m3_lengths: int
    m4_seconds: float
    m4_seeds: int
    m4_sweep: tuple[float, ...]
    m4_sweep_seconds: float
    m5_uploads: int
    m5_interval: float
    m5_runs: int
    m6_uploads: int
    m6_runs: int
    m7: BreakerPlan


FULL = Plan(
    files=1000,
    m1_uploads=1000,
    m1_seeds=3,
    m1_interval=0.1,
    m2_uploads=400,
    m2_block=25,
    m3_phases=20,
    m3_lengths=21,
    m4_seconds=3600.0,
    m4_seeds=3,
    m4_sweep=(0.05, 0.10, 0.15, 0.20, 0.30),
    m4_sweep_seconds=1800.0,
    m5_uploads=150,
    m5_interval=0.45,
    m5_runs=3,
    m6_uploads=1000,
    m6_runs=3,
    m7=BREAKER_FULL,
)
QUICK = Plan(
    files=300,
    m1_uploads=100,
    m1_seeds=1,
    m1_interval=0.1,
    m2_uploads=100,
    m2_block=25,
    m3_phases=3,
    m3_lengths=3,
    m4_seconds=600.0,
    m4_seeds=1,
    m4_sweep=(0.15,),
    m4_sweep_seconds=300.0,
    m5_uploads=50,
    m5_interval=0.45,
    m5_runs=1,
    m6_uploads=150,
    m6_runs=1,
    m7=BREAKER_QUICK,
)


# -- shared pieces ---------------------------------------------------------------------


class Bench:
    """The scratch directory: small distinct files, one SQLite database per run."""

    def __init__(self, root: Path, count: int) -> None:
        self.root = root
        self.files_dir = root / "files"
        self.files_dir.mkdir()
        rng = random.Random(20260101)
        self.files: list[Path] = []
        for i in range(count):
            path = self.files_dir / f"doc-{i:05d}.bin"
            path.write_bytes(rng.randbytes(FILE_BYTES))
            self.files.append(path)
        self._runs = 0

    def settings(
        self,
        *,
        kimi_url: str,
        glm_url: str = "http://127.0.0.1:9",
        order: str = "kimi",
        **values: Any,
    ) -> Settings:
        """Settings for one run: a fresh database, the seed's defaults, ``values`` on top."""
        self._runs += 1
        return load_settings(
            env_file=None,
            database_url=f"sqlite+aiosqlite:///{self.root}/run-{os.getpid()}-{self._runs}.db",
            upload_allowed_dirs=str(self.files_dir),
            upload_provider_order=order,
            kimi_base_url=kimi_url,
            glm_base_url=glm_url,
            KIMI_API_KEY=KIMI_KEY,
            GLM_API_KEY=GLM_KEY,
            **{**SEED_DEFAULTS, **values},
        )


def seed_jitter(registry: BreakerRegistry, name: str, seed: int) -> None:
    """Make the backoff jitter of ``name`` reproducible (the registry has no rng option)."""
    registry.retry_policy(name)._rng = random.Random(seed)


def wilson(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """The 95 % Wilson score interval of a success rate."""
    if total == 0:
        return 0.0, 1.0
    p = successes / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def pct(value: float, digits: int = 1) -> str:
    """``0.1234`` as ``12.3 %``."""
    return f"{value * 100:.{digits}f} %"


def ms(seconds: float) -> str:
    """Seconds as milliseconds with two decimals."""
    return f"{seconds * 1000:.2f}"


def verdict(ok: bool) -> str:
    """Met or missed, for the tables."""
    return "**met**" if ok else "**missed**"


class SimProvider:
    """An in-process provider on simulated time: an outage window and a background error rate.

    Errors follow the fault server's transient mix (429 with and without Retry-After,
    500, 502, 503 x3, 504).
    """

    max_bytes = 1 << 30
    default_purpose = "file-extract"

    def __init__(
        self,
        name: str,
        clock: VirtualClock,
        *,
        error_rate: float = 0.0,
        seed: int = 0,
        down: tuple[float, float] | None = None,
    ) -> None:
        self.name = name
        self.clock = clock
        self.error_rate = error_rate
        self.rng = random.Random(seed)
        self.down = down
        self.calls = 0
        self._kinds = list(TRANSIENT_MIX)
        self._weights = [TRANSIENT_MIX[k] for k in self._kinds]

    @property
    def unavailable_reason(self) -> str | None:
        """Always available."""
        return None

    async def upload(
        self, body: Path | UploadBody, *, filename: str, purpose: str | None = None
    ) -> ProviderFile:
        """Succeed, or raise what the HTTP provider would raise for a 429/5xx reply."""
        self.calls += 1
        now = self.clock.monotonic()
        if self.down is not None and self.down[0] <= now < self.down[1]:
            msg = f"{self.name}: HTTP 503 server_error: provider is down"
            raise ProviderUnavailable(msg, provider=self.name, status=503)
        if self.error_rate and self.rng.random() < self.error_rate:
            kind = self.rng.choices(self._kinds, self._weights)[0]
            status = 429 if kind.startswith("429") else int(kind)
            after = 1.0 if kind == "429_retry_after" else None
            msg = f"{self.name}: HTTP {status}: injected"
            raise ProviderUnavailable(
                msg, provider=self.name, status=status, retry_after=after
            )
        return ProviderFile(
            provider=self.name,
            file_id=f"sim-{self.calls}",
            filename=filename,
            bytes=FILE_BYTES,
            purpose=purpose or self.default_purpose,
        )


def states_over(
    transitions: Sequence[tuple[float, str]], until: float
) -> dict[str, float]:
    """Seconds spent in each state from 0 to ``until`` (CLOSED at 0)."""
    spent: dict[str, float] = {}
    state, since = "closed", 0.0
    for at, to in transitions:
        if at >= until:
            break
        spent[state] = spent.get(state, 0.0) + at - since
        state, since = to, at
    spent[state] = spent.get(state, 0.0) + until - since
    return spent


# -- 1. upload success rate ------------------------------------------------------------


@dataclass(frozen=True)
class SuccessRun:
    """One metric-1 run."""

    rate: float
    resilient: bool
    seed: int
    uploads: int
    ok: int
    open_rejections: int
    errors: int
    requests: int
    trips: int
    budget_exhausted: int
    simulated: float

    @property
    def success(self) -> float:
        """Share of uploads that succeeded."""
        return self.ok / self.uploads


async def _success_run(
    bench: Bench,
    url: str,
    *,
    resilient: bool,
    seed: int,
    plan: Plan,
    opening: asyncio.Lock,
) -> tuple[Counter[str], int, int, float]:
    clock = VirtualClock()
    settings = bench.settings(kimi_url=url, resilience_enabled=resilient)
    trips = 0

    def on_transition(_breaker: object, record: TransitionRecord) -> None:
        nonlocal trips
        trips += record.to_state == "open"

    async with opening:  # migrations must not run concurrently (see the report)
        orch = await UploadOrchestrator.open(settings, clock=clock)
    async with orch:
        seed_jitter(orch.registry, "kimi", seed)
        orch.registry.add_listener(on_transition)

        async def job(i: int) -> str:
            try:
                await orch.upload(bench.files[i])
            except CircuitOpenError:
                return "open"
            except ProviderError:
                return "error"
            return "ok"

        start = clock.monotonic()
        arrivals = [i * plan.m1_interval for i in range(plan.m1_uploads)]
        outcomes = Counter(await run_open_loop(clock, arrivals, job))
        simulated = clock.monotonic() - start
        budget = orch.registry.retry_policy("kimi").budget
        exhausted = budget.exhausted if budget is not None else 0
    return outcomes, trips, exhausted, simulated


def measure_success(bench: Bench, plan: Plan) -> list[SuccessRun]:
    """Metric 1: success rate at 5/15/30 % transient faults, resilience off and on.

    The runs are independent and on simulated time, so they run concurrently, each
    against its own endpoint (its own seeded fault stream) of one server process.
    """
    configs = [
        (rate, resilient, seed)
        for rate in (0.05, 0.15, 0.30)
        for resilient in (False, True)
        for seed in range(1, plan.m1_seeds + 1)
        if seed == 1 or (resilient and rate == 0.15)  # repeat where the target is
    ]
    with FlakyServers(["kimi"] * len(configs)) as group:
        servers = group.endpoints
        for server, (rate, _resilient, seed) in zip(servers, configs, strict=True):
            server.reset(error_rate=rate, seed=1000 * seed + int(rate * 100))

        async def all_runs() -> list[tuple[Counter[str], int, int, float]]:
            opening = asyncio.Lock()
            return await asyncio.gather(
                *(
                    _success_run(
                        bench,
                        server.url,
                        resilient=on,
                        seed=seed,
                        plan=plan,
                        opening=opening,
                    )
                    for server, (_rate, on, seed) in zip(servers, configs, strict=True)
                )
            )

        results = asyncio.run(all_runs())
        requests = [int(s.stats()["stats"].get("requests", 0)) for s in servers]
    return [
        SuccessRun(
            rate=rate,
            resilient=resilient,
            seed=seed,
            uploads=plan.m1_uploads,
            ok=outcomes["ok"],
            open_rejections=outcomes["open"],
            errors=outcomes["error"],
            requests=sent,
            trips=trips,
            budget_exhausted=exhausted,
            simulated=simulated,
        )
        for (rate, resilient, seed), (
            outcomes,
            trips,
            exhausted,
            simulated,
        ), sent in zip(configs, results, requests, strict=True)
    ]


def report_success(runs: list[SuccessRun], plan: Plan) -> str:
    """Metric 1's section."""
    lines = [
        "### 1. Upload success rate under injected transient faults",
        "",
        f"Real sockets, simulated waits. {plan.m1_uploads} distinct 1 KiB uploads per run "
        f"arriving every {plan.m1_interval:g} simulated seconds (open loop: later uploads "
        "do not wait for earlier ones), to one provider (`UPLOAD_PROVIDER_ORDER=kimi`, "
        "no fallback) whose server fails each request with the given probability "
        "(429, 429 with `Retry-After: 1`, 500, 502, 503 x3, 504; seeded). "
        f"At 15 % with resilience on: median of {plan.m1_seeds} seeds (server faults "
        "and client jitter), range in brackets; other rows: one run with its 95 % "
        "Wilson interval. *Requests* counts what reached the server.",
        "",
        "| faults | resilience | success rate | 95 % interval / range | requests per upload | breaker trips | rejected by open breaker | retry budget exhausted | seed target | |",
        "| ---: | --- | ---: | --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for rate in (0.05, 0.15, 0.30):
        for resilient in (False, True):
            group = [r for r in runs if r.rate == rate and r.resilient == resilient]
            if not group:
                continue
            rates = [r.success for r in group]
            mid = median(rates)
            if len(group) == 1:
                low, high = wilson(group[0].ok, group[0].uploads)
                spread = f"{pct(low)}-{pct(high)}"
            else:
                spread = f"[{pct(min(rates))}-{pct(max(rates))}]"
            reqs = median([r.requests / r.uploads for r in group])
            trips = "/".join(str(r.trips) for r in group)
            rejected = "/".join(str(r.open_rejections) for r in group)
            exhausted = "/".join(str(r.budget_exhausted) for r in group)
            target, met = "-", ""
            if rate == 0.15 and resilient:
                target, met = ">= 99 %", verdict(mid >= 0.99)
            lines.append(
                f"| {rate * 100:.0f} % | {'on' if resilient else 'off'} | {pct(mid)} | {spread} | "
                f"{reqs:.2f} | {trips} | {rejected} | {exhausted} | {target} | {met} |"
            )
    lines += [
        "",
        "Per-seed columns list every seed's value. Without the breaker, three attempts "
        "would give 1 - p^3 (99.99 %, 99.66 %, 97.3 %); what falls short of that is "
        "uploads the breaker refused after five consecutive failed *attempts* opened it "
        "for 60 s, and retries the retry budget (20 % of requests) refused.",
    ]
    return "\n".join(lines)


# -- 2. retry overhead with no faults -------------------------------------------------


async def _open_memory_log_orchestrator(
    bench: Bench, url: str
) -> tuple[UploadOrchestrator, BreakerRegistry, SqlEventLog]:
    """Resilience on, the breaker event log in memory, uploads still recorded in SQLite."""
    settings = bench.settings(kimi_url=url)
    registry = await BreakerRegistry.open(settings=settings, log=MemoryEventLog())
    uploads_db = SqlEventLog.from_url(settings.database_url, instance_id="bench")
    await ensure_schema(uploads_db.engine, migrate=True)
    orch = await UploadOrchestrator.open(settings, registry=registry)
    orch.store = SqlUploadStore(uploads_db.engine, instance_id="bench")
    return orch, registry, uploads_db


@dataclass
class Overhead:
    """Metric 2: per mode, each round's upload latencies and its client CPU seconds."""

    rounds: dict[str, list[list[float]]]
    cpu: dict[str, list[float]]
    event_log: dict[str, Any] = dataclasses.field(default_factory=dict)


async def _overhead(bench: Bench, url: str, plan: Plan) -> Overhead:
    off = await UploadOrchestrator.open(
        bench.settings(kimi_url=url, resilience_enabled=False)
    )
    on = await UploadOrchestrator.open(bench.settings(kimi_url=url))
    batched = await UploadOrchestrator.open(
        bench.settings(kimi_url=url, event_log_flush_interval=0.25)
    )
    mem, mem_registry, mem_db = await _open_memory_log_orchestrator(bench, url)
    modes = {"off": off, "on": on, "on-flush250": batched, "on-memlog": mem}
    result = Overhead({name: [] for name in modes}, {name: [] for name in modes})
    try:
        warm = bench.files[-10:]
        for orch in modes.values():
            for path in warm:
                await orch.upload(path)
        names = list(modes)
        for r in range(plan.m2_uploads // plan.m2_block):
            order = names[r % len(names) :] + names[: r % len(names)]
            if r % 2:
                order.reverse()
            for name in order:
                latencies = []
                cpu = time.process_time()
                for i in range(r * plan.m2_block, (r + 1) * plan.m2_block):
                    started = time.perf_counter()
                    await modes[name].upload(bench.files[i])
                    latencies.append(time.perf_counter() - started)
                await asyncio.sleep(0.01)  # let this mode's background flush land here
                result.cpu[name].append(time.process_time() - cpu)
                result.rounds[name].append(latencies)
        await on.registry.flush()
        result.event_log = on.registry.health()
    finally:
        for orch in (off, on, batched, mem):
            await orch.aclose()
        await mem_registry.aclose()
        await mem_db.aclose()
    return result


def measure_overhead(bench: Bench, server: Endpoint, plan: Plan) -> Overhead:
    """Metric 2: per-upload latency with no faults, resilience off vs on, interleaved."""
    server.reset(error_rate=0.0, seed=2)
    return asyncio.run(_overhead(bench, server.url, plan))


def report_overhead(data: Overhead, plan: Plan) -> str:
    """Metric 2's section."""
    rounds = data.rounds
    flat = {
        name: [x for block in blocks for x in block] for name, blocks in rounds.items()
    }
    off_mean = statistics.fmean(flat["off"])
    off_p99 = percentile(flat["off"], 99)
    off_cpu = median(data.cpu["off"])

    def added(name: str) -> tuple[float, float, float]:
        ratios = [
            statistics.fmean(a) / statistics.fmean(b) - 1
            for a, b in zip(rounds[name], rounds["off"], strict=True)
        ]
        return (
            median(ratios),
            statistics.fmean(flat[name]) / off_mean - 1,
            percentile(flat[name], 99) / off_p99 - 1,
        )

    labels = {
        "off": "resilience off (`RESILIENCE_ENABLED=false`)",
        "on": "resilience on (retry + breaker, SQLite event log), as shipped",
        "on-flush250": "diagnostic: resilience on, `EVENT_LOG_FLUSH_INTERVAL=0.25`",
        "on-memlog": "diagnostic: resilience on, breaker event log in memory",
    }
    n_rounds = len(rounds["off"])
    lines = [
        "### 2. Retry overhead with no faults",
        "",
        f"Real sockets, wall clock (system clock). {plan.m2_uploads} sequential 1 KiB "
        f"uploads per mode, in {n_rounds} rounds of {plan.m2_block} with the modes "
        "interleaved in a rotating order, same server (0 % faults), one orchestrator per "
        "mode in one event loop, each with its own SQLite database. *Added* = relative "
        "to resilience off; *median round* is the median over rounds of the round's "
        "mean latency ratio (robust to load drifting during the run). *Client CPU* = "
        "this process's CPU time per upload (median round), which the other load on "
        "the machine disturbs far less than wall-clock latency.",
        "",
        "| mode | mean (ms) | p50 (ms) | p99 (ms) | added, median round | added, mean | added, p99 | client CPU per upload (ms) | added CPU |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in rounds:
        values = flat[name]
        cpu = median(data.cpu[name])
        cells = ["-", "-", "-", "-"]
        if name != "off":
            by_round, mean_added, p99_added = added(name)
            cells = [
                f"{by_round:+.1%}",
                f"{mean_added:+.1%}",
                f"{p99_added:+.1%}",
                f"{cpu / off_cpu - 1:+.1%}",
            ]
        lines.append(
            f"| {labels[name]} | {ms(statistics.fmean(values))} | {ms(percentile(values, 50))} | "
            f"{ms(percentile(values, 99))} | {' | '.join(cells[:3])} | "
            f"{ms(cpu / plan.m2_block)} | {cells[3]} |"
        )
    by_round, _mean_added, p99_added = added("on")
    health = data.event_log
    if health.get("degraded") or health.get("last_error"):
        lines += [
            "",
            f"**Warning**: the shipped mode's event log was degraded during the run "
            f"({health.get('last_error')}); its figures understate the event log's cost.",
        ]
    lines += [
        "",
        "| metric | value | seed target | |",
        "| --- | ---: | --- | --- |",
        f"| added mean latency (median round) | {by_round:+.1%} | < 5 % | {verdict(by_round < 0.05)} |",
        f"| added p99 latency | {p99_added:+.1%} | < 5 % | {verdict(p99_added < 0.05)} |",
        "",
        "The difference between the shipped mode and the in-memory diagnostic is the "
        "breaker event log: at one upload at a time, the 5 ms group commit writes each "
        "outcome in its own SQLite transaction (an INSERT and a `max(id)` query), as "
        "costly as recording the upload itself.",
    ]
    return "\n".join(lines)


# -- 3. mean time to recovery ---------------------------------------------------------


@dataclass(frozen=True)
class Recovery:
    """One metric-3 trial."""

    outage: float
    detect: float
    mttr: float
    failed_after_recovery: int
    probes: int


async def _recovery_trial(
    bench: Bench, down_at: float, outage: float, seed: int
) -> Recovery:
    clock = VirtualClock()
    settings = bench.settings(kimi_url="http://127.0.0.1:9")
    registry = await BreakerRegistry.open(
        settings=settings, clock=clock, log=MemoryEventLog()
    )
    start = clock.monotonic()
    provider = SimProvider(
        "kimi", clock, seed=seed, down=(start + down_at, start + down_at + outage)
    )
    orch = UploadOrchestrator(
        registry=registry,
        providers={"kimi": provider},
        store=MemoryUploadStore(),
        allowed_dirs=[bench.files_dir],
        order=["kimi"],
        clock=clock,
    )
    seed_jitter(registry, "kimi", seed)
    transitions: list[tuple[float, str]] = []
    registry.add_listener(
        lambda _b, record: transitions.append(
            (clock.monotonic() - start, record.to_state)
        )
    )
    recovered = down_at + outage

    async def job(i: int) -> tuple[float, bool]:
        arrived = clock.monotonic() - start
        try:
            await orch.upload(bench.files[0], force=True)
        except (CircuitOpenError, ProviderError):
            return arrived, False
        return arrived, True

    arrivals = [float(i) for i in range(int(recovered + 240))]  # 1 upload/s
    outcomes = await run_open_loop(clock, arrivals, job)
    await registry.aclose()
    opened = [t for t, s in transitions if s == "open" and t >= down_at]
    closed = [t for t, s in transitions if s == "closed" and t >= recovered]
    probes = sum(1 for t, s in transitions if s == "half_open" and t >= down_at)
    return Recovery(
        outage=outage,
        detect=opened[0] - down_at if opened else math.inf,
        mttr=closed[0] - recovered if closed else math.inf,
        failed_after_recovery=sum(
            1 for at, ok in outcomes if at >= recovered and not ok
        ),
        probes=probes,
    )


def measure_recovery(bench: Bench, plan: Plan) -> tuple[list[Recovery], list[Recovery]]:
    """Metric 3: 2-minute outages at several phases, then outages of 2 to 3 minutes."""
    phases = [
        asyncio.run(_recovery_trial(bench, 30.0 + 3.1 * k, 120.0, seed=k))
        for k in range(plan.m3_phases)
    ]
    step = 60.0 / max(1, plan.m3_lengths - 1)
    lengths = [
        asyncio.run(_recovery_trial(bench, 30.5, 120.0 + step * k, seed=100 + k))
        for k in range(plan.m3_lengths)
    ]
    return phases, lengths


def report_recovery(phases: list[Recovery], lengths: list[Recovery]) -> str:
    """Metric 3's section."""

    def row(label: str, trials: list[Recovery]) -> str:
        mttr = [t.mttr for t in trials]
        return (
            f"| {label} | {len(trials)} | {statistics.fmean(mttr):.1f} | {median(mttr):.1f} | "
            f"{min(mttr):.1f}-{max(mttr):.1f} | {median([t.detect for t in trials]):.1f} | "
            f"{median([float(t.failed_after_recovery) for t in trials]):.0f} |"
        )

    mean_2min = statistics.fmean(t.mttr for t in phases)
    mean_all = statistics.fmean(t.mttr for t in lengths)
    worst = max(t.mttr for t in (*phases, *lengths))
    return "\n".join(
        [
            "### 3. Mean time to recovery",
            "",
            "Simulated time, in-process provider (no sockets). One upload per simulated "
            "second through `UploadOrchestrator` (one provider, retries and breaker as "
            "configured, event log in memory); the provider answers 503 to everything "
            "during the outage and succeeds otherwise. MTTR = time from the provider's "
            "recovery to the breaker's transition to CLOSED. The 2-minute rows vary the "
            "outage start against the arrival ticks and the jitter seed; the sweep "
            "varies the outage length from 2 to 3 minutes, since a 120 s outage is a "
            "multiple of the 60 s cooldown and lands every probe just after recovery.",
            "",
            "| outage | trials | mean MTTR (s) | median (s) | min-max (s) | time to open (s) | uploads failed after recovery (median) |",
            "| --- | ---: | ---: | ---: | --- | ---: | ---: |",
            row("2 min", phases),
            row("2-3 min", lengths),
            "",
            "| metric | value | seed target | |",
            "| --- | ---: | --- | --- |",
            f"| mean MTTR, 2-minute outage | {mean_2min:.1f} s | < 60 s | {verdict(mean_2min < 60)} |",
            f"| mean MTTR, 2-3 minute outages | {mean_all:.1f} s | < 60 s | {verdict(mean_all < 60)} |",
            f"| worst MTTR seen | {worst:.1f} s | (< 60 s) | {verdict(worst < 60)} |",
            "",
            "The worst case is bounded by CIRCUIT_BREAKER_TIMEOUT plus "
            "CIRCUIT_BREAKER_SUCCESS_THRESHOLD arrivals: a probe that fails just before "
            "recovery reopens the breaker for another full 60 s.",
        ]
    )


# -- 4. false positives ------------------------------------------------------------------


@dataclass(frozen=True)
class FalsePositives:
    """One metric-4 run."""

    rate: float
    seed: int
    seconds: float
    calls: int
    open_share: float
    trips: int
    rejected: int
    failed: int


async def _false_positive_run(
    bench: Bench, rate: float, seed: int, seconds: float
) -> FalsePositives:
    clock = VirtualClock()
    settings = bench.settings(kimi_url="http://127.0.0.1:9")
    registry = await BreakerRegistry.open(
        settings=settings, clock=clock, log=MemoryEventLog()
    )
    seed_jitter(registry, "kimi", seed)
    provider = SimProvider("kimi", clock, error_rate=rate, seed=seed)
    start = clock.monotonic()
    transitions: list[tuple[float, str]] = []
    registry.add_listener(
        lambda _b, record: transitions.append(
            (clock.monotonic() - start, record.to_state)
        )
    )
    path = bench.files[0]

    async def job(_i: int) -> str:
        try:
            await registry.call("kimi", provider.upload, path, filename=path.name)
        except CircuitOpenError:
            return "open"
        except ProviderError:
            return "error"
        return "ok"

    arrivals = [i / 10 for i in range(int(seconds * 10))]  # 10 requests/s
    outcomes = Counter(await run_open_loop(clock, arrivals, job))
    await registry.aclose()
    spent = states_over(transitions, seconds)
    return FalsePositives(
        rate=rate,
        seed=seed,
        seconds=seconds,
        calls=len(arrivals),
        open_share=sum(v for k, v in spent.items() if k in NOT_CLOSED) / seconds,
        trips=sum(1 for _, s in transitions if s == "open"),
        rejected=outcomes["open"],
        failed=outcomes["error"],
    )


def measure_false_positives(bench: Bench, plan: Plan) -> list[FalsePositives]:
    """Metric 4: share of time the breaker is open while the provider is healthy."""
    runs = [
        asyncio.run(_false_positive_run(bench, 0.02, seed, plan.m4_seconds))
        for seed in range(1, plan.m4_seeds + 1)
    ]
    runs += [
        asyncio.run(_false_positive_run(bench, rate, 1, plan.m4_sweep_seconds))
        for rate in plan.m4_sweep
    ]
    return runs


def report_false_positives(runs: list[FalsePositives], plan: Plan) -> str:
    """Metric 4's section."""
    base = [r for r in runs if r.rate == 0.02]
    share = median([r.open_share for r in base])
    lines = [
        "### 4. Circuit breaker false positives",
        "",
        f"Simulated time, in-process provider, 10 requests/s through the resilient "
        "call (`registry.call`: retries around the breaker, event log in memory) "
        "against a provider that is healthy but fails each request with the given "
        "background rate (same transient mix as metric 1, seeded). *Open share* = "
        "share of the time the breaker was not CLOSED (OPEN or HALF_OPEN). The 2 % row: "
        f"{plan.m4_seconds / 60:g} simulated minutes per seed, median of {len(base)} "
        "seeds (per-seed values listed); the other rows, for context: "
        f"{plan.m4_sweep_seconds / 60:g} simulated minutes, one seed.",
        "",
        "| background error rate | open share | breaker trips | requests refused by the breaker | requests failed after retries |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    rates = sorted({r.rate for r in runs})
    for rate in rates:
        group = [r for r in runs if r.rate == rate]
        lines.append(
            f"| {rate * 100:.0f} % | {pct(median([r.open_share for r in group]), 3)} | "
            f"{'/'.join(str(r.trips) for r in group)} | "
            f"{'/'.join(str(r.rejected) for r in group)} of {group[0].calls} | "
            f"{'/'.join(str(r.failed) for r in group)} |"
        )
    lines += [
        "",
        "| metric | value | seed target | |",
        "| --- | ---: | --- | --- |",
        f"| open share at 2 % background errors | {pct(share, 3)} | < 1 % | {verdict(share < 0.01)} |",
    ]
    return "\n".join(lines)


# -- 5. outage with fallback ----------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One upload of metric 5."""

    ok: bool
    provider: str | None
    real: float
    waited: float

    @property
    def effective(self) -> float:
        """Real work plus simulated waits: the latency a caller would see."""
        return self.real + self.waited


async def _fallback_run(
    bench: Bench, settings: Settings, plan: Plan, seed: int
) -> list[Sample]:
    clock = VirtualClock()
    async with await UploadOrchestrator.open(settings, clock=clock) as orch:
        for name in ("kimi", "glm"):
            seed_jitter(orch.registry, name, seed)
        for path in bench.files[-5:]:  # warm the connection pool
            await orch.upload(path, provider="glm")

        async def job(i: int) -> Sample:
            task = asyncio.current_task()
            started, begun = time.perf_counter(), clock.monotonic()
            try:
                result = await orch.upload(bench.files[i])
            except (CircuitOpenError, ProviderError):
                ok, provider = False, None
            else:
                ok, provider = True, result.provider
            real = time.perf_counter() - started
            if task is not None:
                real -= clock.parked_real.pop(task, 0.0)
            return Sample(ok, provider, real, clock.monotonic() - begun)

        arrivals = [i * plan.m5_interval for i in range(plan.m5_uploads)]
        return await run_open_loop(clock, arrivals, job)


def measure_fallback(
    bench: Bench, kimi: Endpoint, glm: Endpoint, plan: Plan
) -> dict[str, list[list[Sample]]]:
    """Metric 5: kimi down (503, or refusing connections), glm healthy."""
    glm.reset(error_rate=0.0, seed=5)
    dead = f"http://127.0.0.1:{free_port()}"
    scenarios: dict[str, Callable[[], Settings]] = {
        "glm": lambda: bench.settings(kimi_url=kimi.url, glm_url=glm.url, order="glm"),
        "kimi-503": lambda: bench.settings(
            kimi_url=kimi.url, glm_url=glm.url, order="kimi,glm"
        ),
        "kimi-refused": lambda: bench.settings(
            kimi_url=dead, glm_url=glm.url, order="kimi,glm"
        ),
    }
    runs: dict[str, list[list[Sample]]] = {name: [] for name in scenarios}
    for r in range(plan.m5_runs):
        names = list(scenarios)
        for name in names[r % 3 :] + names[: r % 3]:
            kimi.reset(error_rate=0.0, down=name == "kimi-503", seed=50 + r)
            runs[name].append(
                asyncio.run(_fallback_run(bench, scenarios[name](), plan, r))
            )
    return runs


def report_fallback(runs: dict[str, list[list[Sample]]], plan: Plan) -> str:
    """Metric 5's section."""
    labels = {
        "glm": "glm alone (`UPLOAD_PROVIDER_ORDER=glm`)",
        "kimi-503": "kimi down (every request 503), fallback to glm",
        "kimi-refused": "kimi unreachable (connection refused), fallback to glm",
    }

    def stat(name: str, fn: Callable[[list[Sample]], float]) -> float:
        return median([fn(samples) for samples in runs[name]])

    def mean_of(attr: str) -> Callable[[list[Sample]], float]:
        return lambda s: statistics.fmean(getattr(x, attr) for x in s)

    def p99_of(attr: str) -> Callable[[list[Sample]], float]:
        return lambda s: percentile([getattr(x, attr) for x in s], 99)

    base_real = stat("glm", mean_of("real"))
    base_eff = stat("glm", mean_of("effective"))
    base_eff99 = stat("glm", p99_of("effective"))
    lines = [
        "### 5. Provider outage with fallback",
        "",
        f"Real sockets, simulated waits: two endpoints of one server process "
        f"(kimi-flavoured, glm-flavoured), {plan.m5_uploads} uploads per run arriving every "
        f"{plan.m5_interval:g} simulated seconds, {plan.m5_runs} runs per scenario with the scenarios "
        "interleaved, each run with a fresh orchestrator (so each pays the cost of "
        "discovering the outage). Latencies are medians over runs of each run's mean "
        "or p99. *Real* = wall-clock time spent working (sockets, SQLite, hashing), "
        "with simulated waits taken out; *waits* = simulated backoff time; "
        "*effective* = real + waits, what a caller would wait with a real clock.",
        "",
        "| scenario | success | sent to glm | real mean (ms) | real p99 (ms) | waits mean (ms) | effective mean (ms) | effective p99 (ms) | added effective mean | added real mean |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    verdicts = []
    for name, name_runs in runs.items():
        samples = [s for run in name_runs for s in run]
        success = sum(s.ok for s in samples) / len(samples)
        to_glm = sum(s.provider == "glm" for s in samples) / len(samples)
        real, eff = stat(name, mean_of("real")), stat(name, mean_of("effective"))
        added = "-" if name == "glm" else f"+{ms(eff - base_eff)} ms"
        added_real = "-" if name == "glm" else f"{real / base_real - 1:+.1%}"
        lines.append(
            f"| {labels[name]} | {pct(success, 2)} | {pct(to_glm)} | {ms(real)} | "
            f"{ms(stat(name, p99_of('real')))} | {ms(stat(name, mean_of('waited')))} | "
            f"{ms(eff)} | {ms(stat(name, p99_of('effective')))} | {added} | {added_real} |"
        )
        if name != "glm":
            verdicts.append(
                f"| success, {labels[name]} | {pct(success, 2)} | 100 % | {verdict(success == 1.0)} |"
            )
            verdicts.append(
                f"| added effective latency (mean / p99), {labels[name]} | "
                f"+{ms(eff - base_eff)} / +{ms(stat(name, p99_of('effective')) - base_eff99)} ms | "
                "(none set) | |"
            )
    lines += ["", "| metric | value | seed target | |", "| --- | ---: | --- | --- |"]
    lines += verdicts
    lines += [
        "",
        "Only the first uploads of a run (until five kimi failures open its breaker) "
        "and one upload per 60 s cooldown (the half-open probe) try kimi; "
        "the rest skip it at once.",
    ]
    return "\n".join(lines)


# -- 6. throughput ---------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """One metric-6 run: wall-clock, and the client's and the server's CPU time."""

    wall: float
    cpu: float
    server_cpu: float = 0.0


async def _raw_httpx(bench: Bench, settings: Settings, url: str, n: int) -> Timing:
    gate = asyncio.Semaphore(32)
    async with http_client_for(settings) as client:
        for path in bench.files[-5:]:
            await _post(client, url, path)

        async def one(path: Path) -> None:
            async with gate:
                await _post(client, url, path)

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one(p) for p in bench.files[:n]))
        return Timing(time.perf_counter() - started, time.process_time() - cpu)


async def _post(client: httpx.AsyncClient, url: str, path: Path) -> None:
    with path.open("rb") as stream:
        reply = await client.post(
            f"{url}/v1/files",
            files={"file": (path.name, stream, "application/octet-stream")},
            data={"purpose": "file-extract"},
            headers={"Authorization": f"Bearer {KIMI_KEY}"},
        )
    reply.raise_for_status()


async def _orchestrated(bench: Bench, settings: Settings, n: int) -> Timing:
    async with await UploadOrchestrator.open(settings) as orch:
        for path in bench.files[-5:]:
            await orch.upload(path)
        started, cpu = time.perf_counter(), time.process_time()
        items = await orch.upload_many(bench.files[:n], concurrency=32)
        timing = Timing(time.perf_counter() - started, time.process_time() - cpu)
    failed = [i for i in items if not i.ok]
    if failed:
        msg = f"{len(failed)} orchestrated uploads failed: {failed[0].error!r}"
        raise RuntimeError(msg)
    return timing


def measure_throughput(
    bench: Bench, server: Endpoint, plan: Plan
) -> dict[str, list[Timing]]:
    """Metric 6: wall-clock of n uploads at concurrency 32, orchestrator vs raw httpx."""
    server.reset(error_rate=0.0, seed=6)
    contenders: dict[str, Callable[[], Coroutine[Any, Any, Timing]]] = {
        "raw": lambda: _raw_httpx(
            bench, bench.settings(kimi_url=server.url), server.url, plan.m6_uploads
        ),
        "orchestrator": lambda: _orchestrated(
            bench, bench.settings(kimi_url=server.url), plan.m6_uploads
        ),
    }
    times: dict[str, list[Timing]] = {name: [] for name in contenders}
    for r in range(plan.m6_runs):
        for name in ["raw", "orchestrator"] if r % 2 == 0 else ["orchestrator", "raw"]:
            server.reset()
            before = server.server_cpu()
            timing = asyncio.run(contenders[name]())
            # includes the 5 warm-up uploads and two admin calls: a slight overestimate
            used = server.server_cpu() - before
            times[name].append(Timing(timing.wall, timing.cpu, used))
    return times


def report_throughput(times: dict[str, list[Timing]], plan: Plan) -> str:
    """Metric 6's section."""
    raw = median([t.wall for t in times["raw"]])
    labels = {
        "raw": "raw httpx (shared `AsyncClient`, same settings, multipart)",
        "orchestrator": "`UploadOrchestrator.upload_many` (resilience on)",
    }
    lines = [
        "### 6. Throughput",
        "",
        f"Real sockets, wall clock. {plan.m6_uploads} distinct 1 KiB uploads at "
        f"concurrency 32 to one server process (0 % faults); {plan.m6_runs} runs of "
        "raw httpx and of the orchestrator, alternating; medians. The raw client is "
        "`http_client_for(settings)` (the orchestrator's own client factory) posting "
        "the same multipart body under an `asyncio.Semaphore(32)`. The orchestrator "
        "also validates each path, hashes the file, looks it up for de-duplication "
        "and records the upload in SQLite. *Client CPU* is the benchmark process's CPU "
        "time per upload (all its threads), *server CPU* the server process's; "
        "*server busy* = server CPU / wall-clock, near 100 % when the single-process "
        "server is the bottleneck.",
        "",
        "| contender | wall-clock (s) | runs (s) | uploads/s | client CPU per upload (ms) | server CPU per upload (ms) | server busy | vs raw |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, values in times.items():
        mid = median([t.wall for t in values])
        cpu = median([t.cpu for t in values]) / plan.m6_uploads
        server = median([t.server_cpu for t in values]) / plan.m6_uploads
        busy = median([t.server_cpu / t.wall for t in values])
        lines.append(
            f"| {labels[name]} | {mid:.2f} | {', '.join(f'{t.wall:.2f}' for t in values)} | "
            f"{plan.m6_uploads / mid:.0f} | {ms(cpu)} | {ms(server)} | {pct(busy, 0)} | "
            f"{mid / raw:.2f}x |"
        )
    ratio = median([t.wall for t in times["orchestrator"]]) / raw
    cpu_ratio = median([t.cpu for t in times["orchestrator"]]) / median(
        [t.cpu for t in times["raw"]]
    )
    lines += [
        "",
        "| metric | value | seed target | |",
        "| --- | ---: | --- | --- |",
        f"| orchestrator / raw httpx wall-clock | {ratio:.2f}x | <= 1.2x | {verdict(ratio <= 1.2)} |",
        f"| orchestrator / raw httpx client CPU per upload | {cpu_ratio:.2f}x | (none set) | |",
        "",
        "Client and server share two CPUs (with whatever else runs on the machine): "
        "while the server is the bottleneck the wall-clock ratio stays near 1x; when "
        "the client is, it follows the client CPU ratio, the steadier of the two "
        "figures from run to run.",
    ]
    return "\n".join(lines)


def simulate(
    bench: Bench, plan: Plan
) -> tuple[tuple[list[Recovery], list[Recovery]], list[FalsePositives]]:
    """Metrics 3 and 4 (in-process simulations), for a worker process."""
    logging.getLogger("breaker_service").setLevel(logging.CRITICAL)
    return measure_recovery(bench, plan), measure_false_positives(bench, plan)


# -- main ----------------------------------------------------------------------------------


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``["key=value", ...]`` as settings values; every key must be a ``Settings`` field."""
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().lower()
        if not sep or key not in Settings.model_fields:
            msg = f"--set {pair!r}: expected KEY=VALUE, KEY a setting such as circuit_breaker_failure_threshold"
            raise SystemExit(msg)
        values[key] = value.strip()
    return values


def breaker_section(
    markdown: str, *, load_before: str, total: float, quick: bool
) -> str:
    """The "chaos-breaker" section: metric 7 with the machine it ran on."""
    return "\n".join(
        [
            "## Chaos: breaker on vs off (issue 17)",
            "",
            "`bench/chaos.py` metric 7 (`python bench/chaos.py --only breaker`), the "
            "seed's defaults as in the chaos section. "
            f"Machine: {machine_info()}; load average {load_before} before the run and "
            f"{os.getloadavg()[0]:.1f} after it. Metric 7: {total:.0f} s"
            + (" (`--quick`)." if quick else "."),
            "",
            markdown,
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Measure all seven metrics, print the sections, and (unless quick) write them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run, no write")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--only",
        choices=["breaker", "orphans", "overhead"],
        help="run metric 7 (issue 17), 8 (issue 15) or 2 (printed only) alone",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting on top of the seed's for metric 7 (repeatable)",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    overrides = parse_overrides(args.set)
    write = not (args.quick or args.no_write)
    logging.getLogger("breaker_service").setLevel(logging.CRITICAL)
    logging.getLogger("breaker_service.uploads").setLevel(logging.CRITICAL)
    began = time.perf_counter()
    load_before = f"{os.getloadavg()[0]:.1f}"
    timings: dict[str, float] = {}

    def timed(label: str, fn: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        value = fn()
        timings[label] = time.perf_counter() - started
        print(f"  {label}: {timings[label]:.1f} s", flush=True)
        return value

    def breaker_markdown(bench: Bench) -> str:
        runs = timed(
            "7 breaker on vs off",
            lambda: measure_breaker(bench, plan.m7, overrides),
        )
        return breaker_section(
            report_breaker(runs, plan.m7, overrides),
            load_before=load_before,
            total=timings["7 breaker on vs off"],
            quick=args.quick,
        )

    if args.only == "orphans":
        orphan_plan = ORPHANS_QUICK if args.quick else ORPHANS_FULL
        with tempfile.TemporaryDirectory(prefix="chaos-") as scratch:
            bench = Bench(Path(scratch), orphan_plan.uploads)
            runs = timed(
                "8 orphans",
                lambda: measure_orphans(bench.files, bench.root, orphan_plan),
            )
        markdown = report_orphans(runs, orphan_plan)
        print(markdown)
        if write:
            path = write_section("chaos-orphans", markdown)
            print(f"\nwrote the chaos-orphans section of {path}")
        return 0

    if args.only == "overhead":  # part of the combined section: printed, not written
        with (
            tempfile.TemporaryDirectory(prefix="chaos-") as scratch,
            FlakyServers(["kimi"]) as servers,
        ):
            bench = Bench(Path(scratch), plan.files)
            overhead = timed(
                "2 overhead",
                lambda: measure_overhead(bench, servers.endpoints[0], plan),
            )
        print(report_overhead(overhead, plan))
        return 0

    if args.only == "breaker":
        with tempfile.TemporaryDirectory(prefix="chaos-") as scratch:
            markdown = breaker_markdown(Bench(Path(scratch), plan.m7.files))
        print(markdown)
        if write:
            path = write_section("chaos-breaker", markdown)
            print(f"\nwrote the chaos-breaker section of {path}")
        return 0

    with tempfile.TemporaryDirectory(prefix="chaos-") as scratch:
        bench = Bench(Path(scratch), max(plan.files, plan.m7.files))
        # Simulated-time work first: its results do not depend on timing, so the
        # in-process simulations (3, 4) run in a second process meanwhile.
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(1, mp_context=spawn) as pool:
            simulated = pool.submit(simulate, bench, plan)
            success = timed("1 success rate", lambda: measure_success(bench, plan))
            recovery, false_pos = timed("3+4 simulations", simulated.result)
        breaker = breaker_markdown(bench)
        # Then the timing-sensitive measurements, one at a time.
        with FlakyServers(["kimi", "glm"]) as servers:
            kimi, glm = servers.endpoints
            overhead = timed("2 overhead", lambda: measure_overhead(bench, kimi, plan))
            fallback = timed(
                "5 fallback", lambda: measure_fallback(bench, kimi, glm, plan)
            )
            throughput = timed(
                "6 throughput", lambda: measure_throughput(bench, kimi, plan)
            )
    total = time.perf_counter() - began
    sections = [
        "## Chaos: the seed's success metrics",
        "",
        "`bench/chaos.py` against the local fault-injecting provider, with the seed's "
        "defaults (RETRY_MAX_ATTEMPTS=3, RETRY_BASE_DELAY=1 s, RETRY_MAX_DELAY=60 s, "
        "full jitter, CIRCUIT_BREAKER_FAILURE_THRESHOLD=5, "
        "CIRCUIT_BREAKER_SUCCESS_THRESHOLD=2, CIRCUIT_BREAKER_TIMEOUT=60 s; the "
        "project's own additions at their defaults: RETRY_BUDGET_RATIO=0.2 with 3 "
        "retries always allowed, one half-open trial call). The server runs in a "
        "separate process; the client's 1-60 s backoffs and cooldowns run on simulated "
        "time where faults are injected (metrics 1, 3, 4, 5), so every figure keeps the "
        "real delays' effect without waiting them out. Each table says which figures "
        "are real-socket wall-clock and which are simulated.",
        "",
        f"Machine: {machine_info()}; load average {load_before} before the run and "
        f"{os.getloadavg()[0]:.1f} after it (other work shared the machine). "
        f"Whole run: {total:.0f} s" + (" (`--quick`)." if args.quick else "."),
        "",
        report_success(success, plan),
        "",
        report_overhead(overhead, plan),
        "",
        report_recovery(*recovery),
        "",
        report_false_positives(false_pos, plan),
        "",
        report_fallback(fallback, plan),
        "",
        report_throughput(throughput, plan),
    ]
    markdown = "\n".join(sections)
    print(markdown)
    print()
    print(breaker)
    if write:
        path = write_section("chaos", markdown)
        write_section("chaos-breaker", breaker)
        print(f"\nwrote the chaos and chaos-breaker sections of {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

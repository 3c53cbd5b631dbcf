"""Metric 7 of ``bench/chaos.py``: breaker on vs off, bursts, an outage and its recovery (issue 17).

Real sockets, simulated waits, as metric 1: the fault server runs in its own process
on 127.0.0.1 and every upload goes through ``UploadOrchestrator.upload`` (SQLite
event log and upload table). Three things the server cannot do on simulated time
are played by ``SimTransport``, the HTTP client's transport: each request takes a
simulated service time (0.2-0.6 s, seeded) after its real round trip, and during
a "refused" outage requests really go to a closed port on 127.0.0.1, during a
"hang" outage they wait the 60 s read timeout on the simulated clock and raise
``httpx.ReadTimeout``. Error bursts and 503 outages are switched on the server at
simulated times (``PUT /admin/faults``); simulated time only moves when every
upload is parked, so a switch lands exactly when scheduled.

*Breaker off* is ``RESILIENCE_CIRCUIT_BREAKER_ENABLED=false`` with retries on, so
the difference is the breaker's alone. ``overrides`` (``chaos.py --set KEY=VALUE``)
apply to every run, so a changed library is measured with the same seeds.
"""

from __future__ import annotations

import asyncio
import functools
import math
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx
from chaos_clock import VirtualClock, run_open_loop
from chaos_server import Endpoint, FlakyServers

from breaker_service.config import ResilienceSettings, Settings
from breaker_service.errors import CircuitOpenError, ProviderError
from breaker_service.events.model import TransitionRecord
from breaker_service.providers.flaky import free_port
from breaker_service.uploads import UploadOrchestrator

__all__ = [
    "BREAKER_FULL",
    "BREAKER_QUICK",
    "BreakerPlan",
    "measure_breaker",
    "report_breaker",
]

SERVICE = (0.2, 0.6)  # simulated seconds per request, uniform
READ_TIMEOUT = 60.0  # HTTP_READ_TIMEOUT, what a hung request costs
CONCURRENCY = 8  # UPLOAD_MAX_CONCURRENCY, the issue's batch
BUDGET_OFF = 10_000  # RETRY_BUDGET_MIN_CONCURRENCY large enough to never refuse
WAVE = 10  # runs played concurrently against as many endpoints
BUDGET_SEEDS = 3  # seeds of the budget variants (and of the default row they face)


class Scratch(Protocol):
    """What ``chaos.Bench`` offers: distinct files and per-run settings."""

    files: list[Path]

    def settings(self, *, kimi_url: str, **values: Any) -> Settings:
        """Settings for one run (fresh database, the seed's defaults, ``values`` on top)."""
        ...


@dataclass(frozen=True)
class BreakerPlan:
    """How much metric 7 measures."""

    files: int
    seeds: int
    rates: tuple[float, ...]
    stream_seconds: float
    outage_seeds: int


BREAKER_FULL = BreakerPlan(
    files=200,
    seeds=5,
    rates=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5),
    stream_seconds=300.0,
    outage_seeds=2,
)
BREAKER_QUICK = BreakerPlan(
    files=200, seeds=1, rates=(0.0, 0.3, 0.5), stream_seconds=120.0, outage_seeds=1
)


class SimTransport(httpx.AsyncBaseTransport):
    """Real requests with a simulated service time; refused or hanging outages on demand."""

    def __init__(self, clock: VirtualClock, seed: int) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._clock = clock
        self._rng = random.Random(seed)
        self._dead_port = free_port()
        self.mode: Literal["normal", "refused", "hang"] = "normal"
        self.sent: list[float] = []
        """Simulated time of every request sent (or refused, or hung)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send it (or play the outage), then wait the service time on the clock."""
        self.sent.append(self._clock.monotonic())
        if self.mode == "hang":
            await self._clock.sleep(READ_TIMEOUT)
            msg = "emulated hang: no reply within the read timeout"
            raise httpx.ReadTimeout(msg, request=request)
        if self.mode == "refused":
            request.url = request.url.copy_with(port=self._dead_port)
            return await self._inner.handle_async_request(request)
        response = await self._inner.handle_async_request(request)
        await response.aread()
        await self._clock.sleep(self._rng.uniform(*SERVICE))
        return response

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._inner.aclose()


Action = Callable[[Endpoint, SimTransport], None]


@dataclass(frozen=True)
class Workload:
    """A batch (``files`` at concurrency 8) or a stream (``rate`` per second for ``seconds``)."""

    files: int = 0
    rate: float = 0.0
    seconds: float = 0.0
    schedule: tuple[tuple[float, Action], ...] = ()


@dataclass(frozen=True)
class Config:
    """One run: faults, breaker on or off, settings on top of the seed's, the workload."""

    label: str
    seed: int
    error_rate: float
    breaker: bool
    workload: Workload
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Run:
    """What one run saw: each upload's arrival and outcome, requests, transitions."""

    config: Config
    arrivals: list[tuple[float, str]]
    requests: list[float]
    transitions: list[tuple[float, str]]
    budget_refused: int

    def count(self, outcome: str) -> int:
        """Uploads that ended with ``outcome`` (ok, open, error)."""
        return sum(1 for _, o in self.arrivals if o == outcome)

    @property
    def opens(self) -> int:
        """Times the breaker opened."""
        return sum(1 for _, s in self.transitions if s == "open")


async def _run(
    scratch: Scratch,
    endpoint: Endpoint,
    config: Config,
    overrides: dict[str, Any],
    opening: asyncio.Lock,
) -> Run:
    clock = VirtualClock()
    transport = SimTransport(clock, config.seed)
    settings = scratch.settings(
        kimi_url=endpoint.url,
        resilience_circuit_breaker_enabled=config.breaker,
        **{**overrides, **config.values},
    )
    async with opening:  # migrations must not run concurrently
        orch = await UploadOrchestrator.open(settings, clock=clock, transport=transport)
    start = clock.monotonic()
    transitions: list[tuple[float, str]] = []

    def on_transition(_breaker: object, record: TransitionRecord) -> None:
        transitions.append((clock.monotonic() - start, record.to_state))

    async with orch:
        orch.registry.retry_policy("kimi")._rng = random.Random(config.seed)
        orch.registry.add_listener(on_transition)
        for at, action in config.workload.schedule:
            clock.call_at(start + at, functools.partial(action, endpoint, transport))

        async def upload(i: int) -> tuple[float, str]:
            arrived = clock.monotonic() - start
            try:
                # streams outlast the file list: re-send files, skipping de-duplication
                await orch.upload(scratch.files[i % len(scratch.files)], force=True)
            except CircuitOpenError:
                return arrived, "open"
            except ProviderError:
                return arrived, "error"
            return arrived, "ok"

        work = config.workload
        if work.files:
            queue = iter(range(work.files))

            async def worker(_w: int) -> list[tuple[float, str]]:
                return [await upload(i) for i in queue]

            done = await run_open_loop(clock, [0.0] * CONCURRENCY, worker)
            arrivals = [a for chunk in done for a in chunk]
        else:
            times = [i / work.rate for i in range(int(work.seconds * work.rate))]
            arrivals = await run_open_loop(clock, times, upload)
        budget = orch.registry.retry_policy("kimi").budget
        refused = budget.exhausted if budget is not None else 0
    return Run(
        config=config,
        arrivals=arrivals,
        requests=[t - start for t in transport.sent],
        transitions=transitions,
        budget_refused=refused,
    )


def _play(
    scratch: Scratch, configs: list[Config], overrides: dict[str, Any]
) -> list[Run]:
    """Every config against its own endpoint, ``WAVE`` at a time, each with its own seed."""
    runs: list[Run] = []
    with FlakyServers(["kimi"] * min(WAVE, len(configs))) as group:
        for first in range(0, len(configs), WAVE):
            wave = configs[first : first + WAVE]
            for endpoint, config in zip(group.endpoints, wave, strict=False):
                endpoint.reset(
                    error_rate=config.error_rate,
                    seed=1000 * config.seed + round(config.error_rate * 100),
                )

            async def play(wave: list[Config] = wave) -> list[Run]:
                opening = asyncio.Lock()
                return list(
                    await asyncio.gather(
                        *(
                            _run(scratch, endpoint, config, overrides, opening)
                            for endpoint, config in zip(
                                group.endpoints, wave, strict=False
                            )
                        )
                    )
                )

            runs += asyncio.run(play())
    return runs


# -- the scenarios ------------------------------------------------------------------------


def _set_error_rate(rate: float) -> Action:
    def action(endpoint: Endpoint, _transport: SimTransport) -> None:
        endpoint.configure(error_rate=rate)

    return action


def _burst_schedule(
    period: float, length: float, seconds: float, seed: int
) -> tuple[tuple[float, Action], ...]:
    phase = random.Random(seed).uniform(0, period)
    steps: list[tuple[float, Action]] = []
    at = phase
    while at < seconds:
        steps.append((at, _set_error_rate(1.0)))
        steps.append((at + length, _set_error_rate(0.05)))
        at += period
    return tuple(steps)


OutageKind = Literal["503", "refused", "hang"]


def _outage_schedule(
    kind: OutageKind, start: float, end: float, after: float
) -> tuple[tuple[float, Action], ...]:
    def down(endpoint: Endpoint, transport: SimTransport) -> None:
        if kind == "503":
            endpoint.configure(down=True)
        else:
            transport.mode = kind

    def up(endpoint: Endpoint, transport: SimTransport) -> None:
        transport.mode = "normal"
        endpoint.configure(down=False, error_rate=after)

    return ((start, down), (end, up))


OUTAGES: list[tuple[str, OutageKind, float]] = [
    ("503, then healthy", "503", 0.0),
    ("503, then 30 % faults", "503", 0.3),
    ("connection refused, then healthy", "refused", 0.0),
    ("hang (60 s read timeouts), then healthy", "hang", 0.0),
]
OUTAGE_LENGTH = 150.0
BURSTS = [(60.0, 2.0), (60.0, 5.0)]
BUDGETS: list[tuple[str, dict[str, Any]]] = [
    ("as configured (default: ratio 0.2, min 10)", {}),
    (
        "min 3 concurrent retries (the earlier default)",
        {"retry_budget_min_concurrency": 3},
    ),
    ("min 10 concurrent retries", {"retry_budget_min_concurrency": 10}),
    ("off", {"retry_budget_min_concurrency": BUDGET_OFF}),
]


def configs_for(plan: BreakerPlan) -> list[Config]:
    """Every run metric 7 makes."""
    configs = [
        Config("batch", seed, rate, on, Workload(files=plan.files))
        for rate in plan.rates
        for on in (False, True)
        for seed in range(1, plan.seeds + 1)
    ]
    configs += [
        Config(f"budget:{label}", seed, 0.3, on, Workload(files=plan.files), values)
        for label, values in BUDGETS[1:]
        for on in (False, True)
        for seed in range(1, min(BUDGET_SEEDS, plan.seeds) + 1)
    ]
    for period, length in BURSTS:
        for seed in range(1, plan.outage_seeds + 1):
            schedule = _burst_schedule(period, length, plan.stream_seconds, seed)
            configs += [
                Config(
                    f"burst:{length:g}/{period:g}",
                    seed,
                    0.05,
                    on,
                    Workload(rate=2.0, seconds=plan.stream_seconds, schedule=schedule),
                )
                for on in (False, True)
            ]
    for title, kind, after in OUTAGES:
        for seed in range(1, plan.outage_seeds + 1):
            start = 60.0 + 3.1 * seed
            end = start + OUTAGE_LENGTH
            schedule = _outage_schedule(kind, start, end, after)
            configs += [
                Config(
                    f"outage:{title}",
                    seed,
                    0.0,
                    on,
                    Workload(rate=1.0, seconds=end + 180.0, schedule=schedule),
                )
                for on in (False, True)
            ]
    return configs


def measure_breaker(
    scratch: Scratch, plan: BreakerPlan, overrides: dict[str, Any] | None = None
) -> list[Run]:
    """Metric 7: every run of ``configs_for(plan)``."""
    return _play(scratch, configs_for(plan), overrides or {})


# -- the report ----------------------------------------------------------------------------


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _pick(
    runs: Sequence[Run], label: str, *, on: bool, rate: float | None = None
) -> list[Run]:
    return [
        r
        for r in runs
        if r.config.label == label
        and r.config.breaker == on
        and (rate is None or r.config.error_rate == rate)
    ]


def _success(runs: Sequence[Run]) -> list[float]:
    return [r.count("ok") / len(r.arrivals) for r in runs]


def _batch_table(runs: Sequence[Run], plan: BreakerPlan) -> tuple[list[str], bool]:
    lines = [
        "| faults | breaker off | breaker on | on - off (mean / worst seed, points) | opens per batch | refused by the breaker | retries refused by the budget (off / on) | requests per upload (off / on) | within 1 point |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    met = True
    for rate in plan.rates:
        off = sorted(
            _pick(runs, "batch", on=False, rate=rate), key=lambda r: r.config.seed
        )
        on = sorted(
            _pick(runs, "batch", on=True, rate=rate), key=lambda r: r.config.seed
        )
        diffs = [a - b for a, b in zip(_success(on), _success(off), strict=True)]
        ok = statistics.fmean(diffs) >= -0.01
        met &= ok
        lines.append(
            f"| {rate * 100:.0f} % | {_pct(statistics.fmean(_success(off)))} | "
            f"{_pct(statistics.fmean(_success(on)))} | "
            f"{100 * statistics.fmean(diffs):+.1f} / {100 * min(diffs):+.1f} | "
            f"{'/'.join(str(r.opens) for r in on)} | "
            f"{statistics.fmean(r.count('open') for r in on):.0f} | "
            f"{statistics.fmean(r.budget_refused for r in off):.0f} / "
            f"{statistics.fmean(r.budget_refused for r in on):.0f} | "
            f"{statistics.fmean(len(r.requests) / len(r.arrivals) for r in off):.2f} / "
            f"{statistics.fmean(len(r.requests) / len(r.arrivals) for r in on):.2f} | "
            f"{'**met**' if ok else '**missed**'} |"
        )
    return lines, met


def _budget_table(runs: Sequence[Run], seeds: int) -> list[str]:
    lines = [
        "| retry budget | breaker off | breaker on | opens per batch | retries refused (off / on) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for label, _values in BUDGETS:
        key = "batch" if not _values else f"budget:{label}"
        off = [
            r for r in _pick(runs, key, on=False, rate=0.3) if r.config.seed <= seeds
        ]
        on = [r for r in _pick(runs, key, on=True, rate=0.3) if r.config.seed <= seeds]
        lines.append(
            f"| {label} | {_pct(statistics.fmean(_success(off)))} | "
            f"{_pct(statistics.fmean(_success(on)))} | "
            f"{statistics.fmean(r.opens for r in on):.2f} | "
            f"{statistics.fmean(r.budget_refused for r in off):.0f} / "
            f"{statistics.fmean(r.budget_refused for r in on):.0f} |"
        )
    return lines


def _burst_table(runs: Sequence[Run]) -> list[str]:
    lines = [
        "| bursts (100 % errors) | breaker off: success | breaker on: success | opens | requests per upload (off / on) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for period, length in BURSTS:
        key = f"burst:{length:g}/{period:g}"
        off, on = _pick(runs, key, on=False), _pick(runs, key, on=True)
        lines.append(
            f"| {length:g} s every {period:g} s | {_pct(statistics.fmean(_success(off)))} | "
            f"{_pct(statistics.fmean(_success(on)))} | "
            f"{'/'.join(str(r.opens) for r in on)} | "
            f"{statistics.fmean(len(r.requests) / len(r.arrivals) for r in off):.2f} / "
            f"{statistics.fmean(len(r.requests) / len(r.arrivals) for r in on):.2f} |"
        )
    return lines


@dataclass(frozen=True)
class OutageFigures:
    """One outage run, reduced."""

    to_open: float
    first_minute: int
    per_minute: float
    mttr: float
    flaps: int
    lost: int


def outage_figures(run: Run) -> OutageFigures:
    """Time to open, requests in the outage's first minute and later, MTTR, losses."""
    start = 60.0 + 3.1 * run.config.seed
    end = start + OUTAGE_LENGTH
    opened = [t for t, s in run.transitions if s == "open" and t >= start]
    closed = [t for t, s in run.transitions if s == "closed" and t >= end]
    mttr = (closed[0] - end if closed else math.inf) if opened else 0.0
    settled = end + (mttr if math.isfinite(mttr) else 0.0)
    later = sum(1 for t in run.requests if start + 60 <= t < end)
    return OutageFigures(
        to_open=opened[0] - start if opened else math.inf,
        first_minute=sum(1 for t in run.requests if start <= t < start + 60),
        per_minute=later / ((OUTAGE_LENGTH - 60) / 60),
        mttr=mttr,
        flaps=sum(1 for t, s in run.transitions if s == "open" and t > settled),
        lost=sum(1 for at, o in run.arrivals if at >= end and o != "ok"),
    )


def _outage_table(runs: Sequence[Run], allowed: int) -> tuple[list[str], bool]:
    lines = [
        f"| outage (150 s) | time to open (s) | requests in its first 60 s (off / on) | requests per minute after that (off / on) | MTTR (s) | reopened after closing | uploads failed after recovery (off / on) | first 60 s <= {allowed} | mean MTTR < 60 s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    met = True
    for title, _kind, _after in OUTAGES:
        key = f"outage:{title}"
        off = [outage_figures(r) for r in _pick(runs, key, on=False)]
        on = [outage_figures(r) for r in _pick(runs, key, on=True)]
        first = max(f.first_minute for f in on)
        mttr = statistics.fmean(f.mttr for f in on)
        few, quick = first <= allowed, mttr < 60
        # A hang says nothing before the first read timeout: every request of the
        # first 60 s is sent whatever the rule, so that column is not a target there.
        inherent = _kind == "hang"
        met &= (few or inherent) and quick
        lines.append(
            f"| {title} | {'/'.join(f'{f.to_open:.1f}' for f in on)} | "
            f"{statistics.fmean(f.first_minute for f in off):.0f} / "
            f"{'/'.join(str(f.first_minute) for f in on)} | "
            f"{statistics.fmean(f.per_minute for f in off):.1f} / "
            f"{statistics.fmean(f.per_minute for f in on):.1f} | "
            f"{'/'.join(f'{f.mttr:.1f}' for f in on)} | "
            f"{'/'.join(str(f.flaps) for f in on)} | "
            f"{statistics.fmean(f.lost for f in off):.0f} / "
            f"{'/'.join(str(f.lost) for f in on)} | "
            f"{'**met**' if few else ('not a target (hang)' if inherent else '**missed**')} | "
            f"{'**met**' if quick else '**missed**'} |"
        )
    return lines, met


def report_breaker(
    runs: Sequence[Run], plan: BreakerPlan, overrides: dict[str, Any] | None = None
) -> str:
    """Metric 7's section."""
    values = overrides or {}
    resilience = ResilienceSettings(
        **{k: v for k, v in values.items() if k in ResilienceSettings.model_fields}
    )
    per_call = resilience.retry_max_attempts
    # the threshold + one probe, in requests: counting calls, the threshold's
    # calls in attempts and one trial call (it keeps its slot for its retries)
    threshold = resilience.circuit_breaker_failure_threshold
    if resilience.circuit_breaker_count == "calls":
        allowed = (threshold + 1) * per_call
    else:
        allowed = threshold + 1
    batch, batch_met = _batch_table(runs, plan)
    outage, outage_met = _outage_table(runs, allowed)
    settings = ", ".join(f"`{k.upper()}={v}`" for k, v in (overrides or {}).items())
    return "\n".join(
        [
            "### 7. Breaker on vs off (issue 17): random faults, bursts, an outage",
            "",
            "Real sockets, simulated waits (`bench/chaos_breaker.py`): every request "
            "reaches the fault server on 127.0.0.1, then takes a simulated 0.2-0.6 s; "
            "*breaker off* is `RESILIENCE_CIRCUIT_BREAKER_ENABLED=false` with retries "
            "on; both use the same server seeds and jitter seeds. "
            + (f"Settings on top of the seed's: {settings}. " if settings else "")
            + f"{plan.seeds} seed(s) per row of the batch tables.",
            "",
            f"**Random faults.** `upload_many` of {plan.files} files at concurrency "
            f"{CONCURRENCY} to one provider (the issue's workload).",
            "",
            *batch,
            "",
            "**The retry budget at 30 %** (same batch, the first "
            f"{min(BUDGET_SEEDS, plan.seeds)} seed(s)).",
            "",
            *_budget_table(runs, min(BUDGET_SEEDS, plan.seeds)),
            "",
            "**Bursts.** 2 uploads/s arriving for "
            f"{plan.stream_seconds / 60:g} simulated minutes on a 5 % background; the "
            f"server fails every request during each burst; {plan.outage_seeds} seed(s) "
            "(burst phase varies).",
            "",
            *_burst_table(runs),
            "",
            "**Outage and recovery.** 1 upload/s; the provider fails every request "
            f"for {OUTAGE_LENGTH:g} s from ~60 s (503 from the server, connections "
            "refused by a closed port, or hangs emulated by the transport), then "
            f"recovers; {plan.outage_seeds} seed(s) (per-seed values listed). MTTR = "
            "recovery to CLOSED. Requests are counted where the client sends them. "
            "In a hang, every request of the first 60 s is sent before the first read "
            "timeout can tell anything, whatever the rule.",
            "",
            *outage,
            "",
            "| metric | seed target | |",
            "| --- | --- | --- |",
            f"| breaker on within 1 point of off at every rate | issue 17 | {'**met**' if batch_met else '**missed**'} |",
            f"| outage: requests in the first 60 s <= {allowed} (the threshold's attempts + one trial call; 503 and refused), mean MTTR < 60 s (all) | issue 17 | {'**met**' if outage_met else '**missed**'} |",
        ]
    )

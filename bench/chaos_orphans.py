"""Metric 8 (issue 15): orphans at the provider before and after reconciliation.

The flaky provider (in a thread, real sockets) injects 15 % faults, 2 % of all
requests ambiguous (``store_500``: stored, then a 500; ``store_drop``: stored, then
the connection dropped), and waits up to 50 ms between storing and answering. The
service (SQLite, as deployed) uploads distinct 1 KiB files, 8 at a time; in the
crash scenario a share of the uploads is cancelled at a random moment, as a killed
process would leave them (its intent open, perhaps a file stored). Orphans are the
files the provider holds that no local record names, counted before and after one
reconciliation. Retry delays are 10-50 ms here (not the seed's 1-60 s): the figure
is about what the provider keeps, not about timing.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from breaker_service.config import load_settings
from breaker_service.errors import BreakerServiceError
from breaker_service.providers.flaky import (
    FaultConfig,
    FlakyProvider,
    create_app,
    serve_in_thread,
)
from breaker_service.service import Service

__all__ = ["OrphanPlan", "OrphanRun", "measure_orphans", "report_orphans"]

KEY = "sk-orphans-bench"
FAULTS: dict[str, Any] = {
    "error_rate": 0.15,
    "mix": {"503": 6.5, "500": 6.5, "store_500": 1.0, "store_drop": 1.0},
    "latency_ms": (1.0, 10.0),
    "stored_latency_ms": (0.0, 50.0),
}


@dataclass(frozen=True, slots=True)
class OrphanPlan:
    """How many uploads per run, which crash shares, how many seeds."""

    uploads: int
    crash_rates: tuple[float, ...]
    seeds: int


ORPHANS_FULL = OrphanPlan(uploads=1000, crash_rates=(0.0, 0.03), seeds=3)
ORPHANS_QUICK = OrphanPlan(uploads=150, crash_rates=(0.0, 0.03), seeds=1)


@dataclass(frozen=True, slots=True)
class OrphanRun:
    """What one run left at the provider, before and after reconciling."""

    crash_rate: float
    seed: int
    uploads: int
    acknowledged: int
    stored: int
    ambiguous: int
    before: int
    after: int
    adopted: int
    deleted: int
    abandoned: int
    held: int
    recorded_deleted: int
    seconds: float


async def _run(
    files: list[Path], root: Path, crash_rate: float, seed: int
) -> OrphanRun:
    provider = FlakyProvider(
        FaultConfig(seed=seed, api_key=KEY, flavor="kimi", **FAULTS)
    )
    with serve_in_thread(create_app(provider)) as url:
        settings = load_settings(
            env_file=None,
            database_url=f"sqlite+aiosqlite:///{root}/orphans-{seed}-{crash_rate}.db",
            upload_allowed_dirs=str(files[0].parent),
            upload_provider_order="kimi",
            kimi_base_url=url,
            KIMI_API_KEY=KEY,
            GLM_API_KEY=None,
            retry_max_attempts=3,
            retry_base_delay=0.01,
            retry_max_delay=0.05,
            upload_reconcile_interval=0,
        )
        rng = random.Random(seed)
        async with await Service.open(settings) as service:
            orchestrator = service.orchestrator
            limit = asyncio.Semaphore(8)
            acknowledged = 0

            async def one(path: Path) -> None:
                nonlocal acknowledged
                async with limit:
                    task = asyncio.ensure_future(
                        orchestrator.upload(path, "kimi", force=True)
                    )
                    if rng.random() < crash_rate:
                        await asyncio.sleep(rng.uniform(0.0, 0.06))
                        task.cancel()
                    try:
                        await task
                    except (asyncio.CancelledError, BreakerServiceError):
                        return
                    acknowledged += 1

            await asyncio.gather(*(one(p) for p in files))
            await asyncio.sleep(0.3)  # requests the "dead" clients left at the server
            assert service.intents is not None
            assert service.reconciler is not None
            recorded = await service.intents.recorded_file_ids("kimi")
            before = len(set(provider.files) - recorded)
            started = time.perf_counter()
            [report] = await service.reconciler.reconcile(actor="bench")
            seconds = time.perf_counter() - started
            recorded_after = await service.intents.recorded_file_ids("kimi")
            held = set(provider.files)
    return OrphanRun(
        crash_rate=crash_rate,
        seed=seed,
        uploads=len(files),
        acknowledged=acknowledged,
        stored=provider.stats["uploaded"],
        ambiguous=provider.stats["ambiguous"],
        before=before,
        after=len(held - recorded_after),
        adopted=len(report.adopted),
        deleted=len(report.deleted),
        abandoned=len(report.abandoned),
        held=report.orphans,
        recorded_deleted=len(recorded_after - held),
        seconds=seconds,
    )


def measure_orphans(files: list[Path], root: Path, plan: OrphanPlan) -> list[OrphanRun]:
    """Every (crash share, seed) run, one after the other."""
    chosen = files[: plan.uploads]
    return [
        asyncio.run(_run(chosen, root, rate, 1500 + seed))
        for rate in plan.crash_rates
        for seed in range(plan.seeds)
    ]


def report_orphans(runs: list[OrphanRun], plan: OrphanPlan) -> str:
    """The markdown section: one row per run, totals per scenario."""
    lines = [
        "## Chaos: orphans at the provider (issue 15)",
        "",
        "`bench/chaos.py --only orphans` (module `bench/chaos_orphans.py`): "
        f"{plan.uploads} distinct 1 KiB uploads per run, 8 at a time, to the flaky "
        "provider over real sockets with 15 % faults of which 2 % of all requests are "
        "ambiguous (stored, then a 500 or a dropped connection) and up to 50 ms "
        "between storing and answering; retries 3 attempts at 10-50 ms. In the "
        "crash rows a share of the uploads is cancelled at a random moment, as a "
        "killed process leaves them. *Orphans* are files the provider holds that no "
        "local record names; *held* are copies the reconciler would not attribute "
        "(ties, more copies than calls).",
        "",
        "| crashes | seed | acknowledged | provider stored | ambiguous faults | "
        "orphans before | adopted | deleted | abandoned | held | orphans after | "
        "recorded files deleted | reconcile |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in runs:
        share = r.before / r.stored if r.stored else 0.0
        lines.append(
            f"| {r.crash_rate:.0%} | {r.seed} | {r.acknowledged}/{r.uploads} | "
            f"{r.stored} | {r.ambiguous} | {r.before} ({share:.1%}) | {r.adopted} | "
            f"{r.deleted} | {r.abandoned} | {r.held} | **{r.after}** | "
            f"{r.recorded_deleted} | {r.seconds * 1000:.0f} ms |"
        )
    return "\n".join(lines)

"""Outcome runs: a durable log that neither limits the call rate nor grows memory.

One process. Measured here (issue 13):

* sustained: a tight loop of ``await breaker.call(ok)`` on two breakers (no real
  I/O; the loop never yields, so the flusher never runs while it calls) for 60 s
  with the SQLite log on, against the same loop with the log off (breakers without
  a recorder): calls/s, RSS growth, ``aclose()`` time, rows written and rows/s;
  then shorter loops that yield every 1,000 calls (the flusher writes while they
  call), with successes only and with 10 % failures of two kinds;
* restore of 100 breakers with snapshots and without: from a log of 1M outcome
  *calls* written by the registry (runs), and from an old-format log of 1M rows
  (one row per call, built by ``bench_breaker.craft_rows``).

    python bench/bench_runs.py            # full run, rewrites the "runs" section
    python bench/bench_runs.py --quick    # smoke run, prints only
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import logging
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _report import machine_info, write_section
from bench_breaker import Plan, code_version, restore, timed_restore

from breaker_service import BreakerRegistry, ProviderUnavailable, load_settings
from breaker_service.breaker import CircuitBreaker
from breaker_service.config import Settings
from breaker_service.integrity import check_sqlite_file

TARGET_RATIO = 0.90  # log on: calls/s within 10 % of log off
TARGET_RSS_MB = 50.0
TARGET_ACLOSE_S = 1.0
TARGET_RESTORE_S = 0.2


@dataclasses.dataclass(frozen=True)
class Scale:
    """How much work each measurement does."""

    tight_seconds: float = 60.0
    yielding_seconds: float = 20.0
    restore_calls: int = 1_000_000
    restore_reps: int = 5


FULL = Scale()
QUICK = Scale(
    tight_seconds=3.0, yielding_seconds=2.0, restore_calls=50_000, restore_reps=2
)


def rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MB, from ``/proc/self/status``."""
    fields: dict[str, float] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in {"VmRSS", "VmHWM"}:
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


async def ok() -> int:
    """The guarded call: returns at once."""
    return 1


async def fail(i: int) -> int:
    """A failing call, of one of two kinds (a fresh error: a re-raised one keeps
    every traceback it was raised with, and would grow memory by itself)."""
    raise ProviderUnavailable("down", provider="bench", status=500 + 3 * (i % 2))


@dataclasses.dataclass
class Loop:
    """One loop: calls made, its time, memory, and for the log on what it wrote."""

    label: str
    log: bool
    yields: bool
    mixed: bool
    calls: int = 0
    seconds: float = 0.0
    rss_before: float = 0.0
    rss_after: float = 0.0
    peak_after: float = 0.0
    aclose: float = 0.0
    rows: int = 0
    counted: int = 0
    warm_calls: int = 0

    @property
    def calls_per_s(self) -> float:
        """Calls per second while calling."""
        return self.calls / self.seconds

    @property
    def rows_per_s(self) -> float:
        """Rows written per second, from the first call to the end of ``aclose``."""
        return self.rows / (self.seconds + self.aclose)


async def drive(breakers: list[CircuitBreaker], loop: Loop, seconds: float) -> None:
    """Call until the deadline, checking the clock (and yielding) every 1,000 calls."""
    a, b = breakers
    calls = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for i in range(500):
            if loop.mixed and i % 10 == 9:
                with contextlib.suppress(ProviderUnavailable):
                    await a.call(fail, i)
            else:
                await a.call(ok)
            await b.call(ok)
        calls += 1000
        if loop.yields:
            await asyncio.sleep(0)
        if time.perf_counter() >= deadline:
            break
    loop.seconds += time.perf_counter() - start
    loop.calls += calls


async def pair(
    settings: Settings, directory: Path, label: str, *, yields: bool, seconds: float
) -> tuple[Loop, Loop]:
    """The same loop with the log off and on, interleaved in slices of the time.

    Six slices each, alternating (off, on, off, on, ...), so a busy neighbour on
    the shared machine slows both alike; the on side's RSS is measured from before
    its first slice to after its last.
    """
    mixed = "mixed" in label
    off, on = Loop(label, False, yields, mixed), Loop(label, True, yields, mixed)
    bare = [CircuitBreaker(n, settings=settings.resilience) for n in "ab"]
    path = directory / f"{label}.db"
    registry = await BreakerRegistry.open(
        f"sqlite+aiosqlite:///{path}", settings=settings
    )
    try:
        logged = [registry.get(n) for n in "ab"]
        await warm_up(bare, off)
        await warm_up(logged, on)
        slices = 6
        for _ in range(slices):
            await drive(bare, off, seconds / slices)
            await drive(logged, on, seconds / slices)
        on.rss_after, on.peak_after = rss_mb()
        off.rss_after, off.peak_after = on.rss_after, on.peak_after
    finally:
        t0 = time.perf_counter()
        await registry.aclose()
        on.aclose = time.perf_counter() - t0
    with sqlite3.connect(path) as db:
        rows, counted = db.execute(
            "SELECT count(*), coalesce(sum(count), 0) FROM breaker_events"
            " WHERE kind != 'transition'"
        ).fetchone()
    on.rows, on.counted = int(rows), int(counted) - on.warm_calls
    return off, on


async def warm_up(breakers: list[CircuitBreaker], loop: Loop) -> None:
    """A short loop first (caches, the first flush), then the RSS baseline."""
    warm = Loop(loop.label, loop.log, loop.yields, loop.mixed)
    await drive(breakers, warm, 0.2)
    await asyncio.sleep(0.2)  # the log's first flush lands before the baseline
    loop.warm_calls = warm.calls
    gc.collect()
    loop.rss_before = rss_mb()[0]


@dataclasses.dataclass
class RunsRestore:
    """Restore timings from a log the registry wrote as runs."""

    breakers: int
    calls: int
    rows: int
    with_snapshots: list[float]
    without_snapshots: list[float]
    build_seconds: float


async def restore_from_runs(
    settings: Settings, directory: Path, scale: Scale
) -> RunsRestore:
    """100 breakers make ``restore_calls`` calls (2 % failures); restore timings."""
    path = directory / "runs-restore.db"
    url = f"sqlite+aiosqlite:///{path}"
    b0 = time.perf_counter()
    registry = await BreakerRegistry.open(url, settings=settings)
    breakers = [registry.get(f"provider-{i:03d}") for i in range(100)]
    made = 0
    while made < scale.restore_calls:
        for j, breaker in enumerate(breakers):
            for k in range(10):
                if (made + j + k) % 50 == 49:
                    with contextlib.suppress(ProviderUnavailable):
                        await breaker.call(fail, k)
                else:
                    await breaker.call(ok)
            made += 10
        await asyncio.sleep(0)
    await registry.aclose()
    build = time.perf_counter() - b0
    with sqlite3.connect(path) as db:
        rows, counted = db.execute(
            "SELECT count(*), sum(count) FROM breaker_events WHERE kind != 'transition'"
        ).fetchone()
    assert int(counted) == made, (counted, made)
    with_snap: list[float] = []
    reference: dict[str, Any] = {}
    for _ in range(scale.restore_reps):
        seconds, reference = await timed_restore(url, settings)
        with_snap.append(seconds)
    without: list[float] = []
    for _ in range(scale.restore_reps):
        with sqlite3.connect(path) as db:
            db.execute("DELETE FROM breaker_snapshots")
        seconds, prints = await timed_restore(url, settings)
        without.append(seconds)
        assert prints == reference, "replay without snapshots differs from with"
    return RunsRestore(100, made, int(rows), with_snap, without, build)


@dataclasses.dataclass
class Results:
    """Everything measured."""

    loops: list[Loop]
    runs_restore: RunsRestore
    old_restore: Any
    load: tuple[float, float]
    checks: dict[str, float]  # seconds of start-up's PRAGMA quick_check, per log


def met(ok_: bool) -> str:
    """A target's verdict."""
    return "met" if ok_ else "**missed**"


def render(res: Results, info: str, scale: Scale) -> str:
    """The BENCHMARKS.md section."""
    out = [
        "## Outcome runs (`bench/bench_runs.py`)",
        "",
        info,
        "",
        "Method: one process; the SQLite log through `BreakerRegistry.open` with "
        "`load_settings(env_file=None)` (flush every 50 ms); log off = the same "
        "breakers built without a recorder; each loop runs with the log off and on "
        "interleaved in six slices each (off, on, off, on, ...), so a busy "
        "neighbour slows both alike; seconds and calls are the slices' sums. "
        "The loop awaits `breaker.call(ok)` on "
        "two breakers in turn (`ok` returns at once) after a 0.2 s warm-up (its "
        "calls are left out of sum(count)); `mixed` makes every 10th call "
        "on the first breaker fail with a 500 or a 503 (no trip: below the "
        "threshold). RSS from `/proc/self/status` (VmRSS before the loop and after "
        "it: the baseline is taken after the registry is open and warmed up; VmHWM = "
        "the process's peak so far). Host load average (1 min) at "
        f"start/end: {res.load[0]:.2f} / {res.load[1]:.2f} on 2 CPUs, shared with "
        "other work: calls/s wander by tens of percent between runs.",
        "",
        "### Sustained calls",
        "",
        "| loop | log | seconds | calls | **calls/s** | RSS before -> after (MB) "
        "| growth (MB) | peak (MB) | `aclose()` (s) | rows written | sum(count) "
        "| rows/s |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for lp in res.loops:
        logged = lp.log
        out.append(
            f"| {lp.label} | {'SQLite' if logged else 'off'} | {lp.seconds:.1f} "
            f"| {lp.calls:,} | **{lp.calls_per_s:,.0f}** "
            f"| {lp.rss_before:.1f} -> {lp.rss_after:.1f} "
            f"| {lp.rss_after - lp.rss_before:+.1f} | {lp.peak_after:.1f} "
            + (
                f"| {lp.aclose:.3f} | {lp.rows:,} | {lp.counted:,} "
                f"| {lp.rows_per_s:,.1f} |"
                if logged
                else "| - | - | - | - |"
            )
        )
    out += [
        "",
        "Every call is in the log: sum(count) equals the calls made in every "
        "logged loop"
        + (
            "."
            if all(lp.counted == lp.calls for lp in res.loops if lp.log)
            else " **except**: "
            + ", ".join(
                f"{lp.label} ({lp.calls - lp.counted:,} missing)"
                for lp in res.loops
                if lp.log and lp.counted != lp.calls
            )
        ),
        "",
    ]
    rr, old = res.runs_restore, res.old_restore
    out += [
        "### Start-up restore",
        "",
        "Timed: `await BreakerRegistry.open(url, settings=...)` + "
        "`registry.breakers()` (materialises all 100), median of "
        f"{scale.restore_reps}. Runs log: 100 breakers made {rr.calls:,} calls "
        f"through the registry (2 % failures), written as {rr.rows:,} rows "
        f"(built in {rr.build_seconds:.1f} s). Old-format log: {old.events:,} rows "
        "of one call each, as the previous version wrote them (`bench_breaker."
        f"craft_rows`, built in {old.build_seconds:.1f} s).",
        "",
        "| log | rows | with snapshots (s) | without snapshots (s) "
        "| of which the file's `PRAGMA quick_check` (s) |",
        "|---|---:|---:|---:|---:|",
        f"| runs, {rr.calls:,} calls | {rr.rows:,} "
        f"| {statistics.median(rr.with_snapshots):.3f} "
        f"| {statistics.median(rr.without_snapshots):.3f} "
        f"| {res.checks['runs']:.3f} |",
        f"| old format, one row per call | {old.events:,} "
        f"| {statistics.median(old.with_snapshots):.3f} "
        f"| {statistics.median(old.without_snapshots):.3f} "
        f"| {res.checks['old']:.3f} |",
        "",
        "Start-up checks a SQLite file with a bounded `PRAGMA quick_check` "
        "(`integrity.py`) before it replays; on a large file that check, not the "
        "replay, is most of the time with snapshots. The last column times it "
        "alone on the same file.",
        "",
    ]
    tight = {(lp.log, lp.label): lp for lp in res.loops}
    on, off = tight[(True, "tight")], tight[(False, "tight")]
    ratio = on.calls_per_s / off.calls_per_s
    logged_loops = [lp for lp in res.loops if lp.log]
    rows_note = ", ".join(
        f"{lp.label}: {lp.rows_per_s:,.1f} rows/s at {lp.calls_per_s:,.0f} calls/s"
        for lp in logged_loops
    )
    growth = on.rss_after - on.rss_before
    out += [
        "### Targets (issue 13)",
        "",
        "| target | measured here | |",
        "|---|---|---|",
        f"| tight loop, log on: calls/s within 10 % of log off | {ratio:.2f}x "
        f"({on.calls_per_s:,.0f} vs {off.calls_per_s:,.0f}) "
        f"| {met(ratio >= TARGET_RATIO)} |",
        f"| RSS growth under {TARGET_RSS_MB:g} MB over the {on.seconds:.0f} s loop "
        f"| {growth:+.1f} MB | {met(growth < TARGET_RSS_MB)} |",
        f"| `aclose()` under {TARGET_ACLOSE_S:g} s | {on.aclose:.3f} s "
        f"| {met(on.aclose < TARGET_ACLOSE_S)} |",
        f"| rows written per second independent of the call rate | {rows_note} "
        "| see rows/s |",
        f"| restore of 100 breakers from {rr.calls:,} outcome calls under "
        f"{TARGET_RESTORE_S:g} s with snapshots "
        f"| {statistics.median(rr.with_snapshots):.3f} s "
        f"| {met(statistics.median(rr.with_snapshots) < TARGET_RESTORE_S)} |",
        f"| restore of 100 breakers from an old-format log of {old.events:,} rows "
        f"under {TARGET_RESTORE_S:g} s with snapshots "
        f"| {statistics.median(old.with_snapshots):.3f} s "
        f"| {met(statistics.median(old.with_snapshots) < TARGET_RESTORE_S)} |",
    ]
    return "\n".join(out) + "\n"


_STARTED = time.perf_counter()


def progress(phase: str) -> None:
    """Say which measurement runs, and since when the run started."""
    print(f"[{time.perf_counter() - _STARTED:6.1f} s] {phase} ...", file=sys.stderr)


async def run(scale: Scale) -> Results:
    """Every measurement, in one process."""
    settings = load_settings(env_file=None, circuit_breaker_failure_threshold=100_000)
    load_before = os.getloadavg()[0]
    loops: list[Loop] = []
    with tempfile.TemporaryDirectory(prefix="bench-runs-") as tmp:
        directory = Path(tmp)
        plan: list[tuple[str, bool, float]] = [
            ("tight", False, scale.tight_seconds),
            ("yielding", True, scale.yielding_seconds),
            ("yielding, mixed", True, scale.yielding_seconds),
        ]
        for label, yields, seconds in plan:
            progress(f"{label}, log off and on, interleaved")
            loops.extend(
                await pair(settings, directory, label, yields=yields, seconds=seconds)
            )
        progress("restore from runs")
        rr = await restore_from_runs(settings, directory, scale)
        progress("restore from the old format")
        old = await restore(
            load_settings(env_file=None),
            directory,
            Plan(restore_events=scale.restore_calls, restore_reps=scale.restore_reps),
        )
        checks = {
            "runs": timed_check(directory / "runs-restore.db"),
            "old": timed_check(directory / "restore.db"),
        }
    return Results(loops, rr, old, (load_before, os.getloadavg()[0]), checks)


def timed_check(path: Path) -> float:
    """Seconds of start-up's integrity check of ``path``, median of three."""
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        assert check_sqlite_file(path) == []
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    """Run, print the section and write it into BENCHMARKS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument(
        "--no-write", action="store_true", help="print only, leave BENCHMARKS.md alone"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    scale = QUICK if args.quick else FULL
    version = code_version()
    results = asyncio.run(run(scale))
    info = f"{machine_info()}; {version}."
    if args.quick:
        info += " Quick smoke run (`--quick`): small counts, figures indicative only."
    section = render(results, info, scale)
    print(section)
    print(f"(ran in {time.perf_counter() - _STARTED:.1f} s)", file=sys.stderr)
    if not (args.quick or args.no_write):
        write_section("runs", section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

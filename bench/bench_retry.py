"""Wrapper overhead of a retry policy around an async call that succeeds first time.

Contenders, measured side by side in one event loop:

* bare: ``await succeed()``, the baseline;
* ours: ``await policy.call(succeed)`` and ``await decorated()`` with
  ``RetryPolicy(max_attempts=3)``;
* tenacity: ``@retry(stop=stop_after_attempt(3), wait=wait_exponential(), reraise=True)``;
* stamina: ``@stamina.retry(on=ValueError, attempts=3)``.

Each round times ``--calls`` awaited calls per contender with ``perf_counter_ns`` (GC
paused), contenders interleaved in a rotating order; ``--rounds`` rounds. Overhead =
median per-call time of a contender - median per-call time of the bare call.

    python bench/bench_retry.py            # full run, rewrites the "retry" section
    python bench/bench_retry.py --quick    # smoke run, prints only
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import stamina
from _report import machine_info, median, percentile, write_section
from tenacity import retry, stop_after_attempt, wait_exponential

from breaker_service.retry import RetryPolicy

TARGET_US = 2.0


async def succeed() -> int:
    """The wrapped call: returns at once, never raises."""
    return 1


policy = RetryPolicy(max_attempts=3)
ours_decorated = policy(succeed)


@retry(stop=stop_after_attempt(3), wait=wait_exponential(), reraise=True)
async def tenacity_succeed() -> int:
    """``succeed`` under tenacity."""
    return 1


@stamina.retry(on=ValueError, attempts=3)
async def stamina_succeed() -> int:
    """``succeed`` under stamina."""
    return 1


# One loop per contender, so each measures exactly its own await and nothing else.


async def run_bare(n: int) -> None:
    """``n`` bare calls."""
    for _ in range(n):
        await succeed()


async def run_ours_call(n: int) -> None:
    """``n`` calls through ``policy.call``."""
    for _ in range(n):
        await policy.call(succeed)


async def run_ours_decorator(n: int) -> None:
    """``n`` calls through ``@policy``."""
    for _ in range(n):
        await ours_decorated()


async def run_tenacity(n: int) -> None:
    """``n`` calls through tenacity."""
    for _ in range(n):
        await tenacity_succeed()


async def run_stamina(n: int) -> None:
    """``n`` calls through stamina."""
    for _ in range(n):
        await stamina_succeed()


@dataclass(frozen=True, slots=True)
class Contender:
    """A named way of making ``n`` calls."""

    name: str
    run: Callable[[int], Awaitable[None]]


CONTENDERS = (
    Contender("bare call (baseline)", run_bare),
    Contender("breaker-service `await policy.call(fn)`", run_ours_call),
    Contender("breaker-service `@policy`", run_ours_decorator),
    Contender("tenacity `@retry(...)`", run_tenacity),
    Contender("stamina `@stamina.retry(...)`", run_stamina),
)
BARE, OURS_CALL, OURS_DECORATOR = (c.name for c in CONTENDERS[:3])


async def time_per_call_us(contender: Contender, calls: int) -> float:
    """Microseconds per call over ``calls`` awaited calls, with the GC paused."""
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter_ns()
        await contender.run(calls)
        elapsed = time.perf_counter_ns() - started
    finally:
        gc.enable()
    return elapsed / calls / 1_000


async def measure(calls: int, rounds: int) -> dict[str, list[float]]:
    """Per-call microseconds of every contender, one sample per round."""
    for contender in CONTENDERS:  # warm-up: imports, caches, specialisation
        await contender.run(max(calls // 10, 100))
    samples: dict[str, list[float]] = {c.name: [] for c in CONTENDERS}
    for index in range(rounds):
        shift = index % len(CONTENDERS)
        for contender in CONTENDERS[shift:] + CONTENDERS[:shift]:
            samples[contender.name].append(await time_per_call_us(contender, calls))
    return samples


def render(samples: dict[str, list[float]], calls: int, rounds: int) -> str:
    """The markdown table, with the method and the machine."""
    bare = median(samples[BARE])
    ours = median(samples[OURS_CALL]) - bare
    ours_floor = max(ours, 0.01)  # a ratio against ~0 would mean nothing
    lines = [
        "## Retry wrapper overhead",
        "",
        "An async function that succeeds first time, awaited through each wrapper.",
        f"{calls:,} calls per contender per round, {rounds} rounds, contenders",
        "interleaved, GC paused while timing. *Overhead* = median per-call time",
        "minus the bare call's median; *p10-p90* is the spread of the per-round",
        "overhead. *vs ours* is the overhead ratio to `policy.call`.",
        "",
        f"Machine: {machine_info()}.",
        "",
        "| contender | per call (µs) | overhead (µs) | p10-p90 overhead (µs) | vs ours |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, values in samples.items():
        per_call = median(values)
        overheads = [v - bare for v in values]
        if name == BARE:
            lines.append(f"| {name} | {per_call:.3f} | - | - | - |")
            continue
        overhead = per_call - bare
        lines.append(
            f"| {name} | {per_call:.3f} | {overhead:.3f} "
            f"| {percentile(overheads, 10):.3f}-{percentile(overheads, 90):.3f} "
            f"| {overhead / ours_floor:.1f}x |"
        )
    decorator = median(samples[OURS_DECORATOR]) - bare
    verdict = "met" if max(ours, decorator) <= TARGET_US else "**missed**"
    lines += [
        "",
        f"Target: our wrapper adds at most {TARGET_US:.0f} µs per call: {verdict} "
        f"(`policy.call` {ours:.3f} µs, `@policy` {decorator:.3f} µs).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table, and (unless quick) write it to BENCHMARKS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="short smoke run, no write"
    )
    parser.add_argument("--calls", type=int, help="calls per contender per round")
    parser.add_argument("--rounds", type=int, help="rounds of every contender")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    calls = args.calls or (2_000 if args.quick else 20_000)
    rounds = args.rounds or (3 if args.quick else 7)
    samples = asyncio.run(measure(calls, rounds))
    table = render(samples, calls, rounds)
    print(table)
    if not (args.quick or args.no_write):
        path = write_section("retry", table)
        print(f"\nwrote the 'retry' section of {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

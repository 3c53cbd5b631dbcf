"""``breaker-service demo``: the resilience layer at work, on a local SQLite file.

Two simulated providers (``kimi`` and ``glm`` stand-ins, in process, seeded faults)
go through three phases: transient faults absorbed by retries; ``kimi`` down, its
breaker opening and uploads falling back to ``glm``; ``kimi`` back, its breaker
half-opening and closing. Every transition lands in the audit log shown at the end.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table

from .breaker import BreakerRegistry, BreakerState
from .config import Settings
from .errors import CircuitOpenError, ProviderError, ProviderUnavailable

__all__ = ["run_demo"]

console = Console()

DEMO_OVERRIDES = {
    "circuit_breaker_timeout": 2.0,
    "circuit_breaker_failure_threshold": 3,
    "retry_base_delay": 0.05,
    "retry_max_delay": 0.4,
}


@dataclass
class SimulatedProvider:
    """An in-process stand-in for a provider's file API, with seeded faults."""

    name: str
    error_rate: float
    rng: random.Random
    down: bool = False
    calls: int = 0
    failures: int = 0

    async def upload(self, index: int) -> str:
        self.calls += 1
        await asyncio.sleep(0.002)
        if self.down or self.rng.random() < self.error_rate:
            self.failures += 1
            raise ProviderUnavailable(f"{self.name} answered 503", provider=self.name, status=503)
        return f"{self.name}-file-{index}"


@dataclass
class Tally:
    ok: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    fallbacks: int = 0


async def _upload(registry: BreakerRegistry, providers: dict[str, SimulatedProvider], index: int, tally: Tally) -> None:
    for position, name in enumerate(providers):
        try:
            await registry.call(name, providers[name].upload, index)
        except (CircuitOpenError, ProviderError):
            continue
        tally.ok[name] = tally.ok.get(name, 0) + 1
        tally.fallbacks += position > 0
        return
    tally.failed += 1


def _table(registry: BreakerRegistry, title: str) -> Table:
    table = Table(title=title)
    for column in ("breaker", "state", "successes", "failures", "rejections", "last transition"):
        table.add_column(column)
    colours = {BreakerState.CLOSED: "green", BreakerState.OPEN: "red", BreakerState.HALF_OPEN: "yellow"}
    for b in registry.breakers():
        last = b.last_transition
        table.add_row(
            b.name,
            f"[{colours.get(b.state, 'white')}]{b.state.value}[/]",
            str(b.successes),
            str(b.failures),
            str(b.rejections),
            f"{last.from_state} -> {last.to_state} ({last.reason})" if last else "-",
        )
    return table


async def run_demo(settings: Settings, *, once: bool = True, seed: int = 7) -> int:
    """Run the three-phase scenario and print the breakers and their audit trail."""
    settings = settings.model_copy(update=DEMO_OVERRIDES)
    rng = random.Random(seed)  # noqa: S311 - fault injection
    providers = {
        "kimi": SimulatedProvider("kimi", 0.15, rng),
        "glm": SimulatedProvider("glm", 0.05, rng),
    }
    registry = await BreakerRegistry.open(settings=settings)
    console.print(f"[bold]breaker-service demo[/] (event log: {settings.database_url})")
    try:
        for name in providers:
            breaker = registry.get(name)
            if breaker.state is not BreakerState.CLOSED:
                await breaker.reset("demo start", "demo")
        tally = Tally()
        console.rule("1. transient faults (15% on kimi, 5% on glm): retries absorb them")
        for i in range(30):
            await _upload(registry, providers, i, tally)
        console.print(_table(registry, "after phase 1"))

        console.rule("2. kimi goes down: its breaker opens, uploads fall back to glm")
        providers["kimi"].down = True
        for i in range(30, 50):
            await _upload(registry, providers, i, tally)
        console.print(_table(registry, "after phase 2"))

        console.rule("3. kimi recovers: after the cooldown its breaker half-opens, then closes")
        providers["kimi"].down = False
        providers["kimi"].error_rate = 0.0
        await asyncio.sleep(settings.circuit_breaker_timeout + 0.1)
        for i in range(50, 60):
            await _upload(registry, providers, i, tally)
        console.print(_table(registry, "after phase 3"))

        history = await registry.history("kimi", kinds=["transition"], limit=None)
        audit = Table(title="kimi transitions (from the SQL event log)")
        for column in ("id", "at", "from", "to", "reason"):
            audit.add_column(column)
        for event in history[-6:]:
            audit.add_row(str(event.id), event.when.isoformat(timespec="milliseconds"), event.from_state or "", event.to_state or "", event.reason or "")
        console.print(audit)
        uploads = sum(tally.ok.values())
        console.print(
            f"[bold]{uploads}/60 uploads succeeded[/] ({tally.ok}), {tally.fallbacks} by fallback, "
            f"{tally.failed} failed; provider calls: "
            + ", ".join(f"{p.name} {p.calls} ({p.failures} faults)" for p in providers.values())
        )
        if not once:
            console.print("(the HTTP service arrives with the service issue; exiting)")
        return 0 if tally.failed == 0 else 1
    finally:
        await registry.aclose()

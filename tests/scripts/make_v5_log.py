"""Make the fixture logs of ``tests/test_runs_upgrade.py`` with the code of the day.

Run once at the commit before outcome runs (schema revision 0005, one row per call):
``.venv/bin/python tests/scripts/make_v5_log.py``. It writes, per scenario, an SQL
dump of the SQLite log (``tests/fixtures/v5_<name>.sql``) and the live breakers'
fingerprints at shutdown (``tests/fixtures/v5_<name>.json``): the upgrade test loads
the dump, migrates it to head and checks that replay gives those fingerprints.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from breaker_helpers import Provider, make_settings  # noqa: E402

from breaker_service.breaker import BreakerRegistry, CircuitBreaker  # noqa: E402
from breaker_service.clock import FakeClock  # noqa: E402
from breaker_service.errors import (  # noqa: E402
    CircuitOpenError,
    ProviderTimeout,
    ProviderUnavailable,
)

SCENARIOS: dict[str, dict[str, Any]] = {
    "count": {
        "circuit_breaker_failure_threshold": 3,
        "circuit_breaker_timeout_multiplier": 2,
        "circuit_breaker_failure_rate_threshold": 0.5,
        "circuit_breaker_window_type": "count",
        "circuit_breaker_window_size": 6,
        "circuit_breaker_minimum_calls": 4,
        "event_log_snapshot_every": 7,
    },
    "time": {
        "circuit_breaker_failure_threshold": 3,
        "circuit_breaker_timeout_multiplier": 2,
        "circuit_breaker_failure_rate_threshold": 0.6,
        "circuit_breaker_window_type": "time",
        "circuit_breaker_window_duration": 30,
        "circuit_breaker_minimum_calls": 5,
        "circuit_breaker_slow_call_duration": 5,
        "event_log_snapshot_every": 7,
    },
}


async def attempt(breaker: CircuitBreaker, fn: Any) -> None:
    """One call whose refusal or failure is part of the plan."""
    with contextlib.suppress(CircuitOpenError, ProviderUnavailable, ProviderTimeout):
        await breaker.call(fn)


async def drive(breaker: CircuitBreaker, p: Provider, clock: FakeClock) -> None:
    """Trips, refusals, failed probes, recovery, timeouts, slow calls, runs."""
    for round_ in range(3):
        for fn in (p.ok, p.ok, p.ok, p.fail, p.ok, p.fail, p.fail, p.timeout):
            await attempt(breaker, fn)
            clock.advance(0.4)
        clock.advance(30 + round_)
        await attempt(breaker, p.fail)
        clock.advance(30)
        if round_ == 1:
            await attempt(breaker, p.fail)
            clock.advance(120)
        for _ in range(5):
            await attempt(breaker, p.ok)
        await attempt(breaker, lambda: p.slow(6.0))
        for _ in range(4):
            await attempt(breaker, p.ok)
            clock.advance(0.3)
        clock.advance(1.5)


async def make(name: str, options: dict[str, Any], out: Path) -> None:
    path = out / f"v5_{name}.db"
    path.unlink(missing_ok=True)
    url = f"sqlite+aiosqlite:///{path}"
    clock = FakeClock(start=100.0, wall=1_780_000_000.0)
    settings = make_settings(**options)
    fingerprints: dict[str, Any] = {}
    for process in range(2):  # a restart in the middle: replay, then more history
        registry = await BreakerRegistry.open(url, settings=settings, clock=clock)
        try:
            for provider in ("kimi", "glm"):
                p = Provider(provider, clock)
                await drive(registry.get(provider), p, clock)
                if process == 1 and provider == "glm":
                    await registry.get(provider).force_open("incident", "alice")
            fingerprints = {b: registry.get(b).fingerprint() for b in ("kimi", "glm")}
        finally:
            await registry.aclose()
        clock = FakeClock(start=7.0, wall=clock.time() + 5)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        dump = "\n".join(conn.iterdump())
    (out / f"v5_{name}.sql").write_text(dump + "\n")
    (out / f"v5_{name}.json").write_text(
        json.dumps({"wall": clock.time(), "fingerprints": fingerprints}, indent=1)
        + "\n"
    )
    path.unlink()
    path.with_name(path.name + ".replica-id").unlink(missing_ok=True)


async def main() -> None:
    out = HERE.parent / "fixtures"
    out.mkdir(exist_ok=True)
    for name, options in SCENARIOS.items():
        await make(name, options, out)


if __name__ == "__main__":
    asyncio.run(main())

"""Open for outages, not for degradation: how a resilient call counts (fake clock)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from breaker_helpers import Provider, memory_registry, real_backoff
from upload_helpers import flaky_server, open_orchestrator, write_file
from upload_helpers import make_settings as make_upload_settings

from breaker_service.breaker import BreakerRegistry, BreakerState
from breaker_service.clock import FakeClock
from breaker_service.errors import (
    CircuitOpenError,
    ProviderTimeout,
    ProviderUnavailable,
)

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN

SEED_DEFAULTS: dict[str, Any] = {  # the report's defaults, backoff shortened
    "retry_max_attempts": 3,
    "retry_base_delay": 0.1,
    "retry_max_delay": 1.0,
    "circuit_breaker_failure_threshold": 5,
    "circuit_breaker_timeout": 60.0,
}


@pytest.fixture(autouse=True)
def _backoff_on_the_fake_clock() -> Iterator[None]:
    with real_backoff():
        yield


class Flaky:
    """An upstream failing a seeded share of requests with 503."""

    def __init__(self, rate: float, seed: int) -> None:
        self.rate = rate
        self.rng = random.Random(seed)
        self.requests = 0
        self.down = False

    async def upload(self) -> str:
        self.requests += 1
        if self.down or self.rng.random() < self.rate:
            raise ProviderUnavailable("injected", provider="kimi", status=503)
        return "ok"


async def _batch(registry: BreakerRegistry, upstream: Flaky, n: int) -> int:
    done = 0
    for _ in range(n):
        try:
            await registry.call("kimi", upstream.upload)
        except (ProviderUnavailable, CircuitOpenError):
            continue
        done += 1
    return done


@pytest.mark.parametrize("rate", [0.1, 0.2, 0.3, 0.4, 0.5])
async def test_random_faults_do_not_open_the_breaker_counting_calls(
    rate: float,
) -> None:
    """Up to 50 % random 503s: 200 calls, same seeds, breaker on = breaker off."""
    outcomes = {}
    for mode in ("calls", "off"):
        clock = FakeClock()
        upstream = Flaky(rate, seed=11)
        settings = dict(SEED_DEFAULTS, circuit_breaker_count="calls")
        if mode == "off":
            settings["resilience_circuit_breaker_enabled"] = False
        async with memory_registry(clock, **settings) as registry:
            outcomes[mode] = await _batch(registry, upstream, 200)
            if mode == "calls":
                assert registry.get("kimi").version == 0  # never opened
    assert outcomes["calls"] == outcomes["off"]


async def test_counting_attempts_trips_on_the_same_faults() -> None:
    """The earlier rule (every attempt counts) opens at 50 % and loses uploads."""
    clock = FakeClock()
    upstream = Flaky(0.5, seed=11)
    async with memory_registry(
        clock, **SEED_DEFAULTS, circuit_breaker_count="attempts"
    ) as registry:
        await _batch(registry, upstream, 200)
        assert registry.get("kimi").version > 0


async def test_an_outage_opens_after_threshold_failed_calls() -> None:
    """Everything failing: open after 5 failed calls (15 attempts), then no request."""
    clock = FakeClock()
    upstream = Flaky(0.0, seed=1)
    upstream.down = True
    async with memory_registry(clock, **SEED_DEFAULTS) as registry:
        assert await _batch(registry, upstream, 60) == 0
        breaker = registry.get("kimi")
        assert breaker.state is OPEN
        assert upstream.requests == 5 * 3
        assert breaker.failures == 5
        assert breaker.last_transition is not None
        assert breaker.last_transition.reason == "5 consecutive failures"
        assert breaker.rejections == 55


async def test_hung_attempts_count_at_once() -> None:
    """Timeouts count as they happen: a hung provider opens after 5 timed-out calls."""
    clock = FakeClock()
    kimi = Provider("kimi")
    async with memory_registry(clock, **SEED_DEFAULTS) as registry:
        for _ in range(4):
            with pytest.raises(ProviderTimeout):
                await registry.call("kimi", kimi.timeout)
        breaker = registry.get("kimi")
        assert (breaker.state, breaker.timeouts) == (CLOSED, 4)  # one per call
        with pytest.raises(CircuitOpenError):  # the 5th call's first timeout trips it
            await registry.call("kimi", kimi.timeout)
        assert breaker.state is OPEN
        assert kimi.calls == 4 * 3 + 1


async def test_a_call_cut_short_by_the_budget_counts_as_nothing() -> None:
    """The retry budget refusing a retry says nothing about the provider."""
    clock = FakeClock()
    kimi = Provider("kimi")
    async with memory_registry(
        clock,
        **SEED_DEFAULTS,
        retry_budget_ratio=0.0,
        retry_budget_min_concurrency=0,
    ) as registry:
        for _ in range(10):
            with pytest.raises(ProviderUnavailable) as failed:
                await registry.call("kimi", kimi.fail)
            assert failed.value.gave_up == "budget"  # type: ignore[attr-defined]
        breaker = registry.get("kimi")
        assert breaker.state is CLOSED
        assert (breaker.failures, breaker.ignored) == (0, 10)


async def test_a_success_after_retries_is_one_success() -> None:
    """503, 503, ok: one success in the log, no failure, the streak reset."""
    clock = FakeClock()
    kimi = Provider("kimi")
    kimi.script = [ProviderUnavailable("a", status=503)] * 2 + [None]
    async with memory_registry(clock, **SEED_DEFAULTS) as registry:
        assert await registry.call("kimi", kimi.scripted) == "kimi: ok"
        kinds = [e.kind for e in await registry.history("kimi")]
    assert kinds == ["success"]


async def test_a_trial_is_one_call_with_its_retries() -> None:
    """HALF_OPEN: a trial's failed attempt does not reopen; its retry closes the breaker."""
    clock = FakeClock()
    kimi = Provider("kimi")
    async with memory_registry(
        clock,
        **{
            **SEED_DEFAULTS,
            "circuit_breaker_failure_threshold": 1,
            "circuit_breaker_success_threshold": 1,
        },
    ) as registry:
        with pytest.raises(ProviderUnavailable):
            await registry.call("kimi", kimi.fail)
        breaker = registry.get("kimi")
        assert breaker.state is OPEN
        clock.advance(60)
        kimi.script = [ProviderUnavailable("b", status=503), None]
        assert await registry.call("kimi", kimi.scripted) == "kimi: ok"
        assert breaker.state is CLOSED
        assert breaker.trials_in_flight == 0


async def test_a_failed_trial_call_reopens_once() -> None:
    """HALF_OPEN: a trial call that fails after its retries reopens the breaker."""
    clock = FakeClock()
    kimi = Provider("kimi")
    async with memory_registry(
        clock, **{**SEED_DEFAULTS, "circuit_breaker_failure_threshold": 1}
    ) as registry:
        with pytest.raises(ProviderUnavailable):
            await registry.call("kimi", kimi.fail)
        clock.advance(60)
        calls_before = kimi.calls
        with pytest.raises(ProviderUnavailable):
            await registry.call("kimi", kimi.fail)
        breaker = registry.get("kimi")
        assert breaker.state is OPEN
        assert kimi.calls - calls_before == 3  # the trial kept its slot for retries
        reasons = [
            e.reason for e in await registry.history("kimi", kinds=["transition"])
        ]
    assert reasons[-1] == "trial call failed (503)"


async def test_growing_open_duration_starts_over_after_a_successful_trial() -> None:
    """Trials failing outright double the wait; a trial that got through resets it."""
    clock = FakeClock()
    kimi = Provider("kimi")
    async with memory_registry(
        clock,
        **{
            **SEED_DEFAULTS,
            "retry_max_attempts": 1,
            "circuit_breaker_failure_threshold": 1,
            "circuit_breaker_success_threshold": 2,
            "circuit_breaker_timeout": 10.0,
            "circuit_breaker_timeout_multiplier": 2.0,
        },
    ) as registry:
        breaker = registry.get("kimi")
        with pytest.raises(ProviderUnavailable):
            await registry.call("kimi", kimi.fail)
        clock.advance(10)
        with pytest.raises(ProviderUnavailable):
            await registry.call("kimi", kimi.fail)  # trial fails outright
        assert breaker.open_timeout == pytest.approx(20.0)
        clock.advance(20)
        await registry.call("kimi", kimi.ok)  # one trial through (needs two)
        with pytest.raises(ProviderUnavailable):
            await registry.call("kimi", kimi.fail)
        assert breaker.state is OPEN
        assert breaker.open_timeout == pytest.approx(10.0)  # healing: back to base


# -- batches wait instead of failing fast -------------------------------------------------


async def test_a_batch_waits_for_the_breaker_within_its_deadline(
    tmp_path: Path,
) -> None:
    """Kimi down 90 s, no fallback: the batch waits out the open breaker, all succeed."""
    clock = FakeClock()
    with flaky_server("kimi") as kimi:
        allowed = tmp_path / "files"
        files = [write_file(allowed / f"f{i}.txt") for i in range(20)]
        settings = make_upload_settings(
            allowed,
            kimi_url=kimi.url,
            upload_provider_order="kimi",
            circuit_breaker_failure_threshold=2,
            circuit_breaker_timeout=30.0,
            retry_max_attempts=1,
        )
        down_until = clock.monotonic() + 90
        kimi.state.reconfigure({"down": True})
        waits: list[tuple[str, float]] = []

        def heal_in_time(breaker: str, seconds: float) -> None:
            waits.append((breaker, seconds))
            if clock.monotonic() + seconds >= down_until:
                kimi.state.reconfigure({"down": False})

        async with open_orchestrator(settings, clock=clock) as orchestrator:
            items = await orchestrator.upload_many(
                files, concurrency=4, deadline=300, waiting=heal_in_time
            )
    failed = [i.error for i in items if not i.ok]
    # no file is refused by the breaker: only calls that met the outage itself fail
    # (those in flight when it began and the half-open trials; on a FakeClock each
    # of the 4 waiters' sleeps moves time, so the outage sees more trials than 90/30)
    assert all(isinstance(e, ProviderUnavailable) for e in failed), failed
    assert len(failed) < 10
    assert waits
    assert {b for b, _ in waits} == {"kimi"}
    assert all(0 < s <= 30.0 for _, s in waits)


async def test_past_the_deadline_the_batch_fails_fast(tmp_path: Path) -> None:
    """``deadline=0``: the files that meet the open breaker fail at once, no wait."""
    clock = FakeClock()
    with flaky_server("kimi", down=True) as kimi:
        allowed = tmp_path / "files"
        files = [write_file(allowed / f"f{i}.txt") for i in range(10)]
        settings = make_upload_settings(
            allowed,
            kimi_url=kimi.url,
            upload_provider_order="kimi",
            circuit_breaker_failure_threshold=2,
            retry_max_attempts=1,
        )
        async with open_orchestrator(settings, clock=clock) as orchestrator:
            sleeps_before = len(clock.sleeps)
            items = await orchestrator.upload_many(files, concurrency=1, deadline=0)
    refused = [i for i in items if isinstance(i.error, CircuitOpenError)]
    assert len(refused) == 8
    assert len(clock.sleeps) == sleeps_before
    assert kimi.requests == 2


async def test_a_forced_open_breaker_is_not_waited_for(tmp_path: Path) -> None:
    """An operator's force-open stops the batch at once, whatever the deadline."""
    clock = FakeClock()
    with flaky_server("kimi") as kimi:
        allowed = tmp_path / "files"
        files = [write_file(allowed / f"f{i}.txt") for i in range(3)]
        settings = make_upload_settings(
            allowed, kimi_url=kimi.url, upload_provider_order="kimi"
        )
        async with open_orchestrator(settings, clock=clock) as orchestrator:
            await orchestrator.registry.get("kimi").force_open("maintenance", "ops")
            items = await orchestrator.upload_many(files, deadline=600)
    assert all(isinstance(i.error, CircuitOpenError) for i in items)
    assert kimi.requests == 0


async def _concurrent_outage(attempt_run: int | None) -> tuple[int, str]:
    """60 calls, 8 at a time, to a provider that is down: requests until it opened."""
    clock = FakeClock()
    upstream = Flaky(0.0, seed=1)
    upstream.down = True
    opened_after = -1
    async with memory_registry(
        clock, **SEED_DEFAULTS, circuit_breaker_attempt_run=attempt_run
    ) as registry:
        breaker = registry.get("kimi")
        gate = asyncio.Semaphore(8)

        async def one() -> None:
            nonlocal opened_after
            async with gate:
                with contextlib.suppress(ProviderUnavailable, CircuitOpenError):
                    await registry.call("kimi", upstream.upload)
                if breaker.state is OPEN and opened_after < 0:
                    opened_after = upstream.requests

        await asyncio.gather(*(one() for _ in range(60)))
        reason = next(
            e.reason for e in await registry.history("kimi", kinds=["transition"])
        )
    assert breaker.state is OPEN
    return upstream.requests, reason or ""


async def test_an_outage_under_concurrency_opens_within_the_attempt_run() -> None:
    """Eight calls in flight: the breaker opens at the 16th failed attempt in a row.

    Counting calls alone, each call in flight spends its three attempts before the
    fifth call has ended; the attempt run bounds the requests an outage costs at the
    threshold's attempts plus one, however many calls are in flight. (Calls one after
    another open by the threshold at the 15th, as before: see the test above.)
    """
    requests, reason = await _concurrent_outage(None)
    assert requests == 5 * 3 + 1
    assert reason == "16 consecutive failed attempts across calls (503)"
    calls_only, _ = await _concurrent_outage(0)
    assert calls_only > requests  # the rule off: more requests reach the provider


async def test_the_attempt_run_restarts_on_a_success() -> None:
    """14 failed attempts, a success, 14 more: still CLOSED (the run was broken)."""
    clock = FakeClock()
    kimi = Provider("kimi")
    fail = ProviderUnavailable("x", status=503)
    async with memory_registry(
        clock,
        **{
            **SEED_DEFAULTS,
            "retry_max_attempts": 1,
            "circuit_breaker_attempt_run": 15,
            "circuit_breaker_failure_threshold": 100,
        },
    ) as registry:
        for script in ([fail] * 14, [None], [fail] * 14):
            for step in script:
                kimi.script = [step]
                with contextlib.suppress(ProviderUnavailable):
                    await registry.call("kimi", kimi.scripted)
        breaker = registry.get("kimi")
        assert breaker.state is CLOSED
        kimi.script = [fail]
        with pytest.raises(ProviderUnavailable):
            await registry.call("kimi", kimi.scripted)
        assert breaker.state is OPEN  # the 15th in a row


async def test_a_hung_trial_reopens_with_the_cooldown_counted_from_its_start() -> None:
    """A trial that hangs for the whole cooldown: the next probe is due at once.

    A provider that hangs and recovers while the trial hangs is probed again as soon
    as the trial times out, not a whole cooldown later (issue 17: MTTR after a hang).
    """
    clock = FakeClock()

    async def hangs() -> str:
        await clock.sleep(50.0)
        raise ProviderTimeout("read timed out", provider="kimi")

    async with memory_registry(
        clock,
        **{
            **SEED_DEFAULTS,
            "circuit_breaker_failure_threshold": 1,
            "retry_max_attempts": 1,
        },
    ) as registry:
        with pytest.raises(ProviderTimeout):
            await registry.call("kimi", hangs)
        breaker = registry.get("kimi")
        assert breaker.state is OPEN
        assert breaker.retry_after == pytest.approx(60.0)
        clock.advance(60)
        with pytest.raises(ProviderTimeout):
            await registry.call("kimi", hangs)  # the trial: sent, hung 50 s
        assert breaker.state is OPEN
        assert breaker.retry_after == pytest.approx(10.0)  # 60 - 50, not 60
        transitions = await registry.history("kimi", kinds=["transition"])
    assert transitions[-1].reason == "trial call timed out (timeout)"

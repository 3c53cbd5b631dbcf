"""The circuit breaker: the seed's scenarios, trip policies, manual control, forms, logs.

Everything runs on a ``FakeClock`` and an in-memory event log; no real sleeps.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any

import pytest
from breaker_helpers import (
    Provider,
    call_kinds,
    fail_times,
    memory_registry,
    real_backoff,
    rejected,
    succeed_times,
    wait_until,
)

from breaker_service.breaker import (
    BreakerState,
    CircuitBreaker,
    Outcome,
    default_judge,
)
from breaker_service.clock import FakeClock
from breaker_service.config import ResilienceSettings
from breaker_service.errors import (
    CircuitOpenError,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)
from breaker_service.events import MemoryEventLog
from breaker_service.retry import attempts_of

CLOSED = BreakerState.CLOSED
OPEN = BreakerState.OPEN
HALF_OPEN = BreakerState.HALF_OPEN
FORCED_OPEN = BreakerState.FORCED_OPEN
DISABLED = BreakerState.DISABLED

Form = Callable[
    [CircuitBreaker, Callable[[], Awaitable[str]]], Coroutine[Any, Any, str]
]


async def via_call(breaker: CircuitBreaker, fn: Callable[[], Awaitable[str]]) -> str:
    """``await breaker.call(fn)``."""
    return await breaker.call(fn)


async def via_guard(breaker: CircuitBreaker, fn: Callable[[], Awaitable[str]]) -> str:
    """``async with breaker.guard(): await fn()``."""
    async with breaker.guard():
        return await fn()


async def via_decorator(
    breaker: CircuitBreaker, fn: Callable[[], Awaitable[str]]
) -> str:
    """``@breaker`` on an async function, then call it."""

    @breaker
    async def guarded() -> str:
        return await fn()

    return await guarded()


FORMS = [
    pytest.param(via_call, id="call"),
    pytest.param(via_guard, id="guard"),
    pytest.param(via_decorator, id="decorator"),
]


pytestmark = pytest.mark.usefixtures("clean_environment")


# -- the seed's scenarios -------------------------------------------------------------


async def test_normal_operation_stays_closed(clock: FakeClock, kimi: Provider) -> None:
    """Successful calls pass through a CLOSED breaker and return their result."""
    async with memory_registry(clock) as registry:
        breaker = registry.get("kimi")
        results = [await breaker.call(kimi.ok) for _ in range(10)]
        assert results == ["kimi: ok"] * 10
        assert breaker.state is CLOSED
        assert breaker.successes == 10
        assert breaker.consecutive_failures == 0
        assert breaker.retry_after == 0.0


@pytest.mark.parametrize(
    "threshold",
    [pytest.param(1, id="threshold-1"), pytest.param(3, id="threshold-3")],
)
async def test_opens_after_threshold_consecutive_failures(
    clock: FakeClock, kimi: Provider, threshold: int
) -> None:
    """N consecutive failures open it; then calls are rejected without the provider."""
    async with memory_registry(
        clock, circuit_breaker_failure_threshold=threshold
    ) as registry:
        breaker = registry.get("kimi")
        await fail_times(breaker, kimi, threshold - 1)
        assert breaker.state is CLOSED
        await fail_times(breaker, kimi, 1)
        assert breaker.state is OPEN
        assert kimi.calls == threshold
        error = await rejected(breaker, kimi)
        assert error.breaker == "kimi"
        assert error.retry_after == pytest.approx(60.0)
        assert kimi.calls == threshold
        clock.advance(25)
        assert (await rejected(breaker, kimi)).retry_after == pytest.approx(35.0)
        assert kimi.calls == threshold
        assert breaker.rejections == 2


async def test_default_threshold_is_five(clock: FakeClock, kimi: Provider) -> None:
    """CIRCUIT_BREAKER_FAILURE_THRESHOLD defaults to 5."""
    async with memory_registry(clock) as registry:
        breaker = registry.get("kimi")
        await fail_times(breaker, kimi, 4)
        assert breaker.state is CLOSED
        await fail_times(breaker, kimi, 1)
        assert breaker.state is OPEN


async def test_success_resets_the_failure_count(
    clock: FakeClock, kimi: Provider
) -> None:
    """Failures must be consecutive: a success in between starts the count again."""
    async with memory_registry(clock, circuit_breaker_failure_threshold=3) as registry:
        breaker = registry.get("kimi")
        for _ in range(5):
            await fail_times(breaker, kimi, 2)
            assert breaker.consecutive_failures == 2
            await succeed_times(breaker, kimi, 1)
            assert breaker.consecutive_failures == 0
        assert breaker.state is CLOSED
        assert (breaker.failures, breaker.successes) == (10, 5)


async def test_half_open_after_timeout_is_decided_on_the_next_call(
    clock: FakeClock, kimi: Provider
) -> None:
    """OPEN stays OPEN until a call arrives after the cooldown; that call is a trial."""
    async with memory_registry(
        clock, circuit_breaker_failure_threshold=2, circuit_breaker_timeout=30
    ) as registry:
        breaker = registry.get("kimi")
        await fail_times(breaker, kimi, 2)
        clock.advance(29.5)
        assert (await rejected(breaker, kimi)).retry_after == pytest.approx(0.5)
        clock.advance(0.5)
        assert breaker.retry_after == 0.0
        assert breaker.state is OPEN  # no timer moved it
        assert await breaker.call(kimi.ok) == "kimi: ok"
        assert breaker.state is HALF_OPEN
        assert breaker.half_open_successes == 1
        assert kimi.calls == 3


async def test_tick_moves_open_to_half_open_without_a_call(
    clock: FakeClock, kimi: Provider
) -> None:
    """``tick()`` applies the cooldown only once it is over."""
    async with memory_registry(clock, circuit_breaker_failure_threshold=1) as registry:
        breaker = registry.get("kimi")
        await fail_times(breaker, kimi, 1)
        clock.advance(59)
        await breaker.tick()
        assert breaker.state is OPEN
        clock.advance(1)
        await breaker.tick()
        assert breaker.state is HALF_OPEN
        assert kimi.calls == 1


@pytest.mark.parametrize(
    "successes",
    [pytest.param(1, id="one"), pytest.param(2, id="two"), pytest.param(4, id="four")],
)
async def test_closes_after_success_threshold(
    clock: FakeClock, kimi: Provider, successes: int
) -> None:
    """CIRCUIT_BREAKER_SUCCESS_THRESHOLD successful trials close it, fewer do not."""
    async with memory_registry(
        clock,
        circuit_breaker_failure_threshold=1,
        circuit_breaker_success_threshold=successes,
    ) as registry:
        breaker = registry.get("kimi")
        await fail_times(breaker, kimi, 1)
        clock.advance(60)
        for _ in range(successes - 1):
            await succeed_times(breaker, kimi, 1)
            assert breaker.state is HALF_OPEN
        await succeed_times(breaker, kimi, 1)
        assert breaker.state is CLOSED
        assert breaker.consecutive_failures == 0
        await fail_times(breaker, kimi, 1)  # counting starts afresh in CLOSED
        assert breaker.state is OPEN


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(ProviderUnavailable("503", status=503), id="503"),
        pytest.param(ProviderUnavailable("429", status=429), id="429"),
        pytest.param(ProviderTimeout("timeout"), id="provider-timeout"),
        pytest.param(TimeoutError(), id="timeout-error"),
        pytest.param(ConnectionResetError(), id="connection-reset"),
    ],
)
async def test_any_half_open_failure_reopens(
    clock: FakeClock, kimi: Provider, error: Exception
) -> None:
    """One failed trial reopens it, even after some successful trials."""
    async with memory_registry(
        clock,
        circuit_breaker_failure_threshold=1,
        circuit_breaker_success_threshold=3,
    ) as registry:
        breaker = registry.get("kimi")
        await fail_times(breaker, kimi, 1)
        clock.advance(60)
        await succeed_times(breaker, kimi, 2)
        assert breaker.state is HALF_OPEN
        with pytest.raises(type(error)):
            await breaker.call(kimi.fail, error)
        assert breaker.state is OPEN
        assert breaker.retry_after == pytest.approx(60.0)
        assert breaker.last_transition is not None
        assert breaker.last_transition.reason.startswith("trial call failed")


# -- half-open concurrency, the stuck-probe bound, cancellation -----------------------


@pytest.mark.parametrize(
    "max_calls",
    [pytest.param(1, id="one-trial"), pytest.param(3, id="three-trials")],
)
async def test_half_open_admits_at_most_max_calls_concurrently(
    clock: FakeClock, kimi: Provider, max_calls: int
) -> None:
    """Of many concurrent callers, only CIRCUIT_BREAKER_HALF_OPEN_MAX_CALLS reach the provider."""
    async with memory_registry(
        clock,
        circuit_breaker_failure_threshold=1,
        circuit_breaker_half_open_max_calls=max_calls,
        circuit_breaker_success_threshold=max_calls,
    ) as registry:
        breaker = registry.get("kimi")
        await fail_times(breaker, kimi, 1)
        clock.advance(60)
        calls_before = kimi.calls
        tasks = [asyncio.create_task(breaker.call(kimi.gated)) for _ in range(50)]
        await wait_until(
            lambda: sum(t.done() for t in tasks) + kimi.entered == len(tasks)
        )
        assert kimi.entered == max_calls
        assert kimi.calls - calls_before == max_calls
        assert breaker.trials_in_flight == max_calls
        assert breaker.state is HALF_OPEN
        refused = [t.exception() for t in tasks if t.done()]
        assert len(refused) == 50 - max_calls
        assert all(isinstance(e, CircuitOpenError) for e in refused)
        assert {e.state for e in refused if isinstance(e, CircuitOpenError)} == {
            "half_open"
        }
        kimi.gate.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert results.count("kimi: ok") == max_calls
        assert breaker.state is CLOSED
        assert breaker.trials_in_flight == 0


@pytest.mark.parametrize(
    "how",
    [pytest.param("next-call", id="next-call"), pytest.param("tick", id="tick")],
)
async def test_a_trial_that_never_reports_does_not_leave_it_stuck(
    clock: FakeClock, kimi: Provider, how: str
) -> None:
    """After the trial bound, a silent trial reopens the breaker (resilience4j #903)."""
    async with memory_registry(
        clock,
        circuit_breaker_failure_threshold=1,
        circuit_breaker_half_open_trial_timeout=5,
        circuit_breaker_timeout=10,
    ) as registry:
        breaker = registry.get("kimi")
        await fail_times(breaker, kimi, 1)
        clock.advance(10)
        stuck = asyncio.create_task(breaker.call(kimi.gated))
        await wait_until(lambda: kimi.entered == 1)
        assert breaker.trials_in_flight == 1
        clock.advance(4.9)
        await breaker.tick()
        refused = await rejected(breaker, kimi)
        assert (refused.state, breaker.state) == ("half_open", HALF_OPEN)
        assert refused.retry_after == pytest.approx(0.1)
        clock.advance(0.1)
        if how == "tick":
            await breaker.tick()
            assert breaker.state is OPEN
        refused = await rejected(breaker, kimi)
        assert breaker.state is OPEN
        assert refused.state == "open"
        assert breaker.trials_in_flight == 0
        assert breaker.last_transition is not None
        assert breaker.last_transition.reason == (
            "half-open trial did not report within 5s"
        )
        lost = await registry.history("kimi", kinds=["timeout"])
        assert [e.detail for e in lost] == ["trial_lost"]
        assert lost[0].duration == pytest.approx(5.0)
        kimi.gate.set()
        assert await stuck == "kimi: ok"  # a late report is history only
        assert breaker.state is OPEN
        clock.advance(10)
        await succeed_times(breaker, kimi, 2)
        assert breaker.state is CLOSED


@pytest.mark.parametrize("form", FORMS)
async def test_cancelled_call_in_closed_counts_as_neither(
    clock: FakeClock, kimi: Provider, form: Form
) -> None:
    """Cancelling a call neither adds a failure nor resets the count, and records nothing."""
    log = MemoryEventLog()
    async with memory_registry(
        clock, log=log, circuit_breaker_failure_threshold=3
    ) as registry:
        breaker = registry.get("kimi")
        await fail_times(breaker, kimi, 2)
        task = asyncio.create_task(form(breaker, kimi.gated))
        await wait_until(lambda: kimi.entered == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert breaker.consecutive_failures == 2
        assert breaker.state is CLOSED
        assert breaker.ignored == 1
        assert call_kinds(await registry.history("kimi")) == ["failure"] * 2


async def test_a_cancelled_trial_frees_its_slot(
    clock: FakeClock, kimi: Provider
) -> None:
    """A cancelled half-open trial gives its slot back at once, without reopening."""
    async with memory_registry(clock, circuit_breaker_failure_threshold=1) as registry:
        breaker = registry.get("kimi")
        await fail_times(breaker, kimi, 1)
        clock.advance(60)
        task = asyncio.create_task(breaker.call(kimi.gated))
        await wait_until(lambda: kimi.entered == 1)
        assert (await rejected(breaker, kimi)).state == "half_open"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert breaker.trials_in_flight == 0
        assert breaker.state is HALF_OPEN
        await succeed_times(breaker, kimi, 2)
        assert breaker.state is CLOSED


# -- what counts as a failure ---------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(ProviderRejected("bad request", status=400), id="400"),
        pytest.param(ProviderRejected("quota", status=429), id="rejected-429"),
        pytest.param(ValueError("caller bug"), id="value-error"),
        pytest.param(KeyError("missing"), id="key-error"),
    ],
)
async def test_caller_errors_count_as_neither(
    clock: FakeClock, kimi: Provider, error: Exception
) -> None:
    """Non-transient errors propagate unchanged and never trip, reset or reopen."""
    log = MemoryEventLog()
    async with memory_registry(
        clock, log=log, circuit_breaker_failure_threshold=2
    ) as registry:
        breaker = registry.get("kimi")
        await fail_times(breaker, kimi, 1)
        for _ in range(5):
            with pytest.raises(type(error)) as raised:
                await breaker.call(kimi.fail, error)
            assert raised.value is error
        assert breaker.state is CLOSED
        assert breaker.consecutive_failures == 1  # not reset either
        assert (breaker.failures, breaker.ignored) == (1, 5)
        await fail_times(breaker, kimi, 1)
        clock.advance(60)
        with pytest.raises(type(error)):
            await breaker.call(kimi.fail, error)
        assert breaker.state is HALF_OPEN
        assert breaker.trials_in_flight == 0
        kinds = call_kinds(await registry.history("kimi"))
        assert kinds == ["failure", "failure", "transition", "transition"]


async def test_a_custom_judge_decides_what_counts(
    clock: FakeClock, kimi: Provider
) -> None:
    """A judge predicate can make a ValueError a failure and a 503 harmless."""

    def judge(exc: BaseException) -> tuple[Outcome, str, int | None]:
        if isinstance(exc, ValueError):
            return Outcome.FAILURE, "bad_payload", None
        if isinstance(exc, ProviderUnavailable):
            return Outcome.IGNORED, "maintenance", exc.status
        return default_judge(exc)

    breaker = CircuitBreaker(
        "kimi",
        settings=ResilienceSettings(circuit_breaker_failure_threshold=2),
        clock=clock,
        judge=judge,
    )
    await fail_times(breaker, kimi, 3)
    assert breaker.state is CLOSED
    assert breaker.ignored == 3
    for _ in range(2):
        with pytest.raises(ValueError, match="payload"):
            await breaker.call(kimi.fail, ValueError("payload"))
    assert breaker.state is OPEN
    assert breaker.last_transition is not None
    assert breaker.last_transition.reason == "2 consecutive failures"


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(TimeoutError(), id="timeout-error"),
        pytest.param(ProviderTimeout("read timeout", provider="kimi"), id="provider"),
    ],
)
async def test_timeouts_are_recorded_as_timeouts(
    clock: FakeClock, kimi: Provider, error: Exception
) -> None:
    """A timeout counts toward the trip and is logged as a ``timeout`` event."""
    async with memory_registry(clock, circuit_breaker_failure_threshold=2) as registry:
        breaker = registry.get("kimi")
        with pytest.raises(type(error)):
            await breaker.call(kimi.fail, error)
        assert (breaker.timeouts, breaker.failures) == (1, 0)
        assert breaker.consecutive_failures == 1
        await fail_times(breaker, kimi, 1)
        assert breaker.state is OPEN
        events = await registry.history("kimi", kinds=["timeout"])
        assert [(e.kind, e.detail) for e in events] == [("timeout", "timeout")]


async def test_failure_events_carry_the_error_kind_and_status(
    clock: FakeClock, kimi: Provider
) -> None:
    """A failure event says what failed: the status for HTTP errors, else the type."""
    async with memory_registry(clock, circuit_breaker_failure_threshold=9) as registry:
        breaker = registry.get("kimi")
        for error in (
            ProviderUnavailable("busy", status=429),
            ProviderUnavailable("down", status=502),
            ConnectionRefusedError(),
        ):
            with pytest.raises(type(error)):
                await breaker.call(kimi.fail, error)
        events = await registry.history("kimi", kinds=["failure"])
        assert [(e.detail, e.status) for e in events] == [
            ("429", 429),
            ("502", 502),
            ("ConnectionRefusedError", None),
        ]


# -- the failure-rate window and slow calls -------------------------------------------


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        pytest.param("fff", CLOSED, id="under-minimum-calls"),
        pytest.param("ooof", CLOSED, id="rate-below-threshold"),
        pytest.param("ofof", OPEN, id="rate-at-threshold"),
        pytest.param("ffoooof", CLOSED, id="old-failures-slide-out"),
        pytest.param("ooooofof", OPEN, id="recent-failures"),
    ],
)
async def test_count_based_failure_rate_window(
    clock: FakeClock, kimi: Provider, outcomes: str, expected: BreakerState
) -> None:
    """Over the last N calls, with a minimum number of calls, the failure rate trips it."""
    async with memory_registry(
        clock,
        circuit_breaker_failure_threshold=100,
        circuit_breaker_failure_rate_threshold=0.5,
        circuit_breaker_window_type="count",
        circuit_breaker_window_size=4,
        circuit_breaker_minimum_calls=4,
    ) as registry:
        breaker = registry.get("kimi")
        for outcome in outcomes:
            await (succeed_times if outcome == "o" else fail_times)(breaker, kimi, 1)
        assert breaker.state is expected
        if expected is OPEN:
            assert breaker.last_transition is not None
            assert breaker.last_transition.reason.startswith("failure rate ")
            assert breaker.last_transition.reason.endswith("over last 4 calls")


@pytest.mark.parametrize(
    ("gap", "expected"),
    [
        pytest.param(0.0, OPEN, id="same-second"),
        pytest.param(5.0, OPEN, id="inside-window"),
        pytest.param(11.0, CLOSED, id="old-failures-expired"),
    ],
)
async def test_time_based_failure_rate_window(
    clock: FakeClock, kimi: Provider, gap: float, expected: BreakerState
) -> None:
    """Only calls within the last CIRCUIT_BREAKER_WINDOW_DURATION seconds count."""
    async with memory_registry(
        clock,
        circuit_breaker_failure_threshold=100,
        circuit_breaker_failure_rate_threshold=0.5,
        circuit_breaker_window_type="time",
        circuit_breaker_window_duration=10,
        circuit_breaker_minimum_calls=4,
    ) as registry:
        breaker = registry.get("kimi")
        await fail_times(breaker, kimi, 3)
        assert breaker.state is CLOSED  # three calls: under the minimum
        clock.advance(gap)
        await succeed_times(breaker, kimi, 1)
        await fail_times(breaker, kimi, 1)
        assert breaker.state is expected
        if expected is OPEN:
            assert breaker.last_transition is not None
            assert breaker.last_transition.reason.endswith("over last 10s")


async def test_slow_calls_count_as_failures(clock: FakeClock, kimi: Provider) -> None:
    """Successes slower than CIRCUIT_BREAKER_SLOW_CALL_DURATION trip it like failures."""
    async with memory_registry(
        clock,
        circuit_breaker_failure_threshold=3,
        circuit_breaker_slow_call_duration=1.0,
    ) as registry:
        breaker = registry.get("kimi")
        for _ in range(2):
            assert await breaker.call(kimi.slow, 2.0) == "kimi: ok"
        assert breaker.consecutive_failures == 2
        await breaker.call(kimi.slow, 0.5)
        assert breaker.consecutive_failures == 0
        for _ in range(3):
            await breaker.call(kimi.slow, 1.5)
        assert breaker.state is OPEN
        assert breaker.successes == 6
        slow = [
            e
            for e in await registry.history("kimi", kinds=["success"])
            if e.detail == "slow"
        ]
        assert [e.duration for e in slow] == [2.0, 2.0, 1.5, 1.5, 1.5]


async def test_a_slow_trial_reopens(clock: FakeClock, kimi: Provider) -> None:
    """In HALF_OPEN a slow success is a failed trial."""
    async with memory_registry(
        clock,
        circuit_breaker_failure_threshold=1,
        circuit_breaker_slow_call_duration=1.0,
    ) as registry:
        breaker = registry.get("kimi")
        await fail_times(breaker, kimi, 1)
        clock.advance(60)
        await breaker.call(kimi.slow, 3.0)
        assert breaker.state is OPEN
        assert breaker.last_transition is not None
        assert breaker.last_transition.reason == "trial call was slow"


async def test_open_duration_grows_on_each_reopen_up_to_the_cap(
    clock: FakeClock, kimi: Provider
) -> None:
    """Each failed probe multiplies the cooldown, capped; closing resets it."""
    async with memory_registry(
        clock,
        circuit_breaker_failure_threshold=1,
        circuit_breaker_success_threshold=1,
        circuit_breaker_timeout=10,
        circuit_breaker_timeout_multiplier=2,
        circuit_breaker_max_timeout=25,
    ) as registry:
        breaker = registry.get("kimi")
        await fail_times(breaker, kimi, 1)
        cooldowns = [breaker.retry_after]
        for _ in range(3):
            clock.advance(breaker.retry_after)
            await fail_times(breaker, kimi, 1)
            cooldowns.append(breaker.retry_after)
        assert cooldowns == [10.0, 20.0, 25.0, 25.0]
        assert breaker.reopen_count == 3
        assert (await rejected(breaker, kimi)).retry_after == pytest.approx(25.0)
        clock.advance(25)
        await succeed_times(breaker, kimi, 1)
        assert breaker.state is CLOSED
        assert breaker.reopen_count == 0
        await fail_times(breaker, kimi, 1)
        assert breaker.retry_after == pytest.approx(10.0)


# -- manual control -------------------------------------------------------------------


async def test_force_open_reset_and_disable_are_recorded_with_reason_and_actor(
    clock: FakeClock, kimi: Provider
) -> None:
    """Operator actions change the state at once and land in the history."""
    async with memory_registry(clock, circuit_breaker_failure_threshold=2) as registry:
        breaker = registry.get("kimi")
        await breaker.force_open("provider incident #42", "alice")
        assert breaker.state is FORCED_OPEN
        clock.advance(3600)  # no cooldown ends a forced open
        refused = await rejected(breaker, kimi)
        assert (refused.state, refused.breaker) == ("forced_open", "kimi")
        assert kimi.calls == 0
        await breaker.reset("incident over", "bob")
        assert breaker.state is CLOSED
        await breaker.disable("metrics only during migration", "carol")
        assert breaker.state is DISABLED
        await fail_times(breaker, kimi, 10)
        assert breaker.state is DISABLED  # never trips
        assert breaker.failures == 10  # but still records
        await breaker.reset("migration done", None)
        history = await registry.history("kimi", kinds=["transition"])
        assert [(e.from_state, e.to_state, e.reason, e.actor) for e in history] == [
            ("closed", "forced_open", "provider incident #42", "alice"),
            ("forced_open", "closed", "incident over", "bob"),
            ("closed", "disabled", "metrics only during migration", "carol"),
            ("disabled", "closed", "migration done", None),
        ]
        assert [e.state_version for e in history] == [1, 2, 3, 4]
        failures = await registry.history("kimi", kinds=["failure"])
        assert sum(e.count for e in failures) == 10


async def test_reset_from_open_clears_the_counters(
    clock: FakeClock, kimi: Provider
) -> None:
    """``reset`` closes an OPEN breaker at once, with a fresh failure count."""
    async with memory_registry(clock, circuit_breaker_failure_threshold=2) as registry:
        breaker = registry.get("kimi")
        await fail_times(breaker, kimi, 2)
        await breaker.reset("upstream confirmed healthy", "ops")
        assert breaker.state is CLOSED
        assert breaker.retry_after == 0.0
        await fail_times(breaker, kimi, 1)
        assert breaker.state is CLOSED


# -- the three forms ------------------------------------------------------------------


@pytest.mark.parametrize("form", FORMS)
async def test_every_form_guards_the_same_way(
    clock: FakeClock, kimi: Provider, form: Form
) -> None:
    """``call``, ``guard()`` and the decorator count, trip, reject and recover alike."""
    async with memory_registry(clock, circuit_breaker_failure_threshold=2) as registry:
        breaker = registry.get("kimi")
        assert await form(breaker, kimi.ok) == "kimi: ok"
        for _ in range(2):
            with pytest.raises(ProviderUnavailable):
                await form(breaker, kimi.fail)
        assert breaker.state is OPEN
        with pytest.raises(CircuitOpenError) as refused:
            await form(breaker, kimi.ok)
        assert refused.value.breaker == "kimi"
        assert kimi.calls == 3
        clock.advance(60)
        for _ in range(2):
            assert await form(breaker, kimi.ok) == "kimi: ok"
        assert breaker.state is CLOSED
        kinds = call_kinds(await registry.history("kimi"))
        assert kinds == [
            "success",
            "failure",
            "failure",
            "transition",
            "transition",
            "success",
            "success",
            "transition",
        ]


async def test_the_decorator_keeps_the_function_name(clock: FakeClock) -> None:
    """Decorating keeps ``__name__`` and passes arguments through."""
    async with memory_registry(clock) as registry:

        @registry.get("kimi")
        async def upload(path: str, *, purpose: str) -> str:
            return f"{path}:{purpose}"

        assert upload.__name__ == "upload"
        assert await upload("a.pdf", purpose="file-extract") == "a.pdf:file-extract"


# -- logs -------------------------------------------------------------------------------


async def test_transitions_are_logged_warning_for_opens_info_otherwise(
    clock: FakeClock, kimi: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    """Stable ``[CIRCUIT]`` lines: opens at WARNING, every other move at INFO."""
    caplog.set_level(logging.INFO, logger="breaker_service.breaker")
    async with memory_registry(clock) as registry:
        breaker = registry.get("kimi")
        await fail_times(breaker, kimi, 5)
        clock.advance(60)
        await succeed_times(breaker, kimi, 2)
        await breaker.force_open("maintenance", "alice")
        await breaker.reset("done", "alice")
    lines = [
        (r.levelno, r.getMessage())
        for r in caplog.records
        if r.name == "breaker_service.breaker"
    ]
    assert lines == [
        (
            logging.WARNING,
            "[CIRCUIT] State transition: kimi: closed -> open (5 consecutive failures)",
        ),
        (
            logging.INFO,
            "[CIRCUIT] State transition: kimi: open -> half_open (cooldown of 60s elapsed)",
        ),
        (
            logging.INFO,
            "[CIRCUIT] State transition: kimi: half_open -> closed (2 successful trial calls)",
        ),
        (
            logging.WARNING,
            "[CIRCUIT] State transition: kimi: closed -> forced_open (maintenance; by alice)",
        ),
        (
            logging.INFO,
            "[CIRCUIT] State transition: kimi: forced_open -> closed (done; by alice)",
        ),
    ]


async def test_creating_breakers_logs_nothing(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Building a breaker (and its ``transitions`` machine) is silent at WARNING."""
    caplog.set_level(logging.WARNING)
    async with memory_registry(clock) as registry:
        for name in ("kimi", "glm", "supabase"):
            registry.get(name)
    assert [r.getMessage() for r in caplog.records] == []


# -- breakers switched off by configuration -------------------------------------------


@pytest.mark.parametrize(
    "variable",
    [
        pytest.param("RESILIENCE_CIRCUIT_BREAKER_ENABLED", id="breaker-off"),
        pytest.param("RESILIENCE_ENABLED", id="resilience-off"),
    ],
)
@pytest.mark.parametrize("form", FORMS)
async def test_disabled_by_configuration_is_a_pass_through(
    clock: FakeClock,
    kimi: Provider,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    form: Form,
) -> None:
    """With breakers off, calls always reach the provider and nothing is recorded."""
    monkeypatch.setenv(variable, "false")
    log = MemoryEventLog()
    async with memory_registry(
        clock, log=log, circuit_breaker_failure_threshold=1
    ) as registry:
        breaker = registry.get("kimi")
        assert not breaker.enabled
        for _ in range(10):
            with pytest.raises(ProviderUnavailable):
                await form(breaker, kimi.fail)
        assert await form(breaker, kimi.ok) == "kimi: ok"
        assert kimi.calls == 11
        assert breaker.state is CLOSED
        assert (breaker.failures, breaker.successes, breaker.rejections) == (0, 0, 0)
        assert await registry.flush()
    assert log.events == []


# -- the resilient call: retries around the breaker -----------------------------------


@pytest.fixture
def no_testing_mode() -> Iterator[None]:
    """Backoff waits go through the fake clock (testing mode off), restored after."""
    with real_backoff():
        yield


RETRIES: dict[str, Any] = {
    "retry_max_attempts": 3,
    "retry_base_delay": 0.5,
    "retry_exponential_base": 2.0,
    "retry_jitter": False,
}
PER_ATTEMPT: dict[str, Any] = {**RETRIES, "circuit_breaker_count": "attempts"}
"""The counting of earlier versions: every attempt is an outcome."""


@pytest.mark.usefixtures("no_testing_mode")
async def test_resilient_call_successful_execution(
    clock: FakeClock, kimi: Provider
) -> None:
    """A healthy provider is called once, with no waits."""
    async with memory_registry(clock, **RETRIES) as registry:
        assert await registry.call("kimi", kimi.ok) == "kimi: ok"
        assert kimi.calls == 1
        assert clock.sleeps == []
        assert registry.get("kimi").successes == 1


@pytest.mark.usefixtures("no_testing_mode")
async def test_resilient_call_retries_then_succeeds(
    clock: FakeClock, kimi: Provider
) -> None:
    """Two transient failures, then success: backoff 0.5s then 1s, breaker stays CLOSED."""
    kimi.script = [
        ProviderUnavailable("down", status=503),
        ProviderTimeout("slow"),
        None,
    ]
    async with memory_registry(clock, **PER_ATTEMPT) as registry:
        assert await registry.call("kimi", kimi.scripted) == "kimi: ok"
        assert kimi.calls == 3
        assert clock.sleeps == [0.5, 1.0]
        breaker = registry.get("kimi")
        assert breaker.state is CLOSED
        assert breaker.consecutive_failures == 0
        kinds = call_kinds(await registry.history("kimi"))
        assert kinds == ["failure", "timeout", "success"]


@pytest.mark.usefixtures("no_testing_mode")
async def test_resilient_call_isolates_providers(clock: FakeClock) -> None:
    """Kimi's failures open kimi's breaker only; glm's breaker never hears of them."""
    kimi, glm = Provider("kimi"), Provider("glm")
    async with memory_registry(
        clock, circuit_breaker_failure_threshold=3, **PER_ATTEMPT
    ) as registry:
        await registry.call("glm", glm.ok)
        with pytest.raises(ProviderUnavailable):
            await registry.call("kimi", kimi.fail)
        assert registry.get("kimi").state is OPEN
        with pytest.raises(CircuitOpenError):
            await registry.call("kimi", kimi.ok)
        assert await registry.call("glm", glm.ok) == "glm: ok"
        status = registry.get("glm").status()
        assert (status["state"], status["failures"], status["version"]) == (
            "closed",
            0,
            0,
        )
        assert {e.kind for e in await registry.history("glm")} == {"success"}
        assert registry.names() == ["glm", "kimi"]


@pytest.mark.usefixtures("no_testing_mode")
async def test_an_open_breaker_stops_retries_at_once(
    clock: FakeClock, kimi: Provider
) -> None:
    """The attempt after the trip meets CircuitOpenError, which is not retried."""
    async with memory_registry(
        clock,
        circuit_breaker_failure_threshold=2,
        **{**PER_ATTEMPT, "retry_max_attempts": 6},
    ) as registry:
        with pytest.raises(CircuitOpenError) as refused:
            await registry.call("kimi", kimi.fail)
        assert refused.value.breaker == "kimi"
        assert kimi.calls == 2
        assert attempts_of(refused.value) == 3
        assert clock.sleeps == [0.5, 1.0]
        with pytest.raises(CircuitOpenError):
            await registry.call("kimi", kimi.fail)
        assert kimi.calls == 2
        assert clock.sleeps == [0.5, 1.0]


# -- status ------------------------------------------------------------------------------


@pytest.mark.parametrize("scope", ["instance", "shared"])
def test_status_reports_the_breakers_own_scope(clock: FakeClock, scope: str) -> None:
    """``status()["scope"]`` comes from the breaker's settings (was always "instance")."""
    breaker = CircuitBreaker(
        "kimi", settings=ResilienceSettings(breaker_scope=scope), clock=clock
    )
    assert breaker.status()["scope"] == scope


async def test_a_transition_has_one_shape_in_status_and_snapshots(
    clock: FakeClock,
) -> None:
    """``status()`` and snapshot data expose the last transition as the same dict."""
    breaker = CircuitBreaker("kimi", clock=clock)
    assert breaker.status()["last_transition"] is None
    await breaker.force_open("maintenance", actor="carol")
    shown = breaker.status()["last_transition"]
    assert shown == breaker.snapshot_data()["last_transition"]
    assert (shown["from_state"], shown["to_state"]) == ("closed", "forced_open")
    assert (shown["reason"], shown["actor"], shown["at"]) == (
        "maintenance",
        "carol",
        clock.time(),
    )

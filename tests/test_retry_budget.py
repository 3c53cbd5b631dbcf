"""The retry budget: a share of recent requests, a concurrency floor, a sliding window."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter

import pytest

from breaker_service.clock import FakeClock
from breaker_service.errors import ProviderUnavailable
from breaker_service.retry import (
    GiveUp,
    RetryBudget,
    RetryPolicy,
    RetryScheduled,
    attempts_of,
)

pytestmark = pytest.mark.usefixtures("testing_mode_off")


def test_min_concurrency_floor_allows_retries_with_no_traffic(clock: FakeClock) -> None:
    """With ratio 0 only the floor of concurrent retries is allowed."""
    budget = RetryBudget(ratio=0.0, min_concurrency=3, clock=clock)
    assert [budget.try_acquire() for _ in range(4)] == [True, True, True, False]
    assert budget.active_retries == 3
    assert budget.exhausted == 1
    budget.release()
    assert budget.try_acquire()
    assert not budget.try_acquire()
    assert budget.exhausted == 2


@pytest.mark.parametrize(
    ("ratio", "requests", "allowed"),
    [
        pytest.param(0.2, 10, 2, id="20-percent-of-10"),
        pytest.param(0.2, 100, 20, id="20-percent-of-100"),
        pytest.param(0.5, 7, 3, id="rounds-down"),
        pytest.param(1.0, 4, 4, id="one-retry-per-request"),
        pytest.param(0.0, 50, 0, id="no-retries"),
    ],
)
def test_retries_are_limited_to_a_share_of_requests(
    clock: FakeClock, ratio: float, requests: int, allowed: int
) -> None:
    """Without the floor, retries in the window are at most ``ratio`` of requests."""
    budget = RetryBudget(ratio=ratio, min_concurrency=0, clock=clock)
    for _ in range(requests):
        budget.record_request()
    grants = [budget.try_acquire() for _ in range(allowed + 5)]
    assert grants == [True] * allowed + [False] * 5
    assert budget.exhausted == 5


def test_finished_retries_still_count_against_the_share(clock: FakeClock) -> None:
    """Releasing a retry frees the concurrency slot, not the share of the window."""
    budget = RetryBudget(ratio=0.2, min_concurrency=0, clock=clock)
    for _ in range(10):
        budget.record_request()
    assert budget.try_acquire()
    assert budget.try_acquire()
    budget.release()
    budget.release()
    assert budget.active_retries == 0
    assert not budget.try_acquire()


def test_release_never_goes_below_zero(clock: FakeClock) -> None:
    """A stray release does not create extra concurrency."""
    budget = RetryBudget(ratio=0.0, min_concurrency=1, clock=clock)
    budget.release()
    assert budget.active_retries == 0
    assert budget.try_acquire()
    assert not budget.try_acquire()


def test_window_forgets_requests_older_than_the_window(clock: FakeClock) -> None:
    """Requests leave the ten-second window, and with them the share they bought."""
    budget = RetryBudget(ratio=0.2, min_concurrency=0, window=10, clock=clock)
    for _ in range(10):
        budget.record_request()
    clock.advance(9.5)
    assert budget.try_acquire()  # the requests are 9.5 s old: still counted
    budget.release()
    clock.advance(0.5)
    assert not budget.try_acquire()  # 10 s: those requests have rotated out


def test_window_forgets_old_retries_too(clock: FakeClock) -> None:
    """Retries charged long ago no longer use up the share of new requests."""
    budget = RetryBudget(ratio=0.2, min_concurrency=0, window=10, clock=clock)
    for _ in range(10):
        budget.record_request()
    assert budget.try_acquire()
    assert budget.try_acquire()
    budget.release()
    budget.release()
    clock.advance(60.0)
    for _ in range(10):
        budget.record_request()
    assert [budget.try_acquire() for _ in range(3)] == [True, True, False]


def test_window_keeps_the_recent_seconds(clock: FakeClock) -> None:
    """Only buckets that fell out of the window are cleared."""
    budget = RetryBudget(ratio=0.2, min_concurrency=0, window=10, clock=clock)
    for _ in range(10):
        budget.record_request()
    clock.advance(5.0)
    for _ in range(10):
        budget.record_request()
    clock.advance(5.0)  # the first ten are now out, the second ten still in
    assert [budget.try_acquire() for _ in range(3)] == [True, True, False]


@pytest.mark.parametrize(
    "ratio",
    [pytest.param(-0.1, id="negative"), pytest.param(1.5, id="above-one")],
)
def test_ratio_outside_zero_and_one_is_refused(ratio: float) -> None:
    """The budget ratio is a share."""
    with pytest.raises(ValueError, match=r"ratio must be within \[0, 1\]"):
        RetryBudget(ratio=ratio)


async def test_retry_is_charged_when_scheduled_not_when_started(
    clock: FakeClock,
) -> None:
    """A retry waiting out its backoff already holds a concurrency slot."""
    budget = RetryBudget(ratio=0.0, min_concurrency=1, clock=clock)
    seen_while_scheduled: list[int] = []
    policy = RetryPolicy(
        clock=clock,
        budget=budget,
        jitter=False,
        on_retry=lambda _: seen_while_scheduled.append(budget.active_retries),
    )
    calls: list[str] = []

    async def first() -> str:
        calls.append("first")
        if calls.count("first") == 1:
            raise ProviderUnavailable("busy", provider="kimi", status=503)
        return "ok"

    async def second() -> str:
        calls.append("second")
        raise ProviderUnavailable("busy", provider="kimi", status=503)

    results = await asyncio.gather(
        policy.call(first), policy.call(second), return_exceptions=True
    )
    assert seen_while_scheduled == [1]
    assert results[0] == "ok"
    assert isinstance(results[1], ProviderUnavailable)
    assert attempts_of(results[1]) == 1  # the first call's pending retry took the slot
    assert calls == ["first", "second", "first"]
    assert budget.active_retries == 0


async def test_budget_stops_a_retry_storm(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """100 concurrent calls to a dead provider retry at most 20 % + the floor."""
    caplog.set_level(logging.WARNING, logger="breaker_service")
    budget = RetryBudget(ratio=0.2, min_concurrency=3, clock=clock)
    scheduled: list[RetryScheduled] = []
    given_up: list[GiveUp] = []
    policy = RetryPolicy(
        name="kimi",
        max_attempts=3,
        base_delay=0.01,
        clock=clock,
        rng=random.Random(7),
        budget=budget,
        on_retry=scheduled.append,
        on_give_up=given_up.append,
    )
    everyone_in_flight = asyncio.Event()
    calls = 0

    async def dead_provider() -> str:
        nonlocal calls
        calls += 1
        if calls == 100:
            everyone_in_flight.set()
        await everyone_in_flight.wait()
        raise ProviderUnavailable("down", provider="kimi", status=503)

    outcomes = await asyncio.gather(
        *(policy.call(dead_provider) for _ in range(100)), return_exceptions=True
    )

    results = [r for r in outcomes if isinstance(r, ProviderUnavailable)]
    assert len(results) == 100
    assert len(scheduled) <= 0.2 * 100 + 3
    assert calls == 100 + len(scheduled)  # without the budget: 300 calls
    reasons = Counter(g.reason for g in given_up)
    assert reasons["retry budget exhausted"] == budget.exhausted > 0
    assert sum(reasons.values()) == 100
    assert all((attempts_of(r) or 0) <= 3 for r in results)
    assert budget.active_retries == 0
    assert (
        "[RETRY] kimi giving up after attempt 1 (503, retry budget exhausted): down"
        in [r.getMessage() for r in caplog.records]
    )


async def test_budget_is_shared_by_policies_of_one_provider(clock: FakeClock) -> None:
    """Two policies with one budget draw on the same allowance."""
    budget = RetryBudget(ratio=0.0, min_concurrency=1, clock=clock)
    upload = RetryPolicy(name="kimi", clock=clock, budget=budget, jitter=False)
    poll = RetryPolicy(name="kimi", clock=clock, budget=budget, jitter=False)
    budget.try_acquire()  # a retry of some third call is in flight

    async def busy() -> str:
        raise ProviderUnavailable("busy", provider="kimi", status=503)

    for policy in (upload, poll):
        with pytest.raises(ProviderUnavailable) as caught:
            await policy.call(busy)
        assert attempts_of(caught.value) == 1
    assert budget.exhausted == 2
    assert clock.sleeps == []


async def test_successful_calls_feed_the_budget(clock: FakeClock) -> None:
    """Every original call counts as a request, so healthy traffic earns retries."""
    budget = RetryBudget(ratio=0.2, min_concurrency=0, clock=clock)
    policy = RetryPolicy(clock=clock, budget=budget, jitter=False)

    async def fine() -> str:
        return "ok"

    for _ in range(10):
        await policy.call(fine)
    flaky_calls = 0

    async def flaky() -> str:
        nonlocal flaky_calls
        flaky_calls += 1
        if flaky_calls == 1:
            raise ProviderUnavailable("busy", provider="kimi", status=503)
        return "ok"

    assert await policy.call(flaky) == "ok"
    assert flaky_calls == 2
    assert budget.active_retries == 0


async def test_attempts_form_charges_and_releases_the_budget(clock: FakeClock) -> None:
    """The iterator form records the request and frees its retry slot at the end."""
    budget = RetryBudget(ratio=0.0, min_concurrency=1, clock=clock)
    policy = RetryPolicy(clock=clock, budget=budget, jitter=False)
    numbers: list[int] = []
    async for attempt in policy.attempts():
        with attempt:
            numbers.append(attempt.number)
            assert budget.active_retries == (0 if attempt.number == 1 else 1)
            if attempt.number == 1:
                raise ProviderUnavailable("busy", provider="kimi", status=503)
    assert numbers == [1, 2]
    assert budget.active_retries == 0

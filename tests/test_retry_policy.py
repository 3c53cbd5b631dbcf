"""The retry engine: the three forms, give-up rules, Retry-After, deadlines, hooks, logs."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from breaker_service import testing
from breaker_service.clock import FakeClock
from breaker_service.config import ResilienceSettings, load_settings
from breaker_service.errors import (
    CircuitOpenError,
    ProviderRejected,
    ProviderUnavailable,
)
from breaker_service.retry import (
    Attempt,
    Classification,
    Classifier,
    GiveUp,
    RetryPolicy,
    RetryScheduled,
    attempts_of,
)
from breaker_service.testing import set_testing

REQUEST = httpx.Request("POST", "https://api.moonshot.test/v1/files")
STEP = 0.125  # fake seconds a slow call spends between two chances to be cancelled


pytestmark = pytest.mark.usefixtures("testing_mode_off")


def policy_on(clock: FakeClock, **options: Any) -> RetryPolicy:
    """A policy on ``clock`` with a seeded rng, no jitter unless asked."""
    options.setdefault("jitter", False)
    options.setdefault("rng", random.Random(42))
    return RetryPolicy(clock=clock, **options)


def unavailable(status: int = 503, **extra: Any) -> ProviderUnavailable:
    """A transient provider failure."""
    return ProviderUnavailable(
        f"HTTP {status}", provider="kimi", status=status, **extra
    )


def http_error(
    status: int, headers: dict[str, str] | None = None
) -> httpx.HTTPStatusError:
    """An ``httpx.HTTPStatusError`` as ``raise_for_status()`` raises it."""
    response = httpx.Response(status, request=REQUEST, headers=headers)
    return httpx.HTTPStatusError(f"HTTP {status}", request=REQUEST, response=response)


class Script:
    """An async callable that plays its outcomes in order: raise errors, return values."""

    def __init__(
        self,
        *outcomes: BaseException | str,
        clock: FakeClock | None = None,
        takes: float = 0.0,
    ) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0
        self.arguments: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self._clock = clock
        self._takes = takes

    async def __call__(self, *args: Any, **kwargs: Any) -> str:
        self.calls += 1
        self.arguments.append((args, kwargs))
        if self._clock is not None:
            self._clock.advance(self._takes)
        outcome = self.outcomes[min(self.calls, len(self.outcomes)) - 1]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def run_loop_on_fake_time(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make asyncio timeouts on this loop read the fake clock, so no test really waits."""
    monkeypatch.setattr(asyncio.get_running_loop(), "time", clock.monotonic)


async def spend(clock: FakeClock, seconds: float) -> None:
    """Spend ``seconds`` of fake time in small steps, cancellable between steps."""
    for _ in range(round(seconds / STEP)):
        clock.advance(STEP)
        await asyncio.sleep(0)  # the loop notices the expired timeout...
        await asyncio.sleep(0)  # ...and delivers the cancellation here


async def in_attempts(
    policy: RetryPolicy, fn: Script, seen: list[Attempt] | None = None
) -> str:
    """Run ``fn`` in the ``async for attempt in policy.attempts()`` form."""
    result = ""
    async for attempt in policy.attempts():
        with attempt:
            if seen is not None:
                seen.append(attempt)
            result = await fn()
    return result


# -- the seed's scenarios ----------------------------------------------------------------


async def test_success_on_first_attempt(clock: FakeClock) -> None:
    """A call that works is made once, with no wait."""
    fetch = Script("ok")
    assert await policy_on(clock).call(fetch) == "ok"
    assert fetch.calls == 1
    assert clock.sleeps == []


async def test_success_after_transient_failures(clock: FakeClock) -> None:
    """Two transient failures, then success: three calls and two backoff waits."""
    fetch = Script(
        unavailable(503), httpx.ConnectError("refused", request=REQUEST), "ok"
    )
    assert await policy_on(clock).call(fetch) == "ok"
    assert fetch.calls == 3
    assert clock.sleeps == [1.0, 2.0]


@pytest.mark.parametrize(
    "max_attempts", [pytest.param(n, id=f"max-{n}") for n in (1, 2, 3, 5)]
)
async def test_max_retries_exceeded_raises_the_last_error_itself(
    clock: FakeClock, max_attempts: int
) -> None:
    """Giving up re-raises the last error (not a wrapper) with ``attempts`` set."""
    errors = [unavailable(503) for _ in range(max_attempts)]
    fetch = Script(*errors)
    with pytest.raises(ProviderUnavailable) as caught:
        await policy_on(clock, max_attempts=max_attempts).call(fetch)
    assert caught.value is errors[-1]
    assert attempts_of(caught.value) == max_attempts
    assert caught.value.attempts == max_attempts  # type: ignore[attr-defined]
    assert fetch.calls == max_attempts
    assert len(clock.sleeps) == max_attempts - 1


NON_RETRYABLE = [
    pytest.param(
        ProviderRejected("bad file", provider="kimi", status=400), id="rejected-400"
    ),
    pytest.param(http_error(401), id="httpx-401"),
    pytest.param(http_error(404), id="httpx-404"),
    pytest.param(ValueError("bug"), id="ValueError"),
    pytest.param(CircuitOpenError("kimi", 30.0), id="circuit-open"),
]


@pytest.mark.parametrize("error", NON_RETRYABLE)
async def test_non_retryable_errors_are_not_retried(
    clock: FakeClock, error: Exception
) -> None:
    """A permanent error is raised at once, itself, after one attempt."""
    fetch = Script(error, "never reached")
    with pytest.raises(type(error)) as caught:
        await policy_on(clock).call(fetch)
    assert caught.value is error
    assert attempts_of(error) == 1
    assert fetch.calls == 1
    assert clock.sleeps == []


async def test_permanent_error_after_a_transient_one_stops_the_retries(
    clock: FakeClock,
) -> None:
    """A 503 is retried, the 400 that follows is not."""
    rejected = ProviderRejected("bad file", provider="kimi", status=400)
    fetch = Script(unavailable(503), rejected, "never reached")
    with pytest.raises(ProviderRejected) as caught:
        await policy_on(clock, max_attempts=5).call(fetch)
    assert caught.value is rejected
    assert attempts_of(rejected) == 2
    assert fetch.calls == 2


async def test_exponential_backoff_between_attempts(clock: FakeClock) -> None:
    """Waits grow by the exponential base and stop at the maximum delay."""
    fetch = Script(*(unavailable() for _ in range(6)))
    policy = policy_on(clock, max_attempts=6, base_delay=0.5, max_delay=3.0)
    with pytest.raises(ProviderUnavailable):
        await policy.call(fetch)
    assert clock.sleeps == [0.5, 1.0, 2.0, 3.0, 3.0]


@pytest.mark.parametrize("seed", [pytest.param(s, id=f"seed-{s}") for s in range(5)])
async def test_jittered_waits_stay_within_the_exponential_bounds(
    clock: FakeClock, seed: int
) -> None:
    """With full jitter each wait is in [0, base * 2 ** n] and reproducible from the seed."""
    fetch = Script(*(unavailable() for _ in range(6)))
    policy = policy_on(clock, max_attempts=6, jitter=True, rng=random.Random(seed))
    with pytest.raises(ProviderUnavailable):
        await policy.call(fetch)
    assert len(clock.sleeps) == 5
    assert all(0.0 <= s <= 2.0**n for n, s in enumerate(clock.sleeps))
    again = FakeClock()
    with pytest.raises(ProviderUnavailable):
        await policy_on(
            again, max_attempts=6, jitter=True, rng=random.Random(seed)
        ).call(Script(unavailable()))
    assert again.sleeps == clock.sleeps


@pytest.mark.parametrize(
    ("status", "retried"),
    [pytest.param(s, True, id=str(s)) for s in (429, 500, 502, 503, 504)]
    + [pytest.param(s, False, id=str(s)) for s in (400, 401, 403, 404, 409, 422)],
)
async def test_http_status_handling(
    clock: FakeClock,
    status: int,
    retried: bool,
) -> None:
    """429 and 5xx responses are retried up to the limit; 4xx responses are not."""
    error = http_error(status)
    fetch = Script(error)
    with pytest.raises(httpx.HTTPStatusError) as caught:
        await policy_on(clock).call(fetch)
    assert caught.value is error
    assert fetch.calls == (3 if retried else 1)


# -- the three forms ---------------------------------------------------------------------


async def test_call_passes_arguments_through(clock: FakeClock) -> None:
    """``policy.call(fn, *args, **kwargs)`` calls ``fn(*args, **kwargs)`` each attempt."""
    fetch = Script(unavailable(), "ok")
    assert await policy_on(clock).call(fetch, "a.pdf", purpose="file-extract") == "ok"
    assert fetch.arguments == [(("a.pdf",), {"purpose": "file-extract"})] * 2


async def test_decorator_form_retries_and_keeps_the_function_identity(
    clock: FakeClock,
) -> None:
    """``@policy`` retries every call and keeps the function's name and docstring."""
    outcomes = Script(unavailable(502), "ok")

    @policy_on(clock)
    async def upload(path: str, *, purpose: str) -> str:
        """Upload one file."""
        return await outcomes(path, purpose=purpose)

    assert await upload("a.pdf", purpose="file-extract") == "ok"
    assert outcomes.calls == 2
    assert upload.__name__ == "upload"
    assert upload.__doc__ == "Upload one file."
    assert clock.sleeps == [1.0]


async def test_decorator_form_gives_up_with_the_last_error(clock: FakeClock) -> None:
    """A decorated function that keeps failing raises its last error."""
    last = unavailable(504)
    outcomes = Script(unavailable(503), unavailable(502), last)

    @policy_on(clock)
    async def upload() -> str:
        """Upload."""
        return await outcomes()

    with pytest.raises(ProviderUnavailable) as caught:
        await upload()
    assert caught.value is last
    assert attempts_of(last) == 3


async def test_attempts_form_retries_until_success(clock: FakeClock) -> None:
    """``async for attempt in policy.attempts()`` with ``with attempt:`` retries the block."""
    fetch = Script(unavailable(), unavailable(), "ok")
    numbers: list[int] = []
    result = None
    async for attempt in policy_on(clock).attempts():
        with attempt:
            numbers.append(attempt.number)
            result = await fetch()
    assert result == "ok"
    assert numbers == [1, 2, 3]
    assert clock.sleeps == [1.0, 2.0]


async def test_attempts_form_gives_up_with_the_last_error(clock: FakeClock) -> None:
    """When the iterator gives up, the block's last error propagates with ``attempts``."""
    errors = [unavailable(), unavailable(), unavailable()]
    fetch = Script(*errors)
    with pytest.raises(ProviderUnavailable) as caught:
        await in_attempts(policy_on(clock), fetch)
    assert caught.value is errors[-1]
    assert attempts_of(caught.value) == 3


async def test_attempts_form_does_not_retry_permanent_errors(clock: FakeClock) -> None:
    """A permanent error ends the loop at once."""
    rejected = ProviderRejected("bad key", provider="kimi", status=401)
    fetch = Script(rejected)
    with pytest.raises(ProviderRejected) as caught:
        await in_attempts(policy_on(clock), fetch)
    assert caught.value is rejected
    assert fetch.calls == 1


def test_attempt_does_not_swallow_cancellation() -> None:
    """``with attempt:`` lets CancelledError and other BaseExceptions through."""
    attempt = Attempt(1, None)
    with pytest.raises(asyncio.CancelledError), attempt:
        raise asyncio.CancelledError
    assert attempt.error is None


# -- Retry-After ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("retry_after", "expected_wait"),
    [
        pytest.param(7.0, 7.0, id="longer-than-backoff"),
        pytest.param(0.5, 1.0, id="shorter-than-backoff"),
        pytest.param(60.0, 60.0, id="equal-to-the-cap"),
    ],
)
async def test_retry_after_seconds_is_a_minimum_wait(
    clock: FakeClock, retry_after: float, expected_wait: float
) -> None:
    """The wait is the larger of the backoff (1 s here) and the server's Retry-After."""
    fetch = Script(unavailable(429, retry_after=retry_after), "ok")
    assert await policy_on(clock).call(fetch) == "ok"
    assert clock.sleeps == [expected_wait]


async def test_retry_after_header_in_seconds_is_honoured(clock: FakeClock) -> None:
    """``Retry-After: 7`` on an httpx 503 makes the jittered wait at least 7 s."""
    fetch = Script(http_error(503, {"Retry-After": "7"}), "ok")
    policy = policy_on(clock, jitter=True, rng=random.Random(3))
    assert await policy.call(fetch) == "ok"
    assert clock.sleeps == [7.0]


async def test_retry_after_http_date_is_honoured() -> None:
    """``Retry-After: <HTTP date>`` 30 s ahead makes the wait about 30 s."""
    clock = FakeClock(wall=time.time())  # header dates are absolute wall-clock times
    header = format_datetime(clock.now() + timedelta(seconds=30), usegmt=True)
    fetch = Script(http_error(503, {"Retry-After": header}), "ok")
    assert await policy_on(clock).call(fetch) == "ok"
    assert len(clock.sleeps) == 1
    assert 28.0 <= clock.sleeps[0] <= 30.0  # the header has one-second resolution


async def test_retry_after_http_date_is_read_against_the_injected_clock(
    clock: FakeClock,
) -> None:
    """A Retry-After date is compared with the policy's clock, not the machine's."""
    header = format_datetime(clock.now() + timedelta(seconds=30), usegmt=True)
    fetch = Script(http_error(503, {"Retry-After": header}), "ok")
    assert await policy_on(clock).call(fetch) == "ok"
    assert clock.sleeps == [30.0]


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(unavailable(429, retry_after=3600.0), id="provider-error"),
        pytest.param(http_error(503, {"Retry-After": "61"}), id="httpx-header"),
    ],
)
async def test_retry_after_beyond_max_delay_gives_up_at_once(
    clock: FakeClock, error: Exception
) -> None:
    """A Retry-After over RETRY_MAX_DELAY means no pointless wait: raise now."""
    given_up: list[GiveUp] = []
    fetch = Script(error, "never reached")
    with pytest.raises(type(error)) as caught:
        await policy_on(clock, max_delay=60.0, on_give_up=given_up.append).call(fetch)
    assert caught.value is error
    assert attempts_of(error) == 1
    assert fetch.calls == 1
    assert clock.sleeps == []
    assert [g.reason for g in given_up] == [
        f"Retry-After {given_up[0].classification.retry_after:.1f}s exceeds RETRY_MAX_DELAY"
    ]


async def test_retry_after_beyond_the_remaining_deadline_gives_up_at_once(
    clock: FakeClock,
) -> None:
    """A Retry-After that would end past the deadline is not waited for."""
    error = unavailable(429, retry_after=20.0)
    fetch = Script(error, "never reached")
    with pytest.raises(ProviderUnavailable) as caught:
        await policy_on(clock, deadline=15.0).call(fetch)
    assert caught.value is error
    assert fetch.calls == 1
    assert clock.sleeps == []


# -- deadline and attempt timeout ------------------------------------------------------


@pytest.mark.parametrize(
    ("deadline", "attempt_timeout", "call_takes", "durations", "sleeps"),
    [
        pytest.param(
            10.0, 6.0, 99.0, [6.0, 3.0], [1.0], id="timeout-shrinks-to-deadline"
        ),
        pytest.param(10.0, None, 99.0, [10.0], [], id="deadline-alone-bounds-the-call"),
        pytest.param(10.0, 4.0, 99.0, [4.0, 4.0], [1.0], id="no-room-for-third"),
        pytest.param(10.0, None, 3.0, [3.0, 3.0, 1.0], [1.0, 2.0], id="slow-failures"),
        pytest.param(20.0, 2.0, 99.0, [2.0, 2.0, 2.0, 2.0], [1.0, 2.0, 4.0], id="long"),
    ],
)
async def test_deadline_is_never_overshot(
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    *,
    deadline: float,
    attempt_timeout: float | None,
    call_takes: float,
    durations: list[float],
    sleeps: list[float],
) -> None:
    """Attempts plus waits fit in the deadline; the last attempt is cut to what remains."""
    run_loop_on_fake_time(clock, monkeypatch)
    spent: list[float] = []

    async def slow_failure() -> str:
        started = clock.monotonic()
        try:
            await spend(clock, call_takes)
        finally:
            spent.append(clock.monotonic() - started)
        raise unavailable(503)

    policy = policy_on(
        clock, max_attempts=10, deadline=deadline, attempt_timeout=attempt_timeout
    )
    began = clock.monotonic()
    with pytest.raises((ProviderUnavailable, TimeoutError)):
        await policy.call(slow_failure)
    assert spent == durations
    assert clock.sleeps == sleeps
    assert clock.monotonic() - began == sum(spent) + sum(clock.sleeps) <= deadline


@pytest.mark.parametrize("seed", [pytest.param(s, id=f"seed-{s}") for s in range(20)])
@pytest.mark.parametrize(
    "deadline", [pytest.param(d, id=f"deadline-{d}") for d in (0.5, 3.0, 7.5, 30.0)]
)
async def test_jittered_waits_never_overshoot_the_deadline(
    clock: FakeClock, seed: int, deadline: float
) -> None:
    """Whatever the jitter draws, the sum of waits stays below the deadline."""
    raised: list[ProviderUnavailable] = []

    async def fails() -> str:
        raised.append(unavailable(503))
        raise raised[-1]

    policy = policy_on(
        clock, max_attempts=50, deadline=deadline, jitter=True, rng=random.Random(seed)
    )
    with pytest.raises(ProviderUnavailable) as caught:
        await policy.call(fails)
    assert caught.value is raised[-1]
    assert sum(clock.sleeps) < deadline
    assert clock.monotonic() - 1_000.0 < deadline
    assert attempts_of(caught.value) == len(raised) == len(clock.sleeps) + 1


async def test_attempt_timeout_turns_a_hung_call_into_a_retried_timeout(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call that hangs past ``attempt_timeout`` is cancelled and retried."""
    run_loop_on_fake_time(clock, monkeypatch)
    spent: list[float] = []

    async def hangs_twice() -> str:
        started = clock.monotonic()
        try:
            if len(spent) < 2:
                await spend(clock, 1_000.0)
        finally:
            spent.append(clock.monotonic() - started)
        return "ok"

    assert await policy_on(clock, attempt_timeout=2.0).call(hangs_twice) == "ok"
    assert spent == [2.0, 2.0, 0.0]
    assert clock.sleeps == [1.0, 2.0]


async def test_attempt_timeout_gives_up_with_the_timeout_error(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If every attempt times out, the last TimeoutError is raised."""
    run_loop_on_fake_time(clock, monkeypatch)

    async def hangs() -> str:
        await spend(clock, 1_000.0)
        return "never"

    with pytest.raises(TimeoutError) as caught:
        await policy_on(clock, attempt_timeout=1.5).call(hangs)
    assert attempts_of(caught.value) == 3
    assert clock.monotonic() - 1_000.0 == 3 * 1.5 + 1.0 + 2.0


async def test_attempts_form_exposes_the_shrinking_timeout(clock: FakeClock) -> None:
    """Each ``Attempt.timeout`` is min(attempt_timeout, what remains of the deadline)."""
    seen: list[Attempt] = []
    fetch = Script(unavailable(), clock=clock, takes=1.0)
    policy = policy_on(clock, max_attempts=5, deadline=5.0, attempt_timeout=4.0)
    with pytest.raises(ProviderUnavailable):
        await in_attempts(policy, fetch, seen)
    assert [a.timeout for a in seen] == [4.0, 3.0]
    assert clock.sleeps == [1.0]


async def test_without_deadline_or_timeout_attempts_have_no_timeout(
    clock: FakeClock,
) -> None:
    """``Attempt.timeout`` is None when nothing bounds the call."""
    async for attempt in policy_on(clock).attempts():
        with attempt:
            assert attempt.timeout is None


# -- hooks ----------------------------------------------------------------------------


async def test_on_retry_and_on_give_up_hooks(clock: FakeClock) -> None:
    """``on_retry`` sees every scheduled retry, ``on_give_up`` the final error."""
    scheduled: list[RetryScheduled] = []
    given_up: list[GiveUp] = []
    errors = [unavailable(503), unavailable(502), unavailable(504)]
    policy = policy_on(
        clock, name="kimi", on_retry=scheduled.append, on_give_up=given_up.append
    )
    with pytest.raises(ProviderUnavailable):
        await policy.call(Script(*errors))
    assert [(s.name, s.attempt, s.max_attempts, s.delay) for s in scheduled] == [
        ("kimi", 1, 3, 1.0),
        ("kimi", 2, 3, 2.0),
    ]
    assert [s.error for s in scheduled] == errors[:2]
    assert [s.classification.kind for s in scheduled] == ["503", "502"]
    assert len(given_up) == 1
    assert given_up[0].name == "kimi"
    assert given_up[0].attempts == 3
    assert given_up[0].reason == "3 attempts"
    assert given_up[0].error is errors[2]
    assert given_up[0].classification.status == 504


async def test_hooks_are_quiet_when_the_first_attempt_succeeds(
    clock: FakeClock,
) -> None:
    """No retry, no give-up: no hook call."""
    events: list[object] = []
    policy = policy_on(clock, on_retry=events.append, on_give_up=events.append)
    await policy.call(Script("ok"))
    assert events == []


async def test_provider_classifier_through_the_policy(clock: FakeClock) -> None:
    """A provider hook stops retries of an exhausted quota but not of a rate limit."""

    def quota(exc: BaseException) -> Classification | None:
        if getattr(exc, "code", None) == "exceeded_current_quota_error":
            return Classification(transient=False, kind="quota", status=429)
        return None

    policy = policy_on(clock, classifier=Classifier(hooks=[quota]))
    empty_wallet = Script(unavailable(429, code="exceeded_current_quota_error"))
    with pytest.raises(ProviderUnavailable):
        await policy.call(empty_wallet)
    assert empty_wallet.calls == 1
    rate_limited = Script(unavailable(429), "ok")
    assert await policy.call(rate_limited) == "ok"
    assert rate_limited.calls == 2


# -- testing mode -----------------------------------------------------------------------


async def test_testing_mode_retries_without_waiting(clock: FakeClock) -> None:
    """``set_testing(True)``: the same attempts, zero sleeps."""
    set_testing(True)
    fetch = Script(unavailable(), unavailable(), "ok")
    assert await policy_on(clock, base_delay=30.0, max_delay=60.0).call(fetch) == "ok"
    assert fetch.calls == 3
    assert clock.sleeps == []


async def test_testing_mode_caps_attempts(clock: FakeClock) -> None:
    """``set_testing(True, attempts=1)`` makes every retried call a single attempt."""
    set_testing(True, attempts=1)
    error = unavailable()
    fetch = Script(error, "ok")
    with pytest.raises(ProviderUnavailable) as caught:
        await policy_on(clock, max_attempts=5).call(fetch)
    assert caught.value is error
    assert attempts_of(error) == 1
    assert fetch.calls == 1


async def test_testing_mode_cap_above_max_attempts_changes_nothing(
    clock: FakeClock,
) -> None:
    """The cap only lowers the limit."""
    set_testing(True, attempts=10)
    fetch = Script(unavailable())
    with pytest.raises(ProviderUnavailable):
        await policy_on(clock, max_attempts=2).call(fetch)
    assert fetch.calls == 2


async def test_testing_mode_context_manager_restores_the_previous_mode(
    clock: FakeClock,
) -> None:
    """``with testing.testing_mode():`` is on inside the block and off again after it."""
    with testing.testing_mode(attempts=2):
        assert testing.is_testing()
        fetch = Script(unavailable())
        with pytest.raises(ProviderUnavailable):
            await policy_on(clock, max_attempts=5).call(fetch)
        assert fetch.calls == 2
        assert clock.sleeps == []
    assert not testing.is_testing()
    assert testing.STATE.attempts is None
    await policy_on(clock).call(Script(unavailable(), "ok"))
    assert clock.sleeps == [1.0]


def test_testing_mode_nests() -> None:
    """An inner ``testing_mode`` restores the outer one's cap."""
    with testing.testing_mode(attempts=3):
        with testing.testing_mode(attempts=1):
            assert testing.STATE.attempts == 1
        assert testing.STATE.attempts == 3
        assert testing.is_testing()


def test_set_testing_off_clears_the_cap() -> None:
    """Leaving testing mode forgets the attempts cap."""
    set_testing(True, attempts=2)
    set_testing(False)
    assert not testing.is_testing()
    assert testing.STATE.attempts is None


def test_set_testing_refuses_a_zero_cap() -> None:
    """At least one attempt is always made."""
    with pytest.raises(ValueError, match="attempts must be >= 1"):
        set_testing(True, attempts=0)


# -- logs -------------------------------------------------------------------------------


def retry_records(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    """The ``[RETRY]`` lines logged by the retry engine, as (level, message)."""
    return [
        (r.levelno, r.getMessage())
        for r in caplog.records
        if r.name.startswith("breaker_service.retry")
    ]


async def test_log_lines_for_retries_and_give_up(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """INFO per scheduled retry with provider, attempt, status, wait and error; WARNING on give-up."""
    caplog.set_level(logging.INFO, logger="breaker_service")
    policy = policy_on(clock, name="kimi", base_delay=0.42)
    with pytest.raises(ProviderUnavailable):
        await policy.call(Script(unavailable(503)))
    assert retry_records(caplog) == [
        (
            logging.INFO,
            "[RETRY] kimi attempt 1/3 failed (503), retrying after 0.42s: HTTP 503",
        ),
        (
            logging.INFO,
            "[RETRY] kimi attempt 2/3 failed (503), retrying after 0.84s: HTTP 503",
        ),
        (
            logging.WARNING,
            "[RETRY] kimi giving up after attempt 3 (503, 3 attempts): HTTP 503",
        ),
    ]


async def test_successful_call_logs_nothing(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The happy path is silent."""
    caplog.set_level(logging.DEBUG, logger="breaker_service")
    await policy_on(clock).call(Script("ok"))
    assert retry_records(caplog) == []


def test_the_library_adds_no_log_handlers() -> None:
    """Handlers are the application's business."""
    assert logging.getLogger("breaker_service.retry").handlers == []
    assert logging.getLogger("breaker_service").handlers == []


SECRET = "sk-secret123"


@pytest.mark.parametrize(
    ("options", "error"),
    [
        pytest.param({}, unavailable(503), id="attempts-exhausted"),
        pytest.param(
            {}, unavailable(429, retry_after=3600.0), id="retry-after-too-long"
        ),
        pytest.param({"deadline": 2.5}, unavailable(503), id="deadline"),
        pytest.param(
            {}, ProviderRejected("x", provider="kimi", status=401), id="permanent"
        ),
        pytest.param({}, httpx.ConnectError("x", request=REQUEST), id="transport"),
    ],
)
async def test_secrets_in_error_messages_never_reach_the_logs(
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    options: dict[str, Any],
    error: Exception,
) -> None:
    """An error message quoting an API key is not logged, whatever the outcome."""
    error.args = (f"401 for Authorization: Bearer {SECRET}",)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(type(error)):
        await policy_on(clock, name="kimi", **options).call(Script(error))
    assert SECRET not in caplog.text
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        assert record.exc_info is None


# -- the enable switches ------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param(ResilienceSettings(resilience_enabled=False), id="layer-off"),
        pytest.param(
            ResilienceSettings(resilience_retry_enabled=False), id="retry-off"
        ),
    ],
)
async def test_switched_off_policy_is_a_pass_through(
    clock: FakeClock, settings: ResilienceSettings
) -> None:
    """With retries off, ``call``, the decorator and ``attempts()`` make exactly one call."""
    policy = RetryPolicy.from_settings(settings, clock=clock)
    assert policy.budget is None
    error = unavailable(503)
    fetch = Script(error, "ok")
    with pytest.raises(ProviderUnavailable) as caught:
        await policy.call(fetch)
    assert caught.value is error
    assert fetch.calls == 1

    decorated = policy(Script(unavailable(503), "ok"))
    with pytest.raises(ProviderUnavailable):
        await decorated()

    iterated = Script(unavailable(503), "ok")
    with pytest.raises(ProviderUnavailable):
        await in_attempts(policy, iterated)
    assert iterated.calls == 1
    assert clock.sleeps == []


@pytest.mark.parametrize(
    "variable",
    [
        pytest.param("RESILIENCE_ENABLED", id="layer"),
        pytest.param("RESILIENCE_RETRY_ENABLED", id="retry"),
    ],
)
async def test_environment_switch_makes_from_settings_a_pass_through(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str
) -> None:
    """``<variable>=false`` in the environment: exactly one call, error raised as is."""
    monkeypatch.chdir(tmp_path)  # no developer's .env
    monkeypatch.setenv(variable, "false")
    settings = load_settings(env_file=None)
    fetch = Script(unavailable(503), "ok")
    with pytest.raises(ProviderUnavailable):
        await RetryPolicy.from_settings(settings, clock=clock).call(fetch)
    assert fetch.calls == 1


async def test_breaker_switch_leaves_retries_on(clock: FakeClock) -> None:
    """RESILIENCE_CIRCUIT_BREAKER_ENABLED=false only switches off the breaker half."""
    settings = ResilienceSettings(
        resilience_circuit_breaker_enabled=False, retry_jitter=False
    )
    fetch = Script(unavailable(503), "ok")
    assert await RetryPolicy.from_settings(settings, clock=clock).call(fetch) == "ok"
    assert fetch.calls == 2


async def test_from_settings_uses_the_retry_variables(clock: FakeClock) -> None:
    """RETRY_MAX_ATTEMPTS, delays and exponent come from the settings."""
    settings = ResilienceSettings(
        retry_max_attempts=4,
        retry_base_delay=0.5,
        retry_max_delay=1.5,
        retry_exponential_base=3.0,
        retry_jitter=False,
    )
    policy = RetryPolicy.from_settings(settings, name="glm", clock=clock)
    fetch = Script(unavailable(503))
    with pytest.raises(ProviderUnavailable):
        await policy.call(fetch)
    assert fetch.calls == 4
    assert clock.sleeps == [0.5, 1.5, 1.5]
    assert policy.name == "glm"
    assert policy.budget is not None


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"max_attempts": 0}, id="zero-attempts"),
        pytest.param({"base_delay": -1.0}, id="negative-base"),
        pytest.param({"max_delay": -1.0, "base_delay": 0.0}, id="negative-max"),
        pytest.param({"base_delay": 10.0, "max_delay": 5.0}, id="base-above-max"),
    ],
)
def test_policy_refuses_impossible_parameters(options: dict[str, Any]) -> None:
    """A policy built in code is checked like the settings are."""
    with pytest.raises(ValueError, match=r"max_attempts|base_delay"):
        RetryPolicy(**options)

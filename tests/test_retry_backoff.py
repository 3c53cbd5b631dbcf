"""Exponential backoff with full jitter: a pure function of its inputs and a seeded rng."""

from __future__ import annotations

import random
import statistics

import pytest

from breaker_service.clock import FakeClock
from breaker_service.retry import RetryPolicy, backoff_delay

EXPONENTIAL = [
    pytest.param(0, 1.0, 2.0, 60.0, 1.0, id="first-retry-is-base"),
    pytest.param(1, 1.0, 2.0, 60.0, 2.0, id="second-doubles"),
    pytest.param(2, 1.0, 2.0, 60.0, 4.0, id="third"),
    pytest.param(5, 1.0, 2.0, 60.0, 32.0, id="sixth"),
    pytest.param(6, 1.0, 2.0, 60.0, 60.0, id="capped-at-max"),
    pytest.param(30, 1.0, 2.0, 60.0, 60.0, id="stays-capped"),
    pytest.param(2, 0.5, 3.0, 60.0, 4.5, id="base-and-exponent"),
    pytest.param(4, 0.25, 1.0, 60.0, 0.25, id="exponent-one-is-constant"),
    pytest.param(3, 0.0, 2.0, 60.0, 0.0, id="zero-base"),
    pytest.param(0, 5.0, 2.0, 5.0, 5.0, id="base-equals-max"),
    pytest.param(10_000, 1.0, 2.0, 60.0, 60.0, id="overflow-gives-max"),
]


@pytest.mark.parametrize(
    ("attempt", "base", "exponent", "maximum", "expected"), EXPONENTIAL
)
def test_exponential_backoff_without_jitter(
    attempt: int, base: float, exponent: float, maximum: float, expected: float
) -> None:
    """delay(attempt) = min(base * exponent ** attempt, max) when jitter is off."""
    delay = backoff_delay(
        attempt,
        base=base,
        maximum=maximum,
        exponent=exponent,
        jitter=False,
        rng=random.Random(0),
    )
    assert delay == expected


def test_backoff_without_jitter_does_not_touch_the_rng() -> None:
    """No jitter means no random draw: the rng state is unchanged."""
    rng = random.Random(7)
    state = rng.getstate()
    backoff_delay(3, base=1.0, maximum=60.0, exponent=2.0, jitter=False, rng=rng)
    assert rng.getstate() == state


def test_negative_attempt_is_refused() -> None:
    """Attempts count from zero."""
    with pytest.raises(ValueError, match="attempt must be >= 0"):
        backoff_delay(
            -1, base=1.0, maximum=60.0, exponent=2.0, jitter=False, rng=random.Random()
        )


@pytest.mark.parametrize(
    ("attempt", "cap"),
    [
        pytest.param(0, 1.0, id="attempt-0"),
        pytest.param(1, 2.0, id="attempt-1"),
        pytest.param(3, 8.0, id="attempt-3"),
        pytest.param(8, 60.0, id="capped"),
    ],
)
def test_full_jitter_stays_within_zero_and_the_exponential_delay(
    attempt: int, cap: float
) -> None:
    """Every jittered draw lies in [0, min(base * exponent ** attempt, max)]."""
    rng = random.Random(2024)
    draws = [
        backoff_delay(
            attempt, base=1.0, maximum=60.0, exponent=2.0, jitter=True, rng=rng
        )
        for _ in range(5_000)
    ]
    assert all(0.0 <= d <= cap for d in draws)


def test_full_jitter_spreads_uniformly_over_the_whole_range() -> None:
    """Many draws cover [0, cap] evenly: mean near cap/2, every decile populated."""
    rng = random.Random(12345)
    cap = 8.0
    draws = [
        backoff_delay(3, base=1.0, maximum=60.0, exponent=2.0, jitter=True, rng=rng)
        for _ in range(20_000)
    ]
    assert statistics.fmean(draws) == pytest.approx(cap / 2, rel=0.03)
    assert min(draws) < 0.01 * cap
    assert max(draws) > 0.99 * cap
    deciles = [0] * 10
    for d in draws:
        deciles[min(int(d / cap * 10), 9)] += 1
    assert all(1_700 <= count <= 2_300 for count in deciles), deciles
    assert len(set(draws)) > 19_900  # clients do not retry in lockstep


def test_jitter_is_reproducible_with_a_seeded_rng() -> None:
    """The same seed gives the same delays; another seed gives others."""

    def delays(seed: int) -> list[float]:
        rng = random.Random(seed)
        return [
            backoff_delay(n, base=1.0, maximum=60.0, exponent=2.0, jitter=True, rng=rng)
            for n in range(6)
        ]

    assert delays(1) == delays(1)
    assert delays(1) != delays(2)


def test_policy_delay_for_uses_its_settings_and_rng() -> None:
    """``RetryPolicy.delay_for`` is ``backoff_delay`` with the policy's parameters."""
    policy = RetryPolicy(
        base_delay=0.5,
        max_delay=10.0,
        exponential_base=3.0,
        jitter=True,
        clock=FakeClock(),
        rng=random.Random(99),
    )
    reference = random.Random(99)
    for attempt in range(5):
        expected = backoff_delay(
            attempt, base=0.5, maximum=10.0, exponent=3.0, jitter=True, rng=reference
        )
        assert policy.delay_for(attempt) == expected

"""Exponential backoff with full jitter, as a pure function of its inputs."""

from __future__ import annotations

import random

__all__ = ["backoff_delay"]


def backoff_delay(
    attempt: int,
    *,
    base: float,
    maximum: float,
    exponent: float,
    jitter: bool,
    rng: random.Random,
) -> float:
    """Seconds to wait before retry number ``attempt + 1`` (``attempt`` counts from 0).

    ``min(base * exponent ** attempt, maximum)``; with jitter, a uniform draw from
    ``[0, that]`` ("full jitter"), so many clients spread out instead of retrying
    in lockstep.
    """
    if attempt < 0:
        msg = f"attempt must be >= 0, got {attempt}"
        raise ValueError(msg)
    try:
        delay = min(base * exponent**attempt, maximum)
    except OverflowError:
        delay = maximum
    return rng.uniform(0.0, delay) if jitter else delay

"""The retry engine: ``RetryPolicy.call``, the ``@policy`` decorator and ``policy.attempts()``.

Each failed attempt is classified; transient ones are retried after an exponential,
fully jittered backoff (or the server's ``Retry-After``), within the attempt limit,
the optional deadline and the provider's retry budget. Giving up re-raises the last
error itself, with ``attempts`` set on it.

Each scheduled retry logs ``[RETRY] kimi attempt 1/3 failed (503), retrying after
1.00s: <error>`` at INFO, a give-up ``[RETRY] kimi giving up after attempt 3 (503, 3
attempts): <error>`` at WARNING; the error's message is scrubbed of keys, and the
values ride along as ``extra=`` fields for structured formatters. The hook payloads
(``outcome.py``) and ``Attempt`` (``attempt.py``) live in their own modules and are
re-exported here.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from .. import testing
from ..clock import Clock, SystemClock
from ..redaction import error_text
from .attempt import Attempt
from .backoff import backoff_delay
from .budget import RetryBudget
from .classify import Classification, Classifier
from .outcome import (
    GAVE_UP_EXHAUSTED,
    GiveUp,
    GiveUpCause,
    RetryScheduled,
    attempts_of,
    gave_up_of,
    mark,
)

if TYPE_CHECKING:
    from ..config import ResilienceSettings

__all__ = [
    "GAVE_UP_EXHAUSTED",
    "Attempt",
    "GiveUp",
    "GiveUpCause",
    "RetryPolicy",
    "RetryScheduled",
    "attempts_of",
    "gave_up_of",
]

logger = logging.getLogger("breaker_service.retry")

P = ParamSpec("P")
T = TypeVar("T")

_DEFAULT_CLASSIFIER = Classifier()


class RetryPolicy:
    """Retries transient failures of async callables.

    All three forms share one decision procedure::

        result = await policy.call(fetch, url)

        @policy
        async def fetch(url): ...

        async for attempt in policy.attempts():
            with attempt:
                await fetch(url)
    """

    __slots__ = (
        "_budget",
        "_classifier",
        "_clock",
        "_on_give_up",
        "_on_retry",
        "_rng",
        "attempt_timeout",
        "base_delay",
        "deadline",
        "enabled",
        "exponential_base",
        "jitter",
        "max_attempts",
        "max_delay",
        "name",
    )

    def __init__(
        self,
        *,
        name: str = "default",
        max_attempts: int = 3,
        base_delay: float = 1.0,
        max_delay: float = 60.0,
        exponential_base: float = 2.0,
        jitter: bool = True,
        deadline: float | None = None,
        attempt_timeout: float | None = None,
        classifier: Classifier | None = None,
        budget: RetryBudget | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        on_retry: Callable[[RetryScheduled], None] | None = None,
        on_give_up: Callable[[GiveUp], None] | None = None,
        enabled: bool = True,
    ) -> None:
        if max_attempts < 1:
            msg = f"max_attempts must be >= 1, got {max_attempts}"
            raise ValueError(msg)
        if base_delay < 0 or max_delay < 0 or base_delay > max_delay:
            msg = f"need 0 <= base_delay <= max_delay, got {base_delay} and {max_delay}"
            raise ValueError(msg)
        self.name = name
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.exponential_base = exponential_base
        self.jitter = jitter
        self.deadline = deadline
        self.attempt_timeout = attempt_timeout
        self.enabled = enabled
        self._classifier = classifier or _DEFAULT_CLASSIFIER
        self._budget = budget
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._on_retry = on_retry
        self._on_give_up = on_give_up

    @classmethod
    def from_settings(
        cls,
        settings: ResilienceSettings,
        *,
        name: str = "default",
        classifier: Classifier | None = None,
        budget: RetryBudget | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        on_retry: Callable[[RetryScheduled], None] | None = None,
        on_give_up: Callable[[GiveUp], None] | None = None,
    ) -> RetryPolicy:
        """A policy from ``RETRY_*`` settings; a pass-through when retries are off."""
        clock = clock or SystemClock()
        if budget is None and settings.retry_active:
            budget = RetryBudget(
                ratio=settings.retry_budget_ratio,
                min_concurrency=settings.retry_budget_min_concurrency,
                clock=clock,
            )
        return cls(
            name=name,
            max_attempts=settings.retry_max_attempts,
            base_delay=settings.retry_base_delay,
            max_delay=settings.retry_max_delay,
            exponential_base=settings.retry_exponential_base,
            jitter=settings.retry_jitter,
            deadline=settings.retry_deadline,
            attempt_timeout=settings.retry_attempt_timeout,
            classifier=classifier,
            budget=budget,
            clock=clock,
            rng=rng,
            on_retry=on_retry,
            on_give_up=on_give_up,
            enabled=settings.retry_active,
        )

    @property
    def classifier(self) -> Classifier:
        """The classifier deciding what is transient."""
        return self._classifier

    @property
    def budget(self) -> RetryBudget | None:
        """The shared retry budget, if any."""
        return self._budget

    def delay_for(self, attempt: int) -> float:
        """The backoff before retry ``attempt + 1`` (``attempt`` counts from 0)."""
        return backoff_delay(
            attempt,
            base=self.base_delay,
            maximum=self.max_delay,
            exponent=self.exponential_base,
            jitter=self.jitter,
            rng=self._rng,
        )

    # -- the decision, shared by every form ---------------------------------------

    def _decide(self, exc: BaseException, number: int, started: float) -> float:
        """Seconds to wait before attempt ``number + 1``; raises ``exc`` to give up."""
        verdict = self._classifier(exc, now=self._clock.time())
        limit = self.max_attempts
        if testing.STATE.attempts is not None:
            limit = min(limit, testing.STATE.attempts)
        if not verdict.transient:
            mark(exc, number)
            raise exc
        if number >= limit:
            self._give_up(
                exc,
                number,
                f"{number} attempts",
                limit=limit,
                verdict=verdict,
                cause="attempts",
            )
        delay = self.delay_for(number - 1)
        if verdict.retry_after is not None:
            if verdict.retry_after > self.max_delay:
                self._give_up(
                    exc,
                    number,
                    f"Retry-After {verdict.retry_after:.1f}s exceeds RETRY_MAX_DELAY",
                    limit=limit,
                    verdict=verdict,
                    cause="retry_after",
                )
            delay = max(delay, verdict.retry_after)
        if testing.STATE.enabled:
            delay = 0.0
        if self.deadline is not None:
            remaining = self.deadline - (self._clock.monotonic() - started)
            if delay >= remaining:
                self._give_up(
                    exc,
                    number,
                    f"deadline of {self.deadline:.1f}s leaves no time",
                    limit=limit,
                    verdict=verdict,
                    cause="deadline",
                )
        if self._budget is not None and not self._budget.try_acquire():
            self._give_up(
                exc,
                number,
                "retry budget exhausted",
                limit=limit,
                verdict=verdict,
                cause="budget",
            )
        text = error_text(exc)
        logger.info(
            "[RETRY] %s attempt %d/%d failed (%s), retrying after %.2fs: %s",
            self.name,
            number,
            limit,
            verdict.kind,
            delay,
            text,
            extra={
                "provider": self.name,
                "attempt": number,
                "max_attempts": limit,
                "delay": delay,
                "status": verdict.status,
                "kind": verdict.kind,
                "error": text,
                "error_type": type(exc).__name__,
            },
        )
        if self._on_retry is not None:
            self._on_retry(
                RetryScheduled(self.name, number, limit, delay, exc, verdict)
            )
        return delay

    def _give_up(
        self,
        exc: BaseException,
        number: int,
        reason: str,
        *,
        limit: int,
        verdict: Classification,
        cause: GiveUpCause,
    ) -> None:
        mark(exc, number, cause)
        text = error_text(exc)
        logger.warning(
            "[RETRY] %s giving up after attempt %d (%s, %s): %s",
            self.name,
            number,
            verdict.kind,
            reason,
            text,
            extra={
                "provider": self.name,
                "attempt": number,
                "max_attempts": limit,
                "status": verdict.status,
                "kind": verdict.kind,
                "reason": reason,
                "cause": cause,
                "error": text,
                "error_type": type(exc).__name__,
            },
        )
        if self._on_give_up is not None:
            self._on_give_up(GiveUp(self.name, number, reason, exc, verdict, cause))
        raise exc

    def _attempt_timeout(self, started: float) -> float | None:
        timeout = self.attempt_timeout
        if self.deadline is not None:
            remaining = self.deadline - (self._clock.monotonic() - started)
            timeout = remaining if timeout is None else min(timeout, remaining)
        return timeout

    # -- the forms -----------------------------------------------------------------

    async def call(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Await ``fn(*args, **kwargs)``, retrying transient failures."""
        if not self.enabled:
            return await fn(*args, **kwargs)
        if self._budget is not None:
            self._budget.record_request()
        timed = self.deadline is not None or self.attempt_timeout is not None
        if not timed:
            try:
                return await fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - classified in _decide
                first = exc
            return await self._retry(first, fn, args, kwargs, self._clock.monotonic())
        started = self._clock.monotonic()
        try:
            async with asyncio.timeout(self._attempt_timeout(started)):
                return await fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - classified in _decide
            first = exc
        return await self._retry(first, fn, args, kwargs, started)

    async def _retry(
        self,
        error: Exception,
        fn: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        started: float,
    ) -> T:
        number = 1
        while True:
            delay = self._decide(error, number, started)
            try:
                if delay > 0:
                    await self._clock.sleep(delay)
                number += 1
                try:
                    timeout = self._attempt_timeout(started)
                    if timeout is None:
                        result = await fn(*args, **kwargs)
                    else:
                        async with asyncio.timeout(timeout):
                            result = await fn(*args, **kwargs)
                except Exception as exc:  # noqa: BLE001 - classified in _decide
                    error = exc
                else:
                    return result
            finally:
                if self._budget is not None:
                    self._budget.release()

    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        """Decorate an async function so every call goes through ``call``."""

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self.call(fn, *args, **kwargs)

        return wrapper

    async def attempts(self) -> AsyncIterator[Attempt]:
        """Yield ``Attempt`` context managers until one succeeds or the policy gives up."""
        started = self._clock.monotonic()
        if self._budget is not None and self.enabled:
            self._budget.record_request()
        number = 0
        charged = False
        try:
            while True:
                number += 1
                attempt = Attempt(number, self._attempt_timeout(started))
                yield attempt
                error = attempt.error
                if charged and self._budget is not None:
                    self._budget.release()
                    charged = False
                if error is None:
                    return
                if not self.enabled:
                    mark(error, number)
                    raise error
                delay = self._decide(error, number, started)
                charged = self._budget is not None
                if delay > 0:
                    await self._clock.sleep(delay)
        finally:
            if charged and self._budget is not None:
                self._budget.release()

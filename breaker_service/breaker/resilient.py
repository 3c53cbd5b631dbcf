"""``ResilientCalls``: retries around each provider's breaker, one policy per name.

Each attempt goes through the breaker, so an open breaker stops the retries at once
with ``CircuitOpenError``; each name has its own retry budget. With
``CIRCUIT_BREAKER_COUNT=calls`` (the default) the breaker counts the whole call
once (``logical.py``), and each name's ``AttemptRun`` opens it after
``CIRCUIT_BREAKER_ATTEMPT_RUN`` failed attempts in a row across calls; with
``attempts`` it counts every attempt, as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from ..clock import Clock
from ..config import ResilienceSettings
from ..retry.classify import Classifier
from ..retry.policy import RetryPolicy
from .breaker import CircuitBreaker
from .listeners import ListenerHub
from .logical import AttemptRun, LogicalCall

__all__ = ["ResilientCalls"]

P = ParamSpec("P")
T = TypeVar("T")


class ResilientCalls:
    """The resilient call: ``policy(name).call(breaker(name).call, fn, ...)``."""

    def __init__(
        self,
        breaker_of: Callable[[str], CircuitBreaker],
        settings_of: Callable[[str], ResilienceSettings],
        *,
        classifier: Classifier,
        clock: Clock,
        listeners: ListenerHub,
    ) -> None:
        self._breaker_of = breaker_of
        self._settings_of = settings_of
        self.classifier = classifier
        self._clock = clock
        self._listeners = listeners
        self._policies: dict[str, RetryPolicy] = {}
        self._runs: dict[str, AttemptRun | None] = {}

    def policy(self, name: str) -> RetryPolicy:
        """The retry policy for ``name``: its settings, its own retry budget."""
        policy = self._policies.get(name)
        if policy is None:
            policy = RetryPolicy.from_settings(
                self._settings_of(name),
                name=name,
                classifier=self.classifier,
                clock=self._clock,
                on_retry=self._listeners.retry_scheduled,
                on_give_up=self._listeners.gave_up,
            )
            self._policies[name] = policy
        return policy

    async def call(
        self,
        name: str,
        fn: Callable[P, Awaitable[T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Call ``fn`` with retries, each attempt guarded by ``name``'s breaker."""
        breaker = self._breaker_of(name)
        policy = self.policy(name)
        if breaker.settings.circuit_breaker_count == "attempts":
            return await policy.call(breaker.call, fn, *args, **kwargs)
        call = LogicalCall(breaker, self._run_of(name, breaker))
        try:
            result = await policy.call(call.attempt, fn, *args, **kwargs)
        except BaseException as exc:
            await call.finish(exc)
            raise
        await call.finish(None)
        return result

    def _run_of(self, name: str, breaker: CircuitBreaker) -> AttemptRun | None:
        """``name``'s run of failed attempts (None when the rule is off)."""
        try:
            return self._runs[name]
        except KeyError:
            limit = breaker.settings.attempt_run_limit
            run = self._runs[name] = AttemptRun(limit) if limit > 0 else None
            return run

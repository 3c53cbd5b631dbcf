"""``LogicalCall``: a resilient call's attempts, counted by the breaker as one call.

With ``CIRCUIT_BREAKER_COUNT=calls`` (the default) the breaker still gates every
attempt (an open breaker stops the retries at once), but it counts what the caller
experienced, not each try: one success, or one failure when the call failed for a
reason that says the provider is failing (it ran out of attempts, hit its
deadline, or was told to come back later than ``RETRY_MAX_DELAY``). A call the
retry budget cut short, refused by the breaker, failed by a permanent error or
cancelled counts as nothing. An attempt that times out counts at once (a hung
provider must open the breaker without waiting for every call's retries), and its
call is then not counted a second time. In HALF_OPEN a trial is one logical call:
its first attempt takes the trial slot and its retries keep it while the state
version holds. Why: at 20-50 % random faults, counting attempts trips a provider
that still works (``bench/counting_rules.py``); counting calls does not, and a
real outage still opens the breaker within ``CIRCUIT_BREAKER_FAILURE_THRESHOLD``
failed calls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from ..events.model import KIND_TIMEOUT
from ..retry.policy import GAVE_UP_EXHAUSTED, gave_up_of
from .state import BreakerState, Outcome

if TYPE_CHECKING:
    from .breaker import CircuitBreaker

__all__ = ["LogicalCall"]

P = ParamSpec("P")
T = TypeVar("T")

_CLOSED = BreakerState.CLOSED
_HALF_OPEN = BreakerState.HALF_OPEN


class LogicalCall:
    """One call's attempts through ``breaker``: ``attempt`` each, ``finish`` once."""

    __slots__ = ("_breaker", "_counted", "_start", "_trial", "_version")

    def __init__(self, breaker: CircuitBreaker) -> None:
        self._breaker = breaker
        self._version = -1  # the state version of the first admitted attempt
        self._trial: int | None = None
        self._start: float | None = None
        self._counted = False  # a timed-out attempt already counted for this call

    async def attempt(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run one attempt, admitted by the breaker; only timeouts are counted here."""
        b = self._breaker
        if b._passthrough:
            return await fn(*args, **kwargs)
        state = b._state
        if state is _CLOSED and b._inline:
            if self._version < 0:
                self._version = b._version
        elif not self._holds_trial(state):
            b._reject_if_open(state)
            version, trial, _ = await b._begin()
            if self._version < 0 or trial is not None:
                self._version = version  # a trial call counts in its half-open
            self._trial = trial
        if b._slow_after is not None:
            self._start = b._clock.monotonic()
        try:
            return await fn(*args, **kwargs)
        except BaseException as exc:
            if not self._counted:
                outcome, kind, status = b._judge(exc)
                if outcome is Outcome.TIMEOUT:
                    self._counted = True
                    await self._count_timeout(kind, status)
            raise

    def _holds_trial(self, state: BreakerState) -> bool:
        """Whether this call's trial slot is still good for another attempt."""
        b = self._breaker
        return (
            state is _HALF_OPEN
            and self._trial is not None
            and self._version == b._version
            and self._trial in b._trials
        )

    async def _count_timeout(self, kind: str, status: int | None) -> None:
        b = self._breaker
        trial, self._trial = self._trial, None
        if trial is not None:
            await b._end_trial(trial)
        version = self._version
        b._emit(KIND_TIMEOUT, version, kind, status, None)
        if version != b._version:
            return
        if b._state is _CLOSED:
            await b._maybe_trip(version)
        elif b._state is _HALF_OPEN:
            await b._transition(
                BreakerState.OPEN,
                f"trial call timed out ({kind})",
                expect_version=version,
            )

    async def finish(self, exc: BaseException | None) -> None:
        """Count the call: its success, its failure if it says so, else nothing."""
        b = self._breaker
        if self._version < 0 or b._passthrough:
            return
        trial, self._trial = self._trial, None
        if exc is None:
            if trial is None and b._inline and self._version == b._version:
                b._succeeded_closed(self._version)
                return
            await b._on_success(self._version, trial, self._start)
            return
        if self._counted or not _provider_failed(exc):
            if not self._counted:
                b.ignored += 1
            if trial is not None:
                await b._end_trial(trial)
            return
        await b._on_error(exc, self._version, trial, self._start)


def _provider_failed(exc: BaseException) -> bool:
    """Whether the call's end says the provider failed it (see the module docstring)."""
    reason = gave_up_of(exc)
    return reason is None or reason in GAVE_UP_EXHAUSTED

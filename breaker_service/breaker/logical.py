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
version holds.

A full outage with several calls in flight would let each of them spend all its
attempts before the threshold's worth of calls has ended, so an ``AttemptRun``
also opens the breaker after ``CIRCUIT_BREAKER_ATTEMPT_RUN`` failed attempts in a
row across calls (by default one call more than the threshold's calls, in
attempts). A trial that timed out reopens the breaker with the cooldown counted
from when the trial was sent, so a hung provider that recovers meanwhile is probed
again at once rather than a whole cooldown later.

Why: at 20-50 % random faults, counting attempts trips a provider that still works
(``bench/counting_rules.py``); counting calls does not, and a real outage still
opens the breaker within ``CIRCUIT_BREAKER_FAILURE_THRESHOLD`` failed calls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from ..errors import CircuitOpenError
from ..events.model import KIND_TIMEOUT
from ..retry.policy import GAVE_UP_EXHAUSTED, gave_up_of
from .state import BreakerState, Outcome

if TYPE_CHECKING:
    from .breaker import CircuitBreaker

__all__ = ["AttemptRun", "LogicalCall"]

P = ParamSpec("P")
T = TypeVar("T")

_CLOSED = BreakerState.CLOSED
_HALF_OPEN = BreakerState.HALF_OPEN
_OPEN = BreakerState.OPEN
_FAILED = frozenset({Outcome.FAILURE, Outcome.TIMEOUT})


class AttemptRun:
    """Failed attempts in a row across one breaker's calls, within one state version.

    Kept in memory by each process (the transition it causes is logged with its
    reason); any successful attempt, or any transition, starts the run over.
    """

    __slots__ = ("failed", "limit", "opening", "version")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.failed = 0
        self.version = -1
        self.opening = False  # the run is complete and its transition is committing

    def succeeded(self) -> None:
        """A successful attempt: the run is broken."""
        self.failed = 0

    def failed_at(self, version: int) -> bool:
        """Count a failed attempt in ``version``; True when the run reaches the limit."""
        if version != self.version:
            self.version, self.failed = version, 0
        self.failed += 1
        return 0 < self.limit <= self.failed


class LogicalCall:
    """One call's attempts through ``breaker``: ``attempt`` each, ``finish`` once."""

    __slots__ = (
        "_breaker",
        "_counted",
        "_run",
        "_sent",
        "_start",
        "_trial",
        "_version",
    )

    def __init__(self, breaker: CircuitBreaker, run: AttemptRun | None = None) -> None:
        self._breaker = breaker
        self._run = run
        self._version = -1  # the state version of the first admitted attempt
        self._trial: int | None = None
        self._start: float | None = None
        self._counted = False  # a timed-out attempt already counted for this call
        self._sent = 0.0  # monotonic time the latest trial attempt was sent

    async def attempt(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run one attempt, admitted by the breaker; only timeouts are counted here."""
        b = self._breaker
        if b._passthrough:
            return await fn(*args, **kwargs)
        if self._run is not None and self._run.opening:
            b.rejections += 1  # no new attempt while the run's transition commits
            raise CircuitOpenError(
                b.name, b.settings.circuit_breaker_timeout, state=_OPEN.value
            )
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
        if self._trial is not None:
            self._sent = b._clock.monotonic()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            outcome, kind, status = b._judge(exc)
            if outcome is Outcome.TIMEOUT and not self._counted:
                self._counted = True
                await self._count_timeout(kind, status)
            if outcome in _FAILED and self._run is not None:
                await self._count_in_run(kind, status)
            raise
        if self._run is not None:
            self._run.succeeded()
        return result

    async def _count_in_run(self, kind: str, status: int | None) -> None:
        """Open a CLOSED breaker when this failed attempt completes the run."""
        b, run = self._breaker, self._run
        assert run is not None
        version = b._version
        if run.failed_at(version) and b._state is _CLOSED and not run.opening:
            run.opening = True
            try:
                await b._transition(
                    BreakerState.OPEN,
                    f"{run.failed} consecutive failed attempts across calls ({kind})",
                    expect_version=version,
                )
            finally:
                run.opening = False

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
            waited = b._clock.monotonic() - self._sent if trial is not None else 0.0
            await b._transition(
                BreakerState.OPEN,
                f"trial call timed out ({kind})",
                expect_version=version,
                waited=waited,
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

"""``CircuitBreaker``: one provider's breaker, guarding calls and recording every outcome.

The CLOSED success path is plain attribute work: the counters, and one bump of the
breaker's open outcome run (``events/runs.py``); the ``transitions`` machine runs
only when the state changes,
after the transition event is committed (``LiveCore``). OPEN becomes HALF_OPEN
lazily, on the first call after the cooldown, never by a timer.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from ..clock import Clock, SystemClock
from ..config import ResilienceSettings
from ..errors import CircuitOpenError
from ..events.model import (
    KIND_FAILURE,
    KIND_SUCCESS,
    KIND_TIMEOUT,
    StoredEvent,
    TransitionRecord,
)
from ..events.recorder import EventRecorder
from ..events.runs import RunLog
from .core import BreakerCore
from .fleet import FleetTrials, TrialGate, adopt
from .guard import Guard
from .judge import Judge, default_judge
from .live import LiveCore
from .state import BreakerState, Outcome

__all__ = ["CircuitBreaker", "Judge", "TrialGate", "default_judge"]

P = ParamSpec("P")
T = TypeVar("T")

_CLOSED = BreakerState.CLOSED
_OPEN = BreakerState.OPEN
_HALF_OPEN = BreakerState.HALF_OPEN
_FORCED_OPEN = BreakerState.FORCED_OPEN
_DISABLED = BreakerState.DISABLED
_new_guard = object.__new__


class CircuitBreaker(LiveCore):
    """Guards calls to one provider: CLOSED -> OPEN -> HALF_OPEN -> CLOSED.

    ``call``, the decorator and ``guard()`` share one guarding protocol: ``_state``
    and ``_inline`` choose the path; a CLOSED call on the inline path reports through
    ``_succeeded_closed``; any other call goes through ``_reject_if_open`` (no
    coroutine), ``_begin`` (admission, trial slot, timing) and ``_finish``.
    """

    def __init__(
        self,
        name: str,
        *,
        settings: ResilienceSettings | None = None,
        clock: Clock | None = None,
        recorder: EventRecorder | None = None,
        judge: Judge | None = None,
        on_transition: Callable[[CircuitBreaker, TransitionRecord], None] | None = None,
        reload: Callable[[CircuitBreaker], Awaitable[None]] | None = None,
        trial_gate: TrialGate | None = None,
        stream: str | None = None,
    ) -> None:
        settings = settings or ResilienceSettings()
        super().__init__(
            name,
            settings=settings,
            clock=clock or SystemClock(),
            recorder=recorder,
            on_transition=on_transition,
            reload=reload,
        )
        self._runs: RunLog = (
            self._run_log(recorder)
            if recorder is not None
            else RunLog(name, keep=False)
        )
        self._judge = judge or default_judge
        self._passthrough = not settings.breaker_active
        self._forced_after = settings.circuit_breaker_timeout  # retry_after, forced
        self._threshold = settings.circuit_breaker_failure_threshold
        self._slow_after = settings.circuit_breaker_slow_call_duration
        # CLOSED calls take the inline path unless breakers are off or calls are timed.
        self._inline = not self._passthrough and self._slow_after is None
        self._trial_seq = 0
        self.stream = stream or name
        self._fleet = (
            FleetTrials(trial_gate, name, self.stream)
            if trial_gate is not None
            else None
        )
        self.rejections = 0
        self.ignored = 0
        self._ready: asyncio.Future[CircuitBreaker] | None = None  # guard()'s, done

    def _run_log(self, recorder: EventRecorder) -> RunLog:
        """This breaker's runs, kept apart as far as its window reads them in order."""
        window = self._window
        count = window is not None and window.kind == "count"
        return recorder.runs_for(
            self.name,
            keep_calls=window.size if window is not None and count else 0,
            keep_seconds=int(window.duration) + 1
            if window is not None and not count
            else 0,
        )

    # -- reading ---------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        """False when configuration turned breakers off: calls pass, nothing is recorded."""
        return not self._passthrough

    def status(self) -> dict[str, Any]:
        """A JSON-friendly summary for the API, CLI and dashboard."""
        last = self.last_transition
        return {
            "name": self.name,
            "state": self._state.value,
            "scope": self.settings.breaker_scope,
            "enabled": self.enabled,
            "version": self._version,
            **self.counters(),
            "trials_in_flight": len(self._trials),
            "rejections": self.rejections,
            "ignored": self.ignored,
            "retry_after": round(self.retry_after, 3),
            "last_transition": None if last is None else last.as_dict(),
        }

    async def adopt(self, event: StoredEvent, *, decide: bool = True) -> None:
        """Apply another replica's event of this shared breaker (``fleet.adopt``)."""
        await adopt(self, event, decide=decide)

    # -- guarding ----------------------------------------------------------------------

    async def call(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Await ``fn(*args, **kwargs)`` through the breaker; ``CircuitOpenError`` if open."""
        state = self._state
        if state is not _CLOSED or not self._inline:
            if not self._passthrough:  # ``_reject_if_open``, inlined: no await
                if state is _OPEN:
                    now = self._monotonic()
                    if now < self._probe_at:
                        self.rejections += 1
                        raise CircuitOpenError(self.name, self._probe_at - now)
                elif state is _FORCED_OPEN:
                    self.rejections += 1
                    raise CircuitOpenError(
                        self.name, self._forced_after, state="forced_open"
                    )
            return await self._call_slow(fn, args, kwargs)
        version = self._version
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            await self._on_error(exc, version, None, None)
            raise
        if version == self._version:
            # ``_succeeded_closed``, inlined (the hottest line of the service).
            self.consecutive_failures = 0
            self.successes += 1
            at = self._time()
            if self._window is not None:
                self._window.add(False, at)
            runs = self._runs
            if runs.ok_from <= at < runs.ok_until:
                runs.count += 1
                runs.last = at
            else:
                runs.add(KIND_SUCCESS, version, at, current=True)
            return result
        await self._on_success(version, None, None)
        return result

    def _reject_if_open(self, state: BreakerState) -> None:
        """Raise ``CircuitOpenError`` at once when OPEN (cooling down) or FORCED_OPEN."""
        if self._passthrough:
            return
        if state is _OPEN:
            now = self._monotonic()
            if now < self._probe_at:
                self.rejections += 1
                raise CircuitOpenError(self.name, self._probe_at - now)
        elif state is _FORCED_OPEN:
            self.rejections += 1
            raise CircuitOpenError(self.name, self._forced_after, state="forced_open")

    def _succeeded_closed(self, version: int) -> None:
        """The CLOSED success rule of ``BreakerCore.apply_outcome``, on the hot path.

        A success in the open run's second only bumps the run (``events/runs.py``).
        """
        self.consecutive_failures = 0
        self.successes += 1
        at = self._time()
        if self._window is not None:
            self._window.add(False, at)
        runs = self._runs
        if runs.ok_from <= at < runs.ok_until:
            runs.count += 1
            runs.last = at
        else:
            runs.add(KIND_SUCCESS, version, at, current=True)

    def apply_transition(self, record: TransitionRecord) -> None:
        """``BreakerCore.apply_transition``; later calls start a new run."""
        super().apply_transition(record)
        self._runs.fence()

    def restore(self, core: BreakerCore) -> None:
        """``LiveCore.restore``; later calls start a new run."""
        super().restore(core)
        self._runs.fence()

    async def _call_slow(
        self,
        fn: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> T:
        if self._passthrough:
            return await fn(*args, **kwargs)
        version, trial, start = await self._begin()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            await self._on_error(exc, version, trial, start)
            raise
        await self._on_success(version, trial, start)
        return result

    async def _begin(self) -> tuple[int, int | None, float | None]:
        """Admit a call off the inline path: (version, trial id, start); version -1 if off."""
        if self._passthrough:
            return -1, None, None
        trial = await self._admit()
        start = self._clock.monotonic() if self._slow_after is not None else None
        return self._version, trial, start

    async def _finish(
        self,
        exc: BaseException | None,
        version: int,
        trial: int | None,
        start: float | None,
    ) -> None:
        """Report how a call admitted by ``_begin`` ended."""
        if exc is None:
            await self._on_success(version, trial, start)
        else:
            await self._on_error(exc, version, trial, start)

    def guard(self) -> Guard:
        """``async with breaker.guard(): ...`` guards the block like ``call`` guards a call."""
        guard = _new_guard(Guard)  # ``Guard(self)`` without a Python-level __init__
        guard._breaker = self
        return guard

    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        """Use the breaker as a decorator on an async function."""

        @functools.wraps(fn)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            # ``call``'s body, inlined: one coroutine per call, not two.
            state = self._state
            if state is not _CLOSED or not self._inline:
                self._reject_if_open(state)
                return await self._call_slow(fn, args, kwargs)
            version = self._version
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                await self._on_error(exc, version, None, None)
                raise
            if version == self._version:
                self._succeeded_closed(version)
                return result
            await self._on_success(version, None, None)
            return result

        return guarded

    # -- admission and trial calls -----------------------------------------------------

    async def _admit(self) -> int | None:
        """Let a call in, or raise ``CircuitOpenError``; returns a trial id in HALF_OPEN."""
        while True:
            state = self._state
            if state is _CLOSED or state is _DISABLED:
                return None
            now = self._clock.monotonic()
            if state is _FORCED_OPEN:
                self.rejections += 1
                raise CircuitOpenError(self.name, self.retry_after, state=state.value)
            if state is _OPEN:
                if now < self._probe_at:
                    self.rejections += 1
                    raise CircuitOpenError(self.name, self._probe_at - now)
                await self._probe()
                continue
            limit = self.settings.circuit_breaker_half_open_max_calls
            bound = self.settings.circuit_breaker_half_open_trial_timeout
            if len(self._trials) >= limit:
                if await self._expire_stuck_trial(now):
                    continue
                # Trials are in flight: the answer may come any moment, so a caller
                # (a waiting batch) is told to look again soon, not at the bound.
                started = min(self._trials.values())
                self.rejections += 1
                raise CircuitOpenError(
                    self.name, min(started + bound - now, 1.0), state=state.value
                )
            slot = None
            if self._fleet is not None:
                slot = await self._fleet.acquire(
                    self._version, limit, now=self._time(), bound=bound
                )
                if slot is None:
                    self.rejections += 1
                    raise CircuitOpenError(
                        self.name, min(bound, 1.0), state=state.value
                    )
                if self._state is not _HALF_OPEN:
                    continue  # it moved while we asked the fleet
            self._trial_seq += 1
            trial = self._trial_seq
            self._trials[trial] = now
            if self._fleet is not None and slot is not None:
                self._fleet.hold(trial, slot)
            return trial

    async def _end_trial(self, trial: int) -> None:
        """Forget a finished trial here and give its fleet slot back."""
        self._trials.pop(trial, None)
        if self._fleet is not None:
            await self._fleet.release(trial)

    async def tick(self) -> None:
        """Apply time-driven moves now (cooldown over, stuck trial) instead of on the next call."""
        state = self._state
        if state is _OPEN and self._clock.monotonic() >= self._probe_at:
            await self._probe()
        elif state is _HALF_OPEN and self._trials:
            await self._expire_stuck_trial(self._clock.monotonic())

    async def _expire_stuck_trial(self, now: float) -> bool:
        """Reopen if the oldest trial has not reported within its bound (resilience4j #903)."""
        bound = self.settings.circuit_breaker_half_open_trial_timeout
        oldest, started = min(self._trials.items(), key=lambda item: item[1])
        if now - started < bound:
            return False
        version = self._version
        del self._trials[oldest]
        if self._fleet is not None:
            self._fleet.abandon(oldest)
        self._emit(KIND_TIMEOUT, version, "trial_lost", None, now - started)
        await self._transition(
            _OPEN,
            f"half-open trial did not report within {bound:g}s",
            expect_version=version,
            waited=now - started,
        )
        return True

    # -- outcomes --------------------------------------------------------------------

    def _emit(
        self,
        kind: str,
        version: int,
        detail: str | None,
        status: int | None,
        duration: float | None,
        *,
        slow: bool = False,
    ) -> None:
        at = self._time()
        self._runs.add(
            kind,
            version,
            at,
            detail,
            status,
            duration,
            current=version == self._version,
        )
        self.apply_outcome(kind, version, at, slow=slow)

    async def _on_success(
        self, version: int, trial: int | None, start: float | None
    ) -> None:
        if trial is not None:
            await self._end_trial(trial)
        duration = None if start is None else self._clock.monotonic() - start
        slow = (
            self._slow_after is not None
            and duration is not None
            and duration > self._slow_after
        )
        self._emit(
            KIND_SUCCESS, version, "slow" if slow else None, None, duration, slow=slow
        )
        if version != self._version:
            return
        if self._state is _CLOSED and slow:
            await self._maybe_trip(version)
        elif self._state is _HALF_OPEN:
            if slow:
                await self._transition(
                    _OPEN, "trial call was slow", expect_version=version
                )
            elif (
                self.half_open_successes
                >= self.settings.circuit_breaker_success_threshold
            ):
                await self._transition(
                    _CLOSED,
                    f"{self.half_open_successes} successful trial calls",
                    expect_version=version,
                )

    async def _on_error(
        self, exc: BaseException, version: int, trial: int | None, start: float | None
    ) -> None:
        if trial is not None:
            await self._end_trial(trial)
        outcome, kind, status = self._judge(exc)
        if outcome is Outcome.IGNORED:
            self.ignored += 1
            return
        duration = None if start is None else self._clock.monotonic() - start
        event_kind = KIND_TIMEOUT if outcome is Outcome.TIMEOUT else KIND_FAILURE
        self._emit(event_kind, version, kind, status, duration)
        if version != self._version:
            return
        if self._state is _CLOSED:
            await self._maybe_trip(version)
        elif self._state is _HALF_OPEN:
            await self._transition(
                _OPEN, f"trial call failed ({kind})", expect_version=version
            )

    async def _maybe_trip(self, version: int) -> None:
        reason = None
        if self.consecutive_failures >= self._threshold:
            reason = f"{self.consecutive_failures} consecutive failures"
        elif self._window is not None:
            reason = self._window.tripped()
        if reason is not None:
            await self._transition(_OPEN, reason, expect_version=version)

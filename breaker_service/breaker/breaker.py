"""``CircuitBreaker``: one provider's breaker, guarding calls and recording every outcome.

The CLOSED success path is plain attribute work plus one ``list.append`` of a tuple
to the event buffer; the ``transitions`` machine runs only when the state changes,
after the transition event is committed. OPEN becomes HALF_OPEN lazily, on the
first call after the cooldown, never by a timer.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, ParamSpec, Protocol, TypeVar

from ..clock import Clock, SystemClock
from ..config import ResilienceSettings
from ..errors import CircuitOpenError, ConcurrencyError, EventLogError
from ..events.model import (
    KIND_FAILURE,
    KIND_SUCCESS,
    KIND_TIMEOUT,
    KIND_TRANSITION,
    OutcomeRow,
    Snapshot,
    StoredEvent,
    TransitionRecord,
)
from ..events.recorder import EventRecorder
from ..retry.classify import Classifier
from ..text import MAX_ACTOR, MAX_REASON, checked_text
from .core import BreakerCore
from .machine import TRIGGER_FOR, BreakerMachine, trigger_for
from .state import BreakerState, Outcome
from .window import FailureRateWindow

__all__ = ["CircuitBreaker", "Judge", "default_judge"]

logger = logging.getLogger("breaker_service.breaker")

P = ParamSpec("P")
T = TypeVar("T")

_CLOSED = BreakerState.CLOSED
_OPEN = BreakerState.OPEN
_HALF_OPEN = BreakerState.HALF_OPEN
_FORCED_OPEN = BreakerState.FORCED_OPEN
_DISABLED = BreakerState.DISABLED

Judge = Callable[[BaseException], tuple[Outcome, str, int | None]]
"""Decides how an error counts: (outcome, short kind for the log, HTTP status)."""

_DEFAULT_CLASSIFIER = Classifier()


def default_judge(
    exc: BaseException, classifier: Classifier = _DEFAULT_CLASSIFIER
) -> tuple[Outcome, str, int | None]:
    """Transient errors fail (timeouts as TIMEOUT); everything else, and cancellation, is neither."""
    if not isinstance(exc, Exception):
        return Outcome.IGNORED, type(exc).__name__, None
    verdict = classifier(exc)
    if not verdict.transient:
        return Outcome.IGNORED, verdict.kind, verdict.status
    return (
        (Outcome.TIMEOUT if verdict.timeout else Outcome.FAILURE),
        verdict.kind,
        verdict.status,
    )


_LOCAL = object()  # a trial admitted on the local bound alone (fleet store down)


class TrialGate(Protocol):
    """Fleet-wide half-open trial slots (``events.trials.SqlTrialGate``)."""

    async def acquire(
        self, stream: str, version: int, limit: int, *, now: float, expires_at: float
    ) -> Any:
        """A lease for one trial, or None when the fleet already has ``limit`` out."""
        ...

    async def release(self, lease: Any) -> None:
        """Give a lease back."""
        ...


class _Discard(list[OutcomeRow]):
    """An event buffer that keeps nothing, for breakers used without a recorder."""

    def append(self, _row: OutcomeRow) -> None:
        """Drop the row."""


class CircuitBreaker(BreakerCore):
    """Guards calls to one provider: CLOSED -> OPEN -> HALF_OPEN -> CLOSED."""

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
        window = None
        if settings.circuit_breaker_failure_rate_threshold is not None:
            window = FailureRateWindow(
                threshold=settings.circuit_breaker_failure_rate_threshold,
                kind=settings.circuit_breaker_window_type,
                size=settings.circuit_breaker_window_size,
                duration=settings.circuit_breaker_window_duration,
                minimum_calls=settings.circuit_breaker_minimum_calls,
            )
        super().__init__(name, window)
        self.settings = settings
        self._clock = clock or SystemClock()
        system = type(self._clock) is SystemClock
        self._time: Callable[[], float] = time.time if system else self._clock.time
        self._monotonic: Callable[[], float] = (
            time.monotonic if system else self._clock.monotonic
        )
        self._recorder = recorder
        self._buffer: list[OutcomeRow] = (
            recorder.buffer if recorder is not None else _Discard()
        )
        self._judge = judge or default_judge
        self._on_transition = on_transition
        self._reload = reload
        self._passthrough = not settings.breaker_active
        self._threshold = settings.circuit_breaker_failure_threshold
        self._slow_after = settings.circuit_breaker_slow_call_duration
        self._probe_at = 0.0
        self._trials: dict[int, float] = {}
        self._trial_seq = 0
        self.last_transition_durable = False  # did the last transition reach the log?
        self._gate = trial_gate
        self._leases: dict[int, Any] = {}
        self.stream = stream or name
        self._lock = asyncio.Lock()
        self._record: TransitionRecord | None = None
        self.rejections = 0
        self.ignored = 0
        self._machine = BreakerMachine(self._state, self._entered)

    # -- reading ---------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        """False when configuration turned breakers off: calls pass, nothing is recorded."""
        return not self._passthrough

    @property
    def retry_after(self) -> float:
        """Seconds until a probe is allowed (0 unless OPEN)."""
        if self._state is _OPEN:
            return max(0.0, self._probe_at - self._clock.monotonic())
        if self._state is _FORCED_OPEN:
            return self.settings.circuit_breaker_timeout
        return 0.0

    @property
    def trials_in_flight(self) -> int:
        """Half-open trial calls admitted and not yet reported."""
        return len(self._trials)

    def snapshot(self) -> Snapshot:
        """The current state as a snapshot (its event id is stamped when written)."""
        return Snapshot(
            breaker=self.name,
            state=self._state.value,
            state_version=self._version,
            last_event_id=-1,
            taken_at=self._time(),
            data=self.snapshot_data(),
            applied_through=self.last_event_id,
        )

    def restore(self, core: BreakerCore) -> None:
        """Take state and counters from a replayed core (start-up or reload)."""
        for attr in (
            "consecutive_failures",
            "half_open_successes",
            "reopen_count",
            "opened_at",
            "open_timeout",
            "successes",
            "failures",
            "timeouts",
            "last_transition",
            "last_event_id",
            "_state",
            "_version",
        ):
            setattr(self, attr, getattr(core, attr))
        if core._window is not None and self._window is not None:
            self._window.load(core._window.dump())
        self._trials.clear()
        self._machine.set_state_silently(self._state)
        self._set_probe_time()

    async def adopt(self, event: StoredEvent, *, decide: bool = True) -> None:
        """Apply another replica's event of this shared breaker (from the log follower).

        ``decide=False`` counts an outcome without deciding to trip on it: the caller
        knows a later transition already records what its writer decided.
        """
        if event.id <= self.last_event_id:
            return  # already folded in by replay or a snapshot
        if event.kind != KIND_TRANSITION:
            self.apply_outcome(
                event.kind,
                event.state_version,
                event.at,
                event.count,
                slow=event.detail == "slow",
            )
            self.last_event_id = event.id
            if decide and self._state is _CLOSED and event.kind != KIND_SUCCESS:
                await self._maybe_trip(self._version)
            return
        async with self._lock:
            if event.state_version <= self._version:
                self.last_event_id = max(self.last_event_id, event.id)
                return
            if (
                event.state_version > self._version + 1
                or event.from_state != self._state.value
            ):
                gap = True
            else:
                gap = False
                to = BreakerState(event.to_state or "")
                self._record = TransitionRecord(
                    breaker=self.name,
                    from_state=event.from_state or "",
                    to_state=to.value,
                    version=event.state_version,
                    at=event.at,
                    reason=f"{event.reason} (on {event.instance_id})",
                    actor=event.actor,
                    open_timeout=event.duration,
                )
                await self._machine.fire(trigger_for(self._state, to))
                self.last_event_id = event.id
        if gap and self._reload is not None:
            await self._reload(self)  # missed something: re-read our stream

    def _set_probe_time(self) -> None:
        if self._state is _OPEN and self.opened_at is not None:
            remaining = self.opened_at + self.open_timeout - self._time()
            self._probe_at = self._clock.monotonic() + max(0.0, remaining)

    # -- guarding ----------------------------------------------------------------------

    async def call(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Await ``fn(*args, **kwargs)`` through the breaker; ``CircuitOpenError`` if open."""
        state = self._state
        if state is not _CLOSED or self._passthrough or self._slow_after is not None:
            if not self._passthrough:
                self._reject_if_open(
                    state
                )  # the rejection path: no coroutine, no await
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

    def _reject_if_open(self, state: BreakerState) -> None:
        """Raise ``CircuitOpenError`` at once when OPEN (cooling down) or FORCED_OPEN."""
        if state is _OPEN:
            now = self._monotonic()
            if now < self._probe_at:
                self.rejections += 1
                raise CircuitOpenError(self.name, self._probe_at - now)
        elif state is _FORCED_OPEN:
            self.rejections += 1
            raise CircuitOpenError(
                self.name, self.settings.circuit_breaker_timeout, state="forced_open"
            )

    def _succeeded_closed(self, version: int) -> None:
        """The CLOSED success rule of ``BreakerCore.apply_outcome``, on the hot path."""
        self.consecutive_failures = 0
        self.successes += 1
        at = self._time()
        if self._window is not None:
            self._window.add(False, at)
        self._buffer.append((self.name, KIND_SUCCESS, version, at, None, None, None, 1))

    async def _call_slow(
        self,
        fn: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> T:
        if self._passthrough:
            return await fn(*args, **kwargs)
        trial = await self._admit()
        version = self._version
        start = self._clock.monotonic() if self._slow_after is not None else None
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            await self._on_error(exc, version, trial, start)
            raise
        await self._on_success(version, trial, start)
        return result

    def guard(self) -> _Guard:
        """``async with breaker.guard(): ...`` guards the block like ``call`` guards a call."""
        return _Guard(self)

    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        """Use the breaker as a decorator on an async function."""

        @functools.wraps(fn)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self.call(fn, *args, **kwargs)

        return guarded

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
                started = min(self._trials.values())
                self.rejections += 1
                raise CircuitOpenError(
                    self.name, started + bound - now, state=state.value
                )
            lease = None
            if self._gate is not None:
                lease = await self._fleet_slot(limit, bound)
                if lease is None:
                    self.rejections += 1
                    raise CircuitOpenError(
                        self.name, min(bound, 1.0), state=state.value
                    )
                if self._state is not _HALF_OPEN:
                    continue  # it moved while we asked the fleet
            self._trial_seq += 1
            self._trials[self._trial_seq] = now
            if lease is not None and lease is not _LOCAL:
                self._leases[self._trial_seq] = lease
            return self._trial_seq

    async def _fleet_slot(self, limit: int, bound: float) -> object | None:
        """A trial slot across the fleet; the local bound alone if the store is down."""
        assert self._gate is not None
        now = self._time()
        try:
            lease: object | None = await self._gate.acquire(
                self.stream, self._version, limit, now=now, expires_at=now + bound
            )
        except EventLogError as exc:
            logger.warning(
                "[CIRCUIT] %s: fleet trial slots unavailable (%s); bounding locally",
                self.name,
                exc,
            )
            return _LOCAL
        return lease

    async def _end_trial(self, trial: int) -> None:
        """Forget a finished trial here and give its fleet slot back."""
        self._trials.pop(trial, None)
        lease = self._leases.pop(trial, None)
        if lease is not None and self._gate is not None:
            try:
                await self._gate.release(lease)
            except EventLogError as exc:  # the lease expires by itself
                logger.warning(
                    "[CIRCUIT] %s: could not release a trial slot: %s", self.name, exc
                )

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
        self._buffer.append((self.name, kind, version, at, detail, status, duration, 1))
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

    # -- transitions -----------------------------------------------------------------

    def _open_timeout_for(self, from_state: BreakerState) -> float:
        s = self.settings
        reopens = self.reopen_count + 1 if from_state is _HALF_OPEN else 0
        try:
            timeout = (
                s.circuit_breaker_timeout
                * s.circuit_breaker_timeout_multiplier**reopens
            )
        except OverflowError:
            timeout = s.circuit_breaker_max_timeout
        return min(timeout, s.circuit_breaker_max_timeout)

    async def _transition(
        self,
        to: BreakerState,
        reason: str,
        actor: str | None = None,
        *,
        trigger: str | None = None,
        expect_version: int | None = None,
    ) -> bool:
        """Commit a transition event, then move the machine; False if someone moved first."""
        async with self._lock:
            if expect_version is not None and self._version != expect_version:
                return False
            frm = self._state
            trigger = trigger or TRIGGER_FOR[(frm, to)]
            record = TransitionRecord(
                breaker=self.name,
                from_state=frm.value,
                to_state=to.value,
                version=self._version + 1,
                at=self._time(),
                reason=reason,
                actor=actor,
                open_timeout=self._open_timeout_for(frm) if to is _OPEN else None,
            )
            self.last_transition_durable = False
            if self._recorder is not None:
                try:
                    durable = await self._recorder.commit_transition(record)
                except ConcurrencyError:
                    if self._reload is not None:
                        await self._reload(self)
                    # If the reload did not reach this version, replay skipped the row
                    # holding it (malformed, EVENT_LOG_ON_MALFORMED=skip): step past
                    # it, or every retry would collide with it again, forever.
                    self._version = max(self._version, record.version)
                    return False
                self.last_transition_durable = durable
            self._record = record
            await self._machine.fire(trigger)
            return True

    def _entered(self, state: BreakerState) -> None:
        """Machine callback: apply the committed record to the counters and log it."""
        record = self._record
        assert record is not None, "the machine moved without a transition record"
        self._record = None
        self.apply_transition(record)
        self._trials.clear()
        self._set_probe_time()
        by = f"; by {record.actor}" if record.actor else ""
        level = logging.WARNING if state in (_OPEN, _FORCED_OPEN) else logging.INFO
        logger.log(
            level,
            "[CIRCUIT] %s: %s -> %s (%s%s)",
            self.name,
            record.from_state,
            record.to_state,
            record.reason,
            by,
        )
        if self._on_transition is not None:
            self._on_transition(self, record)

    # -- operator actions --------------------------------------------------------------

    async def force_open(self, reason: str, actor: str | None = None) -> bool:
        """Reject every call until ``reset``; recorded with reason and actor.

        Returns whether the transition is durable in the event log (``False``: it
        applies in memory and is written when the store answers).
        """
        return await self._operator_action(_FORCED_OPEN, reason, actor, "force_open")

    async def reset(self, reason: str, actor: str | None = None) -> bool:
        """Back to CLOSED with counters cleared; recorded; ``True`` once durable."""
        return await self._operator_action(_CLOSED, reason, actor, "reset")

    async def disable(self, reason: str, actor: str | None = None) -> bool:
        """Metrics-only: calls always pass, outcomes are still recorded."""
        return await self._operator_action(_DISABLED, reason, actor, "disable")

    async def _operator_action(
        self, to: BreakerState, reason: str, actor: str | None, trigger: str
    ) -> bool:
        checked_text(reason, "reason", limit=MAX_REASON)
        if actor is not None:
            checked_text(actor, "actor", limit=MAX_ACTOR)
        await self._transition(to, reason, actor, trigger=trigger)
        return self.last_transition_durable

    async def tick(self) -> None:
        """Apply time-driven moves now (cooldown over, stuck trial) instead of on the next call."""
        state = self._state
        if state is _OPEN and self._clock.monotonic() >= self._probe_at:
            await self._probe()
        elif state is _HALF_OPEN and self._trials:
            await self._expire_stuck_trial(self._clock.monotonic())

    async def _probe(self) -> None:
        """OPEN -> HALF_OPEN once the cooldown is over."""
        await self._transition(
            _HALF_OPEN,
            f"cooldown of {self.open_timeout:g}s elapsed",
            expect_version=self._version,
        )

    async def _expire_stuck_trial(self, now: float) -> bool:
        """Reopen if the oldest trial has not reported within its bound (resilience4j #903)."""
        bound = self.settings.circuit_breaker_half_open_trial_timeout
        oldest, started = min(self._trials.items(), key=lambda item: item[1])
        if now - started < bound:
            return False
        version = self._version
        del self._trials[oldest]
        self._leases.pop(oldest, None)
        self._emit(KIND_TIMEOUT, version, "trial_lost", None, now - started)
        await self._transition(
            _OPEN,
            f"half-open trial did not report within {bound:g}s",
            expect_version=version,
        )
        return True

    def status(self) -> dict[str, Any]:
        """A JSON-friendly summary for the API, CLI and dashboard."""
        last = self.last_transition
        return {
            "name": self.name,
            "state": self._state.value,
            "enabled": self.enabled,
            "version": self._version,
            "consecutive_failures": self.consecutive_failures,
            "half_open_successes": self.half_open_successes,
            "trials_in_flight": len(self._trials),
            "successes": self.successes,
            "failures": self.failures,
            "timeouts": self.timeouts,
            "rejections": self.rejections,
            "ignored": self.ignored,
            "opened_at": self.opened_at,
            "open_timeout": self.open_timeout,
            "retry_after": round(self.retry_after, 3),
            "last_transition": None
            if last is None
            else {
                "from": last.from_state,
                "to": last.to_state,
                "at": last.at,
                "reason": last.reason,
                "actor": last.actor,
            },
        }

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name!r} {self._state.value} v{self._version}>"


class _Guard:
    """The async context manager behind ``breaker.guard()``."""

    __slots__ = ("_breaker", "_start", "_trial", "_version")

    def __init__(self, breaker: CircuitBreaker) -> None:
        self._breaker = breaker
        self._trial: int | None = None
        self._version = -1
        self._start: float | None = None

    async def __aenter__(self) -> CircuitBreaker:
        b = self._breaker
        if b._passthrough:
            return b
        state = b._state
        if state is not _CLOSED:
            b._reject_if_open(state)  # the rejection path, as in ``call``
            self._trial = await b._admit()
        self._version = b._version
        if b._slow_after is not None:
            self._start = b._clock.monotonic()
        return b

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        b = self._breaker
        version = self._version
        if version < 0:
            return
        if exc is None:
            if (
                self._trial is None
                and self._start is None
                and version == b._version
                and b._state is _CLOSED
            ):
                b._succeeded_closed(version)
                return
            await b._on_success(version, self._trial, self._start)
        else:
            await b._on_error(exc, version, self._trial, self._start)

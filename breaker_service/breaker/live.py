"""``LiveCore``: a breaker's core in a running process, moved by committed transitions.

A transition is committed to the event log first and only then moves the
``transitions`` machine, whose callback folds it into the core and logs it. Time
comes from the injected clock: OPEN becomes HALF_OPEN lazily (``_probe``, on the
first call after the cooldown), never by a timer. Operator actions, snapshots and
restore live here; guarding calls is ``CircuitBreaker``'s part.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Self

from ..clock import Clock, SystemClock
from ..config import ResilienceSettings
from ..errors import ConcurrencyError
from ..events.model import Snapshot, TransitionRecord
from ..events.recorder import EventRecorder
from ..text import MAX_ACTOR, MAX_REASON, checked_text
from .core import BreakerCore
from .machine import TRIGGER_FOR, BreakerMachine, trigger_for
from .state import BreakerState
from .window import FailureRateWindow

__all__ = ["LiveCore"]

logger = logging.getLogger("breaker_service.breaker")

_CLOSED = BreakerState.CLOSED
_OPEN = BreakerState.OPEN
_HALF_OPEN = BreakerState.HALF_OPEN
_FORCED_OPEN = BreakerState.FORCED_OPEN
_DISABLED = BreakerState.DISABLED


class LiveCore(BreakerCore):
    """State and counters kept by transitions committed to the log, then entered."""

    def __init__(
        self,
        name: str,
        *,
        settings: ResilienceSettings,
        clock: Clock,
        recorder: EventRecorder | None,
        on_transition: Callable[[Self, TransitionRecord], None] | None,
        reload: Callable[[Self], Awaitable[None]] | None,
    ) -> None:
        super().__init__(name, FailureRateWindow.from_settings(settings))
        self.settings = settings
        self._clock = clock
        system = type(clock) is SystemClock
        self._time: Callable[[], float] = time.time if system else clock.time
        self._monotonic: Callable[[], float] = (
            time.monotonic if system else clock.monotonic
        )
        self._recorder = recorder
        self.last_transition_durable = False  # did the last transition reach the log?
        self._on_transition = on_transition
        self._reload = reload
        self._probe_at = 0.0  # monotonic time the cooldown ends (OPEN)
        self._trials: dict[int, float] = {}  # half-open calls in flight -> started
        self._lock = asyncio.Lock()
        self._record: TransitionRecord | None = None
        # Built on the first transition: a ``transitions`` machine costs about a
        # millisecond, which start-up would pay for every breaker it restores.
        self._machine_: BreakerMachine | None = None

    # -- reading ---------------------------------------------------------------------

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
        self.take(core)
        self._trials.clear()
        if self._machine_ is not None:
            self._machine_.set_state_silently(self._state)
        self._set_probe_time()

    def _set_probe_time(self) -> None:
        if self._state is _OPEN and self.opened_at is not None:
            remaining = self.opened_at + self.open_timeout - self._time()
            self._probe_at = self._clock.monotonic() + max(0.0, remaining)

    # -- transitions -----------------------------------------------------------------

    def _machine(self) -> BreakerMachine:
        """The state machine, built in the current state on first use."""
        machine = self._machine_
        if machine is None:
            machine = self._machine_ = BreakerMachine(self._state, self._entered)
        return machine

    def _open_timeout_for(self, from_state: BreakerState, waited: float = 0.0) -> float:
        s = self.settings
        healing = self.half_open_successes > 0  # as ``BreakerCore.apply_transition``
        reopens = (
            self.reopen_count + 1 if from_state is _HALF_OPEN and not healing else 0
        )
        try:
            timeout = (
                s.circuit_breaker_timeout
                * s.circuit_breaker_timeout_multiplier**reopens
            )
        except OverflowError:
            timeout = s.circuit_breaker_max_timeout
        return max(0.0, min(timeout, s.circuit_breaker_max_timeout) - waited)

    async def _transition(
        self,
        to: BreakerState,
        reason: str,
        actor: str | None = None,
        *,
        trigger: str | None = None,
        expect_version: int | None = None,
        waited: float = 0.0,
    ) -> bool:
        """Commit a transition event, then move the machine; False if someone moved first.

        ``waited``: seconds of the cooldown already spent, when the evidence for
        opening is that old (a trial that hung since it was sent).
        """
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
                open_timeout=(
                    self._open_timeout_for(frm, waited) if to is _OPEN else None
                ),
            )
            self.last_transition_durable = False
            if self._recorder is not None:
                try:
                    durable = await self._recorder.commit_transition(record)
                except ConcurrencyError:
                    await self._reload_stream()
                    # If the reload did not reach this version, replay skipped the row
                    # holding it (malformed, EVENT_LOG_ON_MALFORMED=skip): step past
                    # it, or every retry would collide with it again, forever.
                    self._version = max(self._version, record.version)
                    return False
                self.last_transition_durable = durable
            self._record = record
            await self._machine().fire(trigger)
            return True

    async def _enter_committed(self, record: TransitionRecord, event_id: int) -> bool:
        """Enter a transition another replica committed (event ``event_id``).

        False when it does not follow from this state (a transition was missed): the
        caller reloads the stream. One this breaker already made only moves the id.
        """
        async with self._lock:
            if record.version <= self._version:
                self.last_event_id = max(self.last_event_id, event_id)
                return True
            if (
                record.version > self._version + 1
                or record.from_state != self._state.value
            ):
                return False
            to = BreakerState(record.to_state)
            self._record = record
            await self._machine().fire(trigger_for(self._state, to))
            self.last_event_id = event_id
            return True

    async def _reload_stream(self: Self) -> None:
        """Re-read this breaker from the log (after a lost race or a missed event)."""
        if self._reload is not None:
            await self._reload(self)

    def _entered(self: Self, state: BreakerState) -> None:
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
            "[CIRCUIT] State transition: %s: %s -> %s (%s%s)",
            self.name,
            record.from_state,
            record.to_state,
            record.reason,
            by,
            extra={
                "provider": self.name,
                "from_state": record.from_state,
                "to_state": record.to_state,
                "reason": record.reason,
                "actor": record.actor,
                "version": record.version,
            },
        )
        if self._on_transition is not None:
            self._on_transition(self, record)

    async def _probe(self) -> None:
        """OPEN -> HALF_OPEN once the cooldown is over."""
        await self._transition(
            _HALF_OPEN,
            f"cooldown of {self.open_timeout:g}s elapsed",
            expect_version=self._version,
        )

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
        """Check the operator's text, then commit; whether it reached the log."""
        checked_text(reason, "reason", limit=MAX_REASON)
        if actor is not None:
            checked_text(actor, "actor", limit=MAX_ACTOR)
        await self._transition(to, reason, actor, trigger=trigger)
        return self.last_transition_durable

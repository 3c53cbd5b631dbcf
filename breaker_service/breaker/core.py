"""The breaker's bookkeeping as a pure fold over events, shared by life and replay.

``BreakerCore.apply_transition`` and ``apply_outcome`` are the only rules for how
state and counters change; the live breaker calls them (or inlines the identical
CLOSED-success rule on its hot path), and replay feeds them the stored log. The
"replay equals life" property test holds the two together.
"""

from __future__ import annotations

from typing import Any

from ..events.model import (
    KIND_SUCCESS,
    KIND_TIMEOUT,
    KIND_TRANSITION,
    Snapshot,
    StoredEvent,
    TransitionRecord,
)
from .state import BreakerState
from .window import FailureRateWindow

__all__ = ["BreakerCore"]


class BreakerCore:
    """State, version and counters of one breaker, changed only through events."""

    def __init__(self, name: str, window: FailureRateWindow | None = None) -> None:
        self.name = name
        self._state = BreakerState.CLOSED
        self._version = 0
        self.consecutive_failures = 0
        self.half_open_successes = 0
        self.reopen_count = 0
        self.opened_at: float | None = None  # wall-clock epoch seconds
        self.open_timeout: float = 0.0
        self.successes = 0
        self.failures = 0
        self.timeouts = 0
        self.last_transition: TransitionRecord | None = None
        self.last_event_id = 0
        self._window = window

    @property
    def state(self) -> BreakerState:
        """The current state."""
        return self._state

    @property
    def version(self) -> int:
        """The state version: how many transitions this breaker has made."""
        return self._version

    def apply_transition(self, record: TransitionRecord) -> None:
        """Enter ``record.to_state`` and reset what that state starts from."""
        previous = self._state
        to = BreakerState(record.to_state)
        self._state = to
        self._version = record.version
        self.last_transition = record
        self.consecutive_failures = 0
        self.half_open_successes = 0
        if to is BreakerState.OPEN:
            self.reopen_count = (
                self.reopen_count + 1 if previous is BreakerState.HALF_OPEN else 0
            )
            self.opened_at = record.at
            self.open_timeout = record.open_timeout or 0.0
        elif to is BreakerState.FORCED_OPEN:
            self.opened_at = record.at
        elif to is BreakerState.CLOSED:
            self.reopen_count = 0
            self.opened_at = None
            if self._window is not None:
                self._window.clear()
        elif to is BreakerState.DISABLED:
            self.opened_at = None

    def apply_outcome(
        self, kind: str, version: int, at: float, count: int = 1, *, slow: bool = False
    ) -> None:
        """Count an outcome; it moves counters only if it happened in the current state."""
        if kind == KIND_SUCCESS:
            self.successes += count
        elif kind == KIND_TIMEOUT:
            self.timeouts += count
        else:
            self.failures += count
        if version != self._version:
            return  # a call that started before the last transition: history only
        failed = kind != KIND_SUCCESS or slow
        state = self._state
        if state is BreakerState.CLOSED:
            self.consecutive_failures = (
                self.consecutive_failures + count if failed else 0
            )
            if self._window is not None:
                self._window.add(failed, at, count)
        elif state is BreakerState.HALF_OPEN and not failed:
            self.half_open_successes += count

    def apply_event(self, event: StoredEvent) -> None:
        """Fold one stored event."""
        if event.kind == KIND_TRANSITION:
            self.apply_transition(
                TransitionRecord(
                    breaker=event.breaker,
                    from_state=event.from_state or "",
                    to_state=event.to_state or "",
                    version=event.state_version,
                    at=event.at,
                    reason=event.reason or "",
                    actor=event.actor,
                    open_timeout=event.duration,
                )
            )
        else:
            self.apply_outcome(
                event.kind,
                event.state_version,
                event.at,
                event.count,
                slow=event.detail == "slow",
            )
        self.last_event_id = max(self.last_event_id, event.id)

    # -- snapshots -------------------------------------------------------------------

    def snapshot_data(self) -> dict[str, Any]:
        """Everything a snapshot needs besides state and version."""
        last = self.last_transition
        return {
            "consecutive_failures": self.consecutive_failures,
            "half_open_successes": self.half_open_successes,
            "reopen_count": self.reopen_count,
            "opened_at": self.opened_at,
            "open_timeout": self.open_timeout,
            "successes": self.successes,
            "failures": self.failures,
            "timeouts": self.timeouts,
            "window": self._window.dump() if self._window is not None else None,
            "last_transition": None
            if last is None
            else {
                "from_state": last.from_state,
                "to_state": last.to_state,
                "at": last.at,
                "reason": last.reason,
                "actor": last.actor,
                "open_timeout": last.open_timeout,
            },
        }

    def load_snapshot(self, snapshot: Snapshot) -> None:
        """Restore from a snapshot taken by ``snapshot_data``."""
        data = snapshot.data
        self._state = BreakerState(snapshot.state)
        self._version = snapshot.state_version
        self.last_event_id = snapshot.last_event_id
        self.consecutive_failures = int(data.get("consecutive_failures", 0))
        self.half_open_successes = int(data.get("half_open_successes", 0))
        self.reopen_count = int(data.get("reopen_count", 0))
        opened = data.get("opened_at")
        self.opened_at = float(opened) if opened is not None else None
        self.open_timeout = float(data.get("open_timeout", 0.0))
        self.successes = int(data.get("successes", 0))
        self.failures = int(data.get("failures", 0))
        self.timeouts = int(data.get("timeouts", 0))
        if self._window is not None and data.get("window") is not None:
            self._window.load(data["window"])
        last = data.get("last_transition")
        if last is not None:
            self.last_transition = TransitionRecord(
                breaker=self.name,
                from_state=str(last["from_state"]),
                to_state=str(last["to_state"]),
                version=self._version,
                at=float(last["at"]),
                reason=str(last["reason"]),
                actor=last.get("actor"),
                open_timeout=last.get("open_timeout"),
            )

    def fingerprint(self) -> dict[str, Any]:
        """State and counters, for comparing a replayed breaker with a live one."""
        data = self.snapshot_data()
        data["state"] = self._state.value
        data["version"] = self._version
        return data

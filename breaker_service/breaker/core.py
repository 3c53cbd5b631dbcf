"""The breaker's bookkeeping as a pure fold over events, shared by life and replay.

``BreakerCore.apply_transition`` and ``apply_outcome`` are the only rules for how
state and counters change; the live breaker calls them (or inlines the identical
CLOSED-success rule on its hot path), and replay feeds them the stored log. The
"replay equals life" property test holds the two together.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
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

__all__ = ["BreakerCore", "BreakerCounters"]


@dataclass(slots=True, eq=False)
class BreakerCounters:
    """What a breaker counts; snapshots, restore and ``status()`` copy these fields whole.

    Declared once here: ``counters()`` reads them, ``set_counters`` and
    ``load_counters`` write them, so no copy lists the names by hand.
    """

    consecutive_failures: int = 0
    half_open_successes: int = 0
    reopen_count: int = 0
    opened_at: float | None = None  # wall-clock epoch seconds
    open_timeout: float = 0.0
    successes: int = 0
    failures: int = 0
    timeouts: int = 0

    def counters(self) -> dict[str, Any]:
        """The counters as a JSON-friendly dict (the keys snapshots store)."""
        return {name: getattr(self, name) for name in _COUNTERS}

    def set_counters(self, other: BreakerCounters) -> None:
        """Take every counter from ``other``."""
        for name in _COUNTERS:
            setattr(self, name, getattr(other, name))

    def load_counters(self, data: Mapping[str, Any]) -> None:
        """Take the counters from ``counters()`` output; a missing key is zero."""
        for name, default in _COUNTERS.items():
            value = data.get(name, default)
            if value is not None or default is not None:
                value = int(value) if isinstance(default, int) else float(value)
            setattr(self, name, value)


_COUNTERS: dict[str, Any] = {
    f.name: f.default for f in dataclasses.fields(BreakerCounters)
}


class BreakerCore(BreakerCounters):
    """State, version and counters of one breaker, changed only through events.

    It extends ``BreakerCounters`` (rather than holding one) so the hot path reads
    and writes a counter as one attribute of the breaker.
    """

    def __init__(self, name: str, window: FailureRateWindow | None = None) -> None:
        super().__init__()
        self.name = name
        self._state = BreakerState.CLOSED
        self._version = 0
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
        healing = self.half_open_successes > 0  # some trial calls got through
        to = BreakerState(record.to_state)
        self._state = to
        self._version = record.version
        self.last_transition = record
        self.consecutive_failures = 0
        self.half_open_successes = 0
        if to is BreakerState.OPEN:
            # The open duration grows only while trials keep failing outright; a
            # half-open with a successful trial call starts the growth over.
            self.reopen_count = (
                self.reopen_count + 1
                if previous is BreakerState.HALF_OPEN and not healing
                else 0
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
            self.apply_transition(event.as_transition())
        else:
            self.apply_outcome(
                event.kind,
                event.state_version,
                event.at,
                event.count,
                slow=event.detail == "slow",
            )
        self.last_event_id = max(self.last_event_id, event.id)

    def take(self, other: BreakerCore) -> None:
        """Become ``other``: state, version, counters, window and history."""
        self.set_counters(other)
        self._state = other._state
        self._version = other._version
        self.last_transition = other.last_transition
        self.last_event_id = other.last_event_id
        if other._window is not None and self._window is not None:
            self._window.load(other._window.dump())

    # -- snapshots -------------------------------------------------------------------

    def snapshot_data(self) -> dict[str, Any]:
        """Everything a snapshot needs besides state and version."""
        last = self.last_transition
        return {
            **self.counters(),
            "window": self._window.dump() if self._window is not None else None,
            "last_transition": None if last is None else last.as_dict(),
        }

    def load_snapshot(self, snapshot: Snapshot) -> None:
        """Restore from a snapshot taken by ``snapshot_data``."""
        data = snapshot.data
        self._state = BreakerState(snapshot.state)
        self._version = snapshot.state_version
        self.last_event_id = snapshot.last_event_id
        self.load_counters(data)
        if self._window is not None and data.get("window") is not None:
            self._window.load(data["window"])
        last = data.get("last_transition")
        if last is not None:
            self.last_transition = TransitionRecord.from_dict(
                last, breaker=self.name, version=self._version
            )

    def fingerprint(self) -> dict[str, Any]:
        """State and counters, for comparing a replayed breaker with a live one."""
        data = self.snapshot_data()
        data["state"] = self._state.value
        data["version"] = self._version
        return data

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self._state.value} v{self._version}>"

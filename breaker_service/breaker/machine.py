"""The breaker's state graph, declared once with ``transitions``.

The machine is triggered only when the state really changes (a trigger costs tens of
microseconds; the hot path costs well under one), and only after the transition
event has been committed. Invalid moves raise ``transitions.MachineError``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from transitions.extensions.asyncio import AsyncMachine

from .state import BreakerState

__all__ = ["TRIGGER_FOR", "BreakerMachine", "trigger_for"]


class _SkipBindingNoise(logging.Filter):
    """Drops the warning ``model_override=True`` gives for every helper we choose not to bind."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Skip binding" not in record.getMessage()


logging.getLogger("transitions").setLevel(logging.WARNING)
logging.getLogger("transitions.core").addFilter(_SkipBindingNoise())


_S = BreakerState
_TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "trip", "source": [_S.CLOSED, _S.HALF_OPEN], "dest": _S.OPEN},
    {"trigger": "probe", "source": _S.OPEN, "dest": _S.HALF_OPEN},
    {"trigger": "recover", "source": _S.HALF_OPEN, "dest": _S.CLOSED},
    {"trigger": "force_open", "source": "*", "dest": _S.FORCED_OPEN},
    {"trigger": "reset", "source": "*", "dest": _S.CLOSED},
    {"trigger": "disable", "source": "*", "dest": _S.DISABLED},
]

# Which trigger takes an automatic move from one state to another.
TRIGGER_FOR: dict[tuple[BreakerState, BreakerState], str] = {
    (_S.CLOSED, _S.OPEN): "trip",
    (_S.HALF_OPEN, _S.OPEN): "trip",
    (_S.OPEN, _S.HALF_OPEN): "probe",
    (_S.HALF_OPEN, _S.CLOSED): "recover",
}


_MANUAL = {_S.FORCED_OPEN: "force_open", _S.CLOSED: "reset", _S.DISABLED: "disable"}


def trigger_for(source: BreakerState, dest: BreakerState) -> str:
    """The trigger that moves ``source`` to ``dest`` (automatic first, then manual)."""
    return TRIGGER_FOR.get((source, dest)) or _MANUAL[dest]


class BreakerMachine:
    """The model ``transitions`` drives; its trigger stubs are replaced by the machine."""

    state: BreakerState

    def __init__(
        self, initial: BreakerState, on_enter: Callable[[BreakerState], None]
    ) -> None:
        self._on_enter = on_enter
        self.machine = AsyncMachine(
            model=self,
            states=BreakerState,
            transitions=_TRANSITIONS,
            initial=initial,
            auto_transitions=False,
            model_override=True,
            queued=True,
            after_state_change="_entered",
        )

    def _entered(self) -> None:
        self._on_enter(self.state)

    async def trip(self) -> bool:
        """CLOSED or HALF_OPEN -> OPEN."""
        raise NotImplementedError  # pragma: no cover - replaced by the machine

    async def probe(self) -> bool:
        """OPEN -> HALF_OPEN, once the cooldown has elapsed."""
        raise NotImplementedError  # pragma: no cover - replaced by the machine

    async def recover(self) -> bool:
        """HALF_OPEN -> CLOSED, after enough successful trials."""
        raise NotImplementedError  # pragma: no cover - replaced by the machine

    async def force_open(self) -> bool:
        """Any state -> FORCED_OPEN (an operator's decision)."""
        raise NotImplementedError  # pragma: no cover - replaced by the machine

    async def reset(self) -> bool:
        """Any state -> CLOSED (an operator's decision)."""
        raise NotImplementedError  # pragma: no cover - replaced by the machine

    async def disable(self) -> bool:
        """Any state -> DISABLED: calls pass, outcomes are only recorded."""
        raise NotImplementedError  # pragma: no cover - replaced by the machine

    def set_state_silently(self, state: BreakerState) -> None:
        """Jump to ``state`` without callbacks (replay and reload, not a new transition)."""
        self.machine.set_state(state, model=self)

    async def fire(self, trigger: str) -> None:
        """Run ``trigger`` on the machine."""
        await getattr(self, trigger)()

"""``Guard``: the async context manager behind ``breaker.guard()``.

It runs ``CircuitBreaker.call``'s steps split in two: admission on entry, the
outcome on exit. On the CLOSED inline path both do their work at once and hand
back an already finished future (awaiting it does not suspend), so a guarded block
costs no coroutine of its own; elsewhere they return coroutines.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

from ..errors import CircuitOpenError
from ..events.model import KIND_SUCCESS
from .state import BreakerState

if TYPE_CHECKING:
    from .breaker import CircuitBreaker

__all__ = ["Guard"]

T = TypeVar("T")

_CLOSED = BreakerState.CLOSED
_OPEN = BreakerState.OPEN


class Guard:
    """``call``'s steps, split into entering and leaving a block."""

    __slots__ = ("_breaker", "_ticket", "_version")

    _ticket: tuple[int | None, float | None] | None  # (trial, start); None: inline
    _version: int  # -1 when breakers are off: nothing to report

    def __init__(self, breaker: CircuitBreaker) -> None:
        self._breaker = breaker  # the rest is set by a successful ``__aenter__``

    def __aenter__(self) -> Awaitable[CircuitBreaker]:
        b = self._breaker
        state = b._state
        if state is _CLOSED and b._inline:
            self._version = b._version
            self._ticket = None
            ready = b._ready
            if ready is None:
                ready = b._ready = _done(b)
                if not _FINISHED:
                    _FINISHED.append(_done(None))
            return ready
        if state is _OPEN and not b._passthrough:
            now = b._monotonic()  # the rejection path, inlined as in ``call``
            if now < b._probe_at:
                b.rejections += 1
                raise CircuitOpenError(b.name, b._probe_at - now)
        b._reject_if_open(state)
        return self._admit()

    async def _admit(self) -> CircuitBreaker:
        b = self._breaker
        version, trial, start = await b._begin()
        self._version = version
        self._ticket = (trial, start)
        return b

    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Awaitable[None]:
        version = self._version
        if version < 0:
            return _finished()
        b = self._breaker
        ticket = self._ticket
        if ticket is None:
            if exc is None and version == b._version:
                # ``_succeeded_closed``, inlined as in ``call``.
                b.consecutive_failures = 0
                b.successes += 1
                at = b._time()
                if b._window is not None:
                    b._window.add(False, at)
                runs = b._runs
                if runs.ok_from <= at < runs.ok_until:
                    runs.count += 1
                    runs.last = at
                else:
                    runs.add(KIND_SUCCESS, version, at, current=True)
                return _FINISHED[0]  # made with ``_ready`` by ``__aenter__``
            ticket = (None, None)
        return b._finish(exc, version, *ticket)


_FINISHED: list[asyncio.Future[None]] = []


def _done(value: T) -> asyncio.Future[T]:
    """A future already holding ``value``: awaiting it returns at once, on any loop."""
    future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
    future.set_result(value)
    return future


def _finished() -> asyncio.Future[None]:
    """The shared finished future of ``__aexit__`` (``None``: exceptions propagate)."""
    if not _FINISHED:
        _FINISHED.append(_done(None))
    return _FINISHED[0]

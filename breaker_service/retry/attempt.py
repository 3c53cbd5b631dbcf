"""``Attempt``: one try inside ``RetryPolicy.attempts()``, used as ``with attempt:``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["Attempt"]


class Attempt:
    """One try inside ``policy.attempts()``: use it as ``with attempt: ...``."""

    __slots__ = ("error", "number", "timeout")

    def __init__(self, number: int, timeout: float | None) -> None:
        self.number = number
        self.timeout = timeout
        self.error: Exception | None = None

    def __enter__(self) -> Attempt:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if isinstance(exc, Exception):
            self.error = exc
            return True  # the iterator decides whether to retry or re-raise
        return False

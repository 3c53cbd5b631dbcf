"""What is worth retrying: transient failures (timeouts, transport errors, 429/5xx).

One ``Classifier`` answers for retries and breakers alike. Providers add hooks for
their own codes (an exhausted quota is a 429 that must not be retried).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from ..errors import CircuitOpenError, ProviderError, ProviderRejected

__all__ = [
    "DEFAULT_RETRY_STATUSES",
    "Classification",
    "Classifier",
    "ClassifierHook",
    "parse_retry_after",
]

DEFAULT_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class Classification:
    """The verdict on one error: is it transient, and what do we call it."""

    transient: bool
    kind: str
    timeout: bool = False
    status: int | None = None
    retry_after: float | None = None


ClassifierHook = Callable[[BaseException], Classification | None]


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date; else None."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def _httpx_classification(exc: BaseException) -> Classification | None:
    """httpx's transport errors, without importing httpx unless it is already loaded."""
    httpx: Any = sys.modules.get("httpx")
    if httpx is None:
        return None
    if isinstance(exc, httpx.TimeoutException):
        return Classification(True, "timeout", timeout=True)
    if isinstance(
        exc, httpx.NetworkError | httpx.RemoteProtocolError | httpx.ProxyError
    ):
        return Classification(True, type(exc).__name__)
    # HTTPStatusError falls through to the generic status path in Classifier.__call__,
    # which applies this classifier's status_map and retry_statuses.
    return None


def _status_classification(
    status: int,
    retry_after: str | float | None,
    statuses: frozenset[int],
    now: float | None = None,
) -> Classification:
    after = (
        parse_retry_after(retry_after, now=now)
        if isinstance(retry_after, str)
        else retry_after
    )
    return Classification(
        status in statuses, str(status), status=status, retry_after=after
    )


class Classifier:
    """Decides whether an error is transient (retry it, count it against the breaker).

    Order: hooks (first non-``None`` answer wins), the project's ``ProviderError``
    tree, httpx transport errors, ``TimeoutError``/``ConnectionError``, then any
    object with an HTTP ``status_code`` (or ``response.status_code``).
    """

    __slots__ = ("_exceptions", "_hooks", "_status_map", "_statuses")

    def __init__(
        self,
        *,
        retry_statuses: Iterable[int] = DEFAULT_RETRY_STATUSES,
        retry_exceptions: tuple[type[BaseException], ...] = (
            ConnectionError,
            TimeoutError,
        ),
        status_map: Mapping[int, int] | None = None,
        hooks: Iterable[ClassifierHook] = (),
    ) -> None:
        self._statuses = frozenset(retry_statuses)
        self._exceptions = retry_exceptions
        self._status_map = dict(status_map or {})
        self._hooks = tuple(hooks)

    def with_hooks(
        self, *hooks: ClassifierHook, status_map: Mapping[int, int] | None = None
    ) -> Classifier:
        """A copy with more hooks (tried first) and extra status mappings."""
        return Classifier(
            retry_statuses=self._statuses,
            retry_exceptions=self._exceptions,
            status_map={**self._status_map, **(status_map or {})},
            hooks=(*hooks, *self._hooks),
        )

    def __call__(
        self, exc: BaseException, *, now: float | None = None
    ) -> Classification:
        """Classify ``exc``; ``now`` (epoch seconds) dates a Retry-After HTTP date."""
        for hook in self._hooks:
            verdict = hook(exc)
            if verdict is not None:
                return verdict
        if isinstance(exc, CircuitOpenError):
            return Classification(False, "circuit_open")
        if isinstance(exc, ProviderError):
            status = (
                self._status_map.get(exc.status, exc.status) if exc.status else None
            )
            transient = exc.transient or (
                status is not None
                and status in self._statuses
                and not isinstance(exc, ProviderRejected)
            )
            return Classification(
                transient,
                exc.kind,
                timeout=exc.kind == "timeout",
                status=exc.status,
                retry_after=exc.retry_after,
            )
        verdict = _httpx_classification(exc)
        if verdict is not None:
            return verdict
        if isinstance(exc, TimeoutError):
            return Classification(
                TimeoutError in self._exceptions, "timeout", timeout=True
            )
        if isinstance(exc, self._exceptions):
            return Classification(True, type(exc).__name__)
        status = _status_of(exc)
        if status is not None:
            status = self._status_map.get(status, status)
            return _status_classification(
                status, _retry_after_of(exc), self._statuses, now
            )
        return Classification(False, type(exc).__name__)


def _status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def _retry_after_of(exc: BaseException) -> str | float | None:
    value = getattr(exc, "retry_after", None)
    if isinstance(value, int | float | str):
        return float(value) if not isinstance(value, str) else value
    headers = getattr(getattr(exc, "response", None), "headers", None) or getattr(
        exc, "headers", None
    )
    if headers is not None and hasattr(headers, "get"):
        header = headers.get("retry-after") or headers.get("Retry-After")
        return header if isinstance(header, str) else None
    return None

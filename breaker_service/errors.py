"""The exception tree: catch ``BreakerServiceError`` for anything this library raises.

::

    BreakerServiceError
    ├── ConfigError                  bad configuration, names the variable
    ├── CircuitOpenError             breaker refused the call (breaker, retry_after)
    ├── ProviderError                an upstream API failed (provider, status, code)
    │   ├── ProviderTimeout          no answer in time (transient)
    │   ├── ProviderUnavailable      transport error, 429 or 5xx (transient, retry_after)
    │   └── ProviderRejected         the request itself was refused: 4xx, quota (permanent)
    │       └── ProviderQuotaExceeded  the provider's file-count quota is full
    ├── StorageError                 the local database failed (uploads, outbox, any table)
    │   ├── StorageCorrupt           the database file is damaged (names the file)
    │   └── EventLogError            the event store failed or holds bad data
    │       ├── ConcurrencyError     another writer took the same breaker version
    │       ├── MalformedEventError  a stored event row cannot be read (names the row)
    │       ├── NotDurable           an operator action applied in memory, not yet saved
    │       └── UnstorableEvent      the store refused a row itself (bad text, out of range)
    ├── InvalidText                  a reason or actor with control characters, too long
    ├── UnknownProviderError         no provider by that name
    ├── UnknownBreakerError          no breaker by that name
    └── UploadRejected               the file was refused before any network call (reason)

Database errors (SQLAlchemy, the DBAPI drivers, the network) are translated into
``StorageError`` or ``EventLogError`` at one point, ``events.sql_errors``; none escapes
raw. The event log, the trial gate, the outbox and migrations raise ``EventLogError``
(as they always have); the upload store raises ``StorageError``. An event-log append
refused for the data it carries (not for the connection) raises ``UnstorableEvent``:
retrying cannot help, so the recorder sets such rows aside instead of waiting.

A retry that gives up re-raises the last error itself, never a wrapper; the number
of attempts made is on the exception as ``attempts`` (see ``retry.attempts_of``).
"""

from __future__ import annotations

__all__ = [
    "BreakerServiceError",
    "CircuitOpenError",
    "ConcurrencyError",
    "ConfigError",
    "EventLogError",
    "InvalidText",
    "MalformedEventError",
    "NotDurable",
    "ProviderError",
    "ProviderQuotaExceeded",
    "ProviderRejected",
    "ProviderTimeout",
    "ProviderUnavailable",
    "StorageCorrupt",
    "StorageError",
    "UnknownBreakerError",
    "UnknownProviderError",
    "UnstorableEvent",
    "UploadRejected",
]


class BreakerServiceError(Exception):
    """Root of every error raised by breaker-service."""


class ConfigError(BreakerServiceError, ValueError):
    """The configuration is invalid; the message names the variable and what it accepts."""

    def __init__(self, message: str, *, variable: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable


class CircuitOpenError(BreakerServiceError):
    """A breaker refused the call without calling the provider.

    Cheap to raise (the rejection path is hot): the message is built only when shown.
    """

    def __init__(
        self, breaker: str, retry_after: float, *, state: str = "open"
    ) -> None:
        self.breaker = breaker
        self.retry_after = retry_after if retry_after > 0 else 0.0
        self.state = state

    def __str__(self) -> str:
        return f"circuit {self.breaker!r} is {self.state}; retry after {self.retry_after:.2f}s"

    def __reduce__(
        self,
    ) -> tuple[type[CircuitOpenError], tuple[str, float], dict[str, str]]:
        return (type(self), (self.breaker, self.retry_after), {"state": self.state})


class ProviderError(BreakerServiceError):
    """An upstream provider call failed.

    ``status`` is the HTTP status (``None`` for transport errors), ``code`` the
    provider's own error type or code, ``retry_after`` the server's hint in seconds.
    """

    transient: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status
        self.code = code
        self.retry_after = retry_after

    @property
    def kind(self) -> str:
        """A short name for logs and events: the status, or the class name."""
        return str(self.status) if self.status is not None else type(self).__name__


class ProviderTimeout(ProviderError):
    """The provider did not answer in time (connect, read, write or pool timeout)."""

    transient = True

    @property
    def kind(self) -> str:
        """Always ``timeout``."""
        return "timeout"


class ProviderUnavailable(ProviderError):
    """A transient failure: transport error, 429 or 5xx. Worth retrying."""

    transient = True


class ProviderRejected(ProviderError):
    """A permanent failure: the request was refused (4xx, exhausted quota, bad key)."""


class ProviderQuotaExceeded(ProviderRejected):
    """The provider holds as many files as it allows (Moonshot 1,000; GLM 100).

    Retrying cannot help until files are deleted; a reconcile may free orphans.
    """


class StorageError(BreakerServiceError):
    """The local database could not be read or written (any table, any backend)."""


class EventLogError(StorageError):
    """The event store could not be read or written."""


class ConcurrencyError(EventLogError):
    """Another writer appended the same breaker version first: reload and re-decide."""


class UnstorableEvent(EventLogError):
    """The store refused a row for what it holds (a NUL, a lone surrogate, a value out
    of range, a NOT NULL or CHECK violation), not for the connection: never retry it."""


class MalformedEventError(EventLogError):
    """A stored event cannot be replayed; the message names the row."""

    def __init__(self, message: str, *, row_id: int | None = None) -> None:
        super().__init__(message)
        self.row_id = row_id


class StorageCorrupt(StorageError):
    """The database file is damaged: nothing is started on it; the message says why."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class NotDurable(EventLogError):
    """An operator action took effect in memory but could not be written to the log.

    The state stays (fail-safe); it is written when the store answers, and lost if
    the process stops first. ``status`` is the breaker's state after the action.
    """

    def __init__(self, message: str, *, status: dict[str, object]) -> None:
        super().__init__(message)
        self.status = status


class InvalidText(BreakerServiceError, ValueError):
    """Operator text (a reason, an actor) that cannot be stored: names the field."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class UploadRejected(BreakerServiceError):
    """A file was refused before any provider was called (path, type or size)."""

    def __init__(
        self, message: str, *, reason: str = "invalid", path: str = ""
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.path = path


class UnknownProviderError(BreakerServiceError, LookupError):
    """No provider is configured under that name."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(
            f"unknown provider {name!r}; configured: {', '.join(known) or 'none'}"
        )


class UnknownBreakerError(BreakerServiceError, LookupError):
    """No breaker is known under that name."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"unknown breaker {name!r}")

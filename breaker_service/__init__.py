"""breaker-service: retries and event-sourced circuit breakers for flaky upstream APIs.

The public surface is re-exported here; everything else is an implementation detail.
"""

import importlib.metadata

from .breaker import BreakerRegistry, BreakerState, CircuitBreaker, Outcome
from .clock import Clock, FakeClock, SystemClock
from .config import ResilienceSettings, Settings, load_settings
from .errors import (
    BreakerServiceError,
    CircuitOpenError,
    ConcurrencyError,
    ConfigError,
    EventLogError,
    MalformedEventError,
    ProviderError,
    ProviderQuotaExceeded,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    UploadRejected,
)
from .events import EventLog, EventQuery, MemoryEventLog, StoredEvent, TransitionRecord
from .retry import Classification, Classifier, RetryBudget, RetryPolicy, attempts_of
from .testing import set_testing

try:  # the one source of the version is pyproject.toml, via the installed metadata
    __version__ = importlib.metadata.version("breaker-service")
except (
    importlib.metadata.PackageNotFoundError
):  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"

__all__ = [
    "BreakerRegistry",
    "BreakerServiceError",
    "BreakerState",
    "CircuitBreaker",
    "CircuitOpenError",
    "Classification",
    "Classifier",
    "Clock",
    "ConcurrencyError",
    "ConfigError",
    "EventLog",
    "EventLogError",
    "EventQuery",
    "FakeClock",
    "MalformedEventError",
    "MemoryEventLog",
    "Outcome",
    "ProviderError",
    "ProviderQuotaExceeded",
    "ProviderRejected",
    "ProviderTimeout",
    "ProviderUnavailable",
    "ResilienceSettings",
    "RetryBudget",
    "RetryPolicy",
    "Settings",
    "StoredEvent",
    "SystemClock",
    "TransitionRecord",
    "UploadRejected",
    "__version__",
    "attempts_of",
    "load_settings",
    "set_testing",
]

"""The breaker event log: event values, the ``EventLog`` port and its adapters."""

from .log import EventLog, EventQuery
from .memory import MemoryEventLog
from .model import Snapshot, StoredEvent, TransitionRecord
from .recorder import EventRecorder

__all__ = [
    "EventLog",
    "EventQuery",
    "EventRecorder",
    "MemoryEventLog",
    "Snapshot",
    "StoredEvent",
    "TransitionRecord",
]

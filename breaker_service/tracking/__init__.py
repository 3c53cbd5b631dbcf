"""Supabase tracking: the transactional outbox, its relay and the Supabase sink."""

from .outbox import Outbox, OutboxRow, OutboxStatus
from .relay import OutboxRelay, TrackingSink
from .supabase import SupabaseSink, map_postgrest_error

__all__ = [
    "Outbox",
    "OutboxRelay",
    "OutboxRow",
    "OutboxStatus",
    "SupabaseSink",
    "TrackingSink",
    "map_postgrest_error",
]

"""Deliver what is pending before a short-lived process exits, bounded in time.

A cron job or a one-shot container that uploads and exits would otherwise leave its
last tracking rows for some later process. ``deliver_pending`` runs the relay until
nothing is pending or the time is up (rows backing off are waited for, polling),
and reports what was delivered and what remains.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..clock import Clock
from .relay import OutboxRelay

__all__ = ["DeliveryReport", "deliver_pending"]

_POLL = 0.5


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What a bounded delivery did: rows delivered now, still pending, parked failed."""

    delivered: int
    pending: int
    failed: int

    def as_dict(self) -> dict[str, int]:
        """JSON-friendly."""
        return {
            "delivered": self.delivered,
            "pending": self.pending,
            "failed": self.failed,
        }


async def deliver_pending(
    relay: OutboxRelay, clock: Clock, *, within: float
) -> DeliveryReport:
    """Deliver pending rows until none is left or ``within`` seconds have passed."""
    deadline = clock.monotonic() + max(0.0, within)
    delivered = 0
    while True:
        sent = await relay.run_once()
        delivered += sent
        if sent:
            continue
        status = await relay.status()
        left = deadline - clock.monotonic()
        if status.pending == 0 or left <= 0:
            return DeliveryReport(delivered, status.pending, status.failed)
        await clock.sleep(min(_POLL, left))

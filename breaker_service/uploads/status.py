"""What ``/providers`` and the dashboard show of each provider: usable, limits, files."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .orchestrator import UploadOrchestrator

__all__ = ["provider_rows"]


def provider_rows(orchestrator: UploadOrchestrator) -> list[dict[str, Any]]:
    """Each provider: available or why not, its size limit, breaker state and files."""
    rows = []
    for name, provider in orchestrator.providers.items():
        breaker = orchestrator.registry.get(name)
        reconciler = orchestrator.reconciler
        listed = reconciler.file_counts.get(name) if reconciler else None
        rows.append(
            {
                "name": name,
                "available": provider.unavailable_reason is None,
                "reason": provider.unavailable_reason,
                "max_bytes": provider.max_bytes,
                "in_order": name in orchestrator.order,
                "breaker": breaker.state.value,
                "retry_after": breaker.retry_after,
                "files": {
                    "count": listed["count"] if listed else None,
                    "limit": getattr(provider, "max_files", None),
                    "listed_at": listed["listed_at"] if listed else None,
                    "quota_full": orchestrator.quota_full.get(name),
                },
            }
        )
    return rows

"""The ``Provider`` port: something that accepts a file and returns its id."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = ["Provider", "ProviderFile"]


@dataclass(frozen=True, slots=True)
class ProviderFile:
    """What a provider answered for an uploaded file."""

    provider: str
    file_id: str
    filename: str
    bytes: int
    purpose: str
    status: str | None = None
    created_at: int | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Provider(Protocol):
    """A file API the orchestrator can upload to."""

    name: str
    max_bytes: int
    default_purpose: str

    @property
    def unavailable_reason(self) -> str | None:
        """Why the provider cannot be used (e.g. no API key), or None when it can."""
        ...

    async def upload(
        self, path: Path, *, filename: str, purpose: str | None = None
    ) -> ProviderFile:
        """Upload ``path`` (streamed from disk) and return the provider's file record."""
        ...

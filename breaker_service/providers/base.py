"""The ``Provider`` port: something that accepts a file and returns its id."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = ["Provider", "ProviderFile", "UploadBody"]


class UploadBody(Protocol):
    """A file's bytes read through one verified handle (``uploads.source.FileSource``)."""

    @property
    def size(self) -> int:
        """Exactly how many bytes ``chunks`` yields."""
        ...

    def chunks(self) -> AsyncIterator[bytes]:
        """The bytes from the start (each call starts again: one per attempt)."""
        ...


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
        self, body: Path | UploadBody, *, filename: str, purpose: str | None = None
    ) -> ProviderFile:
        """Upload ``body`` (a path, or an open ``UploadBody``), streamed; the answer."""
        ...

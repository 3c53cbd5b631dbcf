"""The ``Provider`` port: something that accepts a file and returns its id.

``FileCatalog`` is the optional second port a reconciler needs: the provider's own
list of the files it holds (one page at a time) and deleting one of them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = ["FileCatalog", "FilePage", "Provider", "ProviderFile", "UploadBody"]


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


@dataclass(frozen=True, slots=True)
class FilePage:
    """One page of a provider's file list; ``cursor`` asks for the next (None: last)."""

    files: tuple[ProviderFile, ...]
    cursor: str | None = None


@runtime_checkable
class FileCatalog(Protocol):
    """A provider that can list and delete the files it holds."""

    name: str
    max_files: int | None  # the provider's file-count quota, when it has one

    async def list_page(
        self, *, purpose: str | None = None, after: str | None = None
    ) -> FilePage:
        """One page of the files held, oldest first, after the cursor ``after``."""
        ...

    async def delete_file(self, file_id: str) -> bool:
        """Delete one file: True when deleted now, False when it was already gone."""
        ...

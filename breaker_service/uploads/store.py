"""The ``UploadStore`` port: the local record of successful uploads.

A failed upload leaves no record. ``find`` serves de-duplication: the same content
(SHA-256) already uploaded to the same provider. Adapters: ``MemoryUploadStore``
(``memory_store.py``) and ``SqlUploadStore`` (``sql_store.py``), both held to one
contract suite (``tests/test_upload_store_contract.py``).
"""

from __future__ import annotations

from typing import Protocol

from .model import UploadResult

__all__ = ["UploadStore"]


class UploadStore(Protocol):
    """Where successful uploads are recorded.

    Every adapter raises ``StorageError`` (never a driver's error) when it cannot
    read or write, including for an ``upload_id`` that is already recorded.
    """

    async def record(self, result: UploadResult) -> None:
        """Record one successful upload."""
        ...

    async def find(self, sha256: str, provider: str) -> UploadResult | None:
        """The latest successful upload of this content to this provider, if any."""
        ...

    async def recent(self, limit: int = 50) -> list[UploadResult]:
        """The latest uploads, newest first."""
        ...

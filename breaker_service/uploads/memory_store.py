"""``MemoryUploadStore``: uploads in a list (tests, embedding without a database)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from .model import UploadResult

if TYPE_CHECKING:
    from .intents import MemoryIntentStore

__all__ = ["MemoryUploadStore"]


class MemoryUploadStore:
    """The ``UploadStore`` contract in memory; newest means latest ``uploaded_at``.

    Uploads with the same ``uploaded_at`` count the one recorded last as newer.
    """

    def __init__(self) -> None:
        self.results: list[UploadResult] = []
        self._ids: set[str] = set()
        self.intents: MemoryIntentStore | None = None  # completed as uploads record

    async def record(self, result: UploadResult) -> None:
        """Append; an ``upload_id`` already recorded is left as it is (idempotent).

        ``deduplicated`` and ``recorded`` describe an answer, not the upload: they
        are not kept.
        """
        if self.intents is not None:
            self.intents.complete(result)
        if result.upload_id in self._ids:
            return
        self._ids.add(result.upload_id)
        self.results.append(
            dataclasses.replace(result, deduplicated=False, recorded="database")
        )

    async def find(self, sha256: str, provider: str) -> UploadResult | None:
        """The newest upload of this content to this provider."""
        for result in self._newest_first():
            if result.sha256 == sha256 and result.provider == provider:
                return result
        return None

    async def recent(self, limit: int = 50) -> list[UploadResult]:
        """Newest first."""
        return self._newest_first()[:limit]

    def _newest_first(self) -> list[UploadResult]:
        order = sorted(
            range(len(self.results)),
            key=lambda i: (self.results[i].uploaded_at, i),
            reverse=True,
        )
        return [self.results[i] for i in order]

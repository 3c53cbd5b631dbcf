"""``RecordKeeper``: once a provider said yes, the record of it is never lost.

``keep(result)`` writes the uploads row (and its outbox row) to the store, retrying
a failing commit a few times through the retry engine; if the database still
refuses, the result goes to the fsynced ``UploadJournal`` and is folded into the
database later (at start-up and by a background task once it answers again). The
answer says where the record is: ``"database"`` or ``"journal"``. Only when neither
can take it does ``RecordNotSaved`` say so, carrying the provider's file id so a
careful client does not upload again.
"""

from __future__ import annotations

import asyncio
import logging

from ..clock import Clock, idle
from ..errors import BreakerServiceError, ConcurrencyError, StorageError
from ..retry.classify import Classification, Classifier
from ..retry.policy import RetryPolicy
from ..tasks import stop_task
from .intent_journal import IntentJournal
from .intents import IntentStore
from .journal import JournalError, UploadJournal
from .model import UploadResult
from .store import UploadStore

__all__ = ["RecordKeeper", "RecordNotSaved"]

logger = logging.getLogger("breaker_service.uploads")

RECORDED_IN_DATABASE = "database"
RECORDED_IN_JOURNAL = "journal"


class RecordNotSaved(BreakerServiceError):
    """The provider stored the file, but no record of it could be persisted here."""

    def __init__(self, result: UploadResult, cause: str) -> None:
        super().__init__(
            f"{result.provider} stored {result.filename} as {result.provider_file_id}, "
            f"but the record could not be saved ({cause}); do not upload it again"
        )
        self.result = result
        self.retry_after = 5.0


def _storage_is_transient(exc: BaseException) -> Classification | None:
    if isinstance(exc, StorageError) and not isinstance(exc, ConcurrencyError):
        return Classification(True, "storage_unavailable")
    return None


class RecordKeeper:
    """The store, retried; the journal when the store fails; folding it back later."""

    def __init__(
        self,
        store: UploadStore,
        journal: UploadJournal | None,
        *,
        clock: Clock,
        attempts: int = 3,
        base_delay: float = 0.25,
        fold_interval: float = 5.0,
        intent_journal: IntentJournal | None = None,
        intents: IntentStore | None = None,
    ) -> None:
        self.store = store
        self.journal = journal
        self.intent_journal = intent_journal
        self.intents = intents
        self._clock = clock
        self.fold_interval = fold_interval
        self._commit = RetryPolicy(
            name="upload-record",
            max_attempts=attempts,
            base_delay=base_delay,
            max_delay=base_delay * 4,
            classifier=Classifier(hooks=[_storage_is_transient]),
            clock=clock,
        )
        self._task: asyncio.Task[None] | None = None
        self.journaled_total = 0

    async def keep(self, result: UploadResult) -> str:
        """Persist ``result``; where it went (``"database"``/``"journal"``)."""
        try:
            await self._commit.call(self.store.record, result)
        except StorageError as exc:
            cause = str(exc)
        else:
            return RECORDED_IN_DATABASE
        if self.journal is None:
            raise RecordNotSaved(result, cause) from None
        try:
            await self.journal.append(result)
        except JournalError as exc:
            logger.error(
                "upload %s to %s (%s) NOT recorded: database: %s; journal: %s",
                result.upload_id,
                result.provider,
                result.provider_file_id,
                cause,
                exc,
            )
            raise RecordNotSaved(result, f"{cause}; {exc}") from None
        self.journaled_total += 1
        logger.warning(
            "upload %s to %s (%s) recorded in the journal %s: the database failed (%s)",
            result.upload_id,
            result.provider,
            result.provider_file_id,
            self.journal.path,
            cause,
        )
        return RECORDED_IN_JOURNAL

    async def fold(self) -> int:
        """Fold the journals into the database now (intents first, so a journaled
        record completes its intent); how many records moved."""
        if self.intent_journal is not None and self.intents is not None:
            await self.intent_journal.fold_into(self.intents.restore)
        if self.journal is None:
            return 0
        return await self.journal.fold_into(self.store.record)

    def pending(self) -> int:
        """Records waiting in the journal."""
        return 0 if self.journal is None else len(self.journal)

    def start(self) -> None:
        """Fold in the background every ``fold_interval`` while the journal holds any."""
        if (self.journal or self.intent_journal) is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="upload-journal-fold"
            )

    async def _run(self) -> None:
        while True:
            if self._journaled():
                try:
                    await self.fold()
                except StorageError as exc:
                    logger.info("upload journal not folded yet: %s", exc)
            await idle(self._clock, self.fold_interval)

    def _journaled(self) -> bool:
        """Whether either journal holds anything to fold."""
        return any(
            j is not None and j.path.exists()
            for j in (self.journal, self.intent_journal)
        )

    async def aclose(self) -> None:
        """Stop folding in the background."""
        task, self._task = self._task, None
        await stop_task(task)

"""``IntentLedger``: this process's upload intents, begun before each provider call.

Uploads are not idempotent at the providers, so before a provider is called an
intent is committed (``intents.py``); recording the upload completes it, giving up
fails it, and the reconciler settles what the provider kept. The ledger also
remembers what a reconcile must not touch: intents under way here (``in_flight``)
and file ids a client was told but nothing could persist (``unrecorded``).
"""

from __future__ import annotations

import dataclasses
import logging
import uuid

from ..clock import Clock
from ..errors import StorageError
from .intent_journal import IntentJournal
from .intents import IntentStore, UploadIntent
from .journal import JournalError
from .source import FileSource
from .validation import text_name

__all__ = ["IntentLedger"]

logger = logging.getLogger("breaker_service.uploads")


class IntentLedger:
    """Begin, count, fail and hand over the intents of one process's uploads."""

    def __init__(
        self,
        intents: IntentStore | None,
        journal: IntentJournal | None,
        *,
        owner: str,
        clock: Clock,
    ) -> None:
        self.intents = intents
        self.journal = journal
        self.owner = owner
        self.clock = clock
        self.run_id = str(uuid.uuid4())  # this process: its intents die with it
        self.in_flight: set[str] = set()  # intents of uploads under way here
        self.recording: dict[str, str] = {}  # upload id -> its intent, being recorded
        self.unrecorded: dict[str, str] = {}  # intent -> file id told, not persisted
        self.unjournaled_total = 0  # provider calls made without a committed intent

    async def begin(
        self,
        upload_id: str,
        provider: str,
        source: FileSource,
        purpose: str,
    ) -> UploadIntent | None:
        """Commit the intent for one provider before calling it (None: not journaled).

        When the database refuses the intent the upload still goes ahead (the
        record has its journal), but an orphan it leaves cannot be matched: counted
        in ``unjournaled_total`` and logged.
        """
        if self.intents is None:
            return None
        file = source.file
        intent = UploadIntent(
            id=str(uuid.uuid4()),
            upload_id=upload_id,
            provider=provider,
            path=text_name(str(file.path)),  # shown, never reopened
            filename=file.filename,
            sha256=await source.sha256(),
            bytes=file.size,
            purpose=purpose,
            started_at=self.clock.time(),
            owner=self.owner,
            run_id=self.run_id,
        )
        self.in_flight.add(
            intent.id
        )  # before the commit: a reconcile never sees it idle
        try:
            await self.intents.begin(intent)
        except StorageError as exc:
            if await self._journal(intent, exc):
                return intent
            self.in_flight.discard(intent.id)
            return None
        except BaseException:
            self.in_flight.discard(intent.id)
            raise
        return intent

    async def count_attempt(self, intent: UploadIntent | None, calls: int) -> None:
        """Say the intent's provider call is on its ``calls``-th attempt."""
        if intent is None or self.intents is None:
            return
        try:  # an undercount only makes the reconciler more careful
            await self.intents.attempt(intent.id, calls)
        except StorageError as exc:
            await self._journal(dataclasses.replace(intent, attempts=calls), exc)

    async def settle(
        self, upload_id: str, intent: UploadIntent | None, *, succeeded: bool
    ) -> None:
        """After the provider call: a success waits for its record, a failure closes."""
        if intent is None:
            return
        if succeeded:
            self.recording[upload_id] = intent.id
            return
        await self._give_up(intent)
        self.in_flight.discard(intent.id)

    def abandon(self, intent: UploadIntent | None) -> None:
        """The call was interrupted: no longer under way here (the reconciler settles it)."""
        if intent is not None:
            self.in_flight.discard(intent.id)

    def recorded(self, upload_id: str, told: str | None = None) -> None:
        """The record was kept (``told`` None) or not: the intent leaves ``in_flight``.

        ``told``: the file id the client is told when nothing could persist it, kept
        so the reconciler adopts that copy, never another one.
        """
        intent_id = self.recording.pop(upload_id, None)
        if intent_id is None:
            return
        if told is not None:
            self.unrecorded[intent_id] = told
        self.in_flight.discard(intent_id)

    async def _journal(self, intent: UploadIntent, cause: StorageError) -> bool:
        """The database refused the intent: the fsynced intent journal, else nothing."""
        if self.journal is not None:
            try:
                await self.journal.append(intent)
            except JournalError as exc:
                cause = StorageError(f"{cause}; {exc}")
            else:
                logger.warning(
                    "upload %s to %s: intent in the journal %s (database: %s)",
                    intent.upload_id,
                    intent.provider,
                    self.journal.path,
                    cause,
                )
                return True
        self.unjournaled_total += 1
        logger.warning(
            "upload %s to %s: intent not journaled (%s); an orphan it leaves "
            "will not be reconciled",
            intent.upload_id,
            intent.provider,
            cause,
        )
        return False

    async def _give_up(self, intent: UploadIntent) -> None:
        """Close the intent of an upload that failed (copies may remain: reconciled)."""
        if self.intents is None:
            return
        try:
            await self.intents.fail(intent.id, self.clock.time())
        except StorageError as exc:  # left open: the reconciler settles it later
            logger.warning("upload intent %s not closed: %s", intent.id, exc)

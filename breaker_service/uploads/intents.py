"""Upload intents: what we are about to send to a provider, committed before we send it.

An intent names the upload (its id if it succeeds), the provider, the file (path,
filename, size, SHA-256), the purpose and when it started. It ends ``completed`` in
the transaction that writes the uploads row (and outbox row), ``failed`` when the
upload gave up, or, at the reconciler's hands, ``adopted`` (a copy the provider kept
became the record) or ``abandoned`` (the provider kept nothing). An intent left
``open`` by a crash is what the reconciler looks for. ``attempts`` counts the calls
made for it: no more copies than that can be ours. Adapters: ``MemoryIntentStore``
here, ``SqlIntentStore`` (``sql_intents.py``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .model import UploadResult

if TYPE_CHECKING:
    from .memory_store import MemoryUploadStore

__all__ = [
    "ABANDONED",
    "ADOPTED",
    "COMPLETED",
    "FAILED",
    "OPEN",
    "IntentStore",
    "MemoryIntentStore",
    "ReconcileAction",
    "UploadIntent",
]

OPEN = "open"
COMPLETED = "completed"
FAILED = "failed"
ADOPTED = "adopted"
ABANDONED = "abandoned"


@dataclass(frozen=True, slots=True)
class UploadIntent:
    """One upload to one provider, as journaled before the provider call."""

    id: str
    upload_id: str
    provider: str
    path: str
    filename: str
    sha256: str
    bytes: int
    purpose: str
    started_at: float
    owner: str
    run_id: str
    attempts: int = 1
    state: str = OPEN
    ended_at: float | None = None
    provider_file_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class ReconcileAction:
    """An audited reconciliation: who did what to which provider file, why, for which intent."""

    at: float
    action: str  # adopted, deleted, abandoned
    provider: str
    provider_file_id: str | None
    intent_id: str
    upload_id: str
    actor: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        return dataclasses.asdict(self)


class IntentStore(Protocol):
    """Where intents are journaled; ``StorageError`` when it cannot read or write."""

    async def begin(self, intent: UploadIntent) -> None:
        """Commit a new open intent (before the provider call)."""
        ...

    async def restore(self, intent: UploadIntent) -> None:
        """Insert an intent from the intent journal; if it is already here, only
        raise its attempts (a later line of the same intent, or a fold run twice)."""
        ...

    async def attempt(self, intent_id: str, attempts: int) -> None:
        """Note that ``attempts`` calls have now been started for the intent."""
        ...

    async def fail(self, intent_id: str, at: float) -> None:
        """Close an open intent whose upload gave up (copies may still exist)."""
        ...

    async def open_intents(self) -> list[UploadIntent]:
        """Every intent still open, oldest first."""
        ...

    async def since(self, provider: str, started_after: float) -> list[UploadIntent]:
        """The provider's intents (any state) started after ``started_after``."""
        ...

    async def recorded_file_ids(self, provider: str) -> set[str]:
        """Every provider file id recorded for ``provider`` (never to be deleted)."""
        ...

    async def adopt(
        self, intent: UploadIntent, result: UploadResult, action: ReconcileAction
    ) -> bool:
        """Record ``result`` for the open ``intent`` (uploads, outbox, audit): one
        transaction; False when the intent is no longer open (nothing written)."""
        ...

    async def abandon(self, intent: UploadIntent, action: ReconcileAction) -> bool:
        """Close an open intent the provider kept nothing of; False if not open."""
        ...

    async def audit(self, action: ReconcileAction) -> None:
        """Append an audited action (a deletion)."""
        ...

    async def actions(self, limit: int = 50) -> list[ReconcileAction]:
        """The latest audited actions, newest first."""
        ...


class MemoryIntentStore:
    """The ``IntentStore`` in memory, sharing the uploads of a ``MemoryUploadStore``."""

    def __init__(self, store: MemoryUploadStore | None = None) -> None:
        self.intents: dict[str, UploadIntent] = {}
        self.log: list[ReconcileAction] = []
        self.store = store
        if store is not None:
            store.intents = self

    def complete(self, result: UploadResult) -> None:
        """Close the open intent of ``result`` (the store calls it as it records)."""
        for intent in self.intents.values():
            if (
                intent.upload_id == result.upload_id
                and intent.provider == result.provider
                and intent.state == OPEN
            ):
                self.intents[intent.id] = dataclasses.replace(
                    intent,
                    state=COMPLETED,
                    ended_at=result.uploaded_at,
                    provider_file_id=result.provider_file_id,
                )
                return

    async def begin(self, intent: UploadIntent) -> None:
        """Keep the intent."""
        self.intents[intent.id] = intent

    async def restore(self, intent: UploadIntent) -> None:
        """Keep the intent, or raise the attempts of the one of its id."""
        if intent.id in self.intents:
            await self.attempt(intent.id, intent.attempts)
        else:
            self.intents[intent.id] = intent

    async def attempt(self, intent_id: str, attempts: int) -> None:
        """Raise the attempt count."""
        intent = self.intents.get(intent_id)
        if intent is not None and attempts > intent.attempts:
            self.intents[intent_id] = dataclasses.replace(intent, attempts=attempts)

    async def fail(self, intent_id: str, at: float) -> None:
        """Open -> failed."""
        intent = self.intents.get(intent_id)
        if intent is not None and intent.state == OPEN:
            self.intents[intent_id] = dataclasses.replace(
                intent, state=FAILED, ended_at=at
            )

    async def open_intents(self) -> list[UploadIntent]:
        """Open ones, oldest first."""
        found = [i for i in self.intents.values() if i.state == OPEN]
        return sorted(found, key=lambda i: i.started_at)

    async def since(self, provider: str, started_after: float) -> list[UploadIntent]:
        """The provider's recent intents."""
        return [
            i
            for i in self.intents.values()
            if i.provider == provider and i.started_at > started_after
        ]

    async def recorded_file_ids(self, provider: str) -> set[str]:
        """File ids of the recorded uploads to ``provider``."""
        results = self.store.results if self.store is not None else []
        return {r.provider_file_id for r in results if r.provider == provider}

    async def adopt(
        self, intent: UploadIntent, result: UploadResult, action: ReconcileAction
    ) -> bool:
        """Open -> adopted, with the record and the audit."""
        current = self.intents.get(intent.id)
        if current is None or current.state != OPEN:
            return False
        self.intents[intent.id] = dataclasses.replace(
            current,
            state=ADOPTED,
            ended_at=action.at,
            provider_file_id=result.provider_file_id,
        )
        if self.store is not None:
            await self.store.record(result)
        self.log.append(action)
        return True

    async def abandon(self, intent: UploadIntent, action: ReconcileAction) -> bool:
        """Open -> abandoned, audited."""
        current = self.intents.get(intent.id)
        if current is None or current.state != OPEN:
            return False
        self.intents[intent.id] = dataclasses.replace(
            current, state=ABANDONED, ended_at=action.at
        )
        self.log.append(action)
        return True

    async def audit(self, action: ReconcileAction) -> None:
        """Append."""
        self.log.append(action)

    async def actions(self, limit: int = 50) -> list[ReconcileAction]:
        """Newest first."""
        return list(reversed(self.log))[:limit]

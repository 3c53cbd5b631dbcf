"""The ``IntentStore`` contract on memory, SQLite and PostgreSQL.

Recording an upload completes its open intent in the same transaction; an adoption
writes the record and its audit row only while the intent is open, so two
reconcilers (or a reconciler and a late completion) never both claim it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest
import test_upload_store_contract
from test_upload_store_contract import upload

from breaker_service.events.sql import create_engine
from breaker_service.migrate import upgrade
from breaker_service.uploads import MemoryUploadStore, SqlUploadStore, UploadStore
from breaker_service.uploads.intents import (
    ADOPTED,
    COMPLETED,
    FAILED,
    IntentStore,
    MemoryIntentStore,
    ReconcileAction,
    UploadIntent,
)
from breaker_service.uploads.sql_intents import SqlIntentStore

T0 = 1_767_225_600.0


backend_url = test_upload_store_contract.backend_url  # memory, SQLite, PostgreSQL


@pytest.fixture
async def stores(backend_url: str) -> AsyncIterator[tuple[UploadStore, IntentStore]]:
    """An empty upload store and the intent store beside it, per backend."""
    if backend_url == "memory":
        memory = MemoryUploadStore()
        yield memory, MemoryIntentStore(memory)
        return
    engine = create_engine(backend_url)
    await upgrade(engine)
    try:
        store = SqlUploadStore(engine, instance_id="contract", outbox=True)
        yield store, SqlIntentStore(store)
    finally:
        await engine.dispose()


def intent_for(n: int, **changes: object) -> UploadIntent:
    """The open intent of ``upload(n)``."""
    result = upload(n)
    base = UploadIntent(
        id=f"intent-{n}",
        upload_id=result.upload_id,
        provider=result.provider,
        path=f"/data/{result.filename}",
        filename=result.filename,
        sha256=result.sha256,
        bytes=result.bytes,
        purpose=result.purpose,
        started_at=T0 + n,
        owner="replica",
        run_id="run",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def action(intent: UploadIntent, what: str, file_id: str | None) -> ReconcileAction:
    """An audited action on ``intent`` by the test."""
    return ReconcileAction(
        at=T0 + 100,
        action=what,
        provider=intent.provider,
        provider_file_id=file_id,
        intent_id=intent.id,
        upload_id=intent.upload_id,
        actor="test",
        reason="contract",
    )


async def test_recording_the_upload_completes_its_intent(
    stores: tuple[UploadStore, IntentStore],
) -> None:
    """Begin, record: no longer open, the file id is recorded."""
    store, intents = stores
    await intents.begin(intent_for(1))
    assert [i.id for i in await intents.open_intents()] == ["intent-1"]
    await intents.attempt("intent-1", 3)
    await store.record(upload(1))
    assert await intents.open_intents() == []
    [done] = await intents.since("kimi", T0)
    assert (done.state, done.attempts, done.provider_file_id) == (
        COMPLETED,
        3,
        "file-1",
    )
    assert await intents.recorded_file_ids("kimi") == {"file-1"}


async def test_an_intent_is_adopted_once(
    stores: tuple[UploadStore, IntentStore],
) -> None:
    """The first adoption writes the record and audit; a second one writes nothing."""
    store, intents = stores
    it = intent_for(2)
    await intents.begin(it)
    result = upload(2)
    assert await intents.adopt(it, result, action(it, "adopted", "file-2")) is True
    again = dataclasses.replace(result, provider_file_id="file-other")
    assert await intents.adopt(it, again, action(it, "adopted", "file-other")) is False
    assert await intents.abandon(it, action(it, "abandoned", None)) is False
    [recorded] = await store.recent()
    assert recorded.provider_file_id == "file-2"
    [adopted] = await intents.since("kimi", T0)
    assert adopted.state == ADOPTED
    assert [(a.action, a.actor) for a in await intents.actions()] == [
        ("adopted", "test")
    ]


async def test_failing_and_abandoning(stores: tuple[UploadStore, IntentStore]) -> None:
    """``fail`` closes an open intent; ``abandon`` too, audited; ``since`` filters."""
    _, intents = stores
    await intents.begin(intent_for(3))
    await intents.begin(intent_for(4))
    await intents.fail("intent-3", T0 + 10)
    four = intent_for(4)
    assert await intents.abandon(four, action(four, "abandoned", None)) is True
    states = {i.id: i.state for i in await intents.since("kimi", T0)}
    assert states == {"intent-3": FAILED, "intent-4": "abandoned"}
    assert await intents.since("kimi", T0 + 3.5) != []
    assert await intents.since("glm", T0) == []
    await intents.audit(action(four, "deleted", "file-x"))
    assert [a.action for a in await intents.actions()] == ["deleted", "abandoned"]

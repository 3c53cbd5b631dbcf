"""The upload journal: durable, ordered, idempotent to fold, never losing a line."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from breaker_service.uploads.intent_journal import IntentJournal
from breaker_service.uploads.intents import MemoryIntentStore, UploadIntent
from breaker_service.uploads.journal import JournalError, UploadJournal
from breaker_service.uploads.model import UploadResult


def _result(n: int) -> UploadResult:
    return UploadResult(
        upload_id=f"u{n}",
        provider="kimi",
        provider_file_id=f"file-{n}",
        filename=f"f{n}.txt",
        sha256=f"{n:064x}",
        bytes=10 + n,
        purpose="file-extract",
        attempts=1,
        elapsed=0.1,
        providers_tried=("kimi",),
        uploaded_at=1_767_225_600.0 + n,
    )


async def test_appended_results_come_back_in_order(tmp_path: Path) -> None:
    """What was appended is pending, in order, with every field intact."""
    journal = UploadJournal(tmp_path / "uploads.journal")
    for n in range(3):
        await journal.append(_result(n))
    assert journal.pending() == [_result(0), _result(1), _result(2)]
    assert len(journal) == 3


async def test_fold_writes_each_once_and_empties_the_journal(tmp_path: Path) -> None:
    """Folding records every result and then forgets them; a second fold does nothing."""
    journal = UploadJournal(tmp_path / "uploads.journal")
    for n in range(3):
        await journal.append(_result(n))
    written: list[UploadResult] = []

    async def record(result: UploadResult) -> None:
        written.append(result)

    assert await journal.fold_into(record) == 3
    assert written == [_result(0), _result(1), _result(2)]
    assert not journal.path.exists()
    assert await journal.fold_into(record) == 0


async def test_a_failed_fold_keeps_the_rest_for_next_time(tmp_path: Path) -> None:
    """The database failing mid-fold keeps the unwritten results, in order."""
    journal = UploadJournal(tmp_path / "uploads.journal")
    for n in range(4):
        await journal.append(_result(n))
    calls = 0

    async def flaky(_result: UploadResult) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise OSError("database is locked")

    with pytest.raises(OSError, match="locked"):
        await journal.fold_into(flaky)
    assert journal.pending() == [_result(2), _result(3)]


async def test_a_torn_last_line_is_dropped_and_bad_lines_set_aside(
    tmp_path: Path,
) -> None:
    """A crash mid-append leaves a torn line (dropped); garbage goes to .rejected."""
    journal = UploadJournal(tmp_path / "uploads.journal")
    await journal.append(_result(0))
    with journal.path.open("ab") as stream:
        stream.write(b'{"not": "an upload"}\n')
        stream.write(json.dumps({"upload_id": "u9"}).encode()[:7])  # torn
    assert journal.pending() == [_result(0)]
    assert journal.rejected_path.read_text().strip() == '{"not": "an upload"}'
    await journal.append(_result(1))
    assert journal.pending() == [_result(0), _result(1)]


async def test_an_append_after_a_torn_line_is_not_glued_onto_it(
    tmp_path: Path,
) -> None:
    """A crash mid-append, then another process appends before anyone reads.

    The new record starts on its own line (the upload journal shares the intent
    journal's append since this session; before, it was glued onto the torn line
    and the whole line went to ``.rejected``, out of the fold).
    """
    journal = UploadJournal(tmp_path / "uploads.journal")
    await journal.append(_result(0))
    with journal.path.open("ab") as stream:
        stream.write(json.dumps({"upload_id": "u9"}).encode()[:7])  # torn
    await UploadJournal(journal.path).append(_result(1))
    assert journal.pending() == [_result(0), _result(1)]


async def test_an_unwritable_journal_is_our_error(tmp_path: Path) -> None:
    """A journal that cannot be written raises ``JournalError``, not ``OSError``."""
    journal = UploadJournal(tmp_path / "missing-dir" / "uploads.journal")
    with pytest.raises(JournalError, match="cannot be written"):
        await journal.append(_result(0))


async def test_the_intent_journal_folds_each_intent_once(tmp_path: Path) -> None:
    """Intents fold in order; later lines of one intent raise its attempts; a torn
    last line is dropped and the next append does not glue onto it."""
    journal = IntentJournal(tmp_path / "db.intents-journal")
    first = UploadIntent(
        id="i-1",
        upload_id="u-1",
        provider="kimi",
        path="/d/a",
        filename="a",
        sha256="0" * 64,
        bytes=1,
        purpose="file-extract",
        started_at=1.0,
        owner="o",
        run_id="r",
    )
    await journal.append(first)
    await journal.append(dataclasses.replace(first, attempts=3))
    with journal.path.open("ab") as stream:
        stream.write(b'{"id": "torn')
    second = dataclasses.replace(first, id="i-2", upload_id="u-2")
    await journal.append(second)
    store = MemoryIntentStore()
    assert await journal.fold_into(store.restore) == 3
    assert {i.id: i.attempts for i in store.intents.values()} == {"i-1": 3, "i-2": 1}
    assert not journal.path.exists()
    assert journal.rejected_path.exists()  # the torn line, set aside

"""``plan_reconcile``: conservative matching of provider files to our upload intents."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from breaker_service.providers.base import ProviderFile
from breaker_service.uploads.intents import COMPLETED, FAILED, OPEN, UploadIntent
from breaker_service.uploads.matching import Plan, plan_reconcile

NOW = 10_000.0


def intent(
    name: str = "a.txt",
    *,
    started: float = 9_000.0,
    ended: float | None = None,
    state: str = OPEN,
    attempts: int = 1,
    file_id: str | None = None,
    size: int = 10,
    ident: str | None = None,
) -> UploadIntent:
    """An intent for ``name`` of ``size`` bytes."""
    return UploadIntent(
        id=ident or f"intent-{name}-{started}",
        upload_id=f"upload-{name}-{started}",
        provider="kimi",
        path=f"/data/{name}",
        filename=name,
        sha256="0" * 64,
        bytes=size,
        purpose="file-extract",
        started_at=started,
        owner="here",
        run_id="old-run",
        attempts=attempts,
        state=state,
        ended_at=ended,
        provider_file_id=file_id,
    )


def pfile(
    file_id: str,
    name: str = "a.txt",
    *,
    created: int | None = 9_001,
    size: int = 10,
    purpose: str = "file-extract",
) -> ProviderFile:
    """A file as the provider lists it."""
    return ProviderFile(
        provider="kimi",
        file_id=file_id,
        filename=name,
        bytes=size,
        purpose=purpose,
        created_at=created,
    )


def settled(_intent: UploadIntent) -> bool:
    """Every open intent is finished (its process died)."""
    return True


def plan(
    files: list[ProviderFile],
    intents: list[UploadIntent],
    *,
    recorded: set[str] | None = None,
    settled: Callable[[UploadIntent], bool] = settled,
) -> Plan:
    """The plan with the defaults of these tests."""
    return plan_reconcile(files, intents, recorded or set(), now=NOW, settled=settled)


def test_an_open_intent_with_exactly_one_match_is_adopted() -> None:
    """One copy, one open intent: adopt it."""
    it = intent()
    p = plan([pfile("f1")], [it])
    assert [(i.id, f.file_id) for i, f in p.adopt] == [(it.id, "f1")]
    assert p.delete == []
    assert p.held == []


def test_a_file_matching_two_intents_is_never_guessed() -> None:
    """Two open intents of the same name and size, one copy: nothing adopted."""
    first, second = intent(started=9_000.0), intent(started=9_000.5)
    p = plan([pfile("f1")], [first, second])
    assert p.adopt == []
    assert p.delete == []
    assert p.abandon == []
    assert [f.file_id for f, _ in p.held] == ["f1"]
    assert "not guessed" in p.held[0][1]


def test_a_contested_intent_is_left_alone_with_all_its_files() -> None:
    """An intent that also matches a tied file adopts nothing."""
    first = intent(started=9_000.0, ended=9_002.0, state=COMPLETED, file_id="rec")
    second = intent(started=9_001.0)
    files = [pfile("tie", created=9_001), pfile("late", created=9_050)]
    p = plan(files, [first, second], recorded={"rec"})
    assert p.adopt == []
    assert p.delete == []
    assert {f.file_id for f, _ in p.held} == {"tie", "late"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param({"name": "b.txt"}, "filename", id="filename"),
        pytest.param({"size": 11}, "bytes", id="bytes"),
        pytest.param({"purpose": "batch"}, "purpose", id="purpose"),
        pytest.param({"created": 8_000}, "created", id="before-the-window"),
        pytest.param({"created": None}, "created", id="no-created-at"),
    ],
)
def test_a_file_that_differs_is_not_ours(change: dict[str, Any], field: str) -> None:
    """Filename, size, purpose and creation time must all fit, or it is foreign."""
    p = plan([pfile("f1", **change)], [intent()])
    assert p.adopt == []
    assert p.delete == []
    assert p.foreign == 1, field
    assert [i.id for i in p.abandon] == [intent().id]


def test_extra_copies_of_a_recorded_upload_are_deleted_never_the_recorded_one() -> None:
    """A completed intent that made 3 calls: the 2 unrecorded copies go."""
    done = intent(ended=9_010.0, state=COMPLETED, attempts=3, file_id="kept")
    files = [pfile("x1", created=9_001), pfile("kept", created=9_005), pfile("x2")]
    p = plan(files, [done], recorded={"kept"})
    assert sorted(f.file_id for _, f in p.delete) == ["x1", "x2"]
    assert p.recorded == 1
    assert all(f.file_id != "kept" for _, f in p.delete)


def test_more_copies_than_calls_means_someone_elses_file_is_among_them() -> None:
    """A completed intent that made 2 calls cannot own 2 unrecorded copies."""
    done = intent(ended=9_010.0, state=COMPLETED, attempts=2, file_id="kept")
    p = plan([pfile("x1"), pfile("x2"), pfile("kept")], [done], recorded={"kept"})
    assert p.delete == []
    assert len(p.held) == 2


def test_an_open_intent_with_two_copies_from_two_calls_adopts_the_earliest() -> None:
    """Both copies are ours (2 calls): the earliest becomes the record."""
    it = intent(attempts=2)
    p = plan([pfile("later", created=9_003), pfile("first", created=9_001)], [it])
    assert [f.file_id for _, f in p.adopt] == ["first"]
    assert [f.file_id for _, f in p.delete] == ["later"]


def test_an_open_intent_under_way_is_left_alone() -> None:
    """An intent that may still be uploading: neither adopted nor abandoned."""
    p = plan([pfile("f1")], [intent()], settled=lambda _i: False)
    assert p.adopt == []
    assert p.abandon == []
    assert "under way" in p.held[0][1]


def test_a_provider_that_lists_nothing() -> None:
    """No files: settled open intents are abandoned, closed ones need nothing."""
    open_one = intent()
    failed = intent("b.txt", ended=9_010.0, state=FAILED, attempts=3)
    p = plan([], [open_one, failed])
    assert [i.id for i in p.abandon] == [open_one.id]
    assert p.adopt == []
    assert p.delete == []
    assert p.held == []


def test_copies_of_a_failed_upload_are_extra_copies() -> None:
    """The client was told it failed: copies the provider kept are deleted."""
    failed = intent(ended=9_010.0, state=FAILED, attempts=2)
    p = plan([pfile("f1"), pfile("f2")], [failed])
    assert sorted(f.file_id for _, f in p.delete) == ["f1", "f2"]


def test_a_recorded_file_is_never_planned_for_deletion() -> None:
    """Whatever matches, a recorded id is counted and skipped."""
    closed = intent(ended=9_010.0, state=FAILED, attempts=5)
    p = plan([pfile("f1")], [closed], recorded={"f1"})
    assert p.delete == []
    assert p.recorded == 1


def test_the_window_of_an_open_intent_reaches_now() -> None:
    """An open intent's copy may have been created long after it started."""
    it = dataclasses.replace(intent(), started_at=5_000.0)
    p = plan([pfile("f1", created=9_999)], [it])
    assert len(p.adopt) == 1


def test_a_tie_between_intents_of_the_same_content_goes_to_the_open_one() -> None:
    """An abandoned and an open intent of the same bytes: the copy holds that content."""
    abandoned = intent(started=9_000.0, ended=9_004.0, state="abandoned", attempts=2)
    retried = intent(started=9_003.0, ident="retried")
    p = plan([pfile("f1", created=9_003)], [abandoned, retried])
    assert [(i.id, f.file_id) for i, f in p.adopt] == [("retried", "f1")]
    assert p.held == []


def test_a_tie_between_intents_of_different_content_is_held() -> None:
    """Same name and size, different SHA-256: never guessed."""
    abandoned = intent(started=9_000.0, ended=9_004.0, state="abandoned", attempts=2)
    retried = dataclasses.replace(
        intent(started=9_003.0, ident="retried"), sha256="1" * 64
    )
    p = plan([pfile("f1", created=9_003)], [abandoned, retried])
    assert p.adopt == []
    assert [f.file_id for f, _ in p.held] == ["f1"]


def test_the_copy_a_client_was_told_of_is_the_one_adopted() -> None:
    """Nothing could record the success: adopt the id the client has, delete the other."""
    it = intent(attempts=2)
    files = [pfile("first", created=9_001), pfile("told", created=9_003)]
    p = plan_reconcile(
        files, [it], set(), now=NOW, settled=settled, preferred={it.id: "told"}
    )
    assert [f.file_id for _, f in p.adopt] == ["told"]
    assert [f.file_id for _, f in p.delete] == ["first"]


def test_a_copy_only_one_intent_can_own_settles_a_tie_by_deduction() -> None:
    """A crashed upload (open, one call) and a later retry of the same file (two calls).

    The crashed upload's copy predates the retry, so it can only be the crashed
    upload's; that intent made one call, so it owns no other copy, and the copy both
    match can only be the retry's extra one. Found from outside: two processes killed
    in turn while uploading the same files left both copies held as a tie.
    """
    crashed = intent(started=9_000.0, attempts=1, ident="crashed")
    retry = intent(
        started=9_008.0,
        ended=9_009.0,
        state=COMPLETED,
        attempts=2,
        file_id="rec",
        ident="retry",
    )
    files = [
        pfile("old", created=9_000),
        pfile("extra", created=9_008),
        pfile("rec", created=9_009),
    ]
    p = plan(files, [crashed, retry], recorded={"rec"})
    assert [(i.id, f.file_id) for i, f in p.adopt] == [("crashed", "old")]
    assert [(i.id, f.file_id) for i, f in p.delete] == [("retry", "extra")]
    assert p.held == []


def test_a_tie_among_closed_intents_of_one_content_is_an_extra_copy() -> None:
    """A failed upload and its completed retry, both of two calls, share a copy's window.

    Whichever made it, an unrecorded copy of a closed intent is an extra copy: it is
    deleted, not left as an orphan. Found by the kill test (doc-052 held as a tie).
    """
    failed = intent(started=9_000.0, ended=9_002.0, state=FAILED, attempts=2)
    retry = intent(
        started=9_004.0,
        ended=9_005.0,
        state=COMPLETED,
        attempts=2,
        file_id="rec",
        ident="retry",
    )
    p = plan(
        [pfile("copy", created=9_002), pfile("rec", created=9_005)],
        [failed, retry],
        recorded={"rec"},
    )
    assert [(i.id, f.file_id) for i, f in p.delete] == [("retry", "copy")]
    assert p.held == []
    assert p.adopt == []

"""The HTTP answer tells the truth about durability (database, journal, not saved)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import api_helpers
import pytest
from api_helpers import Service, assert_problem, upload

from breaker_service.events import sql_engine

clean_environment = api_helpers.clean_environment
upstream_server = api_helpers.upstream_server
upstream = api_helpers.upstream
open_service = api_helpers.open_service
service = api_helpers.service


@pytest.fixture(autouse=True)
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite gives up on a lock after 0.3 s instead of 5 s."""
    monkeypatch.setattr(sql_engine, "SQLITE_BUSY_TIMEOUT_MS", 300)


@contextlib.contextmanager
def _locked(db: Path) -> Iterator[None]:
    conn = sqlite3.connect(db, isolation_level=None, timeout=30)
    conn.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


async def test_a_locked_database_answers_200_recorded_in_the_journal(
    service: Service,
) -> None:
    """Provider said yes, database locked: 200 with the file id, recorded: journal."""
    path = service.file("a.txt", b"important\n")
    with _locked(service.root.parent / "api.db"):
        response = await upload(service, path)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["recorded"] == "journal"
    assert body["provider_file_id"] in service.upstream.provider.files
    ready = await service.client.get("/readyz")
    assert ready.json()["upload_journal"]["pending"] in (0, 1)


async def test_nothing_persisted_answers_503_with_the_provider_file_id(
    service: Service,
) -> None:
    """Database locked and journal unwritable: 503, Retry-After, and the file id."""
    keeper = service.app.state.service.keeper
    keeper.journal.path = service.root.parent / "missing" / "journal"
    path = service.file("b.txt", b"important too\n")
    with _locked(service.root.parent / "api.db"):
        response = await upload(service, path)
    body = assert_problem(response, 503, "record-not-saved")
    assert response.headers["Retry-After"]
    assert body["provider_file_id"] in service.upstream.provider.files
    assert body["recorded"] == "not saved"


async def test_a_control_character_in_a_reason_is_422(service: Service) -> None:
    """A NUL in a force-open reason is refused before it reaches the log."""
    response = await service.client.post(
        "/breakers/kimi/force-open",
        json={"reason": "a\u0000b"},
        headers=service.auth(),
    )
    assert response.status_code == 422, response.text


async def test_force_open_that_cannot_be_saved_is_503_not_200(service: Service) -> None:
    """Database locked: the action applies in memory (fail-safe) and says it is not saved."""
    with _locked(service.root.parent / "api.db"):
        response = await service.client.post(
            "/breakers/kimi/force-open",
            json={"reason": "incident 9"},
            headers=service.auth(),
        )
    body = assert_problem(response, 503, "not-durable")
    assert body["applied_in_memory"] is True
    assert body["durable"] is False
    assert body["breaker"]["state"] == "forced_open"
    service.clock.advance(1.0)  # past the recorder's retry interval after the outage
    saved = await service.client.post(
        "/breakers/kimi/reset", json={"reason": "all clear"}, headers=service.auth()
    )
    assert saved.status_code == 200, saved.text

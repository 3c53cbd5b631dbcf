"""Short-lived processes deliver their tracking before they exit (bounded)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from tracking_helpers import (
    dead_url,
    make_files,
    stub_ids,
    supabase_server,
    tracking_settings,
)
from upload_helpers import flaky_server

from breaker_service.api import create_app
from breaker_service.clock import FakeClock
from breaker_service.service import Service

pytestmark = pytest.mark.usefixtures("clean_environment")


async def test_every_record_is_delivered_before_the_process_ends(
    tmp_path: Path,
) -> None:
    """19 uploads, then a bounded delivery: all 19 in Supabase, none pending."""
    files = make_files(tmp_path, 19)
    with (
        flaky_server() as kimi,
        supabase_server(tmp_path / "supabase.db") as supabase,
    ):
        settings = tracking_settings(
            tmp_path, kimi_url=kimi.url, supabase_url=supabase.url
        )
        async with await Service.open(settings, clock=FakeClock()) as service:
            items = await service.orchestrator.upload_many(files, concurrency=8)
            assert all(item.ok for item in items)
            report = await service.deliver_tracking(within=30)
        assert report is not None
        assert report.pending == 0
        assert len(stub_ids(supabase.stub)) == 19


async def test_a_supabase_outage_is_reported_not_waited_out(tmp_path: Path) -> None:
    """Supabase down: the delivery gives up at its bound and says what remains."""
    files = make_files(tmp_path, 3)
    url, _port = dead_url()
    with flaky_server() as kimi:
        settings = tracking_settings(tmp_path, kimi_url=kimi.url, supabase_url=url)
        clock = FakeClock()
        async with await Service.open(settings, clock=clock) as service:
            items = await service.orchestrator.upload_many(files)
            assert all(item.ok for item in items)
            started = clock.monotonic()
            report = await service.deliver_tracking(within=5)
            waited = clock.monotonic() - started
        assert report is not None
        assert (report.delivered, report.pending) == (0, 3)
        assert 5 <= waited < 60


async def test_without_tracking_there_is_nothing_to_deliver(tmp_path: Path) -> None:
    """Tracking off: no relay, no report."""
    with flaky_server() as kimi:
        settings = tracking_settings(tmp_path, kimi_url=kimi.url, supabase_url=None)
        async with await Service.open(settings, clock=FakeClock()) as service:
            assert await service.deliver_tracking(within=1) is None


async def test_serve_delivers_pending_tracking_on_shutdown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows backing off when the service stops are delivered before it closes."""
    monkeypatch.setenv("CIRCUIT_BREAKER_FAILURE_THRESHOLD__SUPABASE", "1000")
    files = make_files(tmp_path, 5)
    with (
        flaky_server() as kimi,
        supabase_server(tmp_path / "supabase.db") as supabase,
    ):
        supabase.stub.fail_status = 503
        supabase.stub.fail_times = 6
        settings = tracking_settings(
            tmp_path,
            kimi_url=kimi.url,
            supabase_url=supabase.url,
            auth_disabled=True,
            outbox_interval=3600,
        )
        app = create_app(settings, clock=FakeClock())
        async with app.router.lifespan_context(app):
            orchestrator = app.state.orchestrator
            items = await orchestrator.upload_many(files)
            assert all(item.ok for item in items)
        tracked = stub_ids(supabase.stub)
    assert len(tracked) == 5


async def test_a_stopping_relay_gives_back_its_leases(tmp_path: Path) -> None:
    """Rows claimed when the process stops are claimable at once by the next one."""
    files = make_files(tmp_path, 3)
    url, _port = dead_url()
    with flaky_server() as kimi:
        settings = tracking_settings(tmp_path, kimi_url=kimi.url, supabase_url=url)
        clock = FakeClock()
        async with await Service.open(settings, clock=clock) as service:
            assert all(i.ok for i in await service.orchestrator.upload_many(files))
            relay = service.relay
            assert relay is not None
            claimed = await relay.outbox.claim(
                owner=relay.owner, now=clock.time() + 3600, lease=600, limit=10
            )
            assert len(claimed) == 3
    with sqlite3.connect(tmp_path / "local.db") as db:
        leased = db.execute(
            "SELECT count(*) FROM outbox WHERE lease_owner IS NOT NULL"
        ).fetchone()[0]
    assert leased == 0

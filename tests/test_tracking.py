"""Supabase tracking end to end: outbox, relay, and the real ``supabase`` client.

The client talks over a real socket to the PostgREST-compatible stub
(``postgrest_stub.py``) on 127.0.0.1; the local database is a real SQLite file (or
a real PostgreSQL database for the multi-relay tests). Orchestrators run on a
``FakeClock``: backoff never sleeps, and advancing the clock makes parked rows due
and lets an open ``supabase`` breaker try again. What the background relay does is
awaited with bounded polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from tracking_helpers import (
    SERVICE_KEY,
    SUPABASE_VARIABLES,
    dead_url,
    direct_relay,
    eventually,
    local_outbox,
    local_upload_ids,
    make_files,
    open_tracked,
    relay_of,
    seed_outbox,
    stub_ids,
    supabase_server,
    tracking_settings,
    wait_delivered,
)
from upload_helpers import KEY_VARIABLES, KIMI_KEY, flaky_server

from breaker_service.clock import FakeClock, SystemClock
from breaker_service.errors import ProviderUnavailable
from breaker_service.migrate import upgrade
from breaker_service.schema import outbox
from breaker_service.tracking import Outbox, SupabaseSink

SCRIPTS = Path(__file__).parent / "scripts"
START_TIMEOUT = 60.0  # generous: a child imports (and compiles) everything first
RECOVERY = 1_000.0  # fake seconds: past every backoff, lease and breaker timeout


pytestmark = pytest.mark.usefixtures("clean_environment")


@pytest.fixture(scope="session")
def child_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of child processes: no ambient configuration, and bytecode
    cached under a throwaway prefix so that later children skip compiling."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {*SUPABASE_VARIABLES, *KEY_VARIABLES, "PYTHONDONTWRITEBYTECODE"}
    }
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path_factory.mktemp("pycache"))
    return env


def _db(tmp_path: Path) -> Path:
    return tmp_path / "local.db"


async def _migrated_sqlite(db: Path) -> None:
    """Create the schema up front, so a child opening the file skips Alembic."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{db}")
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


# -- exactly once -----------------------------------------------------------------------


async def test_relay_retries_deliver_each_upload_once(tmp_path: Path) -> None:
    """Two 503s are retried inside one delivery; every upload lands once."""
    files = make_files(tmp_path, 3)
    with (
        flaky_server() as kimi,
        supabase_server(tmp_path / "supabase.db") as supabase,
    ):
        supabase.stub.fail_status = 503
        supabase.stub.fail_times = 2
        settings = tracking_settings(
            tmp_path, kimi_url=kimi.url, supabase_url=supabase.url
        )
        async with open_tracked(settings, FakeClock()) as orchestrator:
            items = await orchestrator.upload_many(files, concurrency=3)
            assert all(item.ok for item in items)
            status = await wait_delivered(relay_of(orchestrator), 3)
        stub = supabase.stub
        assert stub.stats["failed"] == 2
        assert status.failed == 0
        assert status.last_error is None
        ids = local_upload_ids(_db(tmp_path))
        assert sorted(stub_ids(stub)) == sorted(ids)
        assert dict(stub.deliveries) == dict.fromkeys(ids, 1)
        assert all(row["attempts"] == 0 for row in local_outbox(_db(tmp_path)))


async def test_restarts_and_lost_acks_leave_one_row_per_upload(tmp_path: Path) -> None:
    """Writes whose ack is lost are redelivered after a restart: still one row each."""
    first = make_files(tmp_path, 4, prefix="a")
    db = _db(tmp_path)
    with (
        flaky_server() as kimi,
        supabase_server(tmp_path / "supabase.db") as supabase,
    ):
        stub = supabase.stub
        stub.fail_after_write = True  # every write lands, every answer is a 503
        settings = tracking_settings(
            tmp_path,
            kimi_url=kimi.url,
            supabase_url=supabase.url,
            circuit_breaker_failure_threshold=1000,  # keep delivering: count the writes
        )
        clock = FakeClock()
        async with open_tracked(settings, clock) as orchestrator:
            assert all(item.ok for item in await orchestrator.upload_many(first))

            async def each_tried() -> bool:
                rows = local_outbox(db)
                return len(rows) == 4 and all(r["attempts"] >= 1 for r in rows)

            await eventually(each_tried, "a delivery attempt for each row")
            status = await relay_of(orchestrator).status()
            assert (status.pending, status.delivered) == (4, 0)
        first_ids = local_upload_ids(db)
        assert set(stub.deliveries) == first_ids  # the writes landed...
        assert all(r["status"] == "pending" for r in local_outbox(db))  # ...unacked

        # restart: the ack comes through now; the pending rows go out again
        stub.fail_after_write = False
        second = make_files(tmp_path, 2, prefix="b")
        clock = FakeClock(wall=clock.time() + 3600)
        async with open_tracked(settings, clock) as orchestrator:
            assert all(item.ok for item in await orchestrator.upload_many(second))
            await wait_delivered(relay_of(orchestrator), 6)
        ids = local_upload_ids(db)
        assert len(ids) == 6
        assert sorted(stub_ids(stub)) == sorted(ids)  # one row per upload
        assert all(stub.deliveries[i] >= 2 for i in first_ids)  # redelivered
        assert all(stub.deliveries[i] == 1 for i in ids - first_ids)

        # another restart: nothing is delivered again
        requests = stub.stats["requests"]
        clock = FakeClock(wall=clock.time() + 3600)
        async with open_tracked(settings, clock) as orchestrator:
            relay = relay_of(orchestrator)
            relay.wake()
            await asyncio.sleep(0.2)  # a few relay intervals, really
            status = await relay.status()
        assert (status.pending, status.delivered, status.failed) == (0, 6, 0)
        assert stub.stats["requests"] == requests
        assert sorted(stub_ids(stub)) == sorted(ids)


# -- Supabase down ----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("outage", "count"),
    [
        pytest.param("refused", 100, id="connection-refused"),
        pytest.param("503", 100, id="503"),
        pytest.param("hang", 100, id="hang"),
        pytest.param("drop", 20, id="dropped-connection"),  # not in the brief: fewer
    ],
)
async def test_supabase_down_uploads_succeed_then_deliver_once(
    tmp_path: Path, outage: str, count: int
) -> None:
    """Uploads succeed while Supabase is down; after recovery each lands exactly once."""
    files = make_files(tmp_path, count)
    url, port = dead_url()
    with flaky_server() as kimi, contextlib.ExitStack() as servers:
        supabase = None
        if outage != "refused":
            supabase = servers.enter_context(
                supabase_server(tmp_path / "supabase.db", port=port)
            )
            if outage == "503":
                supabase.stub.fail_status = 503
            elif outage == "hang":
                supabase.stub.hang_seconds = 1.0  # twice the client's timeout
            else:
                supabase.stub.drop = True
        settings = tracking_settings(tmp_path, kimi_url=kimi.url, supabase_url=url)
        clock = FakeClock()
        async with open_tracked(settings, clock) as orchestrator:
            relay = relay_of(orchestrator)
            items = await orchestrator.upload_many(files, concurrency=8)
            assert [item.error for item in items if not item.ok] == []
            status = await relay.status()
            assert (status.pending, status.delivered, status.failed) == (count, 0, 0)
            assert status.oldest_pending_age is not None

            async def reported() -> bool:
                return relay.last_error is not None

            await eventually(reported, "the relay to report the outage")
            assert len(local_upload_ids(_db(tmp_path))) == count

            # recovery: Supabase answers again; time passes for backoff and breaker
            if supabase is None:
                supabase = servers.enter_context(
                    supabase_server(tmp_path / "supabase.db", port=port)
                )
            else:
                supabase.stub.fail_status = None
                supabase.stub.hang_seconds = None
                supabase.stub.drop = False
            clock.advance(RECOVERY)
            status = await wait_delivered(relay, count, clock=clock, step=RECOVERY)
            assert status.oldest_pending_age is None
        ids = local_upload_ids(_db(tmp_path))
        stub = supabase.stub
        assert sorted(stub_ids(stub)) == sorted(ids)
        assert set(stub.deliveries) == ids
        if outage != "hang":  # a hung write lands after the client gave up on it
            assert all(n == 1 for n in stub.deliveries.values())


# -- crash ------------------------------------------------------------------------------


@pytest.mark.slow
async def test_sigkill_between_upload_and_delivery(
    tmp_path: Path, child_env: dict[str, str]
) -> None:
    """A process killed after its uploads, before delivering them: the next one does."""
    make_files(tmp_path, 3)
    db = _db(tmp_path)
    await _migrated_sqlite(db)
    url, port = dead_url()
    with flaky_server() as kimi:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SCRIPTS / "upload_then_block.py"),
            f"sqlite+aiosqlite:///{db}",
            str(tmp_path / "files"),
            kimi.url,
            KIMI_KEY,
            url,
            SERVICE_KEY,
            "3",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=child_env,
        )
        assert child.stdout is not None
        assert child.stderr is not None
        try:
            line = await asyncio.wait_for(child.stdout.readline(), START_TIMEOUT)
        finally:
            if child.returncode is None:
                child.send_signal(signal.SIGKILL)
            await child.wait()
        stderr = (await child.stderr.read()).decode(errors="replace")
        word, _, listed = line.decode().strip().partition(" ")
        assert word == "UPLOADED", f"no marker from the child: {line!r}\n{stderr}"
        assert child.returncode == -signal.SIGKILL
        ids = set(listed.split(","))
        assert local_upload_ids(db) == ids
        assert {r["id"] for r in local_outbox(db)} == ids
        assert all(r["status"] == "pending" for r in local_outbox(db))

        # Supabase is reachable now, at the address the dead process had configured
        with supabase_server(tmp_path / "supabase.db", port=port) as supabase:
            settings = tracking_settings(tmp_path, kimi_url=kimi.url, supabase_url=url)
            clock = FakeClock(wall=time.time() + 3600)  # past backoff and any lease
            async with open_tracked(settings, clock) as orchestrator:
                await wait_delivered(relay_of(orchestrator), 3, wake=False)
            assert sorted(stub_ids(supabase.stub)) == sorted(ids)
            assert dict(supabase.stub.deliveries) == dict.fromkeys(ids, 1)


# -- nothing to track -------------------------------------------------------------------


async def test_failed_provider_upload_tracks_nothing(tmp_path: Path) -> None:
    """The provider is down and retries give up: no upload, outbox or Supabase row."""
    (path,) = make_files(tmp_path, 1)
    with (
        flaky_server(down=True) as kimi,
        supabase_server(tmp_path / "supabase.db") as supabase,
    ):
        settings = tracking_settings(
            tmp_path, kimi_url=kimi.url, supabase_url=supabase.url
        )
        async with open_tracked(settings, FakeClock()) as orchestrator:
            with pytest.raises(ProviderUnavailable):
                await orchestrator.upload(path, provider="kimi")
            relay = relay_of(orchestrator)
            relay.wake()
            assert await relay.drain() == 0
            status = await relay.status()
        assert kimi.requests == settings.retry_max_attempts
        assert (status.pending, status.delivered, status.failed) == (0, 0, 0)
        assert local_upload_ids(_db(tmp_path)) == set()
        assert local_outbox(_db(tmp_path)) == []
        assert supabase.stub.rows() == []
        assert supabase.stub.stats["requests"] == 0


@pytest.mark.parametrize(
    ("url", "key"),
    [
        pytest.param(False, False, id="nothing-set"),
        pytest.param(True, False, id="url-without-key"),
        pytest.param(False, True, id="key-without-url"),
    ],
)
async def test_tracking_off_warns_once_and_records_locally(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, url: bool, key: bool
) -> None:
    """Without URL and key: one warning at start-up, no outbox, uploads still local."""
    caplog.set_level(logging.WARNING)
    files = make_files(tmp_path, 3)
    with flaky_server() as kimi:
        settings = tracking_settings(
            tmp_path,
            kimi_url=kimi.url,
            supabase_url="http://127.0.0.1:9" if url else None,
            key=SERVICE_KEY if key else None,
        )
        assert not settings.supabase_enabled
        async with open_tracked(settings, FakeClock()) as orchestrator:
            assert orchestrator.relay is None
            items = await orchestrator.upload_many(files)
    warnings = [r for r in caplog.records if "Supabase tracking is off" in r.message]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert local_upload_ids(_db(tmp_path)) == {
        item.result.upload_id for item in items if item.result is not None
    }
    assert len(items) == 3
    assert local_outbox(_db(tmp_path)) == []


# -- permanent errors -------------------------------------------------------------------


async def test_bad_key_parks_rows_without_leaking_it_then_redrive_delivers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """401: a clear error without the key, rows failed; fixed key + redrive delivers."""
    caplog.set_level(logging.DEBUG)
    wrong = "sb-wrong-service-key-Vb81Qz"
    files = make_files(tmp_path, 3)
    db = _db(tmp_path)
    with (
        flaky_server() as kimi,
        supabase_server(tmp_path / "supabase.db") as supabase,
    ):
        stub = supabase.stub
        settings = tracking_settings(
            tmp_path, kimi_url=kimi.url, supabase_url=supabase.url, key=wrong
        )
        clock = FakeClock()
        async with open_tracked(settings, clock) as orchestrator:
            relay = relay_of(orchestrator)
            assert all(item.ok for item in await orchestrator.upload_many(files))

            async def all_failed() -> bool:
                return (await relay.status()).failed == 3

            await eventually(all_failed, "three failed rows")
            rejected = stub.stats["unauthorised"]
            clock.advance(RECOVERY)  # parked, not retried
            relay.wake()
            await asyncio.sleep(0.2)
            status = await relay.status()
            assert (status.pending, status.delivered, status.failed) == (0, 0, 3)
            assert stub.stats["unauthorised"] == rejected <= 3
            errors = [relay.last_error, status.last_error]
            errors += [r["last_error"] for r in local_outbox(db)]
        for error in errors:
            assert error is not None
            assert "Invalid API key" in error
            assert "SUPABASE_SERVICE_KEY" in error
            assert wrong not in error
        logged = [r.getMessage() + (r.exc_text or "") for r in caplog.records]
        assert any("SUPABASE_SERVICE_KEY" in text for text in logged)
        assert not [text for text in logged if wrong in text]
        assert stub.rows() == []

        # the operator fixes the key and re-drives the failed rows
        fixed = tracking_settings(
            tmp_path, kimi_url=kimi.url, supabase_url=supabase.url
        )
        async with open_tracked(fixed, clock) as orchestrator:
            relay = relay_of(orchestrator)
            # A starting relay re-queues rows parked for a bad key by itself; the
            # operator's redrive gets whichever it has not taken yet (all or none).
            assert await relay.outbox.redrive(clock.time()) in (0, 3)
            await wait_delivered(relay, 3)
        ids = local_upload_ids(db)
        assert sorted(stub_ids(stub)) == sorted(ids)
        assert dict(stub.deliveries) == dict.fromkeys(ids, 1)
        assert all(r["last_error"] is None for r in local_outbox(db))


_OLD_TABLE = """
create table provider_uploads_v0 (
    id text primary key, provider text not null, provider_file_id text not null,
    filename text not null, sha256 text not null, bytes integer not null,
    purpose text not null, attempts integer not null, uploaded_at text not null
)
"""


@pytest.mark.parametrize(
    ("table", "code"),
    [
        pytest.param("provider_uploads_missing", "PGRST205", id="missing-table"),
        pytest.param("provider_uploads_v0", "PGRST204", id="missing-column"),
    ],
)
async def test_schema_mismatch_fails_rows_instead_of_retrying(
    tmp_path: Path, table: str, code: str
) -> None:
    """A missing table or column parks rows as failed; they are not retried forever."""
    files = make_files(tmp_path, 3)
    with (
        flaky_server() as kimi,
        supabase_server(tmp_path / "supabase.db") as supabase,
    ):
        stub = supabase.stub
        with contextlib.closing(sqlite3.connect(stub.db_path)) as conn:
            conn.execute(_OLD_TABLE)
        settings = tracking_settings(
            tmp_path,
            kimi_url=kimi.url,
            supabase_url=supabase.url,
            supabase_table=table,
        )
        clock = FakeClock()
        async with open_tracked(settings, clock) as orchestrator:
            relay = relay_of(orchestrator)
            assert all(item.ok for item in await orchestrator.upload_many(files))

            async def all_failed() -> bool:
                return (await relay.status()).failed == 3

            await eventually(all_failed, "three failed rows")
            requests = stub.stats["requests"]
            for _ in range(3):
                clock.advance(RECOVERY)
                relay.wake()
                await asyncio.sleep(0.1)
            status = await relay.status()
        assert (status.pending, status.delivered, status.failed) == (0, 0, 3)
        assert stub.stats["requests"] == requests <= 2 * 3  # batch, then one by one
        assert status.last_error is not None
        assert code in status.last_error
        assert "SUPABASE_TABLE" in status.last_error
        assert all(r["status"] == "failed" for r in local_outbox(_db(tmp_path)))
        assert stub.rows() == []


async def test_one_rejected_row_does_not_hold_back_its_batch(tmp_path: Path) -> None:
    """A 409 (unique violation) on one row: the rest of the batch is delivered."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{_db(tmp_path)}")
    try:
        await upgrade(engine)
        ids = await seed_outbox(engine, 5, now=time.time())
        with supabase_server(tmp_path / "supabase.db") as supabase:
            stub = supabase.stub
            with contextlib.closing(sqlite3.connect(stub.db_path)) as conn, conn:
                conn.execute(  # another upload already holds this provider file id
                    "insert into provider_uploads values "
                    "('other', 'kimi', 'file-seed-00002', 'x', 'x', 1, 'p', 1, 't', 'i', 't')"
                )
            async with direct_relay(
                engine, supabase.url, owner="relay", clock=SystemClock()
            ) as relay:
                assert await relay.run_once() == 4
                status = await relay.status()
        assert (status.pending, status.delivered, status.failed) == (0, 4, 1)
        assert status.last_error is not None
        assert "23505" in status.last_error
        assert sorted(stub_ids(stub)) == sorted([*ids[:2], *ids[3:], "other"])
    finally:
        await engine.dispose()


class _BrokenOnce:
    """A sink whose first upsert fails with an error nobody mapped (a bug, a warning
    turned error), then delivers through the real Supabase sink."""

    def __init__(self, inner: SupabaseSink) -> None:
        self.inner = inner
        self.calls = 0

    async def upsert(self, rows: list[dict[str, Any]]) -> int:
        """Fail the first time, then upsert."""
        self.calls += 1
        if self.calls == 1:
            msg = "unmapped failure inside the sink"
            raise RuntimeError(msg)
        return await self.inner.upsert(rows)

    async def aclose(self) -> None:
        """Close the real sink."""
        await self.inner.aclose()


async def test_relay_loop_outlives_an_unexpected_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An unmapped exception is logged; the loop goes on and delivers after the lease."""
    caplog.set_level(logging.ERROR, logger="breaker_service.tracking")
    engine = create_async_engine(f"sqlite+aiosqlite:///{_db(tmp_path)}")
    clock = FakeClock()
    try:
        await upgrade(engine)
        ids = await seed_outbox(engine, 3, now=clock.time())
        with supabase_server(tmp_path / "supabase.db") as supabase:
            sink = _BrokenOnce(
                SupabaseSink(supabase.url, SERVICE_KEY, "provider_uploads")
            )
            async with direct_relay(
                engine, supabase.url, owner="relay", clock=clock, sink=sink
            ) as relay:
                relay.interval = 0.02
                relay.start()

                async def broke() -> bool:
                    return sink.calls >= 1 and relay.last_error is not None

                await eventually(broke, "the unexpected error")
                assert "RuntimeError" in (relay.last_error or "")
                clock.advance(relay.lease + 1)  # the batch's lease runs out
                await wait_delivered(relay, 3)
        assert sorted(stub_ids(supabase.stub)) == sorted(ids)
        assert any("unexpected RuntimeError" in r.getMessage() for r in caplog.records)
    finally:
        await engine.dispose()


# -- several relays on one PostgreSQL database ------------------------------------------


async def _migrated_postgres(url: str) -> AsyncEngine:
    engine = create_async_engine(url)
    await upgrade(engine)
    return engine


async def _assert_all_delivered_once(
    engine: AsyncEngine, ids: list[str], deliveries: dict[str, int]
) -> None:
    assert deliveries == dict.fromkeys(ids, 1)
    status = await Outbox(engine).status(time.time())
    assert (status.pending, status.delivered, status.failed) == (0, len(ids), 0)
    async with engine.connect() as conn:
        leased = (
            await conn.execute(
                select(outbox.c.id).where(outbox.c.lease_owner.is_not(None))
            )
        ).all()
    assert leased == []


@pytest.mark.slow
async def test_two_relay_processes_on_postgres_deliver_each_row_once(
    fresh_postgres_url: str, tmp_path: Path, child_env: dict[str, str]
) -> None:
    """Two OS processes drain one outbox in batches of 10: every row exactly once."""
    engine = await _migrated_postgres(fresh_postgres_url)
    try:
        ids = await seed_outbox(engine, 300, now=time.time() - 1)
        with supabase_server(tmp_path / "supabase.db") as supabase:
            supabase.stub.hang_seconds = 0.005  # each write takes a moment: interleave
            children = [
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    str(SCRIPTS / "drain_outbox.py"),
                    fresh_postgres_url,
                    supabase.url,
                    SERVICE_KEY,
                    owner,
                    "10",
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    env=child_env,
                )
                for owner in ("relay-a", "relay-b")
            ]
            try:
                for child in children:
                    assert child.stdout is not None
                    line = await asyncio.wait_for(
                        child.stdout.readline(), START_TIMEOUT
                    )
                    assert line == b"READY\n", line
                outputs = await asyncio.wait_for(
                    asyncio.gather(*(c.communicate(b"go\n") for c in children)),
                    START_TIMEOUT,
                )
            finally:
                for child in children:
                    if child.returncode is None:
                        child.kill()
                        await child.wait()
            counts = []
            for child, (out, err) in zip(children, outputs, strict=True):
                assert child.returncode == 0, err.decode(errors="replace")
                word, _, count = out.decode().strip().partition(" ")
                assert word == "DELIVERED", out
                counts.append(int(count))
            assert sum(counts) == 300
            assert all(count > 0 for count in counts), counts  # both really worked
            assert sorted(stub_ids(supabase.stub)) == sorted(ids)
            await _assert_all_delivered_once(
                engine, ids, dict(supabase.stub.deliveries)
            )
    finally:
        await engine.dispose()


async def test_two_relays_in_one_process_on_postgres_deliver_each_row_once(
    fresh_postgres_url: str, tmp_path: Path
) -> None:
    """Two relays on two engines (two connection pools), draining together."""
    engine = await _migrated_postgres(fresh_postgres_url)
    engines = [create_async_engine(fresh_postgres_url) for _ in range(2)]
    try:
        ids = await seed_outbox(engine, 200, now=time.time() - 1)
        with supabase_server(tmp_path / "supabase.db") as supabase:
            supabase.stub.hang_seconds = 0.002
            clock = SystemClock()
            async with (
                direct_relay(engines[0], supabase.url, owner="a", clock=clock) as a,
                direct_relay(engines[1], supabase.url, owner="b", clock=clock) as b,
            ):
                counts = await asyncio.gather(a.drain(), b.drain())
            assert sum(counts) == 200
            assert all(count > 0 for count in counts), counts
            await _assert_all_delivered_once(
                engine, ids, dict(supabase.stub.deliveries)
            )
    finally:
        for each in (engine, *engines):
            await each.dispose()


# -- the outbox itself ------------------------------------------------------------------


@pytest.fixture
async def sqlite_engine(tmp_path: Path) -> AsyncEngine:
    """A migrated SQLite file."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{_db(tmp_path)}")
    await upgrade(engine)
    return engine


async def test_outbox_status_counts_and_oldest_pending_age(
    sqlite_engine: AsyncEngine,
) -> None:
    """Pending, delivered and failed counts, the oldest pending age, the last error."""
    box = Outbox(sqlite_engine)
    try:
        empty = await box.status(1_000.0)
        assert empty.as_dict() == {
            "pending": 0,
            "delivered": 0,
            "failed": 0,
            "oldest_pending_age_seconds": None,
            "last_error": None,
        }
        ids = await seed_outbox(sqlite_engine, 5, now=1_000.0)  # created 995..999
        status = await box.status(1_010.0)
        assert (status.pending, status.delivered, status.failed) == (5, 0, 0)
        assert status.oldest_pending_age == pytest.approx(15.0)

        claimed = await box.claim(owner="a", now=1_010.0, lease=30.0, limit=2)
        assert [row.id for row in claimed] == ids[:2]  # oldest first
        assert claimed[0].payload["id"] == ids[0]
        assert await box.delivered([ids[0]], owner="a", now=1_010.0) == 1
        await box.failed([ids[1]], owner="a", error="supabase: PGRST204: no column")
        status = await box.status(1_010.0)
        assert (status.pending, status.delivered, status.failed) == (3, 1, 1)
        assert status.oldest_pending_age == pytest.approx(13.0)
        assert status.last_error == "supabase: PGRST204: no column"

        assert await box.redrive(1_020.0) == 1
        status = await box.status(1_020.0)
        assert (status.pending, status.delivered, status.failed) == (4, 1, 0)
        assert status.oldest_pending_age == pytest.approx(24.0)  # created at 996
    finally:
        await sqlite_engine.dispose()


async def test_outbox_leases_keep_other_owners_out_until_they_expire(
    sqlite_engine: AsyncEngine,
) -> None:
    """A claimed row is invisible to other owners until its lease runs out."""
    box = Outbox(sqlite_engine)
    try:
        ids = await seed_outbox(sqlite_engine, 3, now=1_000.0)
        claimed = await box.claim(owner="a", now=1_000, lease=30, limit=10)
        assert [r.id for r in claimed] == ids
        assert await box.claim(owner="b", now=1_029, lease=30, limit=10) == []
        # "a" died: its lease runs out and "b" takes the rows over
        taken = await box.claim(owner="b", now=1_031, lease=30, limit=10)
        assert [r.id for r in taken] == ids
        assert await box.delivered(ids, owner="a", now=1_032) == 0  # too late
        await box.retry_later(
            ids[:1], owner="b", error="supabase: 503", next_attempt_at=1_100
        )
        assert await box.delivered(ids[1:], owner="b", now=1_032) == 2
        assert await box.claim(owner="b", now=1_099, lease=30, limit=10) == []
        (again,) = await box.claim(owner="c", now=1_100, lease=30, limit=10)
        assert (again.id, again.attempts) == (ids[0], 1)
    finally:
        await sqlite_engine.dispose()

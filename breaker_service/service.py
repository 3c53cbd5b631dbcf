"""``Service``: the composition root. Every part is built, opened and closed here.

async with await Service.open(settings) as service:
    await service.orchestrator.upload("report.pdf")

From ``Settings`` it opens, in order: the database engine (``DATABASE_URL``
normalised once), the schema (Alembic), the event log, the replayed breaker
registry, on PostgreSQL in shared scope the fleet trial gate and log follower, then
(unless ``uploads=False``) the HTTP client, the provider catalog, the upload store,
the Supabase outbox relay, the upload intent journal, the upload orchestrator and
the reconciler (a start-up pass, bounded, then in the background). ``aclose()``
closes them in the reverse order. The CLI, the API lifespan, the demo and the embedded
conveniences (``BreakerRegistry.open``, ``UploadOrchestrator.open``) all come
through here; below this module, classes take their collaborators as arguments.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from .breaker.breaker import Judge
from .breaker.registry import BreakerRegistry, check_scope, scope_resolver
from .clock import Clock, SystemClock
from .config import Settings, load_settings, normalize_database_url
from .errors import ConfigError, StorageError
from .events.follower import LogFollower
from .events.log import EventLog
from .events.sql import SqlEventLog, create_engine
from .events.trials import SqlTrialGate
from .integrity import sqlite_path, verify_sqlite
from .migrate import SCHEMA_HEAD, current_revision, ensure_schema
from .providers.base import Provider
from .providers.catalog import build_providers, http_client_for
from .replica import check_replica_id, resolve_replica_id
from .retry.classify import Classifier
from .tracking import Outbox, OutboxRelay, SupabaseSink
from .tracking.drain import DeliveryReport, deliver_pending
from .uploads.intent_journal import IntentJournal
from .uploads.intents import IntentStore, MemoryIntentStore
from .uploads.journal import UploadJournal
from .uploads.keeper import RecordKeeper
from .uploads.memory_store import MemoryUploadStore
from .uploads.orchestrator import UploadOrchestrator
from .uploads.reconcile import Reconciler
from .uploads.sql_intents import SqlIntentStore
from .uploads.sql_store import SqlUploadStore
from .uploads.store import UploadStore

__all__ = ["Service", "database_engine"]

logger = logging.getLogger("breaker_service.service")

STARTUP_RECONCILE_SECONDS = 15.0  # a slow or down provider never holds start-up longer


class Service:
    """Owns every long-lived part of breaker-service; an async context manager."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        *,
        registry: BreakerRegistry,
        engine: AsyncEngine | None,
        owns_registry: bool = True,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.registry = registry
        self.engine = engine
        self.http_client: httpx.AsyncClient | None = None
        self.providers: dict[str, Provider] = {}
        self.store: UploadStore | None = None
        self.relay: OutboxRelay | None = None
        self.keeper: RecordKeeper | None = None
        self.intents: IntentStore | None = None
        self.reconciler: Reconciler | None = None
        self._orchestrator: UploadOrchestrator | None = None
        self._owns_registry = owns_registry

    @classmethod
    async def open(
        cls,
        settings: Settings | None = None,
        *,
        clock: Clock | None = None,
        database_url: str | None = None,
        log: EventLog | None = None,
        registry: BreakerRegistry | None = None,
        migrate: bool | None = None,
        judge: Judge | None = None,
        classifier: Classifier | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        uploads: bool = True,
        reconcile: bool = False,
    ) -> Service:
        """Open every part for ``settings``; on failure, close what was opened.

        ``log`` replaces the SQL event log (an in-memory log: no database, uploads
        recorded in memory); ``registry`` reuses a registry the caller owns.
        ``uploads=False`` stops after the registry (status, audit, admin commands).
        ``reconcile=True`` (the long-running ``serve``) settles, before returning,
        what an earlier run of this replica left open, then reconciles in the
        background; short-lived commands leave that to the service.
        """
        settings = settings or load_settings()
        clock = clock or SystemClock()
        if registry is not None:
            service = cls(
                settings,
                clock,
                registry=registry,
                engine=_engine_of(registry.log),
                owns_registry=False,
            )
        else:
            service = await cls._open_registry(
                settings,
                clock,
                database_url=database_url,
                log=log,
                migrate=migrate,
                judge=judge,
                classifier=classifier,
            )
        if uploads:
            try:
                service._open_uploads(transport)
                await service._fold_journal()
                if reconcile:
                    await service._reconcile_at_startup()
            except BaseException:
                await service.aclose()
                raise
        return service

    @classmethod
    async def _open_registry(
        cls,
        settings: Settings,
        clock: Clock,
        *,
        database_url: str | None,
        log: EventLog | None,
        migrate: bool | None,
        judge: Judge | None,
        classifier: Classifier | None,
    ) -> Service:
        if log is not None:
            check_scope(settings, postgres=False)
            registry = await BreakerRegistry.restore(
                log, settings=settings, clock=clock, judge=judge, classifier=classifier
            )
            return cls(settings, clock, registry=registry, engine=None)
        url = _database_url(database_url or settings.database_url)
        shared = settings.shared_scope_used()
        check_scope(settings, postgres=url.startswith("postgresql"))
        check_replica_id(settings, url)
        await asyncio.to_thread(verify_sqlite, url)  # refuse a damaged file
        engine = create_engine(url)
        try:
            await ensure_schema(
                engine,
                migrate=settings.database_auto_migrate if migrate is None else migrate,
            )
            replica = await resolve_replica_id(settings, url, engine)
        except BaseException:
            await engine.dispose()
            raise
        if replica != settings.breaker_replica_id:
            settings = settings.model_copy(update={"breaker_replica_id": replica})
        sql_log = SqlEventLog(
            engine,
            instance_id=settings.breaker_instance_id,
            on_malformed=settings.event_log_on_malformed,
            scope_of=scope_resolver(settings),
            replica_id=replica,
        )
        try:
            # Everything up to `cut` is in the replay; the follower takes it from there.
            cut = await sql_log.last_id() if shared else 0
        except BaseException:
            await sql_log.aclose()
            raise
        gate = (
            SqlTrialGate(engine, owner=settings.breaker_instance_id) if shared else None
        )
        registry = await BreakerRegistry.restore(
            sql_log,
            settings=settings,
            clock=clock,
            judge=judge,
            classifier=classifier,
            trial_gate=gate,
        )
        if shared:
            try:
                await registry.follow(
                    LogFollower(
                        sql_log, registry.adopt, after_id=cut, dsn=_libpq_dsn(engine)
                    )
                )
            except BaseException:
                await registry.aclose()
                raise
        return cls(settings, clock, registry=registry, engine=engine)

    def _open_uploads(self, transport: httpx.AsyncBaseTransport | None) -> None:
        settings = self.settings
        self.http_client = http_client_for(settings, transport)
        self.providers = build_providers(settings, self.http_client)
        if self.engine is None:
            memory = MemoryUploadStore()
            self.store = memory
            self.intents = MemoryIntentStore(memory)
        else:
            tracking = settings.supabase_enabled
            sql_store = SqlUploadStore(
                self.engine, instance_id=settings.breaker_instance_id, outbox=tracking
            )
            self.store = sql_store
            self.intents = SqlIntentStore(sql_store)
            if tracking:
                self.relay = _relay(settings, self.engine, self.registry, self.clock)
                self.relay.start()
            else:
                logger.warning(
                    "Supabase tracking is off (SUPABASE_URL and SUPABASE_SERVICE_KEY unset): "
                    "uploads are recorded in the local database only"
                )
        journal = None if self.engine is None else _journal_for(self.engine)
        intent_journal = (
            None
            if journal is None
            else IntentJournal(
                journal.path.with_name(
                    journal.path.name.replace("uploads-journal", "intents-journal")
                )
            )
        )
        self.keeper = RecordKeeper(
            self.store,
            journal,
            clock=self.clock,
            intent_journal=intent_journal,
            intents=self.intents,
        )
        self._orchestrator = UploadOrchestrator(
            registry=self.registry,
            providers=self.providers,
            store=self.store,
            allowed_dirs=settings.allowed_dirs,
            order=settings.provider_order,
            clock=self.clock,
            max_concurrency=settings.upload_max_concurrency,
            batch_deadline=settings.upload_batch_deadline,
            allow_hardlinks=settings.upload_allow_hardlinks,
            relay=self.relay,
            keeper=self.keeper,
            intents=self.intents,
            intent_journal=intent_journal,
            owner=settings.breaker_replica_id,
        )
        orchestrator = self._orchestrator
        self.reconciler = Reconciler(
            registry=self.registry,
            providers=self.providers,
            intents=self.intents,
            clock=self.clock,
            keeper=self.keeper,
            policy=settings.upload_orphans,
            owner=settings.breaker_replica_id,
            run_id=orchestrator.run_id,
            in_flight=lambda: set(orchestrator.in_flight),
            preferred=lambda: dict(orchestrator.unrecorded),
            stale_after=settings.upload_intent_stale_after,
            interval=settings.upload_reconcile_interval,
        )
        orchestrator.on_ambiguous = self.reconciler.request
        orchestrator.reconciler = self.reconciler
        for name, provider in self.providers.items():
            self.registry.get(name)  # every provider's breaker is listed from the start
            if provider.unavailable_reason:
                logger.info(
                    "provider %s unavailable: %s", name, provider.unavailable_reason
                )

    async def _fold_journal(self) -> None:
        """Fold uploads journaled by an earlier run, then keep folding in the background."""
        assert self.keeper is not None
        try:
            folded = await self.keeper.fold()
        except StorageError as exc:
            logger.warning(
                "upload journal not folded at start-up (%s); retrying in the background",
                exc,
            )
        else:
            if folded and self.relay is not None:
                self.relay.wake()
        self.keeper.start()

    async def _reconcile_at_startup(self) -> None:
        """Settle what an earlier run left open, bounded; then reconcile in the background."""
        assert self.reconciler is not None
        try:
            async with asyncio.timeout(STARTUP_RECONCILE_SECONDS):
                reports = await self.reconciler.reconcile(
                    reason="start-up", startup=True, only_with_work=True
                )
        except (TimeoutError, StorageError) as exc:
            logger.warning(
                "start-up reconcile not finished (%s); it continues in the background",
                exc or "timed out",
            )
            self.reconciler.request()
        else:
            for report in reports:
                if report.error:
                    self.reconciler.request(report.provider)
        self.reconciler.start()

    @property
    def orchestrator(self) -> UploadOrchestrator:
        """The upload orchestrator (``uploads=True``, the default)."""
        if self._orchestrator is None:
            msg = "this Service was opened with uploads=False"
            raise RuntimeError(msg)
        return self._orchestrator

    async def deliver_tracking(self, within: float) -> DeliveryReport | None:
        """Deliver pending Supabase rows now, bounded (``None`` with tracking off)."""
        if self.relay is None:
            return None
        return await deliver_pending(self.relay, self.clock, within=within)

    async def schema_revision(self) -> str | None:
        """The database's Alembic revision (``None`` without a database)."""
        return None if self.engine is None else await current_revision(self.engine)

    async def schema_problem(self) -> str | None:
        """Why the schema is not at head, or ``None`` when it is (or there is none)."""
        if self.engine is None:
            return None
        revision = await self.schema_revision()
        return (
            None
            if revision == SCHEMA_HEAD
            else f"schema at {revision}, expected {SCHEMA_HEAD}"
        )

    async def aclose(self) -> None:
        """Close in reverse order: relay, HTTP client, registry (flush), database."""
        if self.reconciler is not None:
            await self.reconciler.aclose()
        if self.keeper is not None:
            await self.keeper.aclose()
        if self.relay is not None:
            await self.relay.aclose()
            self.relay = None
        if self.http_client is not None:
            await self.http_client.aclose()
            self.http_client = None
        if self._owns_registry:
            await self.registry.aclose()  # closes the SQL log and so the engine
            self._owns_registry = False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


@asynccontextmanager
async def database_engine(
    settings: Settings, *, migrate: bool | None = None
) -> AsyncIterator[AsyncEngine]:
    """An engine for ``DATABASE_URL`` alone (``db`` and ``outbox`` commands).

    ``migrate=None`` leaves the schema alone; ``True``/``False`` ensure it is at
    head, upgrading only when allowed.
    """
    engine = create_engine(_database_url(settings.database_url))
    try:
        if migrate is not None:
            await ensure_schema(engine, migrate=migrate)
        yield engine
    finally:
        await engine.dispose()


def _database_url(url: str) -> str:
    try:
        return normalize_database_url(url)
    except ValueError as exc:
        raise ConfigError(str(exc), variable="DATABASE_URL") from None


def _journal_for(engine: AsyncEngine) -> UploadJournal:
    """Where uploads go when the database refuses them: next to the SQLite file the
    engine uses (the URL it was opened with, not re-read from the settings)."""
    path = sqlite_path(engine.url.render_as_string(hide_password=False))
    if path is not None:
        return UploadJournal(path.with_name(path.name + ".uploads-journal"))
    return UploadJournal(Path("breaker_service.uploads-journal").resolve())


def _engine_of(log: EventLog) -> AsyncEngine | None:
    return log.engine if isinstance(log, SqlEventLog) else None


def _libpq_dsn(engine: AsyncEngine) -> str:
    """The engine's URL for asyncpg's own ``connect`` (LISTEN needs a raw connection)."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def _relay(
    settings: Settings, engine: AsyncEngine, registry: BreakerRegistry, clock: Clock
) -> OutboxRelay:
    """The Supabase relay for these settings (not started)."""
    assert settings.supabase_url is not None
    assert settings.supabase_service_key is not None
    sink = SupabaseSink(
        settings.supabase_url,
        settings.supabase_service_key.get_secret_value(),
        settings.supabase_table,
        timeout=settings.supabase_timeout,
    )
    return OutboxRelay(
        outbox=Outbox(engine),
        sink=sink,
        registry=registry,
        owner=settings.breaker_instance_id,
        clock=clock,
        batch_size=settings.outbox_batch_size,
        interval=settings.outbox_interval,
        lease=settings.outbox_lease_seconds,
    )

"""``UploadOrchestrator``: validate, pick a provider whose breaker allows it, upload, record.

Each attempt is one resilient call (retries around the provider's breaker). With no
provider named, the configured order is walked, skipping providers without a key
or with an open breaker (fallback, recorded in the result). A successful upload is
recorded locally; a failed one leaves no record.

Uploads are not idempotent at the providers: when a timeout hides a success, the
retry uploads the file again and the provider holds two copies; only the one whose
id we received is recorded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from ..breaker import BreakerRegistry
from ..clock import Clock, SystemClock
from ..config import Settings, load_settings
from ..errors import (
    BreakerServiceError,
    CircuitOpenError,
    ProviderError,
    UnknownProviderError,
    UploadRejected,
)
from ..providers.base import Provider, ProviderFile
from .memory_store import MemoryUploadStore
from .model import UploadResult
from .sql_store import SqlUploadStore
from .store import UploadStore
from .validation import ValidatedFile, sha256_of, validate_path

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from ..tracking.relay import OutboxRelay

__all__ = ["BatchItem", "UploadOrchestrator"]

logger = logging.getLogger("breaker_service.uploads")


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One file of ``upload_many``: its result or its error."""

    path: str
    result: UploadResult | None = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        """Whether this file was uploaded."""
        return self.result is not None


Progress = Callable[[int, int, BatchItem], None]


class UploadOrchestrator:
    """Uploads files to the configured providers through retries and breakers."""

    def __init__(
        self,
        *,
        registry: BreakerRegistry,
        providers: Mapping[str, Provider],
        store: UploadStore,
        allowed_dirs: Sequence[Path],
        order: Sequence[str],
        clock: Clock | None = None,
        max_concurrency: int = 8,
    ) -> None:
        self.registry = registry
        self.providers = dict(providers)
        self.store = store
        self.allowed_dirs = [Path(d).resolve() for d in allowed_dirs]
        self.order = [p for p in order if p in self.providers]
        self.clock = clock or SystemClock()
        self.max_concurrency = max_concurrency
        self.relay: OutboxRelay | None = None
        self._owned: list[Any] = []

    @classmethod
    async def open(
        cls,
        settings: Settings | None = None,
        *,
        clock: Clock | None = None,
        registry: BreakerRegistry | None = None,
        transport: Any = None,
    ) -> UploadOrchestrator:
        """Everything from the settings: registry (replayed), HTTP client, providers, store."""
        from ..events.sql import SqlEventLog  # noqa: PLC0415
        from ..providers.catalog import build_providers, http_client_for  # noqa: PLC0415

        settings = settings or load_settings()
        clock = clock or SystemClock()
        owned: list[Any] = []
        if registry is None:
            registry = await BreakerRegistry.open(settings=settings, clock=clock)
            owned.append(registry)
        client = http_client_for(settings, transport)
        owned.append(client)
        log = registry.log
        store: UploadStore
        relay = None
        if isinstance(log, SqlEventLog):
            tracking = settings.supabase_enabled
            store = SqlUploadStore(
                log.engine, instance_id=settings.breaker_instance_id, outbox=tracking
            )
            if tracking:
                relay = _start_relay(settings, log.engine, registry, clock)
                owned.append(relay)
            else:
                logger.warning(
                    "Supabase tracking is off (SUPABASE_URL and SUPABASE_SERVICE_KEY unset): "
                    "uploads are recorded in the local database only"
                )
        else:
            store = MemoryUploadStore()
        orchestrator = cls(
            registry=registry,
            providers=build_providers(settings, client),
            store=store,
            allowed_dirs=settings.allowed_dirs,
            order=settings.provider_order,
            clock=clock,
            max_concurrency=settings.upload_max_concurrency,
        )
        orchestrator._owned = owned
        orchestrator.relay = relay
        for name, provider in orchestrator.providers.items():
            registry.get(name)  # every provider's breaker is listed from the start
            if provider.unavailable_reason:
                logger.info(
                    "provider %s unavailable: %s", name, provider.unavailable_reason
                )
        return orchestrator

    async def aclose(self) -> None:
        """Close what ``open`` created (HTTP client, registry)."""
        for resource in reversed(self._owned):
            await resource.aclose()
        self._owned = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def provider_status(self) -> list[dict[str, Any]]:
        """Each provider: available or why not, its size limit and its breaker's state."""
        rows = []
        for name, provider in self.providers.items():
            breaker = self.registry.get(name)
            rows.append(
                {
                    "name": name,
                    "available": provider.unavailable_reason is None,
                    "reason": provider.unavailable_reason,
                    "max_bytes": provider.max_bytes,
                    "in_order": name in self.order,
                    "breaker": breaker.state.value,
                    "retry_after": breaker.retry_after,
                }
            )
        return rows

    def _candidates(self, provider: str | None) -> list[str]:
        if provider is not None:
            name = provider.lower()
            if name not in self.providers:
                raise UnknownProviderError(name, sorted(self.providers))
            return [name]
        if not self.order:
            msg = "no provider to upload to: UPLOAD_PROVIDER_ORDER names none that is configured"
            raise UploadRejected(msg, reason="no_provider")
        return list(self.order)

    async def upload(
        self,
        path: str | os.PathLike[str],
        provider: str | None = None,
        purpose: str | None = None,
        *,
        force: bool = False,
    ) -> UploadResult:
        """Upload one file; see the module docstring for the rules."""
        started = self.clock.monotonic()
        candidates = self._candidates(provider)
        explicit = provider is not None
        limit = max(self.providers[c].max_bytes for c in candidates)
        file = validate_path(path, self.allowed_dirs, limit)
        digest = await asyncio.to_thread(sha256_of, file.path)
        if not force:
            prior = await self._already_uploaded(digest, candidates, file.filename)
            if prior is not None:
                return prior
        tried: list[str] = []
        attempts = 0
        failures: list[BaseException] = []  # from providers actually called
        refusals: list[CircuitOpenError] = []  # breakers that refused before any call
        skipped: list[str] = []
        for name in candidates:
            skip = self._skip_reason(name, self.providers[name], file)
            if skip is not None:
                if explicit:
                    raise skip
                logger.info("upload of %s skips %s: %s", file.filename, name, skip)
                skipped.append(f"{name}: {skip}")
                continue
            tried.append(name)
            answer, calls, error = await self._attempt(name, file, purpose)
            attempts += calls
            if answer is None:
                assert error is not None
                if explicit:
                    raise error
                logger.warning(
                    "upload of %s to %s failed (%s); trying the next provider",
                    file.filename,
                    name,
                    type(error).__name__,
                )
                if isinstance(error, CircuitOpenError) and calls == 0:
                    refusals.append(error)
                else:
                    failures.append(error)
                continue
            result = UploadResult(
                upload_id=str(uuid.uuid4()),
                provider=name,
                provider_file_id=answer.file_id,
                filename=file.filename,
                sha256=digest,
                bytes=file.size,
                purpose=answer.purpose,
                attempts=attempts,
                elapsed=self.clock.monotonic() - started,
                providers_tried=tuple(tried),
                uploaded_at=self.clock.time(),
            )
            await self.store.record(result)
            if self.relay is not None:
                self.relay.wake()
            return result
        if failures:  # what the last provider we really called said
            raise failures[-1]
        if refusals:  # every usable breaker is open: come back when the first probes
            raise min(refusals, key=lambda e: e.retry_after)
        msg = "no provider can take this upload: " + "; ".join(skipped)
        raise UploadRejected(msg, reason="no_provider", path=str(file.path))

    async def _already_uploaded(
        self, digest: str, candidates: list[str], filename: str
    ) -> UploadResult | None:
        """The earlier upload of this content to one of ``candidates``, if any."""
        for name in candidates:
            prior = await self.store.find(digest, name)
            if prior is not None:
                logger.info(
                    "upload of %s deduplicated: already at %s as %s",
                    filename,
                    name,
                    prior.provider_file_id,
                )
                return dataclasses.replace(prior, deduplicated=True)
        return None

    async def _attempt(
        self, name: str, file: ValidatedFile, purpose: str | None
    ) -> tuple[ProviderFile | None, int, CircuitOpenError | ProviderError | None]:
        """One resilient call to ``name``: (answer, provider calls made, error)."""
        provider = self.providers[name]
        calls = 0

        async def once() -> ProviderFile:
            nonlocal calls
            calls += 1
            return await provider.upload(
                file.path, filename=file.filename, purpose=purpose
            )

        try:
            return await self.registry.call(name, once), calls, None
        except (CircuitOpenError, ProviderError) as exc:
            return None, calls, exc

    def _skip_reason(
        self, name: str, provider: Provider, file: ValidatedFile
    ) -> BreakerServiceError | None:
        """Why ``name`` cannot take ``file`` at all (an open breaker is the breaker's call)."""
        if provider.unavailable_reason is not None:
            return UploadRejected(
                f"{name} is unavailable: {provider.unavailable_reason}",
                reason="provider_unavailable",
                path=str(file.path),
            )
        if file.size > provider.max_bytes:
            return UploadRejected(
                f"{file.filename} is {file.size} bytes; {name} accepts at most {provider.max_bytes}",
                reason="too_large",
                path=str(file.path),
            )
        return None

    async def upload_many(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        concurrency: int | None = None,
        provider: str | None = None,
        purpose: str | None = None,
        force: bool = False,
        progress: Progress | None = None,
    ) -> list[BatchItem]:
        """Upload many files with bounded concurrency; one failure never fails the batch."""
        limit = asyncio.Semaphore(max(1, concurrency or self.max_concurrency))
        total = len(paths)
        done = 0

        async def one(path: str | os.PathLike[str]) -> BatchItem:
            nonlocal done
            async with limit:
                try:
                    item = BatchItem(
                        os.fspath(path),
                        result=await self.upload(path, provider, purpose, force=force),
                    )
                except Exception as exc:  # noqa: BLE001 - reported per file, never fatal
                    item = BatchItem(os.fspath(path), error=exc)
            done += 1
            if progress is not None:
                progress(done, total, item)
            return item

        return list(await asyncio.gather(*(one(p) for p in paths)))


def _start_relay(
    settings: Settings, engine: AsyncEngine, registry: BreakerRegistry, clock: Clock
) -> OutboxRelay:
    """The Supabase relay for these settings, started (it first delivers what is pending)."""
    from ..tracking import Outbox, OutboxRelay, SupabaseSink  # noqa: PLC0415

    assert settings.supabase_url is not None
    assert settings.supabase_service_key is not None
    sink = SupabaseSink(
        settings.supabase_url,
        settings.supabase_service_key.get_secret_value(),
        settings.supabase_table,
        timeout=settings.supabase_timeout,
    )
    relay = OutboxRelay(
        outbox=Outbox(engine),
        sink=sink,
        registry=registry,
        owner=settings.breaker_instance_id,
        clock=clock,
        batch_size=settings.outbox_batch_size,
        interval=settings.outbox_interval,
        lease=settings.outbox_lease_seconds,
    )
    relay.start()
    return relay

"""``UploadOrchestrator``: validate, pick a provider whose breaker allows it, upload, record.

Each attempt is one resilient call (retries around the provider's breaker). With no
provider named, the configured order is walked, skipping providers without a key
or with an open breaker (fallback, recorded in the result). A successful upload is
recorded locally; a failed one leaves no record.

Uploads are not idempotent at the providers: when a timeout hides a success, the
retry uploads the file again and the provider holds two copies; only the one whose
id we received is recorded. So before each provider is called, an intent is
committed (``ledger.py``, ``intents.py``); recording the upload completes it, giving up fails it,
and the reconciler (``reconcile.py``) settles what the provider kept: it is told
(``on_ambiguous``) after any failure that may hide a stored file and after a full
file quota.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from ..breaker import BreakerRegistry
from ..clock import Clock, SystemClock
from ..config import Settings
from ..errors import (
    BreakerServiceError,
    CircuitOpenError,
    ProviderError,
    ProviderQuotaExceeded,
    ProviderTimeout,
    UnknownProviderError,
    UploadRejected,
)
from ..providers.base import Provider, ProviderFile
from .batching import BatchItem, Progress, Waiting, run_batch
from .intent_journal import IntentJournal
from .intents import IntentStore, UploadIntent
from .keeper import RECORDED_IN_DATABASE, RecordKeeper, RecordNotSaved
from .ledger import IntentLedger
from .model import UploadResult
from .source import FileSource
from .status import provider_rows
from .store import UploadStore
from .validation import ValidatedFile, validate_path

if TYPE_CHECKING:
    import httpx

    from ..tracking.relay import OutboxRelay
    from .reconcile import Reconciler

__all__ = ["BatchItem", "Progress", "UploadOrchestrator", "Waiting"]

logger = logging.getLogger("breaker_service.uploads")


def may_have_stored(error: BaseException) -> bool:
    """Whether a failed upload call may still have left the file at the provider.

    A timeout, a dropped connection or a 5xx can come after the provider stored the
    body; a 4xx (including 429) is a refusal before storing.
    """
    if isinstance(error, ProviderTimeout):
        return True
    if isinstance(error, ProviderError) and error.transient:
        return error.status is None or error.status >= 500
    return False


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
        batch_deadline: float = 300.0,
        allow_hardlinks: bool = False,
        relay: OutboxRelay | None = None,
        keeper: RecordKeeper | None = None,
        intents: IntentStore | None = None,
        intent_journal: IntentJournal | None = None,
        owner: str = "local",
        on_ambiguous: Callable[[str], None] | None = None,
    ) -> None:
        self.registry = registry
        self.providers = dict(providers)
        self.store = store
        # Resolved (for the real path) and as written (for the lexical check that
        # comes before the file system is touched); they differ under a symlink.
        self.allowed_dirs = list(
            dict.fromkeys(
                form
                for d in allowed_dirs
                for form in (Path(d).resolve(), Path(os.path.abspath(d)))
            )
        )
        self.order = [p for p in order if p in self.providers]
        self.clock = clock or SystemClock()
        self.max_concurrency = max_concurrency
        self.batch_deadline = batch_deadline
        self.allow_hardlinks = allow_hardlinks
        self.relay = relay
        self.keeper = keeper or RecordKeeper(store, None, clock=self.clock)
        self.intents = intents
        self.intent_journal = intent_journal
        self.ledger = IntentLedger(
            intents, intent_journal, owner=owner, clock=self.clock
        )
        self.on_ambiguous = on_ambiguous
        self.quota_full: dict[str, str] = {}  # provider -> its last quota message
        self.reconciler: Reconciler | None = None  # set by the composition root
        self._closer: Callable[[], Awaitable[None]] | None = None

    @classmethod
    async def open(
        cls,
        settings: Settings | None = None,
        *,
        clock: Clock | None = None,
        registry: BreakerRegistry | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> UploadOrchestrator:
        """Everything from the settings: registry (replayed), HTTP client, providers, store.

        A convenience for embedded use over the composition root; ``aclose()`` closes
        what it opened (a ``registry`` passed in stays the caller's).
        """
        # The composition root imports this module; importing it at the top would be
        # a cycle. This convenience is the one place that reaches up to it.
        from ..service import Service  # noqa: PLC0415 - deferred: cycle, see above

        service = await Service.open(
            settings, clock=clock, registry=registry, transport=transport
        )
        orchestrator = service.orchestrator
        orchestrator._closer = service.aclose
        return orchestrator

    async def aclose(self) -> None:
        """Close what ``open`` created (HTTP client, relay, registry)."""
        closer, self._closer = self._closer, None
        if closer is not None:
            await closer()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def run_id(self) -> str:
        """This process's id on its intents (they die with it)."""
        return self.ledger.run_id

    @property
    def in_flight(self) -> set[str]:
        """Intents of uploads under way here: a reconcile leaves them alone."""
        return self.ledger.in_flight

    @property
    def unrecorded(self) -> dict[str, str]:
        """Intent -> the file id a client was told that nothing could persist."""
        return self.ledger.unrecorded

    def provider_status(self) -> list[dict[str, Any]]:
        """Each provider: available or why not, its size limit and its breaker's state."""
        return provider_rows(self)

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
        # From here on the file is read only through this one verified handle.
        source = await FileSource.open(file, allow_hardlinks=self.allow_hardlinks)
        try:
            return await self._upload_source(
                source, candidates, explicit, purpose, force=force, started=started
            )
        finally:
            source.close()

    async def _upload_source(
        self,
        source: FileSource,
        candidates: list[str],
        explicit: bool,
        purpose: str | None,
        *,
        force: bool,
        started: float,
    ) -> UploadResult:
        """Hash, de-duplicate, then try the candidates in order (see ``upload``)."""
        file = source.file
        digest = await source.sha256()
        if not force:
            prior = await self._already_uploaded(digest, candidates, file.filename)
            if prior is not None:
                return prior
        upload_id = str(uuid.uuid4())
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
            answer, calls, error = await self._journaled_attempt(
                upload_id, name, source, purpose
            )
            attempts += calls
            if answer is not None:
                return await self._record(
                    UploadResult(
                        upload_id=upload_id,
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
                )
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
        if failures:  # what the last provider we really called said
            raise failures[-1]
        if refusals:  # every usable breaker is open: come back when the first probes
            raise min(refusals, key=lambda e: e.retry_after)
        msg = "no provider can take this upload: " + "; ".join(skipped)
        raise UploadRejected(msg, reason="no_provider", path=str(file.path))

    async def _journaled_attempt(
        self, upload_id: str, name: str, source: FileSource, purpose: str | None
    ) -> tuple[ProviderFile | None, int, CircuitOpenError | ProviderError | None]:
        """``_attempt`` between its intent's begin and, on failure, its end.

        A success leaves the intent open and in flight for ``_record`` to complete.
        """
        purpose_of = purpose or self.providers[name].default_purpose
        intent = await self.ledger.begin(upload_id, name, source, purpose_of)
        try:
            answer, calls, error = await self._attempt(name, source, purpose, intent)
        except BaseException:
            self.ledger.abandon(intent)
            raise
        await self.ledger.settle(upload_id, intent, succeeded=answer is not None)
        return answer, calls, error

    async def _record(self, result: UploadResult) -> UploadResult:
        """Make the success durable (completing its intent); the answer to give.

        When nothing could persist it, the file id the client is told is kept in
        ``unrecorded`` so the reconciler adopts that copy, never another one.
        """
        try:
            recorded = await self.keeper.keep(result)
        except RecordNotSaved:
            self.ledger.recorded(result.upload_id, told=result.provider_file_id)
            raise
        except BaseException:
            self.ledger.recorded(result.upload_id)
            raise
        self.ledger.recorded(result.upload_id)
        if self.relay is not None and recorded == RECORDED_IN_DATABASE:
            self.relay.wake()
        return dataclasses.replace(result, recorded=recorded)

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
        self,
        name: str,
        source: FileSource,
        purpose: str | None,
        intent: UploadIntent | None = None,
    ) -> tuple[ProviderFile | None, int, CircuitOpenError | ProviderError | None]:
        """One resilient call to ``name``: (answer, provider calls made, error)."""
        provider = self.providers[name]
        calls = 0
        ambiguous = False

        async def once() -> ProviderFile:
            nonlocal calls, ambiguous
            calls += 1
            if calls > 1:
                await self.ledger.count_attempt(intent, calls)
            try:
                return await provider.upload(
                    source, filename=source.filename, purpose=purpose
                )
            except ProviderError as exc:
                ambiguous = ambiguous or may_have_stored(exc)
                raise

        try:
            answer = await self.registry.call(name, once)
        except (CircuitOpenError, ProviderError) as exc:
            self._after_failure(name, exc, ambiguous)
            return None, calls, exc
        self.quota_full.pop(name, None)
        if ambiguous:
            self._signal(name)
        return answer, calls, None

    def _after_failure(self, name: str, error: BaseException, ambiguous: bool) -> None:
        if isinstance(error, ProviderQuotaExceeded):
            self.quota_full[name] = str(error)
            logger.error(
                "%s file quota is full: %s; reconciling to free orphans", name, error
            )
            ambiguous = True
        if ambiguous:
            self._signal(name)

    def _signal(self, name: str) -> None:
        if self.on_ambiguous is not None:
            self.on_ambiguous(name)

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
        deadline: float | None = None,
        waiting: Waiting | None = None,
    ) -> list[BatchItem]:
        """Upload many files with bounded concurrency; one failure never fails the batch.

        When a file meets an open breaker and no other provider can take it, the batch
        waits for the breaker's ``retry_after`` and tries again, as long as that fits
        in ``deadline`` seconds from the start (default ``UPLOAD_BATCH_DEADLINE``; 0
        fails at once); ``waiting(breaker, seconds)`` hears of each wait. A forced-open
        breaker is an operator's decision: the batch does not wait for it.
        """
        budget = self.batch_deadline if deadline is None else deadline
        return await run_batch(
            lambda path: self.upload(path, provider, purpose, force=force),
            paths,
            concurrency=concurrency or self.max_concurrency,
            clock=self.clock,
            deadline=budget,
            progress=progress,
            waiting=waiting,
        )

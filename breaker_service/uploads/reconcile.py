"""``Reconciler``: the provider's own file list against our intents; adopt, delete, report.

For each provider that can list its files (``FileCatalog``), it folds the upload
journal first (a journaled upload is a recorded one), lists every page and deletes
through ``registry.call`` (retries and the provider's breaker), plans with
``matching.plan_reconcile`` and applies the plan: an adoption writes the uploads,
outbox and audit rows in one transaction; each deletion is audited; a file recorded
here is never deleted (checked again just before deleting). ``UPLOAD_ORPHANS=report``
deletes nothing. It runs at start-up, every ``UPLOAD_RECONCILE_INTERVAL`` seconds,
soon after any failure that may hide a stored file (``request``), and on demand.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..breaker import BreakerRegistry
from ..clock import Clock, idle
from ..errors import BreakerServiceError, CircuitOpenError, StorageError
from ..providers.base import FileCatalog, Provider, ProviderFile
from ..tasks import stop_task
from .intents import FAILED, IntentStore, ReconcileAction, UploadIntent
from .keeper import RecordKeeper
from .matching import DEFAULT_SLACK, Plan, plan_reconcile
from .model import UploadResult

__all__ = ["ProviderReconciliation", "Reconciler"]

logger = logging.getLogger("breaker_service.uploads")

LOOKBACK = 7 * 86400.0  # intents older than this are no longer matched
_SETTLE = 1.0  # seconds after a request, so a burst of failures makes one pass


@dataclass(slots=True)
class ProviderReconciliation:
    """What one pass did (or, dry, would do) for one provider."""

    provider: str
    dry_run: bool
    listed: int = 0
    recorded: int = 0
    foreign: int = 0
    adopted: list[dict[str, Any]] = field(default_factory=list)
    deleted: list[dict[str, Any]] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)
    reported: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def orphans(self) -> int:
        """Copies of ours still unrecorded at the provider after this pass."""
        return len(self.reported)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        return {
            "provider": self.provider,
            "dry_run": self.dry_run,
            "listed": self.listed,
            "recorded": self.recorded,
            "foreign": self.foreign,
            "adopted": self.adopted,
            "deleted": self.deleted,
            "abandoned": self.abandoned,
            "reported": self.reported,
            "orphans": self.orphans,
            "error": self.error,
        }


class Reconciler:
    """Settles what providers kept against the intent journal (module docstring)."""

    def __init__(
        self,
        *,
        registry: BreakerRegistry,
        providers: Mapping[str, Provider],
        intents: IntentStore,
        clock: Clock,
        keeper: RecordKeeper | None = None,
        policy: Literal["delete", "report"] = "delete",
        owner: str = "local",
        run_id: str = "",
        in_flight: Callable[[], set[str]] = set,
        preferred: Callable[[], dict[str, str]] = dict,
        stale_after: float = 900.0,
        interval: float = 300.0,
        slack: float = DEFAULT_SLACK,
    ) -> None:
        self.registry = registry
        self.providers = dict(providers)
        self.intents = intents
        self.clock = clock
        self.keeper = keeper
        self.policy = policy
        self.owner = owner
        self.run_id = run_id
        self.in_flight = in_flight
        self.preferred = preferred
        self.stale_after = stale_after
        self.interval = interval
        self.slack = slack
        self.file_counts: dict[str, dict[str, Any]] = {}  # provider -> count, limit, at
        self.last: list[ProviderReconciliation] = []
        self._lock = asyncio.Lock()
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._startup = False
        self._since = clock.time()  # intents after this have not been looked at yet

    def catalogs(self) -> dict[str, FileCatalog]:
        """The providers that can list their files and have a key."""
        return {
            name: p
            for name, p in self.providers.items()
            if isinstance(p, FileCatalog) and p.unavailable_reason is None
        }

    async def reconcile(
        self,
        *,
        dry_run: bool = False,
        actor: str = "reconciler",
        reason: str = "on demand",
        startup: bool = False,
        providers: list[str] | None = None,
        only_with_work: bool = False,
    ) -> list[ProviderReconciliation]:
        """One pass over every listable provider (or ``providers``); one at a time.

        ``only_with_work`` skips a provider none of whose intents needs a look (none
        open, none retried or failed since the last pass), so an idle service does
        not list files it has no reason to doubt.
        """
        async with self._lock:
            self._startup = startup
            if self.keeper is not None and not dry_run:
                await self.keeper.fold()  # a journaled upload is a recorded one
            began = self.clock.time()
            horizon = began - self.stale_after if startup else self._since
            reports = []
            for name, catalog in self.catalogs().items():
                if providers is not None and name not in providers:
                    continue
                if only_with_work and not await self._has_work(name, horizon):
                    continue
                report = ProviderReconciliation(name, dry_run)
                try:
                    await self._one(name, catalog, report, actor, reason)
                except (BreakerServiceError, OSError) as exc:
                    report.error = f"{type(exc).__name__}: {exc}"
                    logger.warning("reconcile %s stopped: %s", name, report.error)
                reports.append(report)
            self.last = reports
            if not dry_run and not any(r.error for r in reports):
                self._since = began - self.slack
            return reports

    async def _has_work(self, name: str, horizon: float) -> bool:
        """Whether ``name`` has open intents, or retried or failed ones since ``horizon``."""
        if any(i.provider == name for i in await self.intents.open_intents()):
            return True
        recent = await self.intents.since(name, horizon)
        return any(i.attempts > 1 or i.state == FAILED for i in recent)

    async def _list(self, name: str, catalog: FileCatalog) -> list[ProviderFile]:
        """Every page, each through retries and the breaker."""
        files: list[ProviderFile] = []
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            after = cursor

            async def page(after: str | None = after) -> Any:
                return await catalog.list_page(after=after)

            got = await self.registry.call(name, page)
            files.extend(got.files)
            if got.cursor is None or got.cursor in seen or not got.files:
                return files
            seen.add(got.cursor)
            cursor = got.cursor

    def _settled(self, intent: UploadIntent) -> bool:
        """Whether an open intent can no longer produce a copy or a record."""
        if intent.id in self.in_flight():
            return False
        if intent.run_id == self.run_id:
            return True  # ours, not under way: its upload has ended
        if self._startup and intent.owner == self.owner:
            return True  # an earlier run of this instance died with it open
        return self.clock.time() - intent.started_at > self.stale_after

    async def _one(
        self,
        name: str,
        catalog: FileCatalog,
        report: ProviderReconciliation,
        actor: str,
        reason: str,
    ) -> None:
        files = await self._list(name, catalog)
        now = self.clock.time()
        self.file_counts[name] = {
            "count": len(files),
            "limit": catalog.max_files,
            "listed_at": now,
        }
        recorded = await self._recorded(name)
        intents = await self.intents.since(name, now - LOOKBACK)
        plan = plan_reconcile(
            files,
            intents,
            recorded,
            now=now,
            settled=self._settled,
            slack=self.slack,
            preferred=self.preferred(),
        )
        report.listed, report.recorded, report.foreign = (
            len(files),
            plan.recorded,
            plan.foreign,
        )
        report.reported = [
            {"file_id": f.file_id, "filename": f.filename, "why": why}
            for f, why in plan.held
        ]
        if report.dry_run:
            _describe_dry(plan, report)
            return
        await self._adopt(name, plan, report, actor=actor, reason=reason, now=now)
        for intent in plan.abandon:
            action = self._action(
                "abandoned", intent, None, actor, f"{reason}: the provider kept no copy"
            )
            if await self.intents.abandon(intent, action):
                report.abandoned.append(intent.id)
                _audit_log(action)
        await self._delete(name, catalog, plan, report, actor=actor, reason=reason)
        self.file_counts[name]["count"] = len(files) - len(report.deleted)

    async def _adopt(
        self,
        name: str,
        plan: Plan,
        report: ProviderReconciliation,
        *,
        actor: str,
        reason: str,
        now: float,
    ) -> None:
        for intent, file in plan.adopt:
            result = UploadResult(
                upload_id=intent.upload_id,
                provider=name,
                provider_file_id=file.file_id,
                filename=intent.filename,
                sha256=intent.sha256,
                bytes=intent.bytes,
                purpose=intent.purpose,
                attempts=intent.attempts,
                elapsed=max(0.0, now - intent.started_at),
                providers_tried=(name,),
                uploaded_at=now,
            )
            action = self._action(
                "adopted",
                intent,
                file.file_id,
                actor,
                f"{reason}: the one copy of an unfinished upload",
            )
            if await self.intents.adopt(intent, result, action):
                report.adopted.append(
                    {
                        "intent": intent.id,
                        "upload_id": intent.upload_id,
                        "file_id": file.file_id,
                    }
                )
                _audit_log(action)

    async def _delete(
        self,
        name: str,
        catalog: FileCatalog,
        plan: Plan,
        report: ProviderReconciliation,
        *,
        actor: str,
        reason: str,
    ) -> None:
        if not plan.delete:
            return
        if self.policy != "delete":
            report.reported.extend(
                {
                    "file_id": f.file_id,
                    "filename": f.filename,
                    "why": "UPLOAD_ORPHANS=report",
                }
                for _, f in plan.delete
            )
            return
        recorded = await self._recorded(name)  # again: never a recorded file
        for intent, file in plan.delete:
            if file.file_id in recorded:
                continue

            async def remove(file_id: str = file.file_id) -> bool:
                return await catalog.delete_file(file_id)

            try:
                gone_now = await self.registry.call(name, remove)
            except CircuitOpenError:
                raise
            except BreakerServiceError as exc:
                report.reported.append(
                    {
                        "file_id": file.file_id,
                        "filename": file.filename,
                        "why": f"delete failed: {exc}",
                    }
                )
                continue
            why = "an extra copy made by our retries"
            if not gone_now:  # an earlier attempt whose answer was lost, or a peer
                why += " (already gone when deleted)"
            action = self._action(
                "deleted", intent, file.file_id, actor, f"{reason}: {why}"
            )
            report.deleted.append(
                {
                    "intent": intent.id,
                    "upload_id": intent.upload_id,
                    "file_id": file.file_id,
                }
            )
            _audit_log(action)
            try:
                await self.intents.audit(action)
            except StorageError as exc:
                logger.error("reconcile audit row not written: %s (%s)", action, exc)

    async def _recorded(self, name: str) -> set[str]:
        found = await self.intents.recorded_file_ids(name)
        if self.keeper is not None and self.keeper.journal is not None:
            found.update(
                r.provider_file_id
                for r in self.keeper.journal.pending()
                if r.provider == name
            )
        return found

    def _action(
        self,
        action: str,
        intent: UploadIntent,
        file_id: str | None,
        actor: str,
        reason: str,
    ) -> ReconcileAction:
        return ReconcileAction(
            at=self.clock.time(),
            action=action,
            provider=intent.provider,
            provider_file_id=file_id,
            intent_id=intent.id,
            upload_id=intent.upload_id,
            actor=actor,
            reason=reason[:500],
        )

    def request(self, provider: str | None = None) -> None:
        """Ask for a pass soon (after an ambiguous failure or a full quota)."""
        logger.debug("reconcile requested (%s)", provider or "all")
        self._wanted.set()

    def start(self) -> None:
        """Reconcile in the background: every ``interval`` and soon after a request."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="upload-reconcile"
            )

    async def _run(self) -> None:
        while True:
            await self._wait(self.interval)
            if self._wanted.is_set():
                await idle(self.clock, _SETTLE)
            self._wanted.clear()
            try:
                reports = await self.reconcile(reason="periodic", only_with_work=True)
            except StorageError as exc:
                logger.info("reconcile not run: %s", exc)
                continue
            except Exception:
                logger.exception("reconcile pass failed")
                continue
            for report in reports:
                if report.error and "CircuitOpenError" in report.error:
                    self._wanted.set()  # once the breaker allows, try again

    async def _wait(self, seconds: float) -> None:
        """Until ``seconds`` pass (none: only requests) or a pass is requested."""
        if self._wanted.is_set():
            await idle(self.clock, _SETTLE)
            return
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._wanted.wait())]
        if seconds > 0:
            waits.append(asyncio.ensure_future(idle(self.clock, seconds)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def aclose(self) -> None:
        """Stop the background pass."""
        task, self._task = self._task, None
        await stop_task(task)


def _audit_log(action: ReconcileAction) -> None:
    logger.warning(
        "[RECONCILE] %s %s %s (intent %s, upload %s) by %s: %s",
        action.provider,
        action.action,
        action.provider_file_id or "-",
        action.intent_id,
        action.upload_id,
        action.actor,
        action.reason,
    )


def _describe_dry(plan: Plan, report: ProviderReconciliation) -> None:
    report.adopted = [
        {"intent": i.id, "upload_id": i.upload_id, "file_id": f.file_id}
        for i, f in plan.adopt
    ]
    report.deleted = [
        {"intent": i.id, "upload_id": i.upload_id, "file_id": f.file_id}
        for i, f in plan.delete
    ]
    report.abandoned = [i.id for i in plan.abandon]

"""``BreakerRegistry``: one breaker per provider, restored from the event log at start-up.

registry = await BreakerRegistry.open("sqlite+aiosqlite:///breakers.db")
breaker = registry.get("kimi")
async with breaker.guard():
    ...
await registry.aclose()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, Self, TypeVar

from ..clock import Clock, SystemClock
from ..config import Settings, load_settings, normalize_database_url
from ..errors import ConfigError
from ..events.log import EventLog, EventQuery
from ..events.model import KIND_TRANSITION, StoredEvent, TransitionRecord
from ..events.recorder import EventRecorder
from ..retry.classify import Classifier
from ..retry.policy import GiveUp, RetryPolicy, RetryScheduled
from .breaker import CircuitBreaker, Judge, TrialGate
from .core import BreakerCore
from .replay import fold
from .state import BreakerState
from .window import FailureRateWindow

if TYPE_CHECKING:
    from ..events.follower import LogFollower

__all__ = ["BreakerRegistry"]

logger = logging.getLogger("breaker_service.breaker")

P = ParamSpec("P")
T = TypeVar("T")

TransitionListener = Callable[[CircuitBreaker, TransitionRecord], None]


class BreakerRegistry:
    """Owns the breakers, their event log and its recorder; an async context manager."""

    def __init__(
        self,
        *,
        settings: Settings,
        log: EventLog,
        clock: Clock,
        restored: dict[str, BreakerCore] | None = None,
        judge: Judge | None = None,
        classifier: Classifier | None = None,
    ) -> None:
        self.settings = settings
        self.log = log
        self.clock = clock
        self.judge = judge
        self.classifier = classifier or Classifier()
        self._restored = restored or {}
        self._breakers: dict[str, CircuitBreaker] = {}
        self._policies: dict[str, RetryPolicy] = {}
        self._listeners: list[TransitionListener] = []
        self._retry_listeners: list[Callable[[RetryScheduled], None]] = []
        self._give_up_listeners: list[Callable[[GiveUp], None]] = []
        self._prune_task: asyncio.Task[None] | None = None
        self.follower: LogFollower | None = None
        self.trial_gate: TrialGate | None = None
        self.recorder = EventRecorder(
            log,
            flush_interval=settings.event_log_flush_interval,
            batch_size=settings.event_log_batch_size,
            buffer_max=settings.event_log_buffer_max,
            snapshot_every=settings.event_log_snapshot_every,
            snapshot_source=self._snapshot_of,
            on_conflict=self._schedule_reload,
        )

    # -- lifecycle ---------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        database_url: str | None = None,
        *,
        settings: Settings | None = None,
        clock: Clock | None = None,
        log: EventLog | None = None,
        migrate: bool | None = None,
        judge: Judge | None = None,
        classifier: Classifier | None = None,
    ) -> BreakerRegistry:
        """Open the log (migrating if allowed), replay it, and start the flusher."""
        settings = settings or load_settings()
        clock = clock or SystemClock()
        url = normalize_database_url(database_url or settings.database_url)
        shared = settings.shared_scope_used()
        if shared and (log is not None or not url.startswith("postgresql")):
            msg = (
                "BREAKER_SCOPE=shared needs PostgreSQL (DATABASE_URL=postgresql+asyncpg://...): "
                "replicas share breaker state through it; SQLite and in-memory logs "
                "support BREAKER_SCOPE=instance only"
            )
            raise ConfigError(msg, variable="BREAKER_SCOPE")
        if log is None:
            from ..events.sql import SqlEventLog  # noqa: PLC0415 - SQL only when used
            from ..migrate import ensure_schema  # noqa: PLC0415

            sql_log = SqlEventLog.from_url(
                url,
                instance_id=settings.breaker_instance_id,
                on_malformed=settings.event_log_on_malformed,
                scope_of=_scopes(settings),
                replica_id=settings.breaker_replica_id,
            )
            try:
                await ensure_schema(
                    sql_log.engine,
                    migrate=settings.database_auto_migrate
                    if migrate is None
                    else migrate,
                )
            except BaseException:
                await sql_log.aclose()
                raise
            log = sql_log
        try:
            # Everything up to `cut` is in the replay; the follower takes it from there.
            cut = await log.last_id() if shared else 0
            restored = await cls._replay(log, settings)
        except BaseException:
            await log.aclose()
            raise
        registry = cls(
            settings=settings,
            log=log,
            clock=clock,
            restored=restored,
            judge=judge,
            classifier=classifier,
        )
        registry.recorder.start()
        registry._prune_task = asyncio.get_running_loop().create_task(
            registry._prune_periodically(), name="event-log-retention"
        )
        if shared:
            await registry._follow(url, cut)
        return registry

    async def _follow(self, url: str, after_id: int) -> None:
        """Shared scope: follow the fleet's events and hand out fleet-wide trial slots."""
        from ..events.follower import LogFollower  # noqa: PLC0415
        from ..events.trials import SqlTrialGate  # noqa: PLC0415

        engine = getattr(self.log, "engine", None)
        assert engine is not None
        self.trial_gate = SqlTrialGate(engine, owner=self.settings.breaker_instance_id)
        dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
        self.follower = LogFollower(self.log, self._adopt, after_id=after_id, dsn=dsn)
        await self.follower.start()

    async def _adopt(self, events: list[StoredEvent]) -> None:
        """Apply other replicas' events of shared breakers.

        Outcomes followed in the batch by a transition of their breaker are counted,
        not decided on: the tripping replica commits its failures together with its
        trip, and deciding again here would race that very transition, lose, and
        reload (silently: listeners would never hear of the trip).
        """
        me = self.settings.breaker_instance_id
        decided = {
            e.breaker: i for i, e in enumerate(events) if e.kind == KIND_TRANSITION
        }
        for i, event in enumerate(events):
            if (
                event.instance_id == me
                or self.log.stream_of(event.breaker) != event.stream
            ):
                continue
            await self.get(event.breaker).adopt(
                event, decide=decided.get(event.breaker, -1) < i
            )

    @staticmethod
    async def _replay(
        log: EventLog, settings: Settings, breaker: str | None = None
    ) -> dict[str, BreakerCore]:
        snapshots = await log.load_snapshots(breaker)
        events = await log.read_since_snapshots(snapshots, breaker)
        return fold(
            snapshots,
            events,
            lambda name: BreakerCore(
                name, FailureRateWindow.from_settings(settings.for_provider(name))
            ),
            skip_malformed=settings.event_log_on_malformed == "skip",
        )

    async def aclose(self) -> None:
        """Flush every event (with snapshots) and close the log."""
        if self.follower is not None:
            await self.follower.aclose()
        if self._prune_task is not None:
            self._prune_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prune_task
        for name in self._breakers:
            self.recorder.request_snapshot(name)
        await self.recorder.aclose()
        await self.log.aclose()

    async def _prune_periodically(self, every: float = 3600.0) -> None:
        """Apply ``EVENT_LOG_RETENTION_DAYS`` once an hour (and a minute after start)."""
        await asyncio.sleep(60.0)
        while True:
            removed = await self.prune()
            if removed:
                logger.info(
                    "[CIRCUIT] pruned %d outcome events past the retention", removed
                )
            await asyncio.sleep(every)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def flush(self) -> bool:
        """Write buffered events now; ``False`` if the store is unavailable."""
        return await self.recorder.flush()

    # -- breakers ----------------------------------------------------------------------

    def get(self, name: str) -> CircuitBreaker:
        """The breaker for ``name``, created (or restored from the log) on first use."""
        breaker = self._breakers.get(name)
        if breaker is not None:
            return breaker
        if not name or len(name) > 200 or "@" in name:
            msg = f"breaker names must be 1 to 200 characters without '@', got {name!r}"
            raise ValueError(msg)
        settings = self.settings.for_provider(name)
        gate = self.trial_gate if settings.breaker_scope == "shared" else None
        breaker = CircuitBreaker(
            name,
            settings=settings,
            clock=self.clock,
            recorder=self.recorder,
            judge=self.judge,
            on_transition=self._notify,
            reload=self._reload,
            trial_gate=gate,
            stream=self.log.stream_of(name),
        )
        core = self._restored.pop(name, None)
        if core is not None:
            breaker.restore(core)
        self._breakers[name] = breaker
        return breaker

    def __contains__(self, name: object) -> bool:
        return name in self._breakers or name in self._restored

    def names(self) -> list[str]:
        """Every breaker known to this registry or its log, sorted."""
        return sorted({*self._breakers, *self._restored})

    def breakers(self) -> list[CircuitBreaker]:
        """Every breaker, restored ones included."""
        return [self.get(name) for name in self.names()]

    def add_listener(self, listener: TransitionListener) -> None:
        """Call ``listener(breaker, record)`` after every transition (metrics, UIs)."""
        self._listeners.append(listener)

    def add_retry_listener(
        self,
        on_retry: Callable[[RetryScheduled], None] | None = None,
        on_give_up: Callable[[GiveUp], None] | None = None,
    ) -> None:
        """Hear of every scheduled retry and every give-up (metrics)."""
        if on_retry is not None:
            self._retry_listeners.append(on_retry)
        if on_give_up is not None:
            self._give_up_listeners.append(on_give_up)

    def _retry_scheduled(self, event: RetryScheduled) -> None:
        for listener in self._retry_listeners:
            listener(event)

    def _gave_up(self, event: GiveUp) -> None:
        for listener in self._give_up_listeners:
            listener(event)

    def _notify(self, breaker: CircuitBreaker, record: TransitionRecord) -> None:
        for listener in self._listeners:
            try:
                listener(breaker, record)
            except Exception:
                logger.exception("[CIRCUIT] transition listener failed")

    def _snapshot_of(self, name: str) -> Any:
        breaker = self._breakers.get(name)
        return breaker.snapshot() if breaker is not None else None

    async def _reload(self, breaker: CircuitBreaker) -> None:
        """Re-read one breaker from the log after losing a write race."""
        await self.recorder.flush()
        cores = await self._replay(self.log, self.settings, breaker.name)
        core = cores.get(breaker.name)
        if core is None:
            return
        before = breaker.version
        breaker.restore(core)
        record = breaker.last_transition
        if breaker.version != before and record is not None:
            logger.log(
                logging.WARNING
                if breaker.state.value in ("open", "forced_open")
                else logging.INFO,
                "[CIRCUIT] %s: now %s (v%d, from the log: %s)",
                breaker.name,
                breaker.state.value,
                breaker.version,
                record.reason,
            )
            self._notify(breaker, record)

    def _schedule_reload(self, name: str) -> None:
        breaker = self._breakers.get(name)
        if breaker is not None:
            asyncio.get_running_loop().create_task(self._reload(breaker))

    # -- retries and resilient calls -------------------------------------------------

    def retry_policy(self, name: str) -> RetryPolicy:
        """The retry policy for provider ``name``: its settings, one retry budget per name."""
        policy = self._policies.get(name)
        if policy is None:
            policy = RetryPolicy.from_settings(
                self.settings.for_provider(name),
                name=name,
                classifier=self.classifier,
                clock=self.clock,
                on_retry=self._retry_scheduled,
                on_give_up=self._gave_up,
            )
            self._policies[name] = policy
        return policy

    async def call(
        self,
        name: str,
        fn: Callable[P, Awaitable[T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """The resilient call: retries around the breaker, each attempt guarded by it.

        An open breaker stops the retries at once with ``CircuitOpenError``.
        """
        breaker = self.get(name)
        return await self.retry_policy(name).call(breaker.call, fn, *args, **kwargs)

    # -- audit ---------------------------------------------------------------------------

    async def history(
        self,
        name: str,
        *,
        after_id: int = 0,
        limit: int | None = 100,
        kinds: list[str] | None = None,
        since: datetime | float | None = None,
        until: datetime | float | None = None,
    ) -> list[StoredEvent]:
        """A breaker's events (transitions and outcomes), oldest first, paged by id."""
        await self.recorder.flush()
        return await self.log.read(
            EventQuery(
                breaker=name,
                after_id=after_id,
                limit=limit,
                kinds=kinds,
                since=_epoch(since),
                until=_epoch(until),
            )
        )

    async def state_at(self, name: str, at: datetime | float) -> BreakerState:
        """The state ``name`` was in at a past time (CLOSED before its first transition)."""
        await self.recorder.flush()
        moment = _epoch(at)
        assert moment is not None
        event = await self.log.last_transition_before(name, moment)
        return (
            BreakerState(event.to_state)
            if event is not None and event.to_state
            else BreakerState.CLOSED
        )

    async def prune(self) -> int:
        """Drop outcome events past the retention that snapshots cover (transitions stay)."""
        await self.recorder.flush()
        return await self.recorder.prune(
            self.settings.event_log_retention_days * 86400, self.clock.time()
        )

    def health(self) -> dict[str, Any]:
        """Whether the event store keeps up: degraded flag, backlog, last error."""
        return {
            "degraded": self.recorder.degraded,
            "backlog": self.recorder.backlog,
            "written": self.recorder.written,
            "coalesced": self.recorder.coalesced,
            "last_error": self.recorder.last_error,
            "last_flush_seconds": self.recorder.last_flush_seconds,
        }

    async def ping(self) -> None:
        """Raise ``EventLogError`` unless the store answers."""
        await self.log.ping()

    @property
    def degraded(self) -> bool:
        """True while events cannot be written (breakers still protect in memory)."""
        return self.recorder.degraded


def _scopes(settings: Settings) -> Callable[[str], str]:
    """``name -> "instance" | "shared"`` from the settings, per breaker overrides included."""
    cache: dict[str, str] = {}

    def scope_of(name: str) -> str:
        if name not in cache:
            cache[name] = settings.for_provider(name).breaker_scope
        return cache[name]

    return scope_of


def _epoch(value: datetime | float | None) -> float | None:
    if value is None or isinstance(value, int | float):
        return value
    if value.tzinfo is None:
        msg = "timestamps must be timezone-aware (UTC)"
        raise ValueError(msg)
    return value.timestamp()

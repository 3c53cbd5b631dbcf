"""``BreakerRegistry``: one breaker per provider, restored from the event log.

registry = await BreakerRegistry.open("sqlite+aiosqlite:///breakers.db")
breaker = registry.get("kimi")
async with breaker.guard():
    ...
await registry.aclose()

The registry maps names to breakers (settings resolved once per name) and owns the
event log, its recorder and the fleet follower. The resilient call, the audit
queries, the listeners and retention are their own classes (``resilient``,
``audit``, ``listeners``, ``maintenance``); the registry's methods of the same names
are one-line conveniences over them. Building a registry from settings and a
database URL is the composition root's job (``breaker_service.service``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from types import TracebackType
from typing import Any, ParamSpec, Protocol, Self, TypeVar

from ..clock import Clock, SystemClock
from ..config import ResilienceSettings, Settings, load_settings
from ..errors import ConfigError
from ..events.log import EventLog
from ..events.model import KIND_TRANSITION, StoredEvent
from ..events.recorder import EventRecorder
from ..retry.classify import Classifier
from ..retry.policy import GiveUp, RetryPolicy, RetryScheduled
from .audit import AuditReader
from .breaker import CircuitBreaker, Judge, TrialGate
from .core import BreakerCore
from .listeners import ListenerHub, TransitionListener
from .maintenance import Maintenance
from .replay import fold
from .resilient import ResilientCalls
from .state import BreakerState
from .window import FailureRateWindow

__all__ = ["BreakerRegistry", "check_scope", "replay_cores", "scope_resolver"]

logger = logging.getLogger("breaker_service.breaker")

P = ParamSpec("P")
T = TypeVar("T")


class Follower(Protocol):
    """Tails other replicas' events into ``BreakerRegistry.adopt`` (fleet mode)."""

    after_id: int  # the last event id applied
    applied: int  # events applied so far
    listening: bool  # woken by notifications (else polling only)

    async def start(self) -> None:
        """Start following (after the replay's last id)."""
        ...

    async def aclose(self) -> None:
        """Stop following."""
        ...


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
        trial_gate: TrialGate | None = None,
    ) -> None:
        self.settings = settings
        self.log = log
        self.clock = clock
        self.judge = judge
        self.trial_gate = trial_gate
        self.follower: Follower | None = None
        self._restored = restored or {}
        self._breakers: dict[str, CircuitBreaker] = {}
        self._settings_of: dict[str, ResilienceSettings] = {}
        self.listeners = ListenerHub()
        self.recorder = EventRecorder(
            log,
            flush_interval=settings.event_log_flush_interval,
            batch_size=settings.event_log_batch_size,
            buffer_max=settings.event_log_buffer_max,
            snapshot_every=settings.event_log_snapshot_every,
            snapshot_source=self._snapshot_of,
            on_conflict=self._schedule_reload,
            clock=clock,
        )
        self.resilient = ResilientCalls(
            self.get,
            self.settings_for,
            classifier=classifier or Classifier(),
            clock=clock,
            listeners=self.listeners,
        )
        self.audit = AuditReader(log, self.recorder)
        self.maintenance = Maintenance(
            self.recorder,
            clock,
            retention_seconds=settings.event_log_retention_days * 86400,
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
        """Open the log (migrating if allowed), replay it, and start the flusher.

        A convenience for embedded use: with ``log`` the registry is built here; with
        a URL (or ``DATABASE_URL``) the composition root opens the database for it.
        """
        settings = settings or load_settings()
        clock = clock or SystemClock()
        if log is not None:
            check_scope(settings, postgres=False)
            return await cls.restore(
                log, settings=settings, clock=clock, judge=judge, classifier=classifier
            )
        # The composition root imports this module; importing it at the top would be
        # a cycle. This convenience is the one place that reaches up to it.
        from ..service import Service  # noqa: PLC0415 - deferred: cycle, see above

        service = await Service.open(
            settings,
            clock=clock,
            database_url=database_url,
            migrate=migrate,
            judge=judge,
            classifier=classifier,
            uploads=False,
        )
        return service.registry

    @classmethod
    async def restore(
        cls,
        log: EventLog,
        *,
        settings: Settings,
        clock: Clock,
        judge: Judge | None = None,
        classifier: Classifier | None = None,
        trial_gate: TrialGate | None = None,
    ) -> BreakerRegistry:
        """Replay ``log`` into a new registry and start its flusher and retention.

        The registry owns ``log`` from here on (``aclose()`` closes it), and closes
        it too if the replay fails.
        """
        try:
            restored = await replay_cores(log, settings)
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
            trial_gate=trial_gate,
        )
        registry.recorder.start()
        registry.maintenance.start()
        return registry

    async def follow(self, follower: Follower) -> None:
        """Start ``follower`` (other replicas' events); closed with the registry."""
        self.follower = follower
        await follower.start()

    async def adopt(self, events: list[StoredEvent]) -> None:
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

    async def aclose(self) -> None:
        """Flush every event (with snapshots) and close the log."""
        if self.follower is not None:
            await self.follower.aclose()
        await self.maintenance.aclose()
        for name in self._breakers:
            self.recorder.request_snapshot(name)
        await self.recorder.aclose()
        await self.log.aclose()

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

    def settings_for(self, name: str) -> ResilienceSettings:
        """``name``'s resilience settings (its ``VAR__NAME`` overrides), resolved once."""
        resolved = self._settings_of.get(name)
        if resolved is None:
            resolved = self._settings_of[name] = self.settings.for_provider(name)
        return resolved

    def get(self, name: str) -> CircuitBreaker:
        """The breaker for ``name``, created (or restored from the log) on first use."""
        breaker = self._breakers.get(name)
        if breaker is not None:
            return breaker
        if not name or len(name) > 200 or "@" in name:
            msg = f"breaker names must be 1 to 200 characters without '@', got {name!r}"
            raise ValueError(msg)
        settings = self.settings_for(name)
        gate = self.trial_gate if settings.breaker_scope == "shared" else None
        breaker = CircuitBreaker(
            name,
            settings=settings,
            clock=self.clock,
            recorder=self.recorder,
            judge=self.judge,
            on_transition=self.listeners.transition,
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

    def _snapshot_of(self, name: str) -> Any:
        breaker = self._breakers.get(name)
        return breaker.snapshot() if breaker is not None else None

    async def _reload(self, breaker: CircuitBreaker) -> None:
        """Re-read one breaker from the log after losing a write race."""
        await self.recorder.flush()
        cores = await replay_cores(self.log, self.settings, breaker.name)
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
            self.listeners.transition(breaker, record)

    def _schedule_reload(self, name: str) -> None:
        breaker = self._breakers.get(name)
        if breaker is not None:
            asyncio.get_running_loop().create_task(self._reload(breaker))

    # -- conveniences over the parts -----------------------------------------------------

    def add_listener(self, listener: TransitionListener) -> None:
        """Call ``listener(breaker, record)`` after every transition (metrics, UIs)."""
        self.listeners.add_transition_listener(listener)

    def add_retry_listener(
        self,
        on_retry: Callable[[RetryScheduled], None] | None = None,
        on_give_up: Callable[[GiveUp], None] | None = None,
    ) -> None:
        """Hear of every scheduled retry and every give-up (metrics)."""
        self.listeners.add_retry_listener(on_retry, on_give_up)

    @property
    def classifier(self) -> Classifier:
        """What the resilient call treats as transient."""
        return self.resilient.classifier

    def retry_policy(self, name: str) -> RetryPolicy:
        """The retry policy for provider ``name``: its settings, one retry budget per name."""
        return self.resilient.policy(name)

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
        return await self.resilient.call(name, fn, *args, **kwargs)

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
        return await self.audit.history(
            name, after_id=after_id, limit=limit, kinds=kinds, since=since, until=until
        )

    async def state_at(self, name: str, at: datetime | float) -> BreakerState:
        """The state ``name`` was in at a past time (CLOSED before its first transition)."""
        return await self.audit.state_at(name, at)

    async def prune(self) -> int:
        """Drop outcome events past the retention that snapshots cover (transitions stay)."""
        return await self.maintenance.prune()

    def health(self) -> dict[str, Any]:
        """Whether the event store keeps up: degraded flag, backlog, last error."""
        return {
            "degraded": self.recorder.degraded,
            "backlog": self.recorder.backlog,
            "written": self.recorder.written,
            "coalesced": self.recorder.coalesced,
            "dead_lettered": self.recorder.dead_lettered,
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


async def replay_cores(
    log: EventLog, settings: Settings, breaker: str | None = None
) -> dict[str, BreakerCore]:
    """Snapshots plus the events after them, folded into one core per breaker."""
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


def check_scope(settings: Settings, *, postgres: bool) -> None:
    """Refuse ``BREAKER_SCOPE=shared`` unless the log is on PostgreSQL."""
    if settings.shared_scope_used() and not postgres:
        msg = (
            "BREAKER_SCOPE=shared needs PostgreSQL (DATABASE_URL=postgresql+asyncpg://...): "
            "replicas share breaker state through it; SQLite and in-memory logs "
            "support BREAKER_SCOPE=instance only"
        )
        raise ConfigError(msg, variable="BREAKER_SCOPE")


def scope_resolver(settings: Settings) -> Callable[[str], str]:
    """``name -> "instance" | "shared"`` from the settings, per breaker overrides included."""
    cache: dict[str, str] = {}

    def scope_of(name: str) -> str:
        if name not in cache:
            cache[name] = settings.for_provider(name).breaker_scope
        return cache[name]

    return scope_of

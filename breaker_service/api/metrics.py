"""Prometheus metrics for one service instance, on a registry of its own.

Breaker state, call outcomes and rejections are read from the breakers at scrape
time (no work on the hot path); transitions, retries and budget exhaustions come
from listeners; upload latency from the upload endpoints; event-log and outbox
figures are refreshed just before each scrape.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..breaker import BreakerRegistry, BreakerState, CircuitBreaker
from ..events.model import TransitionRecord
from ..retry.policy import GiveUp, RetryScheduled

__all__ = ["ServiceMetrics"]

_STATES = [s.value for s in BreakerState]


class _BreakerCollector(Collector):
    """State, outcome counts and rejections of every breaker, read at scrape time."""

    def __init__(self, breakers: BreakerRegistry) -> None:
        self._breakers = breakers

    def collect(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "breaker_service_breaker_state",
            "1 for the state each breaker is in",
            labels=["breaker", "state"],
        )
        calls = CounterMetricFamily(
            "breaker_service_breaker_calls",
            "guarded calls by outcome",
            labels=["breaker", "outcome"],
        )
        rejected = CounterMetricFamily(
            "breaker_service_breaker_rejections",
            "calls refused while open or half-open",
            labels=["breaker"],
        )
        for breaker in self._breakers.breakers():
            for value in _STATES:
                state.add_metric(
                    [breaker.name, value], 1.0 if breaker.state.value == value else 0.0
                )
            for outcome, count in (
                ("success", breaker.successes),
                ("failure", breaker.failures),
                ("timeout", breaker.timeouts),
                ("ignored", breaker.ignored),
            ):
                calls.add_metric([breaker.name, outcome], float(count))
            rejected.add_metric([breaker.name], float(breaker.rejections))
        yield state
        yield calls
        yield rejected


class ServiceMetrics:
    """The service's metrics; ``render()`` gives the Prometheus text format."""

    def __init__(self, breakers: BreakerRegistry) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_BreakerCollector(breakers))
        self.transitions = Counter(
            "breaker_service_breaker_transitions",
            "breaker transitions",
            ["breaker", "from_state", "to_state"],
            registry=self.registry,
        )
        self.retries = Counter(
            "breaker_service_retries_scheduled",
            "retries scheduled",
            ["provider"],
            registry=self.registry,
        )
        self.budget_exhausted = Counter(
            "breaker_service_retry_budget_exhausted",
            "retries refused by the retry budget",
            ["provider"],
            registry=self.registry,
        )
        self.upload_seconds = Histogram(
            "breaker_service_upload_seconds",
            "upload latency through the orchestrator",
            ["outcome"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry,
        )
        self.event_backlog = Gauge(
            "breaker_service_event_log_backlog",
            "events waiting to be written",
            registry=self.registry,
        )
        self.event_flush_seconds = Gauge(
            "breaker_service_event_log_flush_seconds",
            "duration of the last event-log flush",
            registry=self.registry,
        )
        self.event_log_degraded = Gauge(
            "breaker_service_event_log_degraded",
            "1 while the event store is unavailable",
            registry=self.registry,
        )
        self.event_dead_letters = Gauge(
            "breaker_service_event_log_dead_letters",
            "events the store refused for their content, set aside since start",
            registry=self.registry,
        )
        self.outbox_pending = Gauge(
            "breaker_service_outbox_pending",
            "tracking rows waiting for Supabase",
            registry=self.registry,
        )
        self.outbox_failed = Gauge(
            "breaker_service_outbox_failed",
            "tracking rows parked as failed",
            registry=self.registry,
        )
        self.outbox_oldest_age = Gauge(
            "breaker_service_outbox_oldest_pending_age_seconds",
            "age of the oldest pending tracking row",
            registry=self.registry,
        )
        self.upload_intents_open = Gauge(
            "breaker_service_upload_intents_open",
            "upload intents neither completed nor closed (under way, or left by a crash)",
            registry=self.registry,
        )
        self.provider_files = Gauge(
            "breaker_service_provider_files",
            "files a provider held at the last reconciliation",
            labelnames=["provider"],
            registry=self.registry,
        )
        self.provider_file_limit = Gauge(
            "breaker_service_provider_file_limit",
            "files a provider keeps per account (its quota)",
            labelnames=["provider"],
            registry=self.registry,
        )
        breakers.add_listener(self._on_transition)
        breakers.add_retry_listener(self._on_retry, self._on_give_up)
        self._breakers = breakers

    def _on_transition(self, breaker: CircuitBreaker, record: TransitionRecord) -> None:
        self.transitions.labels(breaker.name, record.from_state, record.to_state).inc()

    def _on_retry(self, event: RetryScheduled) -> None:
        self.retries.labels(event.name).inc()

    def _on_give_up(self, event: GiveUp) -> None:
        if event.reason == "retry budget exhausted":
            self.budget_exhausted.labels(event.name).inc()

    def refresh(self, outbox: dict[str, Any] | None) -> None:
        """Update the gauges read from the event log and the outbox."""
        health = self._breakers.health()
        self.event_backlog.set(health["backlog"])
        self.event_flush_seconds.set(health["last_flush_seconds"])
        self.event_log_degraded.set(1.0 if health["degraded"] else 0.0)
        self.event_dead_letters.set(health["dead_lettered"])
        if outbox is not None:
            self.outbox_pending.set(outbox["pending"])
            self.outbox_failed.set(outbox["failed"])
            self.outbox_oldest_age.set(outbox["oldest_pending_age_seconds"] or 0.0)

    def refresh_uploads(
        self, open_intents: int | None, files: dict[str, dict[str, Any]]
    ) -> None:
        """Update the open-intent and provider file-count gauges."""
        if open_intents is not None:
            self.upload_intents_open.set(open_intents)
        for provider, listed in files.items():
            self.provider_files.labels(provider).set(listed["count"])
            if listed.get("limit") is not None:
                self.provider_file_limit.labels(provider).set(listed["limit"])

    def render(self) -> bytes:
        """The Prometheus exposition text."""
        return generate_latest(self.registry)

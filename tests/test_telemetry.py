"""OpenTelemetry spans and metrics for resilient calls, read back from the SDK's memory.

A real registry (in-memory event log, ``FakeClock``) and functions that fail, then
succeed; the SDK's ``InMemorySpanExporter`` and ``InMemoryMetricReader`` collect what
``breaker_service.telemetry`` produced. Without OpenTelemetry nothing changes.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from breaker_helpers import memory_registry
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode

from breaker_service.breaker import BreakerRegistry
from breaker_service.clock import FakeClock
from breaker_service.errors import CircuitOpenError, ProviderUnavailable
from breaker_service.telemetry import Telemetry, instrument

UNAVAILABLE = "breaker_service.errors.ProviderUnavailable"
SECRET = "sk-live-0123456789abcdef"


@dataclass
class Otel:
    """The instrumented registry and what the SDK collected."""

    registry: BreakerRegistry
    clock: FakeClock
    telemetry: Telemetry
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider

    def finished(self) -> list[ReadableSpan]:
        """The spans ended so far."""
        return list(self.spans.get_finished_spans())

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """(attributes, data point) of metric ``name``, from a fresh collection."""
        data = self.reader.get_metrics_data()
        found: list[tuple[dict[str, Any], Any]] = []
        if data is None:
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found.extend(
                            (dict(p.attributes or {}), p)
                            for p in metric.data.data_points
                        )
        return found

    def values(self, name: str) -> dict[tuple[tuple[str, Any], ...], float]:
        """A counter or gauge's values keyed by its sorted attributes."""
        result: dict[tuple[tuple[str, Any], ...], float] = {}
        for attributes, point in self.points(name):
            assert isinstance(point, NumberDataPoint)
            result[tuple(sorted(attributes.items()))] = point.value
        return result


def key(**attributes: Any) -> tuple[tuple[str, Any], ...]:
    """A ``values`` key from keyword attributes (dots spelled as ``__``)."""
    return tuple(sorted((k.replace("__", "."), v) for k, v in attributes.items()))


class Flaky:
    """Fails with a 503 ``failures`` times, then answers ``"file-1"``."""

    def __init__(self, failures: int, message: str = "kimi: HTTP 503") -> None:
        self.failures = failures
        self.message = message
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise ProviderUnavailable(self.message, provider="kimi", status=503)
        return "file-1"


pytestmark = pytest.mark.usefixtures("testing_mode_off")


@pytest.fixture
async def otel() -> AsyncIterator[Otel]:
    """A registry without jitter, opening after 3 failures, instrumented."""
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    clock = FakeClock()
    async with memory_registry(
        clock,
        retry_jitter=False,
        circuit_breaker_failure_threshold=3,
        circuit_breaker_count="attempts",
    ) as registry:
        telemetry = instrument(
            registry, tracer_provider=tracer_provider, meter_provider=meter_provider
        )
        yield Otel(registry, clock, telemetry, spans, reader, tracer_provider)
    meter_provider.shutdown()
    tracer_provider.shutdown()


async def test_a_call_that_succeeds_after_retries(otel: Otel) -> None:
    """One span with the attempts and a retry event per wait; counters and waits."""
    assert otel.telemetry.enabled
    assert await otel.telemetry.call("kimi", Flaky(2)) == "file-1"
    assert otel.clock.sleeps == [1.0, 2.0]

    [span] = otel.finished()
    assert span.name == "resilient_call kimi"
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes or {}) == {
        "breaker_service.breaker.name": "kimi",
        "breaker_service.call.attempt_count": 3,
    }
    events = [(e.name, dict(e.attributes or {})) for e in span.events]
    assert events == [
        (
            "breaker_service.retry",
            {
                "breaker_service.breaker.name": "kimi",
                "error.type": UNAVAILABLE,
                "http.response.status_code": 503,
                "breaker_service.retry.attempt": attempt,
                "breaker_service.retry.delay": delay,
                "exception.message": "kimi: HTTP 503",
            },
        )
        for attempt, delay in ((1, 1.0), (2, 2.0))
    ]

    retry = key(
        breaker_service__breaker__name="kimi",
        error__type=UNAVAILABLE,
        http__response__status_code=503,
    )
    assert otel.values("breaker_service.retries") == {retry: 2}
    [(attributes, waits)] = otel.points("breaker_service.retry.wait.duration")
    assert isinstance(waits, HistogramDataPoint)
    assert (waits.count, waits.sum, waits.max) == (2, 3.0, 2.0)
    assert tuple(sorted(attributes.items())) == retry
    attempts = otel.values("breaker_service.breaker.outcomes")
    assert (
        attempts[
            key(
                breaker_service__breaker__name="kimi",
                breaker_service__outcome="failure",
            )
        ]
        == 2
    )
    assert (
        attempts[
            key(
                breaker_service__breaker__name="kimi",
                breaker_service__outcome="success",
            )
        ]
        == 1
    )
    assert otel.values("breaker_service.retry.give_ups") == {}
    assert otel.values("breaker_service.breaker.transitions") == {}


async def test_give_up_transition_and_rejection(otel: Otel) -> None:
    """The breaker opens on the third failure; the next call is refused at once."""
    with pytest.raises(ProviderUnavailable):
        await otel.telemetry.call("kimi", Flaky(10))
    with pytest.raises(CircuitOpenError):
        await otel.telemetry.call("kimi", Flaky(0))

    failed, refused = otel.finished()
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "kimi: HTTP 503"
    assert failed.attributes is not None
    assert failed.attributes["error.type"] == UNAVAILABLE
    assert failed.attributes["breaker_service.call.attempt_count"] == 3
    names = [e.name for e in failed.events]
    assert names == [
        "breaker_service.retry",
        "breaker_service.retry",
        "breaker_service.breaker.transition",
        "breaker_service.retry.give_up",
        "exception",
    ]
    transition = dict(failed.events[2].attributes or {})
    assert transition == {
        "breaker_service.breaker.name": "kimi",
        "breaker_service.breaker.from_state": "closed",
        "breaker_service.breaker.to_state": "open",
        "breaker_service.breaker.reason": "3 consecutive failures",
    }
    give_up = dict(failed.events[3].attributes or {})
    assert give_up["breaker_service.retry.give_up.cause"] == "attempts"
    assert give_up["breaker_service.call.attempt_count"] == 3

    assert refused.status.status_code is StatusCode.ERROR
    assert refused.attributes is not None
    assert refused.attributes["error.type"] == "breaker_service.errors.CircuitOpenError"
    assert refused.attributes["breaker_service.breaker.rejected"] is True

    assert otel.values("breaker_service.breaker.rejections") == {
        key(breaker_service__breaker__name="kimi"): 1
    }
    assert otel.values("breaker_service.breaker.transitions") == {
        key(
            breaker_service__breaker__name="kimi",
            breaker_service__breaker__from_state="closed",
            breaker_service__breaker__to_state="open",
        ): 1
    }
    assert otel.values("breaker_service.retry.give_ups") == {
        key(
            breaker_service__breaker__name="kimi",
            error__type=UNAVAILABLE,
            http__response__status_code=503,
            breaker_service__retry__give_up__cause="attempts",
        ): 1
    }
    status = otel.values("breaker_service.breaker.status")
    assert (
        status[
            key(
                breaker_service__breaker__name="kimi",
                breaker_service__breaker__state="open",
            )
        ]
        == 1
    )
    assert (
        status[
            key(
                breaker_service__breaker__name="kimi",
                breaker_service__breaker__state="closed",
            )
        ]
        == 0
    )


async def test_keys_never_reach_spans(otel: Otel) -> None:
    """An error quoting a key shows ``***`` in status, events and stack trace."""
    with pytest.raises(ProviderUnavailable):
        await otel.telemetry.call("kimi", Flaky(3, f"denied for {SECRET}"))
    [span] = otel.finished()
    texts = [span.status.description or ""]
    for event in span.events:
        texts += [str(value) for value in (event.attributes or {}).values()]
    assert all(SECRET not in text for text in texts)
    assert "denied for sk-***" in texts


async def test_retries_show_on_the_callers_own_span(otel: Otel) -> None:
    """Through ``registry.call`` inside a request span, the retry events land there."""
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("POST /uploads"):
        assert await otel.registry.call("kimi", Flaky(1)) == "file-1"
    [request] = otel.finished()
    assert [e.name for e in request.events] == ["breaker_service.retry"]


async def test_close_stops_everything(otel: Otel) -> None:
    """After ``close()`` calls make no spans and count nothing."""
    otel.telemetry.close()
    assert not otel.telemetry.enabled
    assert await otel.telemetry.call("kimi", Flaky(1)) == "file-1"
    assert otel.finished() == []
    assert otel.values("breaker_service.retries") == {}
    assert otel.values("breaker_service.breaker.outcomes") == {}


def test_without_opentelemetry_nothing_changes() -> None:
    """With ``opentelemetry`` unimportable, ``instrument`` gives an inert handle.

    Run in a fresh interpreter where the package is hidden, as if not installed.
    """
    code = textwrap.dedent(
        """
        import asyncio, sys
        sys.modules["opentelemetry"] = None  # importing it now raises ImportError

        import breaker_service
        from breaker_service import BreakerRegistry, FakeClock, MemoryEventLog
        from breaker_service.config import load_settings
        from breaker_service.telemetry import AVAILABLE, instrument

        async def main():
            settings = load_settings(env_file=None, retry_jitter=False)
            registry = await BreakerRegistry.open(
                settings=settings, clock=FakeClock(), log=MemoryEventLog()
            )
            telemetry = instrument(registry)
            calls = []

            async def upload():
                calls.append(1)
                if len(calls) == 1:
                    raise ConnectionError("reset")
                return "file-1"

            assert not AVAILABLE and not telemetry.enabled
            assert await telemetry.call("kimi", upload) == "file-1"
            with telemetry.span("kimi"):
                assert await registry.call("kimi", upload) == "file-1"
            await registry.aclose()

        asyncio.run(main())
        print("inert")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "inert"


def test_importing_the_package_does_not_import_opentelemetry() -> None:
    """Only ``breaker_service.telemetry`` touches OpenTelemetry."""
    code = (
        "import sys, breaker_service, breaker_service.breaker, breaker_service.retry; "
        "print(any(m.startswith('opentelemetry') for m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "False"

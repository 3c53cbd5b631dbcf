"""OpenTelemetry spans and metrics for resilient calls, when ``opentelemetry-api`` is there.

``instrument(registry)`` hooks into the registry's public listeners; it is opt-in and
changes nothing when OpenTelemetry is not installed (the handle is then inert)::

    telemetry = instrument(registry)  # global providers, or pass your own
    await telemetry.call("kimi", upload, path)  # one span around the resilient call

Metrics (names, units and attributes follow the semantic-convention naming rules;
attributes of our own live under ``breaker_service.``):

- ``breaker_service.breaker.outcomes`` ``{outcome}``: what each breaker counted (calls, or attempts with CIRCUIT_BREAKER_COUNT=attempts) by outcome
  (``success``, ``failure``, ``timeout``, ``ignored``), read from the breakers at
  collection time, like the Prometheus collector (no work on the hot path);
- ``breaker_service.breaker.rejections`` ``{call}``: calls refused with
  ``CircuitOpenError``, read the same way;
- ``breaker_service.breaker.status`` ``1``: 1 for the state each breaker is in;
- ``breaker_service.breaker.transitions`` ``{transition}``: with from and to state;
- ``breaker_service.retries`` ``{retry}`` and ``breaker_service.retry.wait.duration``
  ``s``: scheduled retries and their waits, with ``error.type`` and
  ``http.response.status_code``;
- ``breaker_service.retry.give_ups`` ``{call}``: with ``error.type`` and the cause.

Retries, give-ups and transitions are also added as events to the span current when
they happen (ours, or the caller's own request span). Error messages on spans are
scrubbed of keys, as in the logs.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import traceback
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import ParamSpec, TypeVar

from . import __version__
from .breaker import BreakerRegistry, BreakerState, CircuitBreaker
from .errors import CircuitOpenError
from .events.model import TransitionRecord
from .redaction import error_text, scrub
from .retry.outcome import GiveUp, RetryScheduled, attempts_of

try:  # The one optional dependency (the ``otel`` extra); without it all is inert.
    from opentelemetry import metrics, trace
    from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation
    from opentelemetry.trace import Span, Status, StatusCode, Tracer, TracerProvider
except ImportError:
    AVAILABLE = False
else:
    AVAILABLE = True

__all__ = ["AVAILABLE", "Telemetry", "instrument"]

logger = logging.getLogger("breaker_service.telemetry")

P = ParamSpec("P")
T = TypeVar("T")

SCOPE = "breaker_service"
BREAKER = "breaker_service.breaker.name"
STATE = "breaker_service.breaker.state"
FROM_STATE = "breaker_service.breaker.from_state"
TO_STATE = "breaker_service.breaker.to_state"
OUTCOME = "breaker_service.outcome"
ATTEMPT = "breaker_service.retry.attempt"
DELAY = "breaker_service.retry.delay"
CAUSE = "breaker_service.retry.give_up.cause"
ATTEMPTS = "breaker_service.call.attempt_count"
ERROR_TYPE = "error.type"
STATUS_CODE = "http.response.status_code"

WAIT_BUCKETS = (
    0.0,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
)
"""Retry waits range from zero (full jitter) to ``RETRY_MAX_DELAY`` (60 s by default)."""

_STATES = [state.value for state in BreakerState]
_OUTCOMES = ("success", "failure", "timeout", "ignored")

_call_retries: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "breaker_service_call_retries", default=None
)
"""The retry count of the resilient call whose span is current, if any."""


def error_type(exc: BaseException) -> str:
    """``error.type`` for an exception: its class's canonical name."""
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


class Telemetry:
    """The handle ``instrument`` returns: spans around calls, and a switch to stop.

    Inert (``enabled`` is False) when OpenTelemetry is not installed: ``span`` then
    does nothing and ``call`` is ``registry.call``.
    """

    def __init__(
        self,
        registry: BreakerRegistry,
        tracer: Tracer | None = None,
        meter: Meter | None = None,
    ) -> None:
        self.registry = registry
        self._tracer = tracer
        self._active = tracer is not None and meter is not None
        if meter is None or not self._active:
            return
        self._transitions = meter.create_counter(
            "breaker_service.breaker.transitions",
            unit="{transition}",
            description="Breaker state transitions.",
        )
        self._retries = meter.create_counter(
            "breaker_service.retries",
            unit="{retry}",
            description="Retries scheduled after a transient failure.",
        )
        self._give_ups = meter.create_counter(
            "breaker_service.retry.give_ups",
            unit="{call}",
            description="Calls whose transient failure was not retried any more.",
        )
        self._waits = meter.create_histogram(
            "breaker_service.retry.wait.duration",
            unit="s",
            description="Backoff waits before a retry.",
            explicit_bucket_boundaries_advisory=WAIT_BUCKETS,
        )
        meter.create_observable_counter(
            "breaker_service.breaker.outcomes",
            callbacks=[self._observe_attempts],
            unit="{outcome}",
            description="Outcomes counted by each breaker (calls or attempts), by outcome.",
        )
        meter.create_observable_counter(
            "breaker_service.breaker.rejections",
            callbacks=[self._observe_rejections],
            unit="{call}",
            description="Calls refused by an open breaker (CircuitOpenError).",
        )
        meter.create_observable_gauge(
            "breaker_service.breaker.status",
            callbacks=[self._observe_states],
            unit="1",
            description="1 for the state each breaker is in, 0 for the others.",
        )
        registry.add_listener(self._on_transition)
        registry.add_retry_listener(self._on_retry, self._on_give_up)

    @property
    def enabled(self) -> bool:
        """Whether spans and metrics are being produced."""
        return self._active

    def close(self) -> None:
        """Stop producing spans and metrics (the registry keeps the inert listeners)."""
        self._active = False

    # -- spans -------------------------------------------------------------------------

    @contextlib.contextmanager
    def span(self, name: str) -> Iterator[None]:
        """A span ``resilient_call {name}`` around whatever runs inside (one resilient call).

        Its attributes: the breaker, the attempts made, and on failure ``error.type``
        with a scrubbed status description and ``exception`` event.
        """
        if not self._active or self._tracer is None:
            yield
            return
        retries = [0]
        token = _call_retries.set(retries)
        try:
            with self._tracer.start_as_current_span(
                f"resilient_call {name}",
                attributes={BREAKER: name},
                record_exception=False,  # ours are scrubbed of keys
                set_status_on_exception=False,
            ) as span:
                try:
                    yield
                except BaseException as exc:
                    span.set_attribute(ATTEMPTS, attempts_of(exc) or retries[0] + 1)
                    _record_failure(span, exc)
                    raise
                span.set_attribute(ATTEMPTS, retries[0] + 1)
        finally:
            _call_retries.reset(token)

    async def call(
        self,
        name: str,
        fn: Callable[P, Awaitable[T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """``registry.call(name, fn, ...)`` inside ``span(name)``."""
        with self.span(name):
            return await self.registry.call(name, fn, *args, **kwargs)

    # -- listeners (never raise into the call they observe) ----------------------------

    def _on_retry(self, event: RetryScheduled) -> None:
        if not self._active:
            return
        try:
            retries = _call_retries.get()
            if retries is not None:
                retries[0] += 1
            attributes: dict[str, str | int] = {
                BREAKER: event.name,
                ERROR_TYPE: error_type(event.error),
            }
            if event.classification.status is not None:
                attributes[STATUS_CODE] = event.classification.status
            self._retries.add(1, attributes)
            self._waits.record(event.delay, attributes)
            _current_span().add_event(
                "breaker_service.retry",
                {
                    **attributes,
                    ATTEMPT: event.attempt,
                    DELAY: event.delay,
                    "exception.message": error_text(event.error),
                },
            )
        except Exception:  # telemetry must not break the call it observes
            logger.debug("telemetry: recording a retry failed", exc_info=True)

    def _on_give_up(self, event: GiveUp) -> None:
        if not self._active:
            return
        try:
            attributes: dict[str, str | int] = {
                BREAKER: event.name,
                ERROR_TYPE: error_type(event.error),
                CAUSE: event.cause,
            }
            if event.classification.status is not None:
                attributes[STATUS_CODE] = event.classification.status
            self._give_ups.add(1, attributes)
            _current_span().add_event(
                "breaker_service.retry.give_up",
                {**attributes, ATTEMPTS: event.attempts},
            )
        except Exception:  # telemetry must not break the call it observes
            logger.debug("telemetry: recording a give-up failed", exc_info=True)

    def _on_transition(self, breaker: CircuitBreaker, record: TransitionRecord) -> None:
        if not self._active:
            return
        try:
            attributes = {
                BREAKER: breaker.name,
                FROM_STATE: record.from_state,
                TO_STATE: record.to_state,
            }
            self._transitions.add(1, attributes)
            _current_span().add_event(
                "breaker_service.breaker.transition",
                {**attributes, "breaker_service.breaker.reason": record.reason},
            )
        except Exception:  # telemetry must not break the call it observes
            logger.debug("telemetry: recording a transition failed", exc_info=True)

    # -- observable instruments, read at collection time -----------------------------

    def _breakers(self) -> list[CircuitBreaker]:
        return self.registry.breakers() if self._active else []

    def _observe_attempts(self, _options: CallbackOptions) -> Iterable[Observation]:
        for breaker in self._breakers():
            counts = (breaker.successes, breaker.failures, breaker.timeouts)
            for outcome, count in zip(
                _OUTCOMES, (*counts, breaker.ignored), strict=True
            ):
                yield Observation(count, {BREAKER: breaker.name, OUTCOME: outcome})

    def _observe_rejections(self, _options: CallbackOptions) -> Iterable[Observation]:
        for breaker in self._breakers():
            yield Observation(breaker.rejections, {BREAKER: breaker.name})

    def _observe_states(self, _options: CallbackOptions) -> Iterable[Observation]:
        for breaker in self._breakers():
            for state in _STATES:
                value = 1 if breaker.state.value == state else 0
                yield Observation(value, {BREAKER: breaker.name, STATE: state})


def _current_span() -> Span:
    return trace.get_current_span()


def _record_failure(span: Span, exc: BaseException) -> None:
    """Status ERROR with ``error.type`` and an ``exception`` event, keys scrubbed."""
    kind = error_type(exc)
    span.set_attribute(ERROR_TYPE, kind)
    if isinstance(exc, CircuitOpenError):
        span.set_attribute("breaker_service.breaker.rejected", True)
    message = error_text(exc)
    span.set_status(Status(StatusCode.ERROR, message))
    stack = scrub("".join(traceback.format_exception(exc)))
    span.add_event(
        "exception",
        {
            "exception.type": kind,
            "exception.message": message,
            "exception.stacktrace": stack,
        },
    )


def instrument(
    registry: BreakerRegistry,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> Telemetry:
    """Produce OpenTelemetry spans and metrics for ``registry``'s resilient calls.

    Uses the global providers unless given others. Without ``opentelemetry-api``
    (the ``otel`` extra) the returned handle is inert and nothing is hooked.
    """
    if not AVAILABLE:
        logger.info("telemetry: opentelemetry-api is not installed; nothing to emit")
        return Telemetry(registry)
    tracer = trace.get_tracer(SCOPE, __version__, tracer_provider=tracer_provider)
    meter = metrics.get_meter(SCOPE, __version__, meter_provider=meter_provider)
    return Telemetry(registry, tracer, meter)

"""``ResilienceSettings``: the retry and breaker variables, resolvable per provider."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["RESILIENCE_VARIABLES", "ResilienceSettings"]


class ResilienceSettings(BaseModel):
    """The report's 13 resilience variables plus our retry and breaker additions."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    resilience_enabled: bool = True
    resilience_retry_enabled: bool = True
    resilience_circuit_breaker_enabled: bool = True
    breaker_scope: Literal["instance", "shared"] = "instance"

    retry_max_attempts: int = Field(3, ge=1, le=100)
    retry_base_delay: float = Field(1.0, ge=0, le=3600)
    retry_max_delay: float = Field(60.0, ge=0, le=86400)
    retry_exponential_base: float = Field(2.0, ge=1, le=100)
    retry_jitter: bool = True
    retry_deadline: float | None = Field(None, gt=0, le=86400)
    retry_attempt_timeout: float | None = Field(None, gt=0, le=86400)
    retry_budget_ratio: float = Field(0.2, ge=0, le=1)
    retry_budget_min_concurrency: int = Field(10, ge=0, le=10_000)

    circuit_breaker_count: Literal["calls", "attempts"] = "calls"
    circuit_breaker_attempt_run: int | None = Field(None, ge=0, le=100_000)
    circuit_breaker_failure_threshold: int = Field(5, ge=1, le=100_000)
    circuit_breaker_success_threshold: int = Field(2, ge=1, le=100_000)
    circuit_breaker_timeout: float = Field(60.0, gt=0, le=86400)
    circuit_breaker_half_open_max_calls: int = Field(1, ge=1, le=100_000)
    circuit_breaker_half_open_trial_timeout: float = Field(60.0, gt=0, le=86400)
    circuit_breaker_timeout_multiplier: float = Field(1.0, ge=1, le=100)
    circuit_breaker_max_timeout: float = Field(600.0, gt=0, le=864000)
    circuit_breaker_failure_rate_threshold: float | None = Field(None, gt=0, le=1)
    circuit_breaker_window_type: Literal["count", "time"] = "count"
    circuit_breaker_window_size: int = Field(20, ge=1, le=100_000)
    circuit_breaker_window_duration: float = Field(60.0, gt=0, le=86400)
    circuit_breaker_minimum_calls: int = Field(10, ge=1, le=100_000)
    circuit_breaker_slow_call_duration: float | None = Field(None, gt=0, le=86400)

    @model_validator(mode="after")
    def _delays_are_ordered(self) -> Self:
        if self.retry_base_delay > self.retry_max_delay:
            msg = (
                f"RETRY_BASE_DELAY ({self.retry_base_delay}) must not exceed "
                f"RETRY_MAX_DELAY ({self.retry_max_delay})"
            )
            raise ValueError(msg)
        if self.circuit_breaker_timeout > self.circuit_breaker_max_timeout:
            msg = (
                f"CIRCUIT_BREAKER_TIMEOUT ({self.circuit_breaker_timeout}) must not "
                f"exceed CIRCUIT_BREAKER_MAX_TIMEOUT ({self.circuit_breaker_max_timeout})"
            )
            raise ValueError(msg)
        return self

    @property
    def retry_active(self) -> bool:
        """Retries run only when the whole layer and the retry half are on."""
        return self.resilience_enabled and self.resilience_retry_enabled

    @property
    def attempt_run_limit(self) -> int:
        """Failed attempts in a row, across calls, that open the breaker (0: no rule).

        ``CIRCUIT_BREAKER_ATTEMPT_RUN``, or one more than the threshold's calls in
        attempts (``CIRCUIT_BREAKER_FAILURE_THRESHOLD x RETRY_MAX_ATTEMPTS + 1``, 16
        by default): about the evidence of that many failed calls, seen without
        waiting for them to end, so an outage costs no more requests however many
        calls are in flight; one more than the calls' attempts so that calls one
        after another still open by the threshold (its reason in the log). The
        price: a busy service at a sustained 50 % of random faults opens about once
        an hour (BENCHMARKS.md, counting rules B-tr, B-tr15 and B-tr18).
        """
        if self.circuit_breaker_attempt_run is not None:
            return self.circuit_breaker_attempt_run
        attempts = self.retry_max_attempts if self.retry_active else 1
        return self.circuit_breaker_failure_threshold * attempts + 1

    @property
    def breaker_active(self) -> bool:
        """Breakers protect only when the whole layer and the breaker half are on."""
        return self.resilience_enabled and self.resilience_circuit_breaker_enabled


# The variables ``VAR__PROVIDER`` may override for one provider.
RESILIENCE_VARIABLES = frozenset(
    name.upper() for name in ResilienceSettings.model_fields
)

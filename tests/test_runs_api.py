"""The audit API reads outcome runs: one row per run, its count, first and last time.

``GET /breakers/{name}/events`` shows a run with ``count``, ``at`` and ``last_at``;
the counts add up to the calls made, as do ``status()`` and ``/metrics``.
"""

from __future__ import annotations

import contextlib
from datetime import datetime

import api_helpers
import pytest
from api_helpers import Service, samples
from breaker_helpers import Provider

from breaker_service.breaker import BreakerRegistry
from breaker_service.errors import ProviderUnavailable

# The shared fixtures: pytest finds them here by name.
pytestmark = pytest.mark.usefixtures("clean_environment")
upstream_server = api_helpers.upstream_server
upstream = api_helpers.upstream
open_service = api_helpers.open_service
service = api_helpers.service


async def test_events_show_runs_with_exact_counts(service: Service) -> None:
    """Bursts within a second are runs; counts match calls, status and /metrics."""
    registry: BreakerRegistry = service.app.state.registry
    breaker = registry.get("kimi")
    provider = Provider("kimi", service.clock)
    for _ in range(40):
        await breaker.call(provider.ok)
        service.clock.advance(0.01)
    with contextlib.suppress(ProviderUnavailable):
        await breaker.call(provider.fail)  # one failure: below the threshold of two
    service.clock.advance(1.0)
    for _ in range(25):
        await breaker.call(provider.ok)
    assert await registry.flush()

    response = await service.client.get(
        "/breakers/kimi/events", headers=service.auth("breakers:read")
    )
    assert response.status_code == 200, response.text
    rows = response.json()["events"]
    assert [(e["kind"], e["count"]) for e in rows] == [
        ("success", 40),
        ("failure", 1),
        ("success", 25),
    ]
    first = rows[0]
    spread = datetime.fromisoformat(first["last_at"]) - datetime.fromisoformat(
        first["at"]
    )
    assert spread.total_seconds() > 0.3  # first and last call of the run
    assert rows[1]["last_at"] == rows[1]["at"]  # a run of one
    assert sum(e["count"] for e in rows if e["kind"] == "success") == 65

    status = (await service.client.get("/breakers/kimi", headers=service.auth())).json()
    assert (status["successes"], status["failures"]) == (65, 1)
    metrics = await service.client.get("/metrics", headers=service.auth())
    values = samples(metrics.text)
    calls = "breaker_service_breaker_calls_total"
    assert values[(calls, (("breaker", "kimi"), ("outcome", "success")))] == 65
    assert values[(calls, (("breaker", "kimi"), ("outcome", "failure")))] == 1

"""``/metrics``: Prometheus text, open with ``METRICS_PUBLIC=true``, else ``breakers:read``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from ...errors import EventLogError, StorageError
from ...uploads import UploadOrchestrator
from ..dependencies import MetricsDep, OrchestratorDep, Reader
from ..metrics import ServiceMetrics
from ..openapi import AUTHENTICATED, problem_responses

__all__ = ["metrics_router"]

_MEDIA_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def metrics_router(*, public: bool) -> APIRouter:
    """The ``/metrics`` route, open or behind the ``breakers:read`` scope."""
    router = APIRouter(tags=["health"])
    endpoint = metrics_open if public else metrics_protected
    responses: dict[int | str, dict[str, Any]] = {
        200: {"content": {_MEDIA_TYPE: {"schema": {"type": "string"}}}}
    }
    if not public:
        responses |= problem_responses(*AUTHENTICATED)
    router.add_api_route(
        "/metrics",
        endpoint,
        methods=["GET"],
        response_class=Response,
        responses=responses,
    )
    return router


async def metrics_open(metrics: MetricsDep, orchestrator: OrchestratorDep) -> Response:
    """Prometheus metrics (open: METRICS_PUBLIC=true)."""
    return await _scrape(metrics, orchestrator)


async def metrics_protected(
    _who: Reader, metrics: MetricsDep, orchestrator: OrchestratorDep
) -> Response:
    """Prometheus metrics (needs breakers:read)."""
    return await _scrape(metrics, orchestrator)


async def _scrape(
    metrics: ServiceMetrics, orchestrator: UploadOrchestrator
) -> Response:
    """Refresh the gauges read from the event log and the outbox, then render."""
    outbox = None
    if orchestrator.relay is not None:
        try:
            outbox = (await orchestrator.relay.status()).as_dict()
        except EventLogError:
            outbox = None
    metrics.refresh(outbox)
    open_intents = None
    if orchestrator.intents is not None:
        try:
            open_intents = len(await orchestrator.intents.open_intents())
        except StorageError:
            open_intents = None
    reconciler = orchestrator.reconciler
    metrics.refresh_uploads(
        open_intents, dict(reconciler.file_counts) if reconciler else {}
    )
    return Response(metrics.render(), media_type=_MEDIA_TYPE)

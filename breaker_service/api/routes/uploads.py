"""``/uploads``, ``/outbox`` and ``/providers``: uploads and what they go through.

Uploading needs ``uploads:write``; reading needs ``breakers:read``. Upload latency
is observed per outcome for ``/metrics``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, UploadFile
from pydantic import BaseModel, Field

from ...uploads import SqlUploadStore, UploadResult
from ..dependencies import (
    MetricsDep,
    OrchestratorDep,
    Reader,
    SettingsDep,
    Writer,
)
from ..metrics import ServiceMetrics
from ..openapi import AUTHENTICATED, WITH_BODY, problem_responses
from ..spooling import largest_limit, spool_root, spool_upload

__all__ = ["ByPath", "router"]

router = APIRouter(tags=["uploads"], responses=problem_responses(*AUTHENTICATED))

_UPLOAD_PROBLEMS = problem_responses(404, *WITH_BODY, 502, 503, 504)
"""Bad path or form, unknown provider, too large, the providers' answers, open circuits."""


class ByPath(BaseModel):
    """Upload a file already on the server, inside ``UPLOAD_ALLOWED_DIRS``."""

    path: str = Field(min_length=1, max_length=4096)
    provider: str | None = Field(None, max_length=100)
    purpose: str | None = Field(None, max_length=100)
    force: bool = False


@router.post("/uploads/by-path", responses=_UPLOAD_PROBLEMS)
async def upload_by_path(
    body: ByPath,
    _who: Writer,
    orchestrator: OrchestratorDep,
    metrics: MetricsDep,
) -> dict[str, Any]:
    """Upload a file inside ``UPLOAD_ALLOWED_DIRS``."""
    result = await _timed(
        metrics,
        orchestrator.upload(body.path, body.provider, body.purpose, force=body.force),
    )
    return result.as_dict()


@router.post("/uploads", responses=_UPLOAD_PROBLEMS)
async def upload_file(  # noqa: PLR0917 - FastAPI reads form fields from the signature
    _who: Writer,
    settings: SettingsDep,
    orchestrator: OrchestratorDep,
    metrics: MetricsDep,
    file: Annotated[UploadFile, File()],
    provider: Annotated[str | None, Form(max_length=100)] = None,
    purpose: Annotated[str | None, Form(max_length=100)] = None,
) -> dict[str, Any]:
    """Upload a file sent in the request: spooled inside the allowed directory first."""
    folder = Path(
        tempfile.mkdtemp(
            prefix="upload-",
            dir=spool_root(settings, orchestrator, file.filename or ""),
        )
    )
    try:
        target = await spool_upload(file, folder, largest_limit(orchestrator))
        result = await _timed(metrics, orchestrator.upload(target, provider, purpose))
        return result.as_dict()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@router.get("/uploads", responses=problem_responses(503))
async def recent_uploads(
    _who: Reader,
    orchestrator: OrchestratorDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> dict[str, Any]:
    """Recent uploads with their Supabase tracking status."""
    store = orchestrator.store
    if isinstance(store, SqlUploadStore):
        return {"uploads": await store.recent_with_tracking(limit)}
    return {
        "uploads": [
            r.as_dict() | {"tracking": "off"} for r in await store.recent(limit)
        ]
    }


@router.get("/outbox", responses=problem_responses(503))
async def outbox_status(_who: Reader, orchestrator: OrchestratorDep) -> dict[str, Any]:
    """Pending, delivered and failed tracking rows."""
    if orchestrator.relay is None:
        return {"enabled": False}
    return {"enabled": True, **(await orchestrator.relay.status()).as_dict()}


@router.get("/providers")
async def providers(_who: Reader, orchestrator: OrchestratorDep) -> dict[str, Any]:
    """Configured providers: available or why not, limits and breaker state."""
    return {"providers": orchestrator.provider_status()}


async def _timed(
    metrics: ServiceMetrics, call: Awaitable[UploadResult]
) -> UploadResult:
    """Await an upload, observing its latency as ``ok`` or ``error``."""
    started = time.perf_counter()
    try:
        result = await call
    except BaseException:
        metrics.upload_seconds.labels("error").observe(time.perf_counter() - started)
        raise
    metrics.upload_seconds.labels("ok").observe(time.perf_counter() - started)
    return result

"""``/uploads``, ``/outbox`` and ``/providers``: uploads and what they go through.

Uploading needs ``uploads:write``; reading needs ``breakers:read``. Upload latency
is observed per outcome for ``/metrics``.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, UploadFile
from pydantic import BaseModel, Field

from ...config import Settings
from ...errors import UploadRejected
from ...uploads import SqlUploadStore, UploadOrchestrator, UploadResult
from ..dependencies import (
    MetricsDep,
    OrchestratorDep,
    Reader,
    SettingsDep,
    Writer,
)
from ..metrics import ServiceMetrics
from ..openapi import AUTHENTICATED, WITH_BODY, problem_responses

__all__ = ["ByPath", "router"]

router = APIRouter(tags=["uploads"], responses=problem_responses(*AUTHENTICATED))

_UPLOAD_PROBLEMS = problem_responses(404, *WITH_BODY, 502, 503, 504)
"""Bad path or form, unknown provider, too large, the providers' answers, open circuits."""

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_CHUNK = 1 << 20


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
        tempfile.mkdtemp(prefix="upload-", dir=_spool_root(settings, orchestrator))
    )
    try:
        target = await _spool(file, folder, orchestrator)
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


def _spool_root(settings: Settings, orchestrator: UploadOrchestrator) -> Path:
    """``UPLOAD_SPOOL_DIR``, or ``.spool`` in the first allowed directory (created)."""
    root = (
        Path(settings.upload_spool_dir)
        if settings.upload_spool_dir
        else orchestrator.allowed_dirs[0] / ".spool"
    )
    root.mkdir(parents=True, exist_ok=True)
    return root


async def _spool(
    file: UploadFile, folder: Path, orchestrator: UploadOrchestrator
) -> Path:
    """Write the request's file into ``folder`` under a safe name, within size limits.

    The limit is the largest provider's: a file no provider accepts is refused (413)
    before it is fully read.
    """
    limit = max(p.max_bytes for p in orchestrator.providers.values())
    name = (
        _SAFE_NAME.sub("_", Path(file.filename or "upload").name).strip("._")
        or "upload"
    )
    target = folder / name
    size = 0
    with target.open("wb") as out:
        while chunk := await file.read(_CHUNK):
            size += len(chunk)
            if size > limit:
                msg = f"the upload exceeds the largest provider limit of {limit} bytes"
                raise UploadRejected(msg, reason="too_large")
            out.write(chunk)
    return target

"""``/healthz`` (the process is alive) and ``/readyz`` (it can do its work)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ...errors import EventLogError
from ..dependencies import OrchestratorDep, RegistryDep, SettingsDep

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(
    settings: SettingsDep, registry: RegistryDep, orchestrator: OrchestratorDep
) -> JSONResponse:
    """Database reachable, schema at head, event log and outbox healthy (503 otherwise)."""
    # SQLAlchemy (~0.8 s to import) is loaded only when the event log is SQL.
    from ...migrate import SCHEMA_HEAD, current_revision  # noqa: PLC0415

    problems: list[str] = []
    body: dict[str, Any] = {"auth_disabled": settings.auth_disabled}
    try:
        await registry.ping()
        engine = getattr(registry.log, "engine", None)
        if engine is not None:
            revision = await current_revision(engine)
            body["schema"] = revision
            if revision != SCHEMA_HEAD:
                problems.append(f"schema at {revision}, expected {SCHEMA_HEAD}")
    except EventLogError as exc:
        problems.append(f"database unreachable: {exc}")
    health = registry.health()
    body["event_log"] = health
    if health["degraded"]:
        problems.append("event log degraded: events are buffered in memory")
    if orchestrator.relay is not None:
        try:
            body["outbox"] = (await orchestrator.relay.status()).as_dict()
        except EventLogError as exc:
            problems.append(f"outbox unreadable: {exc}")
    else:
        body["outbox"] = {"enabled": False}
    if settings.auth_disabled:
        body["warning"] = "AUTH_DISABLED=true: no authentication"
    body["status"] = "degraded" if problems else "ready"
    body["problems"] = problems
    return JSONResponse(body, status_code=503 if problems else 200)

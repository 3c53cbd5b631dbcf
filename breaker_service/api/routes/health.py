"""``/healthz`` (the process is alive) and ``/readyz`` (it can do its work)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ...errors import EventLogError
from ..dependencies import OrchestratorDep, RegistryDep, ServiceDep, SettingsDep

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses={
        503: {
            "description": "Not ready: the same body, its problems listed",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def readyz(
    settings: SettingsDep,
    service: ServiceDep,
    registry: RegistryDep,
    orchestrator: OrchestratorDep,
) -> JSONResponse:
    """Database reachable, schema at head, event log and outbox healthy (503 otherwise)."""
    problems: list[str] = []
    body: dict[str, Any] = {"auth_disabled": settings.auth_disabled}
    try:
        await registry.ping()
        body["schema"] = await service.schema_revision()
        mismatch = await service.schema_problem()
        if mismatch is not None:
            problems.append(mismatch)
    except EventLogError as exc:
        problems.append(f"database unreachable: {exc}")
    body["integrity"] = "checked at start-up" if service.engine is not None else None
    if service.keeper is not None:
        journaled = service.keeper.pending()
        body["upload_journal"] = {"pending": journaled}
        if journaled:
            problems.append(
                f"{journaled} upload record(s) wait in the journal for the database"
            )
    health = registry.health()
    body["event_log"] = health
    if health["degraded"]:
        problems.append("event log degraded: events are buffered in memory")
    if health["dead_lettered"]:
        # Not a problem for readiness: the log goes on; an operator should look.
        body["event_log_warning"] = (
            f"{health['dead_lettered']} event(s) refused by the store for their "
            "content were set aside in breaker_dead_letters"
        )
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

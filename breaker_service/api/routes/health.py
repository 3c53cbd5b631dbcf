"""``/healthz`` (the process is alive) and ``/readyz`` (it can do its work).

Both are open, for probes. ``/readyz`` answers every caller with its status code and
``{"status": ...}``; the checks behind it (breaker names, database errors, outbox and
journal counts) only to a token with ``breakers:read``, or to everyone when
``READYZ_DETAIL_PUBLIC=true``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from ...errors import EventLogError
from ..auth import AuthError, TokenVerifier
from ..dependencies import (
    OrchestratorDep,
    RegistryDep,
    ServiceDep,
    SettingsDep,
    get_verifier,
)

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
async def readyz(  # noqa: PLR0917 - FastAPI reads dependencies from the signature
    settings: SettingsDep,
    service: ServiceDep,
    registry: RegistryDep,
    orchestrator: OrchestratorDep,
    verifier: Annotated[TokenVerifier, Depends(get_verifier)],
    request: Request,
) -> JSONResponse:
    """Database reachable, schema at head, event log and outbox healthy (503 otherwise).

    The checks are shown to ``breakers:read`` (or to all with READYZ_DETAIL_PUBLIC).
    """
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
    status = 503 if problems else 200
    authorization = request.headers.get("authorization")
    if not (settings.readyz_detail_public or _may_read(verifier, authorization)):
        return JSONResponse({"status": body["status"]}, status_code=status)
    return JSONResponse(body, status_code=status)


def _may_read(verifier: TokenVerifier, authorization: str | None) -> bool:
    """Whether the caller's token grants ``breakers:read`` (no token: no)."""
    try:
        verifier.verify(authorization).require("breakers:read")
    except AuthError:
        return False
    return True

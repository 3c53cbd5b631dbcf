"""``/uploads/intents`` and ``/uploads/reconcile``: orphans at the providers.

Reading the open intents needs ``breakers:read``; running a reconciliation needs
``breakers:admin``, and the token's subject is recorded as the actor of every
adoption and deletion it makes.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from ...errors import UploadRejected
from ...service import Service
from ..dependencies import Admin, Reader, ServiceDep
from ..openapi import AUTHENTICATED, WITH_BODY, problem_responses

__all__ = ["router"]

router = APIRouter(tags=["uploads"], responses=problem_responses(*AUTHENTICATED))


def _parts(service: Service) -> Service:
    if service.intents is None or service.reconciler is None:
        msg = "uploads are not enabled in this service"
        raise UploadRejected(msg, reason="no_provider")
    return service


@router.get("/uploads/intents", responses=problem_responses(503))
async def intents(
    _who: Reader,
    service: ServiceDep,
    limit: int = Query(50, ge=1, le=500),
) -> dict[str, Any]:
    """Open upload intents (under way here, or left by a crash) and recent reconciliations."""
    _parts(service)
    assert service.intents is not None
    assert service.reconciler is not None
    in_flight = service.orchestrator.in_flight
    found = await service.intents.open_intents()
    return {
        "open": [
            {**i.as_dict(), "in_flight": i.id in in_flight} for i in found[:limit]
        ],
        "open_total": len(found),
        "actions": [a.as_dict() for a in await service.intents.actions(limit)],
        "last_reconcile": [r.as_dict() for r in service.reconciler.last],
    }


@router.post(
    "/uploads/reconcile", responses=problem_responses(*WITH_BODY, 404, 502, 503, 504)
)
async def reconcile(
    who: Admin,
    service: ServiceDep,
    dry_run: bool = Query(default=False),
    provider: str | None = Query(None, max_length=100),
) -> dict[str, Any]:
    """Reconcile now: adopt, delete extra copies (per ``UPLOAD_ORPHANS``), report."""
    _parts(service)
    assert service.reconciler is not None
    reports = await service.reconciler.reconcile(
        dry_run=dry_run,
        actor=who.subject,
        reason="POST /uploads/reconcile",
        providers=[provider.lower()] if provider else None,
    )
    return {
        "dry_run": dry_run,
        "policy": service.reconciler.policy,
        "providers": [r.as_dict() for r in reports],
        "orphans": sum(r.orphans for r in reports),
    }

"""The HTTP service: FastAPI on uvicorn, resources owned by the lifespan.

``create_app(settings)`` builds the app and checks the configuration (it refuses
to start without a token key unless ``AUTH_DISABLED=true``); ``lifespan`` opens the
composition root (``Service``: the registry replayed from the event log, the HTTP
client, the providers, the upload store, the journal and the Supabase relay),
delivers pending tracking rows (bounded) on shutdown and closes it. Routes live in
``api.routes`` and get those resources through ``api.dependencies``. Nothing is
created at import time.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from .. import __version__
from ..clock import Clock
from ..config import Settings, load_settings
from ..errors import EventLogError
from ..service import Service
from .auth import TokenVerifier
from .dashboard import dashboard_router
from .guard import BodyGuard, GuardRule
from .metrics import ServiceMetrics
from .problems import install_problem_handlers
from .routes import (
    batch_files_router,
    batch_router,
    breakers_router,
    health_router,
    metrics_router,
    reconcile_router,
    uploads_router,
)

__all__ = ["create_app", "lifespan"]

logger = logging.getLogger("breaker_service.api")


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    transport: Any = None,
) -> FastAPI:
    """The ASGI app for ``settings`` (from the environment when omitted)."""
    settings = settings or load_settings()
    verifier = TokenVerifier(
        settings
    )  # refuses to build without a key unless AUTH_DISABLED
    app = FastAPI(
        title="breaker-service",
        version=__version__,
        description="Retries, per-provider circuit breakers with an SQL audit log, and loss-free upload tracking.",
        lifespan=functools.partial(
            lifespan, settings=settings, clock=clock, transport=transport
        ),
    )
    app.state.settings = settings
    app.state.verifier = verifier
    install_problem_handlers(app)
    app.include_router(health_router)
    app.include_router(breakers_router)
    app.include_router(reconcile_router)  # before /uploads/{id}-style routes
    app.include_router(uploads_router)
    app.include_router(batch_router)
    app.include_router(batch_files_router)
    app.include_router(metrics_router(public=settings.metrics_public))
    app.include_router(dashboard_router(settings))
    app.add_middleware(
        BodyGuard,
        verifier=verifier,
        rules=guard_rules(settings),
        default_limit=SMALL_BODY,
    )
    return app


SMALL_BODY = 16 * 1024  # JSON bodies: a path, a reason, a few flags
BATCH_BODY = 512 * 1024  # up to MAX_BATCH_ITEMS paths of up to 4096 characters
_MULTIPART_MARGIN = 64 * 1024  # form fields and part headers around the file


def guard_rules(settings: Settings) -> list[GuardRule]:
    """Scope and body limit of every route that takes a body."""
    largest = max(
        [settings.kimi_max_bytes, settings.glm_max_bytes]
        + [p.max_bytes for p in settings.openai_compat_providers]
    )
    return [
        GuardRule("POST", "/uploads", "uploads:write", largest + _MULTIPART_MARGIN),
        GuardRule("POST", "/uploads/by-path", "uploads:write", SMALL_BODY),
        GuardRule("POST", "/uploads/batch", "uploads:write", BATCH_BODY),
        GuardRule(
            "POST", "/uploads/batch/files", "uploads:write", largest + _MULTIPART_MARGIN
        ),
        GuardRule("POST", "/uploads/reconcile", "breakers:admin", SMALL_BODY),
        GuardRule("POST", "/breakers/[^/]+/force-open", "breakers:admin", SMALL_BODY),
        GuardRule("POST", "/breakers/[^/]+/reset", "breakers:admin", SMALL_BODY),
    ]


@asynccontextmanager
async def lifespan(
    app: FastAPI,
    *,
    settings: Settings,
    clock: Clock | None = None,
    transport: Any = None,
) -> AsyncIterator[None]:
    """Open what the routes use, put it on ``app.state``, close it on shutdown.

    The one place the service's resources are wired together; ``api.dependencies``
    reads them back.
    """
    if settings.auth_disabled:
        logger.warning(
            "AUTH IS DISABLED (AUTH_DISABLED=true): every request is an admin. Local use only."
        )
    service = await Service.open(
        settings, clock=clock, transport=transport, reconcile=True
    )
    app.state.service = service
    app.state.orchestrator = service.orchestrator
    app.state.registry = service.registry
    app.state.metrics = ServiceMetrics(service.registry)
    try:
        yield
    finally:
        try:
            report = await service.deliver_tracking(
                within=settings.service_shutdown_delivery_seconds
            )
            if report is not None and report.pending:
                logger.warning(
                    "shutdown: %d tracking rows still pending (delivered %d now); "
                    "the next start delivers them",
                    report.pending,
                    report.delivered,
                )
        except EventLogError as exc:
            logger.warning("shutdown: tracking not delivered: %s", exc)
        finally:
            await service.aclose()

"""The HTTP service: FastAPI on uvicorn, resources owned by the lifespan.

``create_app(settings)`` builds the app and checks the configuration (it refuses
to start without a token key unless ``AUTH_DISABLED=true``); the lifespan opens the
registry (replaying the event log), the HTTP client, the providers, the upload
store and the Supabase relay, and closes them on shutdown. Nothing is created at
import time.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, Header, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from .. import __version__
from ..breaker import BreakerRegistry
from ..clock import Clock
from ..config import Settings, load_settings
from ..errors import EventLogError, UnknownBreakerError, UploadRejected
from ..uploads import SqlUploadStore, UploadOrchestrator
from .auth import Principal, TokenVerifier
from .dashboard import dashboard_router
from .metrics import ServiceMetrics
from .problems import InvalidQuery, install_problem_handlers

__all__ = ["create_app"]

logger = logging.getLogger("breaker_service.api")

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class Reason(BaseModel):
    """Why an operator acts; recorded in the audit log."""

    reason: str = Field(min_length=1, max_length=500)


class ByPath(BaseModel):
    """Upload a file already on the server, inside ``UPLOAD_ALLOWED_DIRS``."""

    path: str = Field(min_length=1, max_length=4096)
    provider: str | None = Field(None, max_length=100)
    purpose: str | None = Field(None, max_length=100)
    force: bool = False


# Declares the bearer scheme in OpenAPI (the "Authorize" button in /docs); the check
# itself is ours, so errors keep the problem+json shape and WWW-Authenticate.
_BEARER = HTTPBearer(
    auto_error=False, description="JWT with the scopes the route needs"
)


def _requires(scope: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    async def dependency(
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
        authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> Principal:
        verifier: TokenVerifier = request.app.state.verifier
        principal = verifier.verify(authorization)
        principal.require(scope)
        return principal

    return dependency


Reader = Annotated[Principal, Depends(_requires("breakers:read"))]
Writer = Annotated[Principal, Depends(_requires("uploads:write"))]
Admin = Annotated[Principal, Depends(_requires("breakers:admin"))]


def _epoch(value: str | None, name: str) -> float | None:
    if value is None:
        return None
    msg = f"{name} must be an ISO 8601 time or epoch seconds, got {value!r}"
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidQuery(msg) from None
        seconds = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    try:  # nan, inf and times outside years 1-9999 cannot be shown or compared
        datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidQuery(msg) from None
    return seconds


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

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.auth_disabled:
            logger.warning(
                "AUTH IS DISABLED (AUTH_DISABLED=true): every request is an admin. Local use only."
            )
        orchestrator = await UploadOrchestrator.open(
            settings, clock=clock, transport=transport
        )
        app.state.orchestrator = orchestrator
        app.state.registry = orchestrator.registry
        app.state.metrics = ServiceMetrics(orchestrator.registry)
        try:
            yield
        finally:
            await orchestrator.aclose()

    app = FastAPI(
        title="breaker-service",
        version=__version__,
        description="Retries, per-provider circuit breakers with an SQL audit log, and loss-free upload tracking.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.verifier = verifier
    install_problem_handlers(app)
    _routes(app, settings)
    app.include_router(dashboard_router(settings))
    return app


def _registry(request: Request) -> BreakerRegistry:
    registry: BreakerRegistry = request.app.state.registry
    return registry


def _known_breaker(request: Request, name: str, *, providers_too: bool = False) -> None:
    registry = _registry(request)
    orchestrator: UploadOrchestrator = request.app.state.orchestrator
    if name in registry or (providers_too and name in orchestrator.providers):
        return
    raise UnknownBreakerError(name)


def _routes(app: FastAPI, settings: Settings) -> None:  # noqa: PLR0915 - one place lists every route
    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz(request: Request) -> JSONResponse:
        """Database reachable, schema at head, event log and outbox healthy (503 otherwise)."""
        from ..migrate import SCHEMA_HEAD, current_revision  # noqa: PLC0415

        registry = _registry(request)
        orchestrator: UploadOrchestrator = request.app.state.orchestrator
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

    @app.get("/breakers", tags=["breakers"])
    async def list_breakers(request: Request, _who: Reader) -> dict[str, Any]:
        """Every breaker: state, counters, opened_at, retry_after, scope."""
        rows = []
        for breaker in _registry(request).breakers():
            row = breaker.status()
            rows.append(row)
        return {"breakers": rows}

    @app.get("/breakers/{name}", tags=["breakers"])
    async def get_breaker(request: Request, name: str, _who: Reader) -> dict[str, Any]:
        """One breaker."""
        _known_breaker(request, name)
        return _registry(request).get(name).status()

    @app.get("/breakers/{name}/events", tags=["breakers"])
    async def breaker_events(  # noqa: PLR0917 - FastAPI reads query parameters from the signature
        request: Request,
        name: str,
        _who: Reader,
        after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,  # a 64-bit row id
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        kind: Annotated[list[str] | None, Query()] = None,
        since: str | None = None,
        until: str | None = None,
    ) -> dict[str, Any]:
        """The audit trail, oldest first, paged by id (``after``)."""
        _known_breaker(request, name)
        events = await _registry(request).history(
            name,
            after_id=after,
            limit=limit,
            kinds=kind,
            since=_epoch(since, "since"),
            until=_epoch(until, "until"),
        )
        rows = [e.as_dict() for e in events]
        return {
            "events": rows,
            "next_after": rows[-1]["id"] if len(rows) == limit else None,
        }

    @app.get("/breakers/{name}/state", tags=["breakers"])
    async def breaker_state_at(
        request: Request, name: str, _who: Reader, at: str
    ) -> dict[str, Any]:
        """The state the breaker was in at a past time."""
        _known_breaker(request, name)
        moment = _epoch(at, "at")
        assert moment is not None
        state = await _registry(request).state_at(name, moment)
        return {
            "name": name,
            "at": datetime.fromtimestamp(moment, UTC).isoformat(),
            "state": state.value,
        }

    @app.post("/breakers/{name}/force-open", tags=["breakers"])
    async def force_open(
        request: Request, name: str, body: Reason, who: Admin
    ) -> dict[str, Any]:
        """Reject every call until reset; the token's subject is recorded as the actor."""
        _known_breaker(request, name, providers_too=True)
        breaker = _registry(request).get(name)
        await breaker.force_open(body.reason, who.subject)
        return breaker.status()

    @app.post("/breakers/{name}/reset", tags=["breakers"])
    async def reset(
        request: Request, name: str, body: Reason, who: Admin
    ) -> dict[str, Any]:
        """Back to closed; the token's subject is recorded as the actor."""
        _known_breaker(request, name, providers_too=True)
        breaker = _registry(request).get(name)
        await breaker.reset(body.reason, who.subject)
        return breaker.status()

    async def _timed(request: Request, call: Coroutine[Any, Any, Any]) -> Any:
        metrics: ServiceMetrics = request.app.state.metrics
        started = time.perf_counter()
        try:
            result = await call
        except BaseException:
            metrics.upload_seconds.labels("error").observe(
                time.perf_counter() - started
            )
            raise
        metrics.upload_seconds.labels("ok").observe(time.perf_counter() - started)
        return result

    @app.post("/uploads/by-path", tags=["uploads"])
    async def upload_by_path(
        request: Request, body: ByPath, _who: Writer
    ) -> dict[str, Any]:
        """Upload a file inside ``UPLOAD_ALLOWED_DIRS``."""
        orchestrator: UploadOrchestrator = request.app.state.orchestrator
        result = await _timed(
            request,
            orchestrator.upload(
                body.path, body.provider, body.purpose, force=body.force
            ),
        )
        data: dict[str, Any] = result.as_dict()
        return data

    @app.post("/uploads", tags=["uploads"])
    async def upload_file(
        request: Request,
        _who: Writer,
        file: Annotated[UploadFile, File()],
        provider: Annotated[str | None, Form()] = None,
        purpose: Annotated[str | None, Form()] = None,
    ) -> dict[str, Any]:
        """Upload a file sent in the request: spooled inside the allowed directory first."""
        orchestrator: UploadOrchestrator = request.app.state.orchestrator
        limit = max(p.max_bytes for p in orchestrator.providers.values())
        spool_root = (
            Path(settings.upload_spool_dir)
            if settings.upload_spool_dir
            else orchestrator.allowed_dirs[0] / ".spool"
        )
        spool_root.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="upload-", dir=spool_root))
        name = (
            _SAFE_NAME.sub("_", Path(file.filename or "upload").name).strip("._")
            or "upload"
        )
        target = folder / name
        try:
            size = 0
            with target.open("wb") as out:
                while chunk := await file.read(1 << 20):
                    size += len(chunk)
                    if size > limit:
                        msg = f"the upload exceeds the largest provider limit of {limit} bytes"
                        raise UploadRejected(msg, reason="too_large")
                    out.write(chunk)
            result = await _timed(
                request, orchestrator.upload(target, provider, purpose)
            )
            data: dict[str, Any] = result.as_dict()
            return data
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    @app.get("/uploads", tags=["uploads"])
    async def recent_uploads(
        request: Request, _who: Reader, limit: Annotated[int, Query(ge=1, le=1000)] = 50
    ) -> dict[str, Any]:
        """Recent uploads with their Supabase tracking status."""
        orchestrator: UploadOrchestrator = request.app.state.orchestrator
        store = orchestrator.store
        if isinstance(store, SqlUploadStore):
            return {"uploads": await store.recent_with_tracking(limit)}
        return {
            "uploads": [
                r.as_dict() | {"tracking": "off"} for r in await store.recent(limit)
            ]
        }

    @app.get("/outbox", tags=["uploads"])
    async def outbox_status(request: Request, _who: Reader) -> dict[str, Any]:
        """Pending, delivered and failed tracking rows."""
        orchestrator: UploadOrchestrator = request.app.state.orchestrator
        if orchestrator.relay is None:
            return {"enabled": False}
        return {"enabled": True, **(await orchestrator.relay.status()).as_dict()}

    @app.get("/providers", tags=["uploads"])
    async def providers(request: Request, _who: Reader) -> dict[str, Any]:
        """Configured providers: available or why not, limits and breaker state."""
        orchestrator: UploadOrchestrator = request.app.state.orchestrator
        return {"providers": orchestrator.provider_status()}

    async def metrics_endpoint(request: Request) -> Response:
        metrics: ServiceMetrics = request.app.state.metrics
        orchestrator: UploadOrchestrator = request.app.state.orchestrator
        outbox = None
        if orchestrator.relay is not None:
            try:
                outbox = (await orchestrator.relay.status()).as_dict()
            except EventLogError:
                outbox = None
        metrics.refresh(outbox)
        return Response(
            metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    if settings.metrics_public:

        @app.get("/metrics", tags=["health"], response_class=Response)
        async def metrics_open(request: Request) -> Response:
            """Prometheus metrics (open: METRICS_PUBLIC=true)."""
            return await metrics_endpoint(request)

    else:

        @app.get("/metrics", tags=["health"], response_class=Response)
        async def metrics_protected(request: Request, _who: Reader) -> Response:
            """Prometheus metrics (needs breakers:read)."""
            return await metrics_endpoint(request)

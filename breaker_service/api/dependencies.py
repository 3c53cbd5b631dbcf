"""What routes receive by dependency injection: the resources and the caller's scopes.

The lifespan puts the service's resources on ``app.state``; these functions are the
only readers of it, so routes name what they need by type
(``registry: RegistryDep``) and never touch ``request.app.state`` themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..breaker import BreakerRegistry
from ..config import Settings
from ..service import Service
from ..uploads import UploadOrchestrator
from .auth import Principal, TokenVerifier
from .metrics import ServiceMetrics

__all__ = [
    "Admin",
    "MetricsDep",
    "OrchestratorDep",
    "Reader",
    "RegistryDep",
    "ServiceDep",
    "SettingsDep",
    "Writer",
    "get_metrics",
    "get_orchestrator",
    "get_registry",
    "get_service",
    "get_settings",
    "get_verifier",
    "requires",
]


def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


def get_verifier(request: Request) -> TokenVerifier:
    """The bearer-token checker built from the settings."""
    verifier: TokenVerifier = request.app.state.verifier
    return verifier


def get_service(request: Request) -> Service:
    """The composition root (opened by the lifespan)."""
    service: Service = request.app.state.service
    return service


def get_registry(request: Request) -> BreakerRegistry:
    """The breakers (opened by the lifespan)."""
    registry: BreakerRegistry = request.app.state.registry
    return registry


def get_orchestrator(request: Request) -> UploadOrchestrator:
    """The upload orchestrator (opened by the lifespan)."""
    orchestrator: UploadOrchestrator = request.app.state.orchestrator
    return orchestrator


def get_metrics(request: Request) -> ServiceMetrics:
    """The Prometheus metrics of this instance."""
    metrics: ServiceMetrics = request.app.state.metrics
    return metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
ServiceDep = Annotated[Service, Depends(get_service)]
RegistryDep = Annotated[BreakerRegistry, Depends(get_registry)]
OrchestratorDep = Annotated[UploadOrchestrator, Depends(get_orchestrator)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]

# Declares the bearer scheme in OpenAPI (the "Authorize" button in /docs); the check
# itself is ours, so errors keep the problem+json shape and WWW-Authenticate.
_BEARER = HTTPBearer(
    auto_error=False, description="JWT with the scopes the route needs"
)


def requires(scope: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A dependency that returns the caller, or raises 401/403 without ``scope``."""

    async def dependency(
        verifier: Annotated[TokenVerifier, Depends(get_verifier)],
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
        authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> Principal:
        principal = verifier.verify(authorization)
        principal.require(scope)
        return principal

    return dependency


Reader = Annotated[Principal, Depends(requires("breakers:read"))]
Writer = Annotated[Principal, Depends(requires("uploads:write"))]
Admin = Annotated[Principal, Depends(requires("breakers:admin"))]

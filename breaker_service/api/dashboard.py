"""The provider health dashboard: a static page that polls the JSON API.

``dashboard_router(settings)`` serves ``GET /dashboard`` (the page), ``GET /``
(a redirect to it), ``GET /dashboard/config`` (whether auth is disabled and the
poll interval; open, it holds no secret) and ``GET /dashboard/static/{name}`` (the
page's ES modules and stylesheet, shipped in the package: no CDN, no build step).

The page and its assets are public; the data is not. The page's script asks for a
bearer token once (kept in ``sessionStorage``) unless auth is disabled, and reads
everything through the JSON API with it (``/breakers``, ``/breakers/{name}/events``,
``/uploads``, ``/outbox``, ``/providers``), so the API's scopes apply unchanged.
Live updates are **polling**: the page asks the API again every
``poll_interval`` seconds (1 s by default) and updates in place; there is no
server push (an ``EventSource`` could not send the ``Authorization`` header).
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from ..config import Settings
from .openapi import problem_responses

__all__ = ["POLL_INTERVAL", "dashboard_router"]

POLL_INTERVAL = 1.0
"""Seconds between two polls of the API by the page."""

_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}

# The page loads only its own modules and styles and talks only to this service.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _static_files() -> dict[str, Traversable]:
    """The shipped assets by file name (read when the router is built, not at import)."""
    folder = resources.files(__package__ or "breaker_service.api") / "static"
    return {
        entry.name: entry
        for entry in folder.iterdir()
        if entry.is_file() and "." + entry.name.rpartition(".")[2] in _MEDIA_TYPES
    }


def _media_type(name: str) -> str:
    return _MEDIA_TYPES["." + name.rpartition(".")[2]]


def dashboard_router(
    settings: Settings, *, poll_interval: float = POLL_INTERVAL
) -> APIRouter:
    """The routes of the dashboard for a service configured by ``settings``."""
    files = _static_files()
    page = files["index.html"].read_bytes()
    router = APIRouter(tags=["dashboard"])

    @router.get("/", include_in_schema=False)
    async def root(request: Request) -> RedirectResponse:
        """The dashboard is the service's home page."""
        return RedirectResponse(
            request.scope.get("root_path", "") + "/dashboard", status_code=307
        )

    @router.get("/dashboard", response_class=Response)
    async def dashboard() -> Response:
        """The dashboard page (public static HTML; its data needs a token)."""
        return Response(page, media_type=_media_type("index.html"), headers=_HEADERS)

    @router.get("/dashboard/config")
    async def dashboard_config() -> dict[str, bool | float]:
        """What the page needs before it has a token: whether to ask for one."""
        return {"auth_disabled": settings.auth_disabled, "poll_interval": poll_interval}

    @router.get(
        "/dashboard/static/{name}",
        response_class=Response,
        responses=problem_responses(404, 422),
    )
    async def dashboard_static(name: str) -> Response:
        """One of the page's modules or stylesheets."""
        entry = files.get(name)
        if entry is None:
            raise HTTPException(404, f"no dashboard asset named {name!r}")
        return Response(
            entry.read_bytes(), media_type=_media_type(name), headers=_HEADERS
        )

    return router

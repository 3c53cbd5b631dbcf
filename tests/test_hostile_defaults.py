"""Hostile input, defaults that leaked (issue 14.3): nothing is open unless configured.

``UPLOAD_ALLOWED_DIRS`` has no default (unset: no path upload at all), a spool
directory outside the allowed ones stops start-up, ``/metrics`` and the detail of
``/readyz`` need ``breakers:read`` unless opened on purpose, tokens may be held to a
maximum lifetime, and the Supabase client follows no redirect.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import api_helpers
import httpx
import jwt
import pytest
from api_helpers import (
    KIMI_KEY,
    SECRET,
    OpenService,
    Service,
    Upstream,
    assert_problem,
    samples,
)
from cli_helpers import one_line, run_cli
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from breaker_service.api import create_app
from breaker_service.api.auth import AuthError, TokenVerifier, mint_token
from breaker_service.clock import FakeClock
from breaker_service.config import Settings, load_settings
from breaker_service.errors import ConfigError, ProviderError
from breaker_service.providers.flaky import serve_in_thread
from breaker_service.tracking.supabase import SupabaseSink

pytestmark = pytest.mark.usefixtures("clean_environment")
upstream_server = api_helpers.upstream_server
upstream = api_helpers.upstream
open_service = api_helpers.open_service

BareService = Callable[..., AbstractAsyncContextManager[Service]]


@pytest.fixture
def bare_service(tmp_path: Path, upstream: Upstream) -> BareService:
    """The service built from keyword settings only: nothing set that a test omits."""

    @asynccontextmanager
    async def factory(**values: Any) -> AsyncIterator[Service]:
        values.setdefault("database_url", f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
        values.setdefault("breaker_service_jwt_secret", SECRET)
        values.setdefault("upload_provider_order", "kimi")
        values.setdefault("retry_max_attempts", 1)
        settings = load_settings(
            env_file=None, kimi_base_url=upstream.url, KIMI_API_KEY=KIMI_KEY, **values
        )
        clock = FakeClock()
        app = create_app(settings, clock=clock)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://testserver") as c,
        ):
            yield Service(app, c, settings, clock, tmp_path, upstream)

    return factory


# -- UPLOAD_ALLOWED_DIRS has no default ------------------------------------------------


def test_allowed_dirs_have_no_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unset, no directory is allowed (not the working directory)."""
    monkeypatch.delenv("UPLOAD_ALLOWED_DIRS", raising=False)
    monkeypatch.chdir(tmp_path)
    settings = load_settings(env_file=None)
    assert settings.upload_allowed_dirs == ""
    assert settings.allowed_dirs == []


async def test_without_allowed_dirs_the_env_file_is_not_uploaded(
    bare_service: BareService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started next to its ``.env``: by path and multipart, a clear 403, not a leak."""
    monkeypatch.delenv("UPLOAD_ALLOWED_DIRS", raising=False)
    monkeypatch.chdir(tmp_path)
    secret_file = tmp_path / ".env"
    secret_file.write_text(f"BREAKER_SERVICE_JWT_SECRET={SECRET}\n")
    async with bare_service() as running:
        by_path = await running.client.post(
            "/uploads/by-path",
            json={"path": ".env", "provider": "kimi"},
            headers=running.auth(),
        )
        multipart = await running.client.post(
            "/uploads",
            files={"file": ("a.txt", b"hello")},
            headers=running.auth(),
        )
        stored = dict(running.upstream.provider.files)
    for response in (by_path, multipart):
        body = assert_problem(response, 403, "upload-rejected")
        assert body["reason"] == "no_allowed_dirs"
        assert "UPLOAD_ALLOWED_DIRS is not set" in body["detail"]
    assert stored == {}


def test_cli_upload_without_allowed_dirs_says_so_in_one_line(tmp_path: Path) -> None:
    """``breaker-service upload .env`` with the variable unset: exit 2, one line."""
    (tmp_path / ".env").write_text("KIMI_API_KEY=sk-secret\n")
    result = run_cli(["upload", ".env", "README.md"], tmp_path)
    assert result.returncode == 2, result.stderr
    assert "UPLOAD_ALLOWED_DIRS is not set" in one_line(result)


# -- the spool directory ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("allowed", "spool"),
    [
        pytest.param("files", "elsewhere", id="outside"),
        pytest.param("files", "files/../elsewhere", id="dotdot"),
        pytest.param("", "spool", id="no-allowed-dirs"),
    ],
)
def test_a_spool_dir_outside_the_allowed_ones_is_refused_at_load(
    tmp_path: Path, allowed: str, spool: str
) -> None:
    """``UPLOAD_SPOOL_DIR`` must lie inside ``UPLOAD_ALLOWED_DIRS``: a ConfigError."""
    with pytest.raises(ConfigError) as caught:
        load_settings(
            env_file=None,
            upload_allowed_dirs=str(tmp_path / allowed) if allowed else "",
            upload_spool_dir=str(tmp_path / spool),
        )
    assert caught.value.variable == "UPLOAD_SPOOL_DIR"
    assert "UPLOAD_ALLOWED_DIRS" in str(caught.value)


def test_a_spool_dir_inside_an_allowed_one_is_fine(tmp_path: Path) -> None:
    """Nested in an allowed directory (even through a symlinked allowed dir): accepted."""
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    settings = load_settings(
        env_file=None,
        upload_allowed_dirs=str(tmp_path / "link"),
        upload_spool_dir=str(tmp_path / "link" / ".spool"),
    )
    assert settings.upload_spool_dir == str(tmp_path / "link" / ".spool")


def test_serve_refuses_a_spool_dir_outside_in_one_line(tmp_path: Path) -> None:
    """``serve`` does not start (exit 2, one line naming the variable)."""
    result = run_cli(
        ["serve", "--port", "0"],
        tmp_path,
        BREAKER_SERVICE_JWT_SECRET=SECRET,
        UPLOAD_ALLOWED_DIRS=str(tmp_path / "files"),
        UPLOAD_SPOOL_DIR="/tmp",
    )
    assert result.returncode == 2, result.stderr
    line = one_line(result)
    assert "UPLOAD_SPOOL_DIR" in line
    assert "UPLOAD_ALLOWED_DIRS" in line


# -- Supabase follows no redirect ------------------------------------------------------


def _recorder(seen: list[dict[str, str]]) -> Starlette:
    """An app that records the headers of every request it gets, and answers 201."""

    async def anything(request: Request) -> Response:
        seen.append(dict(request.headers))
        return JSONResponse([], status_code=201)

    methods = ["GET", "POST", "PATCH", "PUT", "DELETE"]
    return Starlette(routes=[Route("/{rest:path}", anything, methods=methods)])


def _redirector(target: str) -> Starlette:
    """An app that sends every request on with a 307 to ``target``."""

    async def redirect(request: Request) -> Response:
        location = target + request.url.path + "?" + request.url.query
        return Response(status_code=307, headers={"location": location})

    methods = ["GET", "POST", "PATCH", "PUT", "DELETE"]
    return Starlette(routes=[Route("/{rest:path}", redirect, methods=methods)])


async def test_the_supabase_client_follows_no_redirect() -> None:
    """A 307 to another port: refused as an error, the key never reaches that port."""
    key = "service-role-key-never-to-leave-0123456789"
    seen: list[dict[str, str]] = []
    with (
        serve_in_thread(_recorder(seen)) as elsewhere,
        serve_in_thread(_redirector(elsewhere)) as supabase_url,
    ):
        sink = SupabaseSink(supabase_url, key, "provider_uploads", timeout=5.0)
        try:
            with pytest.raises(ProviderError) as caught:
                await sink.upsert([{"id": "1"}])
        finally:
            await sink.aclose()
    assert seen == []
    assert key not in str(caught.value)
    assert "SUPABASE_URL" in str(caught.value)
    assert caught.value.code == "redirect"


# -- /metrics and the detail of /readyz ------------------------------------------------


async def test_metrics_and_readyz_detail_need_a_reader_by_default(
    open_service: OpenService,
) -> None:
    """No token: /healthz and a bare /readyz status; /metrics 401; detail for readers."""
    async with open_service() as running:
        healthz = await running.client.get("/healthz")
        bare = await running.client.get("/readyz")
        metrics = await running.client.get("/metrics")
        writer = await running.client.get(
            "/readyz", headers=running.auth("uploads:write")
        )
        reader = await running.client.get(
            "/readyz", headers=running.auth("breakers:read")
        )
        scraped = await running.client.get(
            "/metrics", headers=running.auth("breakers:read")
        )
    assert healthz.status_code == 200
    assert bare.status_code == 200
    assert bare.json() == {"status": "ready"}
    assert writer.json() == {"status": "ready"}
    assert_problem(metrics, 401, "unauthorized")
    assert "kimi" not in metrics.text
    assert reader.json()["status"] == "ready"
    assert "event_log" in reader.json()
    assert scraped.status_code == 200
    assert 'breaker="kimi"' in scraped.text


async def test_a_bare_readyz_keeps_its_503_but_not_the_database_error(
    open_service: OpenService, tmp_path: Path
) -> None:
    """Degraded: 503 for the probe, the database error text only for a reader."""
    async with open_service() as running:
        await running.app.state.service.engine.dispose()
        (tmp_path / "api.db").unlink()
        (tmp_path / "api.db").mkdir()  # the database file cannot be opened again
        bare = await running.client.get("/readyz")
        reader = await running.client.get(
            "/readyz", headers=running.auth("breakers:read")
        )
        (tmp_path / "api.db").rmdir()
    assert bare.status_code == 503
    assert bare.json() == {"status": "degraded"}
    assert reader.status_code == 503
    assert any("database" in p for p in reader.json()["problems"]), reader.text


async def test_explicit_settings_open_metrics_and_readyz_detail(
    open_service: OpenService,
) -> None:
    """``METRICS_PUBLIC`` and ``READYZ_DETAIL_PUBLIC`` open them on purpose."""
    async with open_service(metrics_public=True, readyz_detail_public=True) as running:
        metrics = await running.client.get("/metrics")
        ready = await running.client.get("/readyz")
    assert metrics.status_code == 200
    assert samples(metrics.text)
    assert "event_log" in ready.json()


# -- a maximum token lifetime ----------------------------------------------------------


def _token(settings: Settings, **claims: Any) -> str:
    now = int(time.time())
    body = {
        "sub": "mallory",
        "scope": "breakers:read",
        "aud": settings.breaker_service_jwt_audience,
        "iss": settings.breaker_service_jwt_issuer,
        "iat": now,
        "exp": now + 60,
        **claims,
    }
    body = {k: v for k, v in body.items() if v is not None}
    return "Bearer " + jwt.encode(body, SECRET, algorithm="HS256")


def test_tokens_longer_lived_than_the_maximum_are_refused() -> None:
    """``exp - iat`` over ``BREAKER_SERVICE_JWT_MAX_LIFETIME``: 401; within: accepted."""
    settings = load_settings(
        env_file=None,
        breaker_service_jwt_secret=SECRET,
        breaker_service_jwt_max_lifetime=3600,
    )
    verifier = TokenVerifier(settings)
    now = int(time.time())
    assert verifier.verify(_token(settings, exp=now + 3600)).subject == "mallory"
    with pytest.raises(AuthError, match="lifetime"):
        verifier.verify(_token(settings, exp=now + 10 * 365 * 86400))
    with pytest.raises(AuthError):  # no iat: the lifetime cannot be known
        verifier.verify(_token(settings, iat=None))
    unbounded = TokenVerifier(load_settings(env_file=None, **_secret()))
    assert unbounded.max_lifetime is None
    assert unbounded.verify(_token(settings, exp=now + 10 * 365 * 86400)).subject


def test_minting_over_the_maximum_lifetime_is_refused() -> None:
    """``breaker-service token --ttl`` past the maximum: a ConfigError, not a dud token."""
    settings = load_settings(
        env_file=None, breaker_service_jwt_max_lifetime=900, **_secret()
    )
    with pytest.raises(ConfigError, match="BREAKER_SERVICE_JWT_MAX_LIFETIME"):
        mint_token(settings, subject="a", scopes=["breakers:read"], ttl=3600)
    assert mint_token(settings, subject="a", scopes=["breakers:read"], ttl=900)


def _secret() -> dict[str, str]:
    return {"breaker_service_jwt_secret": SECRET}

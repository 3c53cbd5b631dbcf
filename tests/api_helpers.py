"""What the HTTP service tests share: settings, a running app, fixtures, assertions.

Each test builds the app from keyword settings (no ``.env``), on a SQLite file in
``tmp_path`` and a ``FakeClock`` (backoff never sleeps; an open breaker stays open
until the test moves time). Uploads go over a real socket to the package's
fault-injecting provider, standing in for ``kimi``; ``glm`` has no key. Each test
module binds the fixtures to names of its own, where pytest finds them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from breaker_service.api import create_app
from breaker_service.api.auth import SCOPES, mint_token
from breaker_service.clock import FakeClock
from breaker_service.config import Settings, load_settings
from breaker_service.providers.flaky import (
    FaultConfig,
    FlakyProvider,
    serve_in_thread,
)
from breaker_service.providers.flaky import create_app as flaky_app

SECRET = "api-test-secret-0123456789abcdefghijkl"
KIMI_KEY = "sk-kimi-api-test-5e8a1c"
PROBLEM = "application/problem+json"
ENV_VARIABLES = (
    "BREAKER_SERVICE_JWT_SECRET",
    "BREAKER_SERVICE_JWT_PUBLIC_KEY",
    "BREAKER_SERVICE_JWT_PRIVATE_KEY",
    "BREAKER_SERVICE_JWT_ALGORITHM",
    "AUTH_DISABLED",
    "METRICS_PUBLIC",
    "READYZ_DETAIL_PUBLIC",
    "KIMI_API_KEY",
    "MOONSHOT_API_KEY",
    "GLM_API_KEY",
    "ZHIPUAI_API_KEY",
    "SUPABASE_URL",
    "SUPABASE_SERVICE_KEY",
    "SUPABASE_KEY",
    "DATABASE_URL",
)


@dataclass(frozen=True, slots=True)
class Upstream:
    """The fault-injecting provider behind ``kimi`` and its base URL."""

    provider: FlakyProvider
    url: str


@dataclass(frozen=True, slots=True)
class Service:
    """A running app, a client for it, and what it was built from."""

    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings
    clock: FakeClock
    root: Path
    upstream: Upstream

    def auth(self, *scopes: str, sub: str = "alice") -> dict[str, str]:
        """An ``Authorization`` header for ``sub`` with ``scopes`` (all when none)."""
        token = mint_token(
            self.settings, subject=sub, scopes=list(scopes or SCOPES), ttl=600
        )
        return {"Authorization": f"Bearer {token}"}

    def file(self, name: str, content: bytes = b"hello, provider\n") -> Path:
        """A file inside the allowed directory."""
        path = self.root / name
        path.write_bytes(content)
        return path


OpenService = Callable[..., AbstractAsyncContextManager[Service]]


def make_settings(tmp_path: Path, upstream_url: str, **values: Any) -> Settings:
    """Keyword settings: SQLite in ``tmp_path``, kimi only, trip after two failures."""
    root = tmp_path / "files"
    root.mkdir(exist_ok=True)
    values.setdefault("database_url", f"sqlite+aiosqlite:///{tmp_path / 'api.db'}")
    values.setdefault("breaker_service_jwt_secret", SECRET)
    values.setdefault("breaker_instance_id", "api-test")
    values.setdefault("retry_max_attempts", 1)
    values.setdefault("retry_base_delay", 0.001)
    values.setdefault("retry_max_delay", 0.01)
    values.setdefault("circuit_breaker_failure_threshold", 2)
    values.setdefault("circuit_breaker_timeout", 30.0)
    values.setdefault("upload_provider_order", "kimi")
    values.setdefault("http_read_timeout", 5.0)
    values.setdefault("http_connect_timeout", 2.0)
    return load_settings(
        env_file=None,
        upload_allowed_dirs=str(root),
        kimi_base_url=upstream_url,
        KIMI_API_KEY=KIMI_KEY,
        **values,
    )


def assert_problem(
    response: httpx.Response, status: int, kind: str | None = None
) -> dict[str, Any]:
    """The response is a problem+json of ``status`` (and ``kind``); return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["detail"]
    if kind is not None:
        assert body["type"] == f"urn:breaker-service:{kind}", body
    return body


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus samples by (name, sorted labels)."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key, URL or switch reaches the settings from the environment."""
    for name in ENV_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def upstream_server() -> Iterator[Upstream]:
    """The fault-injecting provider on a free loopback port, one per module."""
    provider = FlakyProvider(FaultConfig(seed=1, api_key=KIMI_KEY, flavor="kimi"))
    with serve_in_thread(flaky_app(provider)) as url:
        yield Upstream(provider, url)


@pytest.fixture
def upstream(upstream_server: Upstream) -> Upstream:
    """The provider, well-behaved again, with no files and fresh counters."""
    provider = upstream_server.provider
    provider.reconfigure({"down": False, "error_rate": 0.0, "max_bytes": 1 << 20})
    provider.files.clear()
    provider.stats.clear()
    return upstream_server


@pytest.fixture
def open_service(tmp_path: Path, upstream: Upstream) -> OpenService:
    """Open the service with settings overrides: ``async with open_service(**kw)``."""

    @asynccontextmanager
    async def factory(**values: Any) -> AsyncIterator[Service]:
        settings = make_settings(tmp_path, upstream.url, **values)
        clock = FakeClock()
        app = create_app(settings, clock=clock)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://testserver") as c,
        ):
            yield Service(app, c, settings, clock, tmp_path / "files", upstream)

    return factory


@pytest.fixture
async def service(open_service: OpenService) -> AsyncIterator[Service]:
    """The service with the default test settings."""
    async with open_service() as running:
        yield running


async def upload(
    service: Service, path: Path | str, *, force: bool = True, **extra: Any
) -> httpx.Response:
    """``POST /uploads/by-path`` to kimi as an admin."""
    body = {"path": str(path), "provider": "kimi", "force": force, **extra}
    return await service.client.post(
        "/uploads/by-path", json=body, headers=service.auth()
    )

"""Helpers for the dashboard tests (a plain module, not a conftest).

A real service on 127.0.0.1 (uvicorn in a thread, with the app's lifespan running)
in front of two fault-injecting providers standing in for ``kimi`` and ``glm``, a
SQLite file, tokens minted for it, and headless Chromium from Debian driven by
Playwright. Without Chromium the browser tests skip with a loud reason, or fail
when ``BREAKER_TEST_REQUIRE_BROWSER=1`` (CI).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import httpx
import pytest
from upload_helpers import FlakyServer, flaky_server, make_settings, write_file

from breaker_service.api.app import create_app
from breaker_service.api.auth import SCOPES, mint_token
from breaker_service.config import Settings
from breaker_service.providers.flaky import free_port

if TYPE_CHECKING:
    from playwright.async_api import Browser

__all__ = [
    "ARTIFACTS",
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "JWT_SECRET",
    "ServiceStack",
    "fresh_artifacts",
    "launch_chromium",
    "require_chromium",
    "serve_with_lifespan",
    "service_stack",
]

CHROMIUM = Path(os.environ.get("BREAKER_TEST_CHROMIUM", "/usr/bin/chromium"))
"""Debian's ``chromium`` package (Playwright's own browser downloads are not used)."""

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "dashboard"
"""Screenshots of each step (gitignored; kept by CI as artifacts)."""

JWT_SECRET = "dashboard-test-secret-0123456789abcdef"


def _browser_required() -> bool:
    return os.environ.get("BREAKER_TEST_REQUIRE_BROWSER", "").strip() == "1"


def browser_unavailable(reason: str) -> NoReturn:
    """Fail when a browser is required (CI), else skip loudly with the reason."""
    if _browser_required():
        pytest.fail(
            f"a browser is required (BREAKER_TEST_REQUIRE_BROWSER=1) but {reason}",
            pytrace=False,
        )
    pytest.skip(
        f"BROWSER TESTS SKIPPED: {reason}. Install Debian's chromium "
        "(apt-get install chromium); BREAKER_TEST_REQUIRE_BROWSER=1 makes this a failure."
    )


def require_chromium() -> Path:
    """The Chromium binary, or a skip (a failure in CI) saying it is missing."""
    if not CHROMIUM.exists():
        browser_unavailable(f"{CHROMIUM} is missing")
    return CHROMIUM


@contextlib.asynccontextmanager
async def launch_chromium() -> AsyncIterator[Browser]:
    """Headless Chromium from Debian under Playwright: yields the ``Browser``."""
    chromium = require_chromium()
    try:
        from playwright.async_api import Error, async_playwright  # noqa: PLC0415
    except ImportError as exc:
        browser_unavailable(f"the playwright package is missing ({exc})")
    async with async_playwright() as playwright:
        try:
            browser = await playwright.chromium.launch(
                executable_path=str(chromium), args=CHROMIUM_ARGS, timeout=30_000
            )
        except Error as exc:
            browser_unavailable(
                f"{chromium} does not start: {str(exc).splitlines()[0]}"
            )
        try:
            yield browser
        finally:
            await browser.close()


@contextlib.contextmanager
def serve_with_lifespan(
    app: Any, *, host: str = "127.0.0.1", port: int = 0
) -> Iterator[str]:
    """Run ``app`` under uvicorn in a thread with its lifespan; yields the base URL.

    ``providers.flaky.serve_in_thread`` runs without the lifespan, which the service
    needs (it opens the registry, the providers and the stores there).
    """
    import uvicorn  # noqa: PLC0415 - only where a server is started

    port = port or free_port(host)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"service-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            msg = f"the service on {host}:{port} did not start (see the log above)"
            raise RuntimeError(msg)
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@dataclass
class ServiceStack:
    """A running service, its providers and its tokens."""

    url: str
    settings: Settings
    kimi: FlakyServer
    glm: FlakyServer
    files: Path
    admin_token: str
    reader_token: str
    writer_token: str
    uploads: int = 0

    async def upload(self, client: httpx.AsyncClient) -> dict[str, Any]:
        """Upload one new file through ``POST /uploads/by-path``."""
        self.uploads += 1
        path = write_file(
            self.files / f"report-{self.uploads:03d}.pdf",
            os.urandom(3000 + 137 * self.uploads),
        )
        response = await client.post(
            f"{self.url}/uploads/by-path",
            json={"path": str(path)},
            headers={"Authorization": f"Bearer {self.writer_token}"},
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    async def breaker(self, client: httpx.AsyncClient, name: str) -> dict[str, Any]:
        """``GET /breakers/{name}`` as the reader."""
        response = await client.get(
            f"{self.url}/breakers/{name}",
            headers={"Authorization": f"Bearer {self.reader_token}"},
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


@contextlib.contextmanager
def service_stack(
    tmp_path: Path, *, auth_disabled: bool = False, **values: Any
) -> Iterator[ServiceStack]:
    """The service on a SQLite file with ``kimi`` and ``glm`` flaky providers."""
    files = tmp_path / "files"
    files.mkdir(parents=True, exist_ok=True)
    with flaky_server("kimi") as kimi, flaky_server("glm") as glm:
        values.setdefault("circuit_breaker_failure_threshold", 3)
        values.setdefault("circuit_breaker_timeout", 60.0)
        values.setdefault("retry_max_attempts", 2)
        values.setdefault("breaker_instance_id", "replica-a")
        settings = make_settings(
            files,
            kimi_url=kimi.url,
            glm_url=glm.url,
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'service.db'}",
            breaker_service_jwt_secret=None if auth_disabled else JWT_SECRET,
            auth_disabled=auth_disabled,
            upload_provider_order="kimi,glm",
            **values,
        )
        tokens = {"admin": "", "reader": "", "writer": ""}
        if not auth_disabled:
            tokens = {
                "admin": mint_token(
                    settings, subject="alice", scopes=list(SCOPES), ttl=900
                ),
                "reader": mint_token(
                    settings, subject="bob", scopes=["breakers:read"], ttl=900
                ),
                "writer": mint_token(
                    settings, subject="uploader", scopes=["uploads:write"], ttl=900
                ),
            }
        with serve_with_lifespan(create_app(settings)) as url:
            yield ServiceStack(
                url=url,
                settings=settings,
                kimi=kimi,
                glm=glm,
                files=files,
                admin_token=tokens["admin"],
                reader_token=tokens["reader"],
                writer_token=tokens["writer"],
            )


def fresh_artifacts(name: str) -> Path:
    """An empty ``test-artifacts/dashboard/<name>`` directory for screenshots."""
    folder = ARTIFACTS / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    return folder

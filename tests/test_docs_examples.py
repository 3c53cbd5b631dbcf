"""The examples of ``docs/from-the-report.md`` run as written, as the README's do.

Each ``python`` block runs in a fresh interpreter in an empty directory. The HTTP
examples find a real service through ``BREAKER_SERVICE_URL`` and
``BREAKER_SERVICE_TOKEN``: the service runs here under uvicorn on 127.0.0.1 (lifespan
on, SQLite in a temporary directory), with a local fault-injecting files API as
``kimi``. ``dotenv`` blocks must load into valid settings. ``py`` blocks quote the
original report and are not run.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from breaker_service.api.app import create_app
from breaker_service.api.auth import SCOPES, mint_token
from breaker_service.config import load_settings
from breaker_service.providers.flaky import (
    FaultConfig,
    FlakyProvider,
    free_port,
    serve_in_thread,
)
from breaker_service.providers.flaky import (
    create_app as create_flaky_app,
)

PAGE = Path(__file__).resolve().parent.parent / "docs" / "from-the-report.md"
SECRET = "docs-examples-secret-0123456789abcdefghij"
KIMI_KEY = "sk-docs-kimi-4242"
OUR_PREFIXES = (
    "RETRY_",
    "CIRCUIT_",
    "RESILIENCE_",
    "DATABASE_",
    "SUPABASE_",
    "KIMI_",
    "MOONSHOT_",
    "GLM_",
    "ZHIPUAI_",
    "OPENAI_COMPAT",
    "BREAKER_",
    "AUTH_",
    "UPLOAD_",
    "SERVICE_",
    "EVENT_LOG_",
    "OUTBOX_",
    "HTTP_",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)
"""Variables of the developer's environment the examples must not see."""


def blocks(language: str) -> list[str]:
    """Every fenced block of the page in ``language``."""
    return re.findall(rf"```{language}\n(.*?)```", PAGE.read_text(), flags=re.DOTALL)


@contextlib.contextmanager
def serve_with_lifespan(app: object) -> Iterator[str]:
    """Run an ASGI app with its lifespan under uvicorn in a thread; yield its URL."""
    port = free_port()
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="docs-service", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "the service did not start"
        assert time.monotonic() < deadline, "the service did not start in time"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A running service with a flaky ``kimi``: the variables the HTTP examples read."""
    root = tmp_path_factory.mktemp("docs-service")
    (root / "allowed").mkdir()
    stand_in = FlakyProvider(
        FaultConfig(error_rate=0.2, mix={"503": 1.0}, seed=11, api_key=KIMI_KEY)
    )
    with serve_in_thread(create_flaky_app(stand_in)) as kimi_url:
        settings = load_settings(
            env_file=None,
            KIMI_API_KEY=KIMI_KEY,
            kimi_base_url=kimi_url,
            database_url=f"sqlite+aiosqlite:///{root / 'service.db'}",
            upload_allowed_dirs=str(root / "allowed"),
            breaker_service_jwt_secret=SECRET,
            breaker_instance_id="docs",
            retry_base_delay=0.01,
            retry_max_delay=0.1,
        )
        token = mint_token(settings, subject="docs", scopes=list(SCOPES), ttl=600)
        with serve_with_lifespan(create_app(settings)) as url:
            yield {"BREAKER_SERVICE_URL": url, "BREAKER_SERVICE_TOKEN": token}


def test_the_page_has_examples_of_both_kinds() -> None:
    """Embedded and HTTP examples for each of the report's six pieces."""
    code = blocks("python")
    http = [block for block in code if "BREAKER_SERVICE_URL" in block]
    assert len(http) >= 5
    assert len(code) - len(http) >= 6
    headings = [
        line for line in PAGE.read_text().splitlines() if line.startswith("## ")
    ]
    for name in (
        "RetryConfig",
        "RetryHandler",
        "CircuitBreaker",
        "ResilientProvider.execute",
        "_upload_to_provider_with_resilience",
        "track_in_supabase",
    ):
        assert any(name in heading for heading in headings), name


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_python_example_runs(
    index: int, tmp_path: Path, service: dict[str, str]
) -> None:
    """Each example runs in a fresh interpreter, in an empty directory, and exits 0."""
    code = blocks("python")[index]
    env = {k: v for k, v in os.environ.items() if not k.startswith(OUR_PREFIXES)}
    env.update(service)
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize("index", range(len(blocks("dotenv"))))
def test_dotenv_example_is_valid_configuration(index: int, tmp_path: Path) -> None:
    """A ``.env`` shown on the page loads, every line is read, overrides apply."""
    env_file = tmp_path / ".env"
    env_file.write_text(blocks("dotenv")[index])
    settings = load_settings(env_file=env_file)
    assert settings.retry_max_attempts == 3
    assert settings.for_provider("glm").circuit_breaker_timeout == 30.0
    assert settings.for_provider("kimi").circuit_breaker_timeout == 60.0

"""``/healthz`` stays fast while a 100 MB file is uploaded (issue 14.2).

The file a path upload sends is opened, checked, hashed and read off the event
loop (``uploads.source``): an upload in progress must not hold the loop. A real
``breaker-service serve`` process (uvicorn on 127.0.0.1) uploads a 100 MB sparse
file from ``tmp_path`` to a ``breaker-service flaky-provider`` process (no
faults), and this process probes ``/healthz`` while the upload runs. Both servers
are other processes, so this process only waits on sockets and its clock measures
the service, not itself.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from breaker_service.api.auth import SCOPES, mint_token
from breaker_service.config import load_settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SCRIPT = Path(sys.executable).with_name("breaker-service")
SECRET = "latency-test-secret-0123456789abcdefghijk"
PROVIDER_KEY = "sk-latency-kimi-key-5"
SIZE = 100_000_000  # 100 MB: under both limits (100 MiB)
BUDGET = 0.100  # seconds: the slowest /healthz answer allowed during the upload
PROBE_EVERY = 0.05
ATTEMPTS = 3
MIN_PROBES = 5
START_TIMEOUT = 60.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _environment(tmp_path: Path, upstream: str) -> dict[str, str]:
    """This environment without the service's variables, plus the test's own."""
    ours = (
        "RETRY_", "CIRCUIT_", "RESILIENCE_", "DATABASE_", "SUPABASE_", "KIMI_",
        "MOONSHOT_", "GLM_", "ZHIPUAI_", "OPENAI_COMPAT", "BREAKER_", "AUTH_",
        "UPLOAD_", "SERVICE_", "METRICS_", "HTTP_", "HTTPS_", "ALL_PROXY",
        "http_proxy", "https_proxy", "all_proxy",
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    env.update(
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'service.db'}",
        KIMI_BASE_URL=upstream,
        KIMI_API_KEY=PROVIDER_KEY,
        BREAKER_SERVICE_JWT_SECRET=SECRET,
        UPLOAD_ALLOWED_DIRS=str(tmp_path / "files"),
        UPLOAD_PROVIDER_ORDER="kimi",
        RETRY_MAX_ATTEMPTS="1",
        HTTP_READ_TIMEOUT="120",
    )
    return env


def _wait_until_up(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{url}: exited {process.returncode}\n{log.read_text()}")
        try:
            httpx.get(url, timeout=1, trust_env=False)
        except httpx.TransportError:
            time.sleep(0.1)
        else:
            return
    pytest.fail(f"{url} did not answer in {START_TIMEOUT}s\n{log.read_text()}")


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes the test starts, killed at the end whatever happens."""
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def _start(
    args: list[str],
    tmp_path: Path,
    env: dict[str, str],
    started: list[subprocess.Popen[bytes]],
    probe: str,
) -> None:
    log = tmp_path / f"{args[0]}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(SCRIPT), *args], cwd=tmp_path, env=env, stdout=out, stderr=out
        )
    started.append(process)
    _wait_until_up(process, probe, log)


def test_healthz_answers_within_100ms_during_a_100mb_upload(
    tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    """Every ``/healthz`` probe during a 100 MB upload answers in under 100 ms.

    Up to ``ATTEMPTS`` uploads: the box running the suite may be busy, and one
    probe can wait for a CPU. An event loop held by the upload (a file read or a
    hash on the loop) is slow in every attempt; the figures of all are reported.
    """
    (tmp_path / "files").mkdir()
    big = tmp_path / "files" / "big.bin"
    with big.open("wb") as out:
        out.truncate(SIZE)  # sparse: the bytes are zeros, the work is the service's
    small = tmp_path / "files" / "small.txt"
    small.write_bytes(b"warm-up\n")
    provider_port, service_port = _free_port(), _free_port()
    upstream = f"http://127.0.0.1:{provider_port}"
    env = _environment(tmp_path, upstream)
    _start(
        ["flaky-provider", "--port", str(provider_port), "--error-rate", "0",
         "--flavor", "kimi", "--api-key", PROVIDER_KEY],
        tmp_path, env, started, f"{upstream}/v1/files",
    )  # fmt: skip
    service = f"http://127.0.0.1:{service_port}"
    _start(
        ["serve", "--port", str(service_port)],
        tmp_path,
        env,
        started,
        f"{service}/healthz",
    )
    settings = load_settings(
        env_file=None,
        breaker_service_jwt_secret=SECRET,
        database_url="sqlite+aiosqlite:///:memory:",
    )
    token = mint_token(settings, subject="latency", scopes=list(SCOPES), ttl=600)
    headers = {"Authorization": f"Bearer {token}"}
    figures: list[str] = []
    with (
        httpx.Client(
            base_url=service, headers=headers, timeout=240, trust_env=False
        ) as uploader,
        httpx.Client(base_url=service, timeout=10, trust_env=False) as probe,
    ):
        # Warm: both connections open, the first upload's one-time work done.
        warm = uploader.post("/uploads/by-path", json={"path": str(small)})
        assert warm.status_code == 200, warm.text
        probe.get("/healthz")
        for _ in range(ATTEMPTS):
            latencies = _probe_during_upload(uploader, probe, big)
            slowest = max(latencies)
            figures.append(
                f"{len(latencies)} probes, max {slowest * 1000:.1f} ms, median "
                f"{sorted(latencies)[len(latencies) // 2] * 1000:.1f} ms"
            )
            if slowest < BUDGET:
                break
    print(f"/healthz during a {SIZE // 1_000_000} MB upload: " + "; ".join(figures))
    assert slowest < BUDGET, f"/healthz too slow in every attempt: {figures}"


def _probe_during_upload(
    uploader: httpx.Client, probe: httpx.Client, big: Path
) -> list[float]:
    """Upload ``big`` in a thread; the latency of each probe answered meanwhile."""
    answer: list[httpx.Response] = []
    body = {"path": str(big), "provider": "kimi", "force": True}
    uploading = threading.Thread(
        target=lambda: answer.append(uploader.post("/uploads/by-path", json=body))
    )
    latencies: list[float] = []
    uploading.start()
    while uploading.is_alive():
        time.sleep(PROBE_EVERY)
        began = time.perf_counter()
        response = probe.get("/healthz")
        elapsed = time.perf_counter() - began
        assert response.status_code == 200
        if uploading.is_alive():  # answered while the upload was still running
            latencies.append(elapsed)
    uploading.join()
    [response] = answer
    assert response.status_code == 200, response.text
    assert response.json()["bytes"] == SIZE
    assert len(latencies) >= MIN_PROBES, (
        f"the upload ended after {len(latencies)} probes"
    )
    return latencies

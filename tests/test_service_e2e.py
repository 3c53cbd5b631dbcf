"""End to end through a real ``breaker-service serve`` process on 127.0.0.1.

A fault-injecting provider runs in this process (``serve_in_thread``) as ``kimi``;
the service is the installed script, configured only through its environment,
on a SQLite file in ``tmp_path``. The breaker is tripped through the API, the
process is stopped (SIGTERM: a graceful shutdown; SIGKILL: a crash) and started
again on the same file: the breaker is still open, with its audit trail, until an
admin resets it. The CLI reads the same file while the service runs.

Real time throughout: the breaker's cooldown is 300 s, far longer than the test.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from breaker_service.api.auth import SCOPES, mint_token
from breaker_service.config import load_settings
from breaker_service.providers.flaky import (
    FaultConfig,
    FlakyProvider,
    create_app,
    serve_in_thread,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SCRIPT = Path(sys.executable).with_name("breaker-service")
SECRET = "e2e-test-secret-0123456789abcdefghijklmn"
PROVIDER_KEY = "sk-e2e-kimi-key-77"
START_TIMEOUT = 60.0  # the child imports everything and migrates the file
STOP_TIMEOUT = 30.0
COOLDOWN = 300
STRIPPED_PREFIXES = (
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
    "METRICS_",
    "EVENT_LOG_",
    "OUTBOX_",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tokens() -> dict[str, str]:
    """Bearer headers for an admin (``ops-admin``) and a reader, from the shared secret."""
    settings = load_settings(
        env_file=None,
        breaker_service_jwt_secret=SECRET,
        database_url="sqlite+aiosqlite:///:memory:",
    )
    admin = mint_token(settings, subject="ops-admin", scopes=list(SCOPES), ttl=600)
    reader = mint_token(settings, subject="viewer", scopes=["breakers:read"], ttl=600)
    return {"admin": f"Bearer {admin}", "reader": f"Bearer {reader}"}


@dataclass
class Deployment:
    """The environment of the service and the CLI, and the processes started."""

    tmp_path: Path
    upstream: FlakyProvider
    env: dict[str, str]
    auth: dict[str, str] = field(default_factory=tokens)
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[IO[bytes]] = field(default_factory=list)

    @property
    def files(self) -> Path:
        """The allowed upload directory."""
        return self.tmp_path / "files"

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """The installed script with the service's environment."""
        return subprocess.run(
            [str(SCRIPT), *args],
            cwd=self.tmp_path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def serve(self) -> Service:
        """Start ``breaker-service serve`` on a free port and wait for ``/healthz``."""
        port = free_port()
        log = (self.tmp_path / f"serve-{len(self.started)}.log").open("wb")
        self.logs.append(log)
        process = subprocess.Popen(
            [str(SCRIPT), "serve", "--port", str(port)],
            cwd=self.tmp_path,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.started.append(process)
        service = Service(
            process,
            httpx.Client(
                base_url=f"http://127.0.0.1:{port}", timeout=30, trust_env=False
            ),
            Path(log.name),
            self.auth,
        )
        service.wait_until_healthy()
        return service

    def cleanup(self) -> None:
        """Kill whatever is still running and close the logs."""
        for process in self.started:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)
        for log in self.logs:
            log.close()


@dataclass
class Service:
    """One ``breaker-service serve`` process and a client for it."""

    process: subprocess.Popen[bytes]
    client: httpx.Client
    log: Path
    auth: dict[str, str]

    def output(self) -> str:
        """What the process has logged so far."""
        return self.log.read_text(errors="replace")

    def wait_until_healthy(self) -> None:
        """Poll ``/healthz`` until it answers, the process dies, or time runs out."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"serve exited with {self.process.returncode}:\n{self.output()}"
                )
            try:
                if self.client.get("/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail(
            f"serve did not answer /healthz in {START_TIMEOUT}s:\n{self.output()}"
        )

    def request(
        self, method: str, path: str, who: str | None = "admin", **kwargs: Any
    ) -> httpx.Response:
        """A request as ``who`` (``admin``, ``reader`` or ``None``)."""
        headers = {"Authorization": self.auth[who]} if who else {}
        return self.client.request(method, path, headers=headers, **kwargs)

    def upload(self, path: Path) -> httpx.Response:
        """Upload ``path`` to kimi (again, even if it was uploaded before)."""
        body = {"path": str(path), "provider": "kimi", "force": True}
        return self.request("POST", "/uploads/by-path", json=body)

    def breaker(self, name: str = "kimi") -> dict[str, Any]:
        """``GET /breakers/{name}`` as a reader."""
        response = self.request("GET", f"/breakers/{name}", who="reader")
        assert response.status_code == 200, response.text
        row: dict[str, Any] = response.json()
        return row

    def transitions(self, name: str = "kimi") -> list[dict[str, Any]]:
        """The breaker's transitions from its audit trail."""
        response = self.request(
            "GET",
            f"/breakers/{name}/events",
            who="reader",
            params={"kind": "transition"},
        )
        assert response.status_code == 200, response.text
        rows: list[dict[str, Any]] = response.json()["events"]
        return rows

    def stop(self, how: signal.Signals) -> None:
        """Send ``how`` and check the process ends as that signal should end it.

        SIGTERM is a graceful stop: the lifespan closes (events flushed, snapshots
        written), then uvicorn re-raises the signal, so the exit status is
        -SIGTERM (0 with older uvicorn). SIGKILL is a crash: nothing more runs.
        """
        self.client.close()
        self.process.send_signal(how)
        try:
            code = self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT)
            pytest.fail(
                f"serve ignored {how.name} for {STOP_TIMEOUT}s:\n{self.output()}"
            )
        graceful = "Application shutdown complete" in self.output()
        if how == signal.SIGTERM:
            assert code in {0, -signal.SIGTERM}, self.output()
            assert graceful, self.output()
        else:
            assert code == -how, self.output()
            assert not graceful, self.output()


def service_env(tmp_path: Path, upstream_url: str) -> dict[str, str]:
    """This process's environment without our variables, plus the test's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(STRIPPED_PREFIXES)}
    env.update(
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'service.db'}",
        KIMI_BASE_URL=upstream_url,
        KIMI_API_KEY=PROVIDER_KEY,
        BREAKER_SERVICE_JWT_SECRET=SECRET,
        UPLOAD_ALLOWED_DIRS=str(tmp_path / "files"),
        UPLOAD_PROVIDER_ORDER="kimi",
        CIRCUIT_BREAKER_FAILURE_THRESHOLD="2",
        RETRY_MAX_ATTEMPTS="1",
        CIRCUIT_BREAKER_TIMEOUT=str(COOLDOWN),
        HTTP_READ_TIMEOUT="10",
    )
    return env


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    """A provider on a loopback port and the service's environment; cleans up."""
    provider = FlakyProvider(FaultConfig(seed=4, api_key=PROVIDER_KEY, flavor="kimi"))
    (tmp_path / "files").mkdir()
    with serve_in_thread(create_app(provider)) as url:
        deployed = Deployment(tmp_path, provider, service_env(tmp_path, url))
        try:
            yield deployed
        finally:
            deployed.cleanup()


def trip(service: Service, path: Path, upstream: FlakyProvider) -> httpx.Response:
    """Take the provider down and upload until the breaker refuses; return the 503."""
    upstream.reconfigure({"down": True})
    for _ in range(6):
        response = service.upload(path)
        if response.status_code == 503:
            return response
        assert response.status_code == 502, response.text
        assert response.json()["upstream_status"] == 503
    pytest.fail(f"the breaker did not open after 6 failures: {service.breaker()}")


@pytest.mark.parametrize(
    "how",
    [
        pytest.param(signal.SIGTERM, id="graceful-stop"),
        pytest.param(signal.SIGKILL, id="crash"),
    ],
)
def test_an_open_breaker_survives_a_restart(
    deployment: Deployment, how: signal.Signals
) -> None:
    """Upload; trip the breaker; stop the process; the next one is open until reset."""
    document = deployment.files / "report.txt"
    document.write_bytes(b"quarterly figures\n" * 50)
    first = deployment.serve()
    uploaded = first.upload(document)
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json()["provider_file_id"] in deployment.upstream.files

    refused = trip(first, document, deployment.upstream)
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["type"] == "urn:breaker-service:circuit-open"
    assert 1 <= int(refused.headers["retry-after"]) <= COOLDOWN
    before = first.breaker()
    assert before["state"] == "open"
    assert before["retry_after"] > 0

    first.stop(how)

    second = deployment.serve()
    after = second.breaker()
    assert after["state"] == "open", after
    assert 0 < after["retry_after"] <= before["retry_after"]
    assert after["opened_at"] == pytest.approx(before["opened_at"])
    opened = second.transitions()
    assert [(t["from_state"], t["to_state"]) for t in opened] == [("closed", "open")]
    failures = second.request(
        "GET", "/breakers/kimi/events", params={"kind": "failure"}
    ).json()["events"]
    assert sum(e["count"] for e in failures) >= 2  # outcome runs: calls per row
    still_refused = second.upload(document)
    assert still_refused.status_code == 503, still_refused.text
    assert int(still_refused.headers["retry-after"]) >= 1

    reset = second.request(
        "POST", "/breakers/kimi/reset", json={"reason": "provider fixed"}
    )
    assert reset.status_code == 200, reset.text
    assert reset.json()["state"] == "closed"
    assert second.breaker()["state"] == "closed"
    last = second.transitions()[-1]
    assert (last["from_state"], last["to_state"]) == ("open", "closed")
    assert (last["actor"], last["reason"]) == ("ops-admin", "provider fixed")
    assert last["instance_id"] != opened[0]["instance_id"]  # another process

    deployment.upstream.reconfigure({"down": False})
    assert second.upload(document).status_code == 200
    second.stop(signal.SIGTERM)


@dataclass
class Writer:
    """Uploads to kimi from a thread, one new file after another, until stopped."""

    service: Service
    folder: Path
    statuses: list[int] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        for n in range(2000):  # bounded even if never stopped
            if self.done.is_set():
                return
            path = self.folder / f"live-{n}.txt"
            path.write_bytes(f"upload {n}\n".encode())
            self.statuses.append(self.service.upload(path).status_code)


def test_cli_reads_the_database_while_the_service_writes(
    deployment: Deployment,
) -> None:
    """``status``, ``events`` and ``outbox`` on the service's SQLite file while it writes."""
    service = deployment.serve()
    opened = service.request(
        "POST", "/breakers/glm/force-open", json={"reason": "cli drill"}
    )
    assert opened.status_code == 200, opened.text
    writer = Writer(service, deployment.files)
    thread = threading.Thread(target=writer.run, name="uploads", daemon=True)
    thread.start()
    try:
        status = deployment.cli("status", "--json")
        events = deployment.cli("events", "glm", "--json")
        successes = deployment.cli("events", "kimi", "--kind", "success", "--json")
        outbox = deployment.cli("outbox", "--json")
    finally:
        writer.done.set()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert writer.statuses, "no upload finished while the CLI ran"
    assert set(writer.statuses) == {200}, writer.statuses

    assert status.returncode == 0, status.stderr
    rows = {row["name"]: row for row in json.loads(status.stdout)["breakers"]}
    assert rows["glm"]["state"] == "forced_open"
    assert events.returncode == 0, events.stderr
    trail = json.loads(events.stdout)
    assert [(e["to_state"], e["actor"]) for e in trail] == [
        ("forced_open", "ops-admin")
    ]
    assert successes.returncode == 0, successes.stderr
    assert {e["kind"] for e in json.loads(successes.stdout)} <= {"success"}
    assert outbox.returncode == 0, outbox.stderr
    counts = json.loads(outbox.stdout)
    assert counts["tracking_enabled"] is False
    assert counts["pending"] == 0

    # the service kept its log healthy, and still writes after the CLI was there
    ready = service.request("GET", "/readyz", who="reader")
    assert ready.status_code == 200, ready.text
    assert ready.json()["event_log"]["degraded"] is False
    reset = service.request("POST", "/breakers/glm/reset", json={"reason": "over"})
    assert reset.status_code == 200, reset.text
    served = service.breaker("kimi")["successes"]
    assert served == len(writer.statuses)
    service.stop(signal.SIGTERM)
    again = deployment.cli("status", "--json")
    rows = {row["name"]: row for row in json.loads(again.stdout)["breakers"]}
    assert rows["glm"]["state"] == "closed"
    assert rows["kimi"]["successes"] == served  # every outcome reached the file


@pytest.mark.parametrize(
    "secret",
    [pytest.param(None, id="no-key"), pytest.param("short", id="short-key")],
)
def test_serve_refuses_to_start_without_a_usable_key(
    deployment: Deployment, secret: str | None
) -> None:
    """No key, or one under 32 bytes: exit 2 with one line naming the variable."""
    env = dict(deployment.env)
    env.pop("BREAKER_SERVICE_JWT_SECRET")
    if secret is not None:
        env["BREAKER_SERVICE_JWT_SECRET"] = secret
    result = subprocess.run(
        [str(SCRIPT), "serve", "--port", str(free_port())],
        cwd=deployment.tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "BREAKER_SERVICE_JWT_SECRET" in lines[0]
    assert "Traceback" not in result.stderr
    assert not (deployment.tmp_path / "service.db").exists()  # refused before opening


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _hostile_post(port: int, path: str, content_type: str, total: int) -> bytes:
    """Send headers for a ``total``-byte body, then body bytes until the server answers."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {total}\r\n\r\n"
    ).encode()
    chunk = b"0" * (1 << 20)
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        sent = 0
        deadline = time.monotonic() + 30
        while sent < total and time.monotonic() < deadline:
            with contextlib.suppress(BlockingIOError):
                answer += sock.recv(65536)
            if answer:
                break
            try:
                sent += sock.send(chunk)
            except BlockingIOError:
                time.sleep(0.005)
            except OSError:
                break
        sock.setblocking(True)
        sock.settimeout(5)
        with contextlib.suppress(OSError):
            while b"\r\n\r\n" not in answer and (more := sock.recv(65536)):
                answer += more
    return answer


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        pytest.param("/uploads", "multipart/form-data; boundary=x", id="multipart"),
        pytest.param("/uploads/by-path", "application/json", id="json"),
    ],
)
def test_unauthenticated_200mb_bodies_cost_nothing(
    deployment: Deployment, path: str, content_type: str
) -> None:
    """A real server: 401 for 200 MB without a token, RSS growth < 20 MB, nothing spooled."""
    spool = deployment.tmp_path / "tmp"
    spool.mkdir()
    deployment.env["TMPDIR"] = str(spool)
    service = deployment.serve()
    before = _rss_kib(service.process.pid)
    port = int(str(service.client.base_url).rsplit(":", 1)[1].rstrip("/"))
    answer = _hostile_post(port, path, content_type, 200 * (1 << 20))
    grown = _rss_kib(service.process.pid) - before
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert grown < 20 * 1024, f"RSS grew by {grown} KiB"
    assert list(spool.iterdir()) == []
    assert not list((deployment.files / ".spool").glob("**/*.*"))
    assert service.client.get("/healthz").status_code == 200
    service.stop(signal.SIGTERM)

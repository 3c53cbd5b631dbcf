"""Issue 15's done-when: SIGKILL ``serve`` during uploads with ambiguous faults; no orphans.

A real ``breaker-service serve`` process uploads to the flaky provider (in this
process) with 15 % faults, 2 % of them ambiguous (stored, then a 500 or a dropped
connection), tracking to the PostgREST stub. Clients upload distinct files; each
round the process is killed (SIGKILL) after a random moment, and unacknowledged
files are sent again to the next process (``force`` off: a copy adopted at start-up
is answered as a duplicate). At the end: every acknowledged upload is recorded, each
record is tracked exactly once, no recorded file was deleted, and after
reconciliation the provider holds no file we did not record.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_service_e2e import Deployment, Service, service_env
from tracking_helpers import SERVICE_KEY, stub_ids, supabase_server
from upload_helpers import ScriptedFlaky

from breaker_service.providers.flaky import FaultConfig, create_app, serve_in_thread

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ROUNDS = 4
FILES = 60
CLIENTS = 4
PROVIDER_KEY = "sk-e2e-kimi-key-77"
FAULTS = FaultConfig(
    seed=15,
    api_key=PROVIDER_KEY,
    flavor="kimi",
    error_rate=0.15,
    # 15 % faults, of which 2 % of all requests are ambiguous (store, then fail)
    mix={"503": 6.5, "500": 6.5, "store_500": 1.0, "store_drop": 1.0},
    latency_ms=(5.0, 30.0),
    stored_latency_ms=(0.0, 60.0),  # a kill here: stored, never acknowledged
)
FIRST = ["store_500", None, "store_drop"]
"""The first requests meet these, so every run has ambiguous faults to settle."""


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        found = list(conn.execute(sql))
    conn.close()
    return found


class Clients:
    """Threads that upload every pending file, each once per process, until told to stop."""

    def __init__(self, service: Service, pending: list[Path]) -> None:
        self.service = service
        self.pending = pending
        self.acked: dict[Path, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def _next(self) -> Path | None:
        with self.lock:
            return (
                self.pending.pop() if self.pending and not self.stop.is_set() else None
            )

    def run(self) -> None:
        client = httpx.Client(
            base_url=str(self.service.client.base_url), timeout=30, trust_env=False
        )
        headers = {"Authorization": self.service.auth["admin"]}
        try:
            while (path := self._next()) is not None:
                body = {"path": str(path), "provider": "kimi", "force": False}
                try:
                    response = client.post(
                        "/uploads/by-path", json=body, headers=headers
                    )
                except httpx.TransportError:
                    return  # the process died under us: this file is not acknowledged
                if response.status_code == 200:
                    with self.lock:
                        self.acked[path] = response.json()
                # any other answer: not acknowledged; the next process gets it again
        finally:
            client.close()

    def go(self, seconds: float | None) -> None:
        """Upload for ``seconds`` (then the caller kills), or until all are sent."""
        threads = [threading.Thread(target=self.run) for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        if seconds is not None:
            time.sleep(seconds)
            self.stop.set()
            self.service.process.send_signal(signal.SIGKILL)
        for t in threads:
            t.join(timeout=60)
        if seconds is not None:
            self.service.client.close()


def test_kill_9_during_ambiguous_uploads_leaves_no_orphans(tmp_path: Path) -> None:
    """Every acknowledged upload recorded and tracked once; 0 orphans; none deleted."""
    started = time.monotonic()
    rng = random.Random(15)
    provider = ScriptedFlaky(FAULTS, script=FIRST)
    files = tmp_path / "files"
    files.mkdir()
    paths = [files / f"doc-{i:03d}.txt" for i in range(FILES)]
    for i, p in enumerate(paths):
        p.write_bytes(f"document {i}\n".encode() * (i + 1))
    acked: dict[Path, dict[str, Any]] = {}
    with (
        serve_in_thread(create_app(provider)) as url,
        supabase_server(tmp_path / "supabase.db") as supabase,
    ):
        env = service_env(tmp_path, url)
        env.update(
            RETRY_MAX_ATTEMPTS="4",
            RETRY_BASE_DELAY="0.01",
            RETRY_MAX_DELAY="0.05",
            CIRCUIT_BREAKER_FAILURE_THRESHOLD="50",
            BREAKER_REPLICA_ID="kill-test",
            SUPABASE_URL=supabase.url,
            SUPABASE_SERVICE_KEY=SERVICE_KEY,
            UPLOAD_RECONCILE_INTERVAL="1",
        )
        deployment = Deployment(tmp_path, provider, env)
        try:
            for _ in range(ROUNDS):
                pending = [p for p in paths if p not in acked]
                rng.shuffle(pending)
                service = deployment.serve()
                clients = Clients(service, pending)
                clients.go(rng.uniform(0.4, 1.2))
                service.process.wait(timeout=30)
                assert service.process.returncode == -signal.SIGKILL
                acked.update(clients.acked)
            # the last process: start-up reconcile, the rest uploaded, reconciled
            service = deployment.serve()
            pending = [p for p in paths if p not in acked]
            clients = Clients(service, pending)
            clients.go(None)
            acked.update(clients.acked)
            done = service.request("POST", "/uploads/reconcile")
            assert done.status_code == 200, done.text
            report = done.json()
            service.stop(signal.SIGTERM)  # delivers the outbox within its bound
        finally:
            deployment.cleanup()
        stubbed = stub_ids(supabase.stub)
    db = tmp_path / "service.db"
    uploads = dict(_rows(db, "SELECT id, provider_file_id FROM uploads"))
    held = set(provider.files)
    # every file acknowledged once all rounds are over, and each recorded
    assert set(acked) == set(paths), f"not acknowledged: {set(paths) - set(acked)}"
    for answer in acked.values():
        assert uploads.get(answer["upload_id"]) == answer["provider_file_id"]
    assert len(uploads) == FILES  # one record per file, never two
    # every record tracked once: one outbox row each, one Supabase row each
    outbox = [r[0] for r in _rows(db, "SELECT id FROM outbox")]
    assert sorted(outbox) == sorted(uploads)
    assert len(stubbed) == len(set(stubbed))
    assert set(stubbed) <= set(uploads)
    # no recorded file deleted; no orphan left
    assert set(uploads.values()) <= held, "a recorded file was deleted"
    assert held == set(uploads.values()), (
        f"orphans: {held - set(uploads.values())}; last reconcile: {report}"
    )
    assert report["orphans"] == 0
    assert provider.stats["ambiguous"] > 0, "the faults never hit an upload"
    assert time.monotonic() - started < 90  # about 40 s on two busy cores

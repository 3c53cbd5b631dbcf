"""The fault-injecting files API in its own process, for ``bench/chaos.py``.

The benchmark's client and the server must not share one interpreter (one GIL, one
event loop), or the server's work would be billed to the client. ``FlakyServers``
starts ``python bench/chaos_server.py --serve PORT:FLAVOR ...`` as one child process
serving one independent ``FlakyProvider`` (own faults, own seeded random stream) per
port, waits for ``/healthz``, and hands out one ``Endpoint`` per port to
reconfigure it live (``PUT /admin/faults``) and read its counters
(``GET /admin/stats``); ``GET /bench/cpu`` gives the server process's CPU time.

    python bench/chaos_server.py --serve 8081:kimi --serve 8082:glm
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from breaker_service.providers.flaky import (
    FaultConfig,
    FlakyProvider,
    create_app,
    free_port,
)

__all__ = ["TRANSIENT_MIX", "Endpoint", "FlakyServers"]

TRANSIENT_MIX = {
    "429": 1.0,
    "429_retry_after": 1.0,
    "500": 1.0,
    "502": 1.0,
    "503": 3.0,
    "504": 1.0,
}
"""The default mix of ``FaultConfig``: transient faults only (no quota, hang or drop)."""


class Endpoint:
    """One port of the server process: its URL and its admin API."""

    def __init__(self, port: int, flavor: str) -> None:
        self.port = port
        self.flavor = flavor
        self.url = f"http://127.0.0.1:{port}"
        self._admin = httpx.Client(base_url=self.url, timeout=10.0)

    def healthy(self) -> bool:
        """Whether it answers ``/healthz``."""
        try:
            return self._admin.get("/healthz").status_code == 200
        except httpx.TransportError:
            return False

    def configure(self, **changes: Any) -> dict[str, Any]:
        """``PUT /admin/faults`` with a partial configuration; returns the new one."""
        reply = self._admin.put("/admin/faults", json=changes)
        reply.raise_for_status()
        config: dict[str, Any] = reply.json()
        return config

    def reset(self, **changes: Any) -> None:
        """Forget files and counters, heal, then apply ``changes`` (a seed restarts the stream)."""
        self._admin.post("/admin/reset").raise_for_status()
        self.configure(**{"error_rate": 0.0, "down": False, "outages": [], **changes})

    def server_cpu(self) -> float:
        """CPU seconds the whole server process has used so far (``GET /bench/cpu``)."""
        reply = self._admin.get("/bench/cpu")
        reply.raise_for_status()
        return float(reply.json()["cpu"])

    def stats(self) -> dict[str, Any]:
        """``GET /admin/stats``: counters by fault kind, stored files, down or not."""
        reply = self._admin.get("/admin/stats")
        reply.raise_for_status()
        stats: dict[str, Any] = reply.json()
        return stats

    def close(self) -> None:
        """Close the admin client."""
        self._admin.close()


class FlakyServers:
    """A ``chaos_server.py`` child process serving one endpoint per flavour given."""

    def __init__(self, flavors: Sequence[str]) -> None:
        self.endpoints = [Endpoint(free_port(), flavor) for flavor in flavors]
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        self._process = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                *(
                    arg
                    for e in self.endpoints
                    for arg in ("--serve", f"{e.port}:{e.flavor}")
                ),
            ],
            stdin=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            for endpoint in self.endpoints:
                while not endpoint.healthy():
                    if self._process.poll() is not None:
                        msg = f"flaky server exited with status {self._process.returncode}"
                        raise RuntimeError(msg)
                    if time.monotonic() > deadline:
                        msg = f"flaky server on port {endpoint.port} did not start"
                        raise RuntimeError(msg)
                    time.sleep(0.02)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Terminate the child (kill it if it lingers) and close the admin clients."""
        for endpoint in self.endpoints:
            endpoint.close()
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _quiet_server_class() -> Any:
    import uvicorn  # noqa: PLC0415 - only in the server process

    class QuietServer(uvicorn.Server):
        """A uvicorn server that leaves signal handling to ``main`` (several share a loop)."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return QuietServer


async def _cpu(_request: Request) -> Response:
    return JSONResponse({"cpu": time.process_time()})


async def _serve(specs: list[tuple[int, str]]) -> None:
    import uvicorn  # noqa: PLC0415 - only in the server process

    quiet = _quiet_server_class()
    servers = []
    for port, flavor in specs:
        provider = FlakyProvider(
            FaultConfig.model_validate(
                {"flavor": flavor, "seed": port, "mix": dict(TRANSIENT_MIX)}
            )
        )
        app = create_app(provider)
        app.router.routes.append(Route("/bench/cpu", _cpu, methods=["GET"]))
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        servers.append(quiet(config))

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    await asyncio.gather(*(server.serve() for server in servers))


def main(argv: list[str] | None = None) -> None:
    """Serve one ``FlakyProvider`` per ``--serve PORT:FLAVOR`` until terminated."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--serve", action="append", required=True, metavar="PORT:FLAVOR"
    )
    args = parser.parse_args(argv)
    specs = []
    for spec in args.serve:
        port, _, flavor = spec.partition(":")
        specs.append((int(port), flavor or "openai"))
    asyncio.run(_serve(specs))


if __name__ == "__main__":
    main()

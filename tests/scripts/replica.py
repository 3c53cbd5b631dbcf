"""One replica of the service for the fleet tests: a registry driven over stdin.

Run by ``tests/fleet_helpers.py`` as ``python replica.py CONFIG_JSON``. It opens a
``BreakerRegistry`` on the PostgreSQL URL in the config (shared or instance scope,
its own instance and replica ids, a short cooldown and trial timeout), prints one
JSON line ``{"ready": true, ...}``, then answers one JSON line per command line:

    {"op": "call", "ok": false, "n": 3}          guarded calls to a plain coroutine
    {"op": "call", "n": 4, "concurrent": true}   guarded calls to the flaky provider
    {"op": "call", ..., "start_at": EPOCH}       ... starting at a given time.time()
    {"op": "state"}                              state, version, store health
    {"op": "wait_state", "state": "open", "version": 1, "timeout": 5}
    {"op": "transitions"}                        every transition seen, with time.time()
    {"op": "reset"} / {"op": "flush"} / {"op": "quit"}

A call answers ``ok``, ``failed`` or ``rejected`` (``CircuitOpenError``). Without
``ok`` the call is an HTTP upload to the provider URL (5xx, 429 and transport
errors fail). Logs go to stderr; stdout carries only the protocol.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import httpx

from breaker_service.breaker import BreakerRegistry, CircuitBreaker
from breaker_service.clock import SystemClock
from breaker_service.config import load_settings
from breaker_service.errors import CircuitOpenError, ProviderUnavailable
from breaker_service.events.model import TransitionRecord

HTTP_TIMEOUT = 30.0


def reply(message: dict[str, Any]) -> None:
    """One protocol line on stdout."""
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


class Replica:
    """The registry, its one breaker of interest and the provider client."""

    def __init__(self, config: dict[str, Any], registry: BreakerRegistry) -> None:
        self.config = config
        self.registry = registry
        self.name = str(config["name"])
        self.breaker = registry.get(self.name)
        self.provider_url = config.get("provider_url")
        self.client = httpx.AsyncClient(timeout=HTTP_TIMEOUT)
        self.seen: list[dict[str, Any]] = []
        registry.add_listener(self._on_transition)

    def _on_transition(self, breaker: CircuitBreaker, record: TransitionRecord) -> None:
        """Note when this replica saw each transition (after commit or adoption)."""
        self.seen.append({**record.as_dict(), "seen": time.time()})

    def state(self) -> dict[str, Any]:
        """What the tests compare across replicas."""
        b = self.breaker
        follower = self.registry.follower
        return {
            "state": b.state.value,
            "version": b.version,
            "opened_at": b.opened_at,
            "open_timeout": b.open_timeout,
            "consecutive_failures": b.consecutive_failures,
            "degraded": self.registry.degraded,
            "backlog": self.registry.recorder.backlog,
            "listening": follower.listening if follower is not None else None,
            "applied": follower.applied if follower is not None else None,
        }

    async def _upload(self) -> None:
        assert self.provider_url is not None, "no provider_url in the config"
        try:
            response = await self.client.post(
                f"{self.provider_url}/v1/files",
                files={"file": ("probe.txt", b"probe")},
                data={"purpose": "assistants"},
            )
        except httpx.TransportError as exc:
            msg = f"transport error: {type(exc).__name__}"
            raise ProviderUnavailable(msg, provider=self.name) from exc
        if response.status_code >= 500 or response.status_code == 429:
            msg = f"provider answered {response.status_code}"
            raise ProviderUnavailable(
                msg, provider=self.name, status=response.status_code
            )

    async def _local(self, ok: bool) -> None:
        if not ok:
            msg = "upstream 503"
            raise ProviderUnavailable(msg, provider=self.name, status=503)

    async def call_once(self, ok: bool | None) -> str:
        """One guarded call; ``ok``, ``failed`` or ``rejected``."""
        try:
            if ok is None:
                await self.breaker.call(self._upload)
            else:
                await self.breaker.call(self._local, ok)
        except CircuitOpenError:
            return "rejected"
        except ProviderUnavailable:
            return "failed"
        return "ok"

    async def call(self, command: dict[str, Any]) -> dict[str, Any]:
        """``n`` calls, one after another (``interval`` apart) or all at once."""
        n = int(command.get("n", 1))
        ok = command.get("ok")
        start_at = command.get("start_at")
        if start_at is not None:  # several replicas start together, to the millisecond
            await asyncio.sleep(max(0.0, float(start_at) - time.time()))
        started = time.time()
        if command.get("concurrent"):
            results = list(
                await asyncio.gather(*(self.call_once(ok) for _ in range(n)))
            )
        else:
            results = []
            for i in range(n):
                if i and command.get("interval"):
                    await asyncio.sleep(float(command["interval"]))
                results.append(await self.call_once(ok))
        return {"results": results, "started": started, **self.state()}

    async def wait_state(self, command: dict[str, Any]) -> dict[str, Any]:
        """Poll until the breaker is in ``state`` (at ``version``, if given)."""
        want = str(command["state"])
        version = command.get("version")
        deadline = time.monotonic() + float(command.get("timeout", 5.0))
        while True:
            now = self.state()
            if now["state"] == want and (version is None or now["version"] == version):
                return {"reached": True, **now}
            if time.monotonic() >= deadline:
                return {"reached": False, **now}
            await asyncio.sleep(0.002)

    async def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        """Run one command and return its answer."""
        op = command["op"]
        if op == "call":
            return await self.call(command)
        if op == "state":
            return self.state()
        if op == "wait_state":
            return await self.wait_state(command)
        if op == "transitions":
            return {"transitions": self.seen}
        if op == "reset":
            await self.breaker.reset("fleet test reset", actor="fleet-test")
            return self.state()
        if op == "flush":
            return {"flushed": await self.registry.flush(), **self.state()}
        msg = f"unknown op {op!r}"
        raise ValueError(msg)

    async def aclose(self) -> None:
        """Close the client and the registry (flushing its events)."""
        await self.client.aclose()
        await self.registry.aclose()


async def main(config: dict[str, Any]) -> None:
    """Open the registry, report ready, and serve commands until ``quit`` or EOF."""
    started = time.perf_counter()
    settings = load_settings(
        env_file=None,
        database_url=config["url"],
        breaker_scope=config.get("scope", "shared"),
        breaker_instance_id=config["instance_id"],
        breaker_replica_id=config["replica_id"],
        circuit_breaker_failure_threshold=config.get("threshold", 3),
        circuit_breaker_success_threshold=config.get("success_threshold", 1),
        circuit_breaker_timeout=config.get("cooldown", 30.0),
        circuit_breaker_half_open_max_calls=config.get("half_open_max_calls", 1),
        circuit_breaker_half_open_trial_timeout=config.get("trial_timeout", 1.0),
        event_log_flush_interval=0.005,
    )
    registry = await BreakerRegistry.open(settings=settings, clock=SystemClock())
    replica = Replica(config, registry)
    reply({"ready": True, "startup": time.perf_counter() - started, **replica.state()})
    try:
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:
                break
            command = json.loads(line)
            if command["op"] == "quit":
                break
            try:
                answer = await replica.handle(command)
            except Exception as exc:  # noqa: BLE001 - reported to the test, which fails
                answer = {"error": f"{type(exc).__name__}: {exc}"}
            reply(answer)
    finally:
        await replica.aclose()
    reply({"closed": True})


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))

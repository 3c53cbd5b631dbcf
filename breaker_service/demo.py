"""``breaker-service demo``: the whole service on embedded defaults, no keys needed.

Two local fault-injecting providers stand in for ``kimi`` and ``glm`` on free
loopback ports; the HTTP service runs on SQLite with its migrations applied; a
scripted scenario runs against the service over HTTP: uploads succeed through
transient faults; ``kimi`` goes down, its breaker opens and uploads fall back to
``glm``; ``kimi`` recovers, its breaker half-opens and closes. The audit trail comes
from the SQL event log. Without ``--once`` the service keeps serving until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import uvicorn
from rich.table import Table

from .api import create_app as service_app
from .api.auth import mint_token
from .cli.render import console, status_table
from .config import Settings
from .providers.flaky import (
    FaultConfig,
    FlakyProvider,
    create_app,
    free_port,
    serve_in_thread,
)

__all__ = ["run_demo"]

COOLDOWN = 3.0


@contextlib.contextmanager
def _providers(seed: int) -> Iterator[tuple[str, str, FlakyProvider]]:
    kimi = FlakyProvider(
        FaultConfig(
            error_rate=0.15,
            seed=seed,
            flavor="kimi",
            api_key="demo-kimi-key",
            latency_ms=(2, 10),
        )
    )
    glm = FlakyProvider(
        FaultConfig(
            error_rate=0.05,
            seed=seed + 1,
            flavor="glm",
            api_key="demo-glm-key",
            latency_ms=(2, 10),
        )
    )
    with (
        serve_in_thread(create_app(kimi)) as kimi_url,
        serve_in_thread(create_app(glm)) as glm_url,
    ):
        yield kimi_url, glm_url, kimi


async def _uploads(
    client: httpx.AsyncClient, files: list[Path], tally: dict[str, int]
) -> None:
    for path in files:
        with path.open("rb") as stream:
            reply = await client.post("/uploads", files={"file": (path.name, stream)})
        if reply.status_code == 200:
            body = reply.json()
            tally[body["provider"]] = tally.get(body["provider"], 0) + 1
            tally["fallback"] = tally.get("fallback", 0) + int(body["fallback"])
        else:
            tally["failed"] = tally.get("failed", 0) + 1


async def _show_breakers(client: httpx.AsyncClient, title: str) -> None:
    """The breakers as the service reports them (``GET /breakers``)."""
    rows = (await client.get("/breakers")).json()["breakers"]
    console.print(status_table(rows, title))


async def _scenario(
    client: httpx.AsyncClient, files: list[Path], kimi: FlakyProvider
) -> dict[str, int]:
    """The three phases, over HTTP; returns uploads per provider, fallbacks and failures."""
    for name in ("kimi", "glm"):
        state = (await client.get(f"/breakers/{name}")).json()["state"]
        if state != "closed":
            await client.post(f"/breakers/{name}/reset", json={"reason": "demo start"})
    tally: dict[str, int] = {}
    console.rule("1. transient faults (15% on kimi, 5% on glm): retries absorb them")
    await _uploads(client, files[:30], tally)
    await _show_breakers(client, "after phase 1")

    console.rule("2. kimi goes down: its breaker opens, uploads fall back to glm")
    kimi.reconfigure({"down": True})
    await _uploads(client, files[30:50], tally)
    await _show_breakers(client, "after phase 2")

    console.rule(
        "3. kimi recovers: after the cooldown its breaker half-opens, then closes"
    )
    kimi.reconfigure({"down": False, "error_rate": 0.0})
    await asyncio.sleep(COOLDOWN + 0.2)
    await _uploads(client, files[50:], tally)
    await _show_breakers(client, "after phase 3")

    events = (
        await client.get(
            "/breakers/kimi/events",
            params={"kind": "transition", "limit": 1000},
        )
    ).json()["events"]
    audit = Table(
        title="kimi transitions (GET /breakers/kimi/events, from the SQL event log)"
    )
    for column in ("id", "at", "from", "to", "reason", "by"):
        audit.add_column(column)
    for event in events[-6:]:
        audit.add_row(
            str(event["id"]),
            event["at"],
            event["from_state"],
            event["to_state"],
            event["reason"],
            event["actor"] or "",
        )
    console.print(audit)
    uploaded = tally.get("kimi", 0) + tally.get("glm", 0)
    console.print(
        f"[bold]{uploaded}/60 uploads succeeded[/] (kimi {tally.get('kimi', 0)}, glm {tally.get('glm', 0)}), "
        f"{tally.get('fallback', 0)} by fallback, {tally.get('failed', 0)} failed"
    )
    return tally


async def run_demo(settings: Settings, *, once: bool = True, seed: int = 7) -> int:
    """Start providers and the service, run the scenario, print what happened."""
    work = Path(tempfile.mkdtemp(prefix="breaker-demo-"))
    files = []
    for index in range(60):
        path = work / f"report-{index:02d}.txt"
        path.write_bytes(f"demo document {index}\n".encode() + os.urandom(512))
        files.append(path)
    with _providers(seed) as (kimi_url, glm_url, kimi):
        demo = settings.model_copy(
            update={
                "kimi_base_url": kimi_url,
                "glm_base_url": glm_url,
                "kimi_api_key": "demo-kimi-key",
                "glm_api_key": "demo-glm-key",
                "upload_allowed_dirs": str(work),
                "upload_spool_dir": None,  # inside ``work``, whatever the env says
                "upload_provider_order": "kimi,glm",
                "circuit_breaker_timeout": COOLDOWN,
                "circuit_breaker_failure_threshold": 3,
                "retry_base_delay": 0.05,
                "retry_max_delay": 0.5,
                "auth_disabled": False,
                "breaker_service_jwt_secret": secrets.token_urlsafe(48),
                "breaker_service_jwt_algorithm": "HS256",
            }
        )
        demo = type(settings).model_validate(demo.model_dump())
        token = mint_token(
            demo,
            subject="demo",
            scopes=["breakers:read", "uploads:write", "breakers:admin"],
            ttl=86400,
        )
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                service_app(demo), host="127.0.0.1", port=port, log_level="warning"
            )
        )
        serving = asyncio.create_task(server.serve())
        while not server.started:
            if serving.done():
                return 1
            await asyncio.sleep(0.02)
        url = f"http://127.0.0.1:{port}"
        console.print(
            f"[bold]breaker-service demo[/]: dashboard {url}/dashboard  "
            f"API {url} (docs {url}/docs, metrics {url}/metrics with the token below)"
        )
        console.print(
            f"event log: {demo.database_url}; providers: kimi {kimi_url}, glm {glm_url}"
        )
        console.print(f"admin token (24 h): {token}")
        headers = {"Authorization": f"Bearer {token}"}
        try:
            async with httpx.AsyncClient(
                base_url=url, headers=headers, timeout=30
            ) as client:
                tally = await _scenario(client, files, kimi)
            if not once:
                console.print(f"serving on {url} until Ctrl-C")
                await serving
            return 0 if tally.get("failed", 0) == 0 else 1
        finally:
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await serving

"""A local fault-injecting files API: the test target, the demo target, the benchmark target.

It speaks the OpenAI-style files API (``POST/GET /v1/files``, ``GET/DELETE
/v1/files/{id}``, and Zhipu's ``/api/paas/v4/files``) and injects, from a seeded
random stream: error replies (429 with and without ``Retry-After``, quota-style 429,
500, 502, 503, 504), latency, hangs (for timeouts), dropped connections and outage
windows. Faults are set per run (``FaultConfig``) or live through ``/admin/faults``.

Two faults are *ambiguous*: ``store_500`` stores the file and then answers 500, and
``store_drop`` stores it and then drops the connection; the client cannot tell
whether the provider kept the file. The list endpoints page (``limit``, ``after``,
``has_more``, ``last_id``) and filter by ``purpose``; ``max_files`` makes uploads
past that count fail as Moonshot and Zhipu do when their file quota is full. Listing
and deleting draw from the same fault stream (an ambiguous fault there is a 500 or
a drop after the deed).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

__all__ = [
    "AMBIGUOUS_FAULTS",
    "FaultConfig",
    "FlakyProvider",
    "create_app",
    "serve_in_thread",
]


class FaultConfig(BaseModel):
    """How the server misbehaves. ``error_rate`` picks a fault; ``mix`` weighs which."""

    model_config = ConfigDict(extra="forbid")

    error_rate: float = Field(0.0, ge=0, le=1)
    mix: dict[str, float] = Field(
        default_factory=lambda: {
            "429": 1.0,
            "429_retry_after": 1.0,
            "500": 1.0,
            "502": 1.0,
            "503": 3.0,
            "504": 1.0,
        }
    )
    retry_after: float = Field(1.0, ge=0)
    latency_ms: tuple[float, float] = (0.0, 0.0)  # uniform min, max
    # after storing, before answering: a crash or timeout there leaves a stored file
    # whose id the client never saw
    stored_latency_ms: tuple[float, float] = (0.0, 0.0)
    hang_seconds: float = Field(300.0, ge=0)
    outages: list[tuple[float, float]] = Field(
        default_factory=list
    )  # seconds since start
    down: bool = False
    down_status: int = 503
    seed: int | None = None
    flavor: Literal["openai", "kimi", "glm"] = "openai"
    api_key: str | None = None  # when set, requests must carry it as a bearer token
    max_bytes: int = Field(100 * 1024 * 1024, ge=1)
    max_files: int | None = Field(None, ge=0)  # the provider's file-count quota
    page_size: int = Field(100, ge=1)  # default and largest list page
    catalog_faults: bool = False  # whether listing and deleting draw faults too


@dataclass
class _StoredFile:
    id: str
    filename: str
    bytes: int
    purpose: str
    sha256: str
    created_at: int

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "ok",
        }


class _DropConnection(Response):
    """Starts a response and then fails, so the server closes the connection mid-reply."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"1000")],
            }
        )
        await send(
            {"type": "http.response.body", "body": b'{"id": "trunc', "more_body": True}
        )
        raise ConnectionAbortedError("fault injection: dropped connection")


AMBIGUOUS_FAULTS = frozenset({"store_500", "store_drop"})
"""Faults that do the work (store, delete) and then fail the reply."""


class FlakyProvider:
    """The server's state: configuration, stored files and counters."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self.config = config or FaultConfig()
        self.started = time.monotonic()
        self.rng = random.Random(self.config.seed)
        self.files: dict[str, _StoredFile] = {}
        self.stats: Counter[str] = Counter()

    def reconfigure(self, changes: dict[str, Any]) -> None:
        """Apply a partial configuration (validated); a new seed restarts the stream."""
        merged = {**self.config.model_dump(), **changes}
        self.config = FaultConfig.model_validate(merged)
        if "seed" in changes:
            self.rng = random.Random(self.config.seed)

    def in_outage(self) -> bool:
        """Whether the server is down now (live switch or an outage window)."""
        if self.config.down:
            return True
        elapsed = time.monotonic() - self.started
        return any(start <= elapsed < end for start, end in self.config.outages)

    def pick_fault(self) -> str | None:
        """Draw the fault for one request (None = behave)."""
        if self.in_outage():
            return "down"
        if self.config.error_rate <= 0 or self.rng.random() >= self.config.error_rate:
            return None
        kinds = [k for k, w in self.config.mix.items() if w > 0]
        weights = [self.config.mix[k] for k in kinds]
        return self.rng.choices(kinds, weights)[0] if kinds else None

    def pick_catalog_fault(self) -> str | None:
        """The fault for a list or delete: outages always, the rest if enabled."""
        if self.config.catalog_faults:
            return self.pick_fault()
        return "down" if self.in_outage() else None

    def latency(self) -> float:
        """Seconds to wait before answering."""
        low, high = self.config.latency_ms
        return self.rng.uniform(low, high) / 1000 if high > 0 else 0.0

    def stored_latency(self) -> float:
        """Seconds to wait between storing a file and answering."""
        low, high = self.config.stored_latency_ms
        return self.rng.uniform(low, high) / 1000 if high > 0 else 0.0

    def error(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> JSONResponse:
        """An error reply in the configured provider's format."""
        if self.config.flavor == "glm":
            body: dict[str, Any] = {"error": {"code": code, "message": message}}
        else:
            body = {"error": {"type": code, "message": message}}
        return JSONResponse(body, status_code=status, headers=headers)

    def quota_response(self) -> JSONResponse:
        """The reply when ``max_files`` are stored, in the flavor's words."""
        self.stats["quota_full"] += 1
        limit = self.config.max_files
        if self.config.flavor == "glm":
            return self.error(
                400,
                "file_count_limit",
                f"file count limit reached: at most {limit} files",
            )
        return self.error(
            400,
            "invalid_request_error",
            f"exceeded the max file count {limit}, please delete previous uploaded files",
        )

    def page(
        self, purpose: str | None, limit: int, after: str | None
    ) -> dict[str, Any]:
        """One page of the stored files, oldest first, after the cursor ``after``."""
        files = [
            f for f in self.files.values() if purpose is None or f.purpose == purpose
        ]
        if after is not None:
            ids = [f.id for f in files]
            files = files[ids.index(after) + 1 :] if after in ids else []
        chunk = files[:limit]
        return {
            "object": "list",
            "data": [f.as_json() for f in chunk],
            "has_more": len(files) > len(chunk),
            "first_id": chunk[0].id if chunk else None,
            "last_id": chunk[-1].id if chunk else None,
        }

    async def fault_response(self, fault: str) -> Response:
        """The reply for an injected fault."""
        self.stats[f"fault_{fault}"] += 1
        if fault == "down":
            return self.error(
                self.config.down_status,
                "server_error",
                "provider is down (outage window)",
            )
        if fault == "hang":
            await asyncio.sleep(self.config.hang_seconds)
            return self.error(504, "timeout", "hung")
        if fault in {"drop", "store_drop"}:
            return _DropConnection()
        if fault == "store_500":
            return self.error(500, "server_error", "injected 500 after the deed")
        if fault == "quota":
            if self.config.flavor == "glm":
                return self.error(429, "1113", "account in arrears")
            return self.error(
                429,
                "exceeded_current_quota_error",
                "your account balance is insufficient",
            )
        if fault == "429_retry_after":
            return self.error(
                429,
                "rate_limit_reached_error",
                "rate limited",
                {"Retry-After": f"{self.config.retry_after:g}"},
            )
        status = int(fault)
        code = "rate_limit_reached_error" if status == 429 else "server_error"
        if self.config.flavor == "glm" and status == 429:
            code = "1302"
        return self.error(status, code, f"injected {status}")


class _QuietDrops(logging.Filter):
    """Keeps uvicorn from logging a traceback for every injected dropped connection."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (
            isinstance(exc, ConnectionAbortedError) and "fault injection" in str(exc)
        )


_QUIET = _QuietDrops()


def create_app(provider: FlakyProvider | None = None) -> Starlette:  # noqa: PLR0915 - routes and handlers read best together
    """The ASGI app; ``app.state.provider`` is the ``FlakyProvider`` behind it."""
    state = provider or FlakyProvider()
    if _QUIET not in logging.getLogger("uvicorn.error").filters:
        logging.getLogger("uvicorn.error").addFilter(_QUIET)

    def authorised(request: Request) -> bool:
        key = state.config.api_key
        return key is None or request.headers.get("authorization") == f"Bearer {key}"

    async def upload(request: Request) -> Response:
        state.stats["requests"] += 1
        if not authorised(request):
            state.stats["unauthorised"] += 1
            return state.error(401, "invalid_authentication_error", "invalid API key")
        delay = state.latency()
        if delay:
            await asyncio.sleep(delay)
        fault = state.pick_fault()
        try:
            form = await request.form(max_part_size=state.config.max_bytes + 1)
        except ClientDisconnect:  # the client went away mid-body: nothing stored
            state.stats["client_gone"] += 1
            return Response(status_code=499)
        try:
            if fault is not None and fault not in AMBIGUOUS_FAULTS:
                return await state.fault_response(fault)
            limit = state.config.max_files
            if limit is not None and len(state.files) >= limit:
                return state.quota_response()
            upload = form.get("file")
            purpose = str(form.get("purpose") or "")
            if not isinstance(upload, UploadFile):
                return state.error(
                    400, "invalid_request_error", "multipart field 'file' is required"
                )
            digest = hashlib.sha256()
            size = 0
            while chunk := await upload.read(1 << 16):
                digest.update(chunk)
                size += len(chunk)
            if size > state.config.max_bytes:
                return state.error(400, "invalid_request_error", "file too large")
            stored = _StoredFile(
                id=f"file-{uuid.uuid4().hex[:24]}",
                filename=upload.filename or "upload",
                bytes=size,
                purpose=purpose,
                sha256=digest.hexdigest(),
                created_at=int(time.time()),
            )
            state.files[stored.id] = stored
            state.stats["uploaded"] += 1
            if pause := state.stored_latency():
                await asyncio.sleep(pause)
            if fault is not None:  # stored, and now the answer is lost
                state.stats["ambiguous"] += 1
                return await state.fault_response(fault)
            return JSONResponse(stored.as_json())
        finally:
            await form.close()

    async def list_files(request: Request) -> Response:
        state.stats["list_requests"] += 1
        if not authorised(request):
            return state.error(401, "invalid_authentication_error", "invalid API key")
        fault = state.pick_catalog_fault()
        if fault is not None:
            return await state.fault_response(fault)
        query = request.query_params
        try:
            limit = int(query.get("limit", state.config.page_size))
        except ValueError:
            return state.error(400, "invalid_request_error", "limit is not a number")
        limit = max(1, min(limit, state.config.page_size))
        return JSONResponse(state.page(query.get("purpose"), limit, query.get("after")))

    async def get_file(request: Request) -> Response:
        stored = state.files.get(request.path_params["file_id"])
        if stored is None:
            return state.error(404, "resource_not_found_error", "no such file")
        return JSONResponse(stored.as_json())

    async def delete_file(request: Request) -> Response:
        state.stats["delete_requests"] += 1
        if not authorised(request):
            return state.error(401, "invalid_authentication_error", "invalid API key")
        fault = state.pick_catalog_fault()
        if fault is not None and fault not in AMBIGUOUS_FAULTS:
            return await state.fault_response(fault)
        stored = state.files.pop(request.path_params["file_id"], None)
        if stored is None:
            return state.error(404, "resource_not_found_error", "no such file")
        state.stats["deleted"] += 1
        if fault is not None:
            return await state.fault_response(fault)
        return JSONResponse({"id": stored.id, "object": "file", "deleted": True})

    async def admin_faults(request: Request) -> Response:
        if request.method == "PUT":
            try:
                state.reconfigure(await request.json())
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, status_code=422)
        return JSONResponse(state.config.model_dump(exclude={"api_key"}))

    async def admin_stats(_request: Request) -> Response:
        return JSONResponse(
            {
                "stats": dict(state.stats),
                "files": len(state.files),
                "down": state.in_outage(),
            }
        )

    async def admin_reset(_request: Request) -> Response:
        state.files.clear()
        state.stats.clear()
        state.started = time.monotonic()
        return JSONResponse({"reset": True})

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"ok": True})

    routes = [
        Route("/v1/files", upload, methods=["POST"]),
        Route("/api/paas/v4/files", upload, methods=["POST"]),
        Route("/v1/files", list_files, methods=["GET"]),
        Route("/api/paas/v4/files", list_files, methods=["GET"]),
        Route("/v1/files/{file_id}", get_file, methods=["GET"]),
        Route("/v1/files/{file_id}", delete_file, methods=["DELETE"]),
        Route("/api/paas/v4/files/{file_id}", get_file, methods=["GET"]),
        Route("/api/paas/v4/files/{file_id}", delete_file, methods=["DELETE"]),
        Route("/admin/faults", admin_faults, methods=["GET", "PUT"]),
        Route("/admin/stats", admin_stats, methods=["GET"]),
        Route("/admin/reset", admin_reset, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.state.provider = state
    return app


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_in_thread(
    app: Any, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"
) -> Iterator[str]:
    """Run ``app`` under uvicorn in a background thread; yields its base URL."""
    import uvicorn  # noqa: PLC0415 - deferred: only where a server starts

    port = port or free_port(host)
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, lifespan="off", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            msg = f"server on {host}:{port} did not start"
            raise RuntimeError(msg)
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)

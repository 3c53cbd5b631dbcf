"""Shared helpers for the provider and upload tests (a plain module, not a conftest).

Real servers on 127.0.0.1: the package's fault-injecting provider (with a script of
faults for the first requests, so a test knows exactly what each request meets) and
a tiny reply server for statuses and bodies the flaky server does not emit (GLM codes,
replies without an id, error messages that echo the ``Authorization`` header).
Settings come from keyword values only, with tiny retry delays; orchestrators run on
a ``FakeClock`` so backoff never really sleeps.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from breaker_service.breaker import BreakerRegistry
from breaker_service.clock import FakeClock
from breaker_service.config import Settings, load_settings
from breaker_service.events import MemoryEventLog
from breaker_service.providers.flaky import (
    FaultConfig,
    FlakyProvider,
    create_app,
    serve_in_thread,
)
from breaker_service.uploads import UploadOrchestrator

__all__ = [
    "GLM_KEY",
    "KEY_VARIABLES",
    "KIMI_KEY",
    "FlakyServer",
    "Reply",
    "ReplyServer",
    "ScriptedFlaky",
    "flaky_server",
    "make_settings",
    "open_orchestrator",
    "reply_server",
    "reusing_servers",
    "write_file",
]

KIMI_KEY = "sk-kimi-test-4f1c2e9a7b3d"
"""Looks like a key (``sk-``): the generic pattern would scrub it anyway."""

GLM_KEY = "glmsecret.Zq81wPx0aa"
"""Looks like nothing in particular: only scrubbing the configured key removes it."""

KEY_VARIABLES = ("KIMI_API_KEY", "MOONSHOT_API_KEY", "GLM_API_KEY", "ZHIPUAI_API_KEY")
"""Environment variables that would give the providers a key behind a test's back."""

AUTH_PLACEHOLDER = "<AUTH>"
"""In a ``Reply`` body, replaced by the request's ``Authorization`` header."""


class ScriptedFlaky(FlakyProvider):
    """The flaky server's state, whose first requests meet the scripted faults.

    Each request pops the next script entry (a fault name such as ``"503"``,
    ``"hang"`` or ``"drop"``, or ``None`` to behave); once the script is used up the
    configured error rate and outages decide, as usual.
    """

    def __init__(
        self, config: FaultConfig | None = None, script: Iterable[str | None] = ()
    ) -> None:
        super().__init__(config)
        self.script = list(script)

    def reset(self, config: FaultConfig, script: Iterable[str | None] = ()) -> None:
        """Start afresh with ``config``: no files, no counters, a new script."""
        self.config = config
        self.rng = random.Random(config.seed)
        self.files.clear()
        self.stats.clear()
        self.started = time.monotonic()
        self.script = list(script)

    def pick_fault(self) -> str | None:
        """The next scripted fault, else the configured behaviour."""
        if self.script:
            return self.script.pop(0)
        return super().pick_fault()


@dataclass
class FlakyServer:
    """A running flaky server: its base URL and its state."""

    url: str
    state: ScriptedFlaky

    @property
    def requests(self) -> int:
        """Upload requests the server received (faulty or not)."""
        return self.state.stats["requests"]

    @property
    def uploaded(self) -> int:
        """Files the server stored."""
        return self.state.stats["uploaded"]


class _ServerPool:
    """Flaky servers kept running between tests and reset on each use."""

    def __init__(self) -> None:
        self.stack = contextlib.ExitStack()
        self.idle: list[FlakyServer] = []

    def take(self) -> FlakyServer:
        if self.idle:
            return self.idle.pop()
        state = ScriptedFlaky()
        url = self.stack.enter_context(serve_in_thread(create_app(state)))
        return FlakyServer(url, state)


_pool: _ServerPool | None = None


@contextlib.contextmanager
def reusing_servers() -> Iterator[None]:
    """Inside this block ``flaky_server`` reuses running servers (reset on each use).

    Starting a server is quick but stopping one takes uvicorn's 0.1 s tick or more;
    a test module wraps itself in this (a module-scoped autouse fixture).
    """
    global _pool  # noqa: PLW0603 - one pool per block, restored afterwards
    previous, _pool = _pool, _ServerPool()
    try:
        with _pool.stack:
            yield
    finally:
        _pool = previous


@contextlib.contextmanager
def flaky_server(
    flavor: str = "kimi",
    *,
    api_key: str | None = None,
    script: Iterable[str | None] = (),
    **config: Any,
) -> Iterator[FlakyServer]:
    """The fault-injecting provider on 127.0.0.1 (key defaults to the flavor's)."""
    if api_key is None:
        api_key = {"kimi": KIMI_KEY, "glm": GLM_KEY}.get(flavor)
    config.setdefault("seed", 7)
    config.setdefault("hang_seconds", 1.0)
    fault_config = FaultConfig(flavor=flavor, api_key=api_key, **config)
    pool = _pool
    if pool is None:
        state = ScriptedFlaky(fault_config, script=script)
        with serve_in_thread(create_app(state)) as url:
            yield FlakyServer(url, state)
        return
    server = pool.take()
    server.state.reset(fault_config, script)
    try:
        yield server
    finally:  # its state stays readable until the next use resets it
        pool.idle.append(server)


@dataclass(frozen=True)
class Reply:
    """One scripted reply: status, JSON body (``None``: a file record) and headers.

    A body given as ``str`` is sent as it is (not JSON); ``<AUTH>`` anywhere in the
    body is replaced by the request's ``Authorization`` header, as a careless
    server that echoes credentials in its error messages would do.
    """

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def render(self, authorization: str) -> Response:
        """The Starlette response for a request carrying ``authorization``."""
        body = self.body
        if body is None:
            body = {
                "id": "file-reply-1",
                "object": "file",
                "bytes": 1,
                "created_at": 1_767_225_600,
                "filename": "reply.txt",
                "purpose": "file-extract",
                "status": "ok",
            }
        text = body if isinstance(body, str) else json.dumps(body)
        text = text.replace(AUTH_PLACEHOLDER, authorization)
        media = "text/plain" if isinstance(body, str) else "application/json"
        return Response(
            text, status_code=self.status, headers=self.headers, media_type=media
        )


@dataclass
class ReplyServer:
    """A running reply server: its base URL and what it saw."""

    url: str
    replies: list[Reply]
    authorizations: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        """Requests received."""
        return len(self.authorizations)


@contextlib.contextmanager
def reply_server(
    replies: Iterable[Reply], *, default: Reply | None = None
) -> Iterator[ReplyServer]:
    """Serve ``replies`` in order on every path (then ``default``, a file record)."""
    server = ReplyServer("", list(replies))
    fallback = default or Reply()

    async def answer(request: Request) -> Response:
        async for _ in request.stream():  # drain the upload
            pass
        authorization = request.headers.get("authorization", "")
        server.authorizations.append(authorization)
        reply = server.replies.pop(0) if server.replies else fallback
        return reply.render(authorization)

    app = Starlette(
        routes=[Route("/{path:path}", answer, methods=["GET", "POST", "DELETE"])]
    )
    with serve_in_thread(app) as url:
        server.url = url
        yield server


def make_settings(
    allowed: Path | str,
    *,
    kimi_url: str = "http://127.0.0.1:9",
    glm_url: str = "http://127.0.0.1:9",
    kimi_key: str | None = KIMI_KEY,
    glm_key: str | None = GLM_KEY,
    **values: Any,
) -> Settings:
    """Settings from keywords only (no ``.env``): tiny retry delays, short timeouts."""
    values.setdefault("database_url", "sqlite+aiosqlite:///:memory:")
    values.setdefault("breaker_instance_id", "test")
    values.setdefault("retry_base_delay", 0.001)
    values.setdefault("retry_max_delay", 0.05)
    values.setdefault("http_read_timeout", 5.0)
    values.setdefault("http_connect_timeout", 2.0)
    return load_settings(
        env_file=None,
        upload_allowed_dirs=str(allowed),
        kimi_base_url=kimi_url,
        glm_base_url=glm_url,
        KIMI_API_KEY=kimi_key,
        GLM_API_KEY=glm_key,
        **values,
    )


@contextlib.asynccontextmanager
async def open_orchestrator(
    settings: Settings, *, clock: FakeClock | None = None, sql: bool = False
) -> AsyncIterator[UploadOrchestrator]:
    """An orchestrator on a ``FakeClock``: breakers on an in-memory log, or SQL."""
    clock = clock or FakeClock()
    registry = None
    if not sql:
        registry = await BreakerRegistry.open(
            settings=settings, clock=clock, log=MemoryEventLog()
        )
    try:
        async with await UploadOrchestrator.open(
            settings, clock=clock, registry=registry
        ) as orchestrator:
            yield orchestrator
    finally:
        if registry is not None:
            await registry.aclose()


def write_file(path: Path, content: bytes | None = None) -> Path:
    """Write ``content`` (default: some unique bytes) to ``path`` and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if content is not None else os.urandom(64))
    return path

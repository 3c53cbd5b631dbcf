"""The HTTP service through ``httpx.ASGITransport`` with the lifespan running.

Each test builds the app from keyword settings (no ``.env``), on a SQLite file in
``tmp_path`` and a ``FakeClock`` (backoff never sleeps; an open breaker stays open
until the test moves time). Uploads go over a real socket to the package's
fault-injecting provider, standing in for ``kimi``; ``glm`` has no key.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from breaker_service.api import create_app
from breaker_service.api.auth import SCOPES, mint_token
from breaker_service.clock import FakeClock
from breaker_service.config import Settings, load_settings
from breaker_service.errors import ConfigError
from breaker_service.migrate import SCHEMA_HEAD
from breaker_service.providers.flaky import (
    FaultConfig,
    FlakyProvider,
    serve_in_thread,
)
from breaker_service.providers.flaky import create_app as flaky_app

SECRET = "api-test-secret-0123456789abcdefghijkl"
KIMI_KEY = "sk-kimi-api-test-5e8a1c"
PROBLEM = "application/problem+json"
ENV_VARIABLES = (
    "BREAKER_SERVICE_JWT_SECRET",
    "BREAKER_SERVICE_JWT_PUBLIC_KEY",
    "BREAKER_SERVICE_JWT_PRIVATE_KEY",
    "BREAKER_SERVICE_JWT_ALGORITHM",
    "AUTH_DISABLED",
    "METRICS_PUBLIC",
    "KIMI_API_KEY",
    "MOONSHOT_API_KEY",
    "GLM_API_KEY",
    "ZHIPUAI_API_KEY",
    "SUPABASE_URL",
    "SUPABASE_SERVICE_KEY",
    "SUPABASE_KEY",
    "DATABASE_URL",
)


@dataclass(frozen=True, slots=True)
class Upstream:
    """The fault-injecting provider behind ``kimi`` and its base URL."""

    provider: FlakyProvider
    url: str


@dataclass(frozen=True, slots=True)
class Service:
    """A running app, a client for it, and what it was built from."""

    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings
    clock: FakeClock
    root: Path
    upstream: Upstream

    def auth(self, *scopes: str, sub: str = "alice") -> dict[str, str]:
        """An ``Authorization`` header for ``sub`` with ``scopes`` (all when none)."""
        token = mint_token(
            self.settings, subject=sub, scopes=list(scopes or SCOPES), ttl=600
        )
        return {"Authorization": f"Bearer {token}"}

    def file(self, name: str, content: bytes = b"hello, provider\n") -> Path:
        """A file inside the allowed directory."""
        path = self.root / name
        path.write_bytes(content)
        return path


OpenService = Callable[..., AbstractAsyncContextManager[Service]]


def make_settings(tmp_path: Path, upstream_url: str, **values: Any) -> Settings:
    """Keyword settings: SQLite in ``tmp_path``, kimi only, trip after two failures."""
    root = tmp_path / "files"
    root.mkdir(exist_ok=True)
    values.setdefault("database_url", f"sqlite+aiosqlite:///{tmp_path / 'api.db'}")
    values.setdefault("breaker_service_jwt_secret", SECRET)
    values.setdefault("breaker_instance_id", "api-test")
    values.setdefault("retry_max_attempts", 1)
    values.setdefault("retry_base_delay", 0.001)
    values.setdefault("retry_max_delay", 0.01)
    values.setdefault("circuit_breaker_failure_threshold", 2)
    values.setdefault("circuit_breaker_timeout", 30.0)
    values.setdefault("upload_provider_order", "kimi")
    values.setdefault("http_read_timeout", 5.0)
    values.setdefault("http_connect_timeout", 2.0)
    return load_settings(
        env_file=None,
        upload_allowed_dirs=str(root),
        kimi_base_url=upstream_url,
        KIMI_API_KEY=KIMI_KEY,
        **values,
    )


def assert_problem(
    response: httpx.Response, status: int, kind: str | None = None
) -> dict[str, Any]:
    """The response is a problem+json of ``status`` (and ``kind``); return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["detail"]
    if kind is not None:
        assert body["type"] == f"urn:breaker-service:{kind}", body
    return body


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus samples by (name, sorted labels)."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key, URL or switch reaches the settings from the environment."""
    for name in ENV_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def upstream_server() -> Iterator[Upstream]:
    """The fault-injecting provider on a free loopback port, one per module."""
    provider = FlakyProvider(FaultConfig(seed=1, api_key=KIMI_KEY, flavor="kimi"))
    with serve_in_thread(flaky_app(provider)) as url:
        yield Upstream(provider, url)


@pytest.fixture
def upstream(upstream_server: Upstream) -> Upstream:
    """The provider, well-behaved again, with no files and fresh counters."""
    provider = upstream_server.provider
    provider.reconfigure({"down": False, "error_rate": 0.0, "max_bytes": 1 << 20})
    provider.files.clear()
    provider.stats.clear()
    return upstream_server


@pytest.fixture
def open_service(tmp_path: Path, upstream: Upstream) -> OpenService:
    """Open the service with settings overrides: ``async with open_service(**kw)``."""

    @asynccontextmanager
    async def factory(**values: Any) -> AsyncIterator[Service]:
        settings = make_settings(tmp_path, upstream.url, **values)
        clock = FakeClock()
        app = create_app(settings, clock=clock)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://testserver") as c,
        ):
            yield Service(app, c, settings, clock, tmp_path / "files", upstream)

    return factory


@pytest.fixture
async def service(open_service: OpenService) -> AsyncIterator[Service]:
    """The service with the default test settings."""
    async with open_service() as running:
        yield running


async def upload(
    service: Service, path: Path | str, *, force: bool = True, **extra: Any
) -> httpx.Response:
    """``POST /uploads/by-path`` to kimi as an admin."""
    body = {"path": str(path), "provider": "kimi", "force": force, **extra}
    return await service.client.post(
        "/uploads/by-path", json=body, headers=service.auth()
    )


# -- health --------------------------------------------------------------------------


async def test_healthz_needs_no_token(service: Service) -> None:
    """``/healthz`` answers without a token."""
    response = await service.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_when_ready(service: Service) -> None:
    """``/readyz`` is 200 with the schema at head, no problems and the outbox off."""
    response = await service.client.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert body["problems"] == []
    assert body["schema"] == SCHEMA_HEAD
    assert body["auth_disabled"] is False
    assert body["outbox"] == {"enabled": False}
    assert body["event_log"]["degraded"] is False


async def test_readyz_is_503_while_the_event_log_is_degraded(
    service: Service, tmp_path: Path
) -> None:
    """With the events table gone writes fail: 503 naming the event log; back to 200 after."""
    db = sqlite3.connect(tmp_path / "api.db")
    try:
        db.execute("ALTER TABLE breaker_events RENAME TO breaker_events_away")
        db.commit()
        response = await service.client.post(
            "/breakers/kimi/force-open",
            json={"reason": "store outage drill"},
            headers=service.auth(),
        )
        assert response.status_code == 200, response.text
        # applied in memory, queued for the log
        assert response.json()["state"] == "forced_open"
        ready = await service.client.get("/readyz")
        assert ready.status_code == 503, ready.text
        body = ready.json()
        assert body["status"] == "degraded"
        assert any("event log degraded" in p for p in body["problems"]), body
        assert body["event_log"]["degraded"] is True
        assert body["event_log"]["backlog"] >= 1
    finally:
        db.execute("ALTER TABLE breaker_events_away RENAME TO breaker_events")
        db.commit()
        db.close()
    service.clock.advance(0.5)  # the recorder's retry waits on the service's clock
    for _ in range(200):  # the recorder retries every 0.5 s: ready within 10 s
        if (await service.client.get("/readyz")).status_code == 200:
            break
        await anyio.sleep(0.05)
    else:
        pytest.fail("/readyz did not recover after the events table came back")
    events = await service.client.get(
        "/breakers/kimi/events", params={"kind": "transition"}, headers=service.auth()
    )
    assert [e["to_state"] for e in events.json()["events"]] == ["forced_open"]


# -- breakers ------------------------------------------------------------------------


async def test_list_breakers(service: Service) -> None:
    """Every provider's breaker is listed from the start, closed, with its fields."""
    response = await service.client.get(
        "/breakers", headers=service.auth("breakers:read")
    )
    assert response.status_code == 200, response.text
    rows = {row["name"]: row for row in response.json()["breakers"]}
    assert {"kimi", "glm"} <= set(rows)
    kimi = rows["kimi"]
    assert kimi["state"] == "closed"
    assert kimi["scope"] == "instance"
    assert kimi["retry_after"] == 0.0
    assert kimi["opened_at"] is None
    for field in ("failures", "successes", "rejections", "consecutive_failures"):
        assert kimi[field] == 0


async def test_get_one_breaker(service: Service) -> None:
    """``GET /breakers/kimi`` is that breaker."""
    response = await service.client.get(
        "/breakers/kimi", headers=service.auth("breakers:read")
    )
    assert response.status_code == 200
    assert response.json()["name"] == "kimi"
    assert response.json()["state"] == "closed"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", "/breakers/nope", id="get"),
        pytest.param("GET", "/breakers/nope/events", id="events"),
        pytest.param("GET", "/breakers/nope/state?at=0", id="state"),
        pytest.param("POST", "/breakers/nope/force-open", id="force-open"),
        pytest.param("POST", "/breakers/nope/reset", id="reset"),
    ],
)
async def test_unknown_breaker_is_404(service: Service, method: str, path: str) -> None:
    """An unknown breaker is a 404 problem, and it is not created by asking."""
    response = await service.client.request(
        method, path, json={"reason": "x"}, headers=service.auth()
    )
    body = assert_problem(response, 404, "unknown-breaker")
    assert "nope" in body["detail"]
    listed = await service.client.get("/breakers", headers=service.auth())
    assert "nope" not in {row["name"] for row in listed.json()["breakers"]}


# -- events and state ----------------------------------------------------------------


async def make_history(service: Service) -> None:
    """Three successful uploads, then a force-open and a reset, a minute apart each."""
    for n in range(3):
        response = await upload(service, service.file(f"doc{n}.txt", b"x" * (n + 1)))
        assert response.status_code == 200, response.text
        service.clock.advance(60)
    for action in ("force-open", "reset"):
        response = await service.client.post(
            f"/breakers/kimi/{action}",
            json={"reason": f"{action} drill"},
            headers=service.auth(sub="carol"),
        )
        assert response.status_code == 200, response.text
        service.clock.advance(60)


async def events(service: Service, **params: Any) -> httpx.Response:
    """``GET /breakers/kimi/events`` with ``params`` as a reader."""
    return await service.client.get(
        "/breakers/kimi/events", params=params, headers=service.auth("breakers:read")
    )


async def test_events_are_paged_by_id(service: Service) -> None:
    """``limit`` and ``after`` walk the whole trail, oldest first, without gaps."""
    await make_history(service)
    everything = (await events(service)).json()
    assert everything["next_after"] is None
    ids = [e["id"] for e in everything["events"]]
    assert len(ids) == 5
    assert ids == sorted(ids)
    seen: list[int] = []
    after = 0
    for _ in range(10):
        page = (await events(service, after=after, limit=2)).json()
        seen += [e["id"] for e in page["events"]]
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert seen == ids
    assert assert_problem(await events(service, limit=0), 422, "invalid-request")
    assert assert_problem(await events(service, after=-1), 422, "invalid-request")


async def test_events_filtered_by_kind(service: Service) -> None:
    """``kind`` picks event kinds; it can be repeated."""
    await make_history(service)
    transitions = (await events(service, kind="transition")).json()["events"]
    assert [(e["from_state"], e["to_state"]) for e in transitions] == [
        ("closed", "forced_open"),
        ("forced_open", "closed"),
    ]
    successes = (await events(service, kind="success")).json()["events"]
    assert len(successes) == 3
    assert {e["kind"] for e in successes} == {"success"}
    both = (await events(service, kind=["success", "transition"])).json()["events"]
    assert len(both) == 5


async def test_events_since_and_until(service: Service) -> None:
    """``since``/``until`` take ISO times or epoch seconds; a bad one is a 422 problem."""
    start = service.clock.time()
    await make_history(service)
    middle = datetime.fromtimestamp(start + 150, UTC)
    later = (await events(service, since=middle.isoformat())).json()["events"]
    assert [e["kind"] for e in later] == ["transition", "transition"]
    naive = middle.replace(tzinfo=None).isoformat()  # read as UTC
    assert (await events(service, since=naive)).json()["events"] == later
    by_epoch = (await events(service, since=str(start + 150))).json()["events"]
    assert by_epoch == later
    earlier = (await events(service, until=str(start + 150))).json()["events"]
    assert [e["kind"] for e in earlier] == ["success"] * 3
    body = assert_problem(await events(service, since="yesterday"), 422)
    assert body["type"].endswith("invalid-request")
    assert "since" in body["detail"]


async def test_state_at_a_past_time(service: Service) -> None:
    """``state?at=`` answers closed before, forced_open between, closed after."""
    start = service.clock.time()
    await make_history(service)  # force-open at +180, reset at +240

    async def state_at(at: str) -> str:
        response = await service.client.get(
            "/breakers/kimi/state", params={"at": at}, headers=service.auth()
        )
        assert response.status_code == 200, response.text
        state: str = response.json()["state"]
        return state

    assert await state_at(str(start)) == "closed"
    assert await state_at(str(start + 200)) == "forced_open"
    assert (
        await state_at(datetime.fromtimestamp(start + 210, UTC).isoformat())
        == "forced_open"
    )
    assert await state_at(str(start + 300)) == "closed"
    missing = await service.client.get("/breakers/kimi/state", headers=service.auth())
    assert_problem(missing, 422, "invalid-request")


# -- operator actions ----------------------------------------------------------------


async def test_force_open_and_reset_record_the_token_subject(service: Service) -> None:
    """The admin token's ``sub`` is the actor of both transitions in the audit trail."""
    admin = service.auth("breakers:admin", sub="carol")
    opened = await service.client.post(
        "/breakers/kimi/force-open",
        json={"reason": "provider maintenance"},
        headers=admin,
    )
    assert opened.status_code == 200, opened.text
    assert opened.json()["state"] == "forced_open"
    assert opened.json()["last_transition"]["actor"] == "carol"
    closed = await service.client.post(
        "/breakers/kimi/reset", json={"reason": "maintenance over"}, headers=admin
    )
    assert closed.json()["state"] == "closed"
    found = (await events(service, kind="transition")).json()["events"]
    assert [(e["to_state"], e["reason"], e["actor"]) for e in found] == [
        ("forced_open", "provider maintenance", "carol"),
        ("closed", "maintenance over", "carol"),
    ]


async def test_operator_actions_need_the_admin_scope(service: Service) -> None:
    """A reader gets 403 on force-open; nothing changes."""
    response = await service.client.post(
        "/breakers/kimi/force-open",
        json={"reason": "nope"},
        headers=service.auth("breakers:read", "uploads:write"),
    )
    assert_problem(response, 403, "forbidden")
    state = await service.client.get("/breakers/kimi", headers=service.auth())
    assert state.json()["state"] == "closed"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="no-reason"),
        pytest.param({"reason": ""}, id="empty-reason"),
        pytest.param({"reason": "x" * 501}, id="long-reason"),
        pytest.param({"reason": 5}, id="not-a-string"),
    ],
)
async def test_force_open_needs_a_reason(
    service: Service, body: dict[str, Any]
) -> None:
    """The reason is required, 1-500 characters: otherwise a 422 problem."""
    response = await service.client.post(
        "/breakers/kimi/force-open", json=body, headers=service.auth()
    )
    problem = assert_problem(response, 422, "invalid-request")
    assert problem["errors"]


async def test_forced_open_breaker_rejects_uploads_with_retry_after(
    service: Service,
) -> None:
    """An upload to a forced-open breaker: 503 with ``Retry-After``, provider untouched."""
    await service.client.post(
        "/breakers/kimi/force-open", json={"reason": "drill"}, headers=service.auth()
    )
    before = service.upstream.provider.stats["requests"]
    response = await upload(service, service.file("a.txt"))
    body = assert_problem(response, 503, "circuit-open")
    assert int(response.headers["retry-after"]) >= 1
    assert body["breaker"] == "kimi"
    assert body["retry_after"] > 0
    assert service.upstream.provider.stats["requests"] == before


# -- uploads -------------------------------------------------------------------------


async def test_upload_by_path(service: Service) -> None:
    """A file in the allowed directory reaches the provider; again, it is deduplicated."""
    path = service.file("report.txt", b"quarterly numbers\n" * 100)
    first = await upload(service, path, force=False)
    assert first.status_code == 200, first.text
    result = first.json()
    assert result["provider"] == "kimi"
    assert result["bytes"] == path.stat().st_size
    assert result["deduplicated"] is False
    assert result["provider_file_id"] in service.upstream.provider.files
    again = await upload(service, path, force=False)
    assert again.json()["deduplicated"] is True
    assert again.json()["provider_file_id"] == result["provider_file_id"]
    forced = await upload(service, path, force=True)
    assert forced.json()["provider_file_id"] != result["provider_file_id"]
    assert len(service.upstream.provider.files) == 2


async def test_upload_by_path_uses_the_provider_order(service: Service) -> None:
    """Without a provider the order (kimi) is used."""
    response = await service.client.post(
        "/uploads/by-path",
        json={"path": str(service.file("b.txt"))},
        headers=service.auth("uploads:write"),
    )
    assert response.status_code == 200, response.text
    assert response.json()["providers_tried"] == ["kimi"]


async def test_multipart_upload(service: Service) -> None:
    """A multipart file is spooled inside the allowed directory, uploaded, cleaned up."""
    response = await service.client.post(
        "/uploads",
        files={"file": ("../../etc/notes.txt", b"multipart body\n")},
        data={"provider": "kimi", "purpose": "file-extract"},
        headers=service.auth("uploads:write"),
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["filename"] == "notes.txt"
    assert result["bytes"] == len(b"multipart body\n")
    assert result["provider_file_id"] in service.upstream.provider.files
    spool = service.root / ".spool"
    assert list(spool.iterdir()) == []


async def test_uploads_need_the_write_scope(service: Service) -> None:
    """A reader cannot upload (403), by path or multipart."""
    reader = service.auth("breakers:read")
    by_path = await service.client.post(
        "/uploads/by-path", json={"path": str(service.file("c.txt"))}, headers=reader
    )
    assert_problem(by_path, 403, "forbidden")
    multipart = await service.client.post(
        "/uploads", files={"file": ("c.txt", b"c")}, headers=reader
    )
    assert_problem(multipart, 403, "forbidden")


async def test_failures_trip_the_breaker_then_503_with_retry_after(
    service: Service,
) -> None:
    """Two upstream 503s are 502 problems; the breaker opens; the next is 503 at once."""
    service.upstream.provider.reconfigure({"down": True})
    path = service.file("d.txt")
    for _ in range(2):
        failed = await upload(service, path)
        body = assert_problem(failed, 502, "upstream-unavailable")
        assert body["provider"] == "kimi"
        assert body["upstream_status"] == 503
    requests = service.upstream.provider.stats["requests"]
    refused = await upload(service, path)
    body = assert_problem(refused, 503, "circuit-open")
    assert refused.headers["retry-after"] == "30"
    assert body["retry_after"] == pytest.approx(30.0)
    assert service.upstream.provider.stats["requests"] == requests
    state = (await service.client.get("/breakers/kimi", headers=service.auth())).json()
    assert state["state"] == "open"
    assert state["retry_after"] == pytest.approx(30.0)
    service.clock.advance(10)
    later = await upload(service, path)
    assert later.headers["retry-after"] == "20"


@pytest.mark.parametrize(
    ("make_path", "status", "reason"),
    [
        pytest.param(
            lambda root: root.parent / "outside.txt", 400, "outside_allowed_dirs"
        ),
        pytest.param(lambda root: "/etc/hostname", 400, "outside_allowed_dirs"),
        pytest.param(
            lambda root: root / "../files/../outside.txt", 400, "outside_allowed_dirs"
        ),
        pytest.param(lambda root: f"{root}/a\x00b.txt", 400, "invalid_path"),
        pytest.param(lambda root: root / "missing.txt", 422, "not_found"),
        pytest.param(lambda root: root / "empty.txt", 422, "empty"),
        pytest.param(lambda root: root, 422, "not_a_file"),
    ],
    ids=["sibling", "etc", "dot-dot", "nul", "missing", "empty", "directory"],
)
async def test_upload_rejected_by_path(
    service: Service,
    make_path: Callable[[Path], Path | str],
    status: int,
    reason: str,
) -> None:
    """Paths are checked before any network call: 400 outside, 422 unusable files."""
    (service.root.parent / "outside.txt").write_bytes(b"secret")
    (service.root / "empty.txt").write_bytes(b"")
    before = service.upstream.provider.stats["requests"]
    response = await upload(service, make_path(service.root))
    body = assert_problem(response, status, "upload-rejected")
    assert body["reason"] == reason
    assert service.upstream.provider.stats["requests"] == before


async def test_too_large_is_413(open_service: OpenService) -> None:
    """Over the provider's size limit: 413, by path and multipart."""
    async with open_service(kimi_max_bytes=16, glm_max_bytes=16) as service:
        by_path = await upload(service, service.file("big.txt", b"x" * 17))
        assert assert_problem(by_path, 413, "upload-rejected")["reason"] == "too_large"
        multipart = await service.client.post(
            "/uploads",
            files={"file": ("big.txt", b"x" * 17)},
            headers=service.auth(),
        )
        assert assert_problem(multipart, 413)["reason"] == "too_large"
        assert list((service.root / ".spool").iterdir()) == []
        assert service.upstream.provider.stats["requests"] == 0


async def test_multipart_rejections(service: Service) -> None:
    """An empty multipart file is 422 ``empty``; no file field is a 422 schema problem."""
    empty = await service.client.post(
        "/uploads", files={"file": ("empty.txt", b"")}, headers=service.auth()
    )
    assert assert_problem(empty, 422, "upload-rejected")["reason"] == "empty"
    no_file = await service.client.post(
        "/uploads", data={"provider": "kimi"}, headers=service.auth()
    )
    assert_problem(no_file, 422, "invalid-request")


async def test_unknown_provider_is_404(service: Service) -> None:
    """Naming a provider that is not configured: 404, by path and multipart."""
    by_path = await upload(service, service.file("e.txt"), provider="nope")
    body = assert_problem(by_path, 404, "unknown-provider")
    assert "nope" in body["detail"]
    multipart = await service.client.post(
        "/uploads",
        files={"file": ("e.txt", b"e")},
        data={"provider": "nope"},
        headers=service.auth(),
    )
    assert_problem(multipart, 404, "unknown-provider")


async def test_recent_uploads_show_tracking_off(service: Service) -> None:
    """``GET /uploads`` lists the latest first, with tracking ``off`` (no Supabase)."""
    for name in ("f1.txt", "f2.txt"):
        assert (await upload(service, service.file(name, name.encode()))).is_success
        service.clock.advance(1)
    response = await service.client.get(
        "/uploads", params={"limit": 10}, headers=service.auth("breakers:read")
    )
    assert response.status_code == 200, response.text
    rows = response.json()["uploads"]
    assert [r["filename"] for r in rows] == ["f2.txt", "f1.txt"]
    assert {r["tracking"] for r in rows} == {"off"}
    one = await service.client.get(
        "/uploads", params={"limit": 1}, headers=service.auth()
    )
    assert len(one.json()["uploads"]) == 1
    bad = await service.client.get(
        "/uploads", params={"limit": 0}, headers=service.auth()
    )
    assert_problem(bad, 422, "invalid-request")


async def test_outbox_disabled(service: Service) -> None:
    """Without Supabase the outbox says it is off."""
    response = await service.client.get(
        "/outbox", headers=service.auth("breakers:read")
    )
    assert response.status_code == 200
    assert response.json() == {"enabled": False}


async def test_providers(service: Service) -> None:
    """``/providers``: kimi available and in the order; glm listed with why not."""
    response = await service.client.get("/providers", headers=service.auth())
    rows = {row["name"]: row for row in response.json()["providers"]}
    assert rows["kimi"]["available"] is True
    assert rows["kimi"]["in_order"] is True
    assert rows["kimi"]["breaker"] == "closed"
    assert rows["glm"]["available"] is False
    assert rows["glm"]["reason"]


# -- metrics -------------------------------------------------------------------------

REQUIRED_METRICS = (
    "breaker_service_breaker_state",
    "breaker_service_breaker_transitions_total",
    "breaker_service_breaker_calls_total",
    "breaker_service_breaker_rejections_total",
    "breaker_service_retries_scheduled_total",
    "breaker_service_upload_seconds_bucket",
    "breaker_service_upload_seconds_count",
    "breaker_service_event_log_backlog",
)


async def test_metrics(open_service: OpenService) -> None:
    """``/metrics`` is open by default and counts what happened, by breaker and outcome."""
    async with open_service(retry_max_attempts=2) as service:
        assert (await upload(service, service.file("ok.txt"))).status_code == 200
        service.upstream.provider.reconfigure({"down": True})
        failed = await upload(service, service.file("fails.txt"))
        assert_problem(failed, 502)  # two attempts, one retry, two failures: open
        refused = await upload(service, service.file("fails.txt"))
        assert_problem(refused, 503, "circuit-open")
        response = await service.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)
    names = {name for name, _labels in found}
    missing = [m for m in REQUIRED_METRICS if m not in names]
    assert not missing, response.text
    kimi = (("breaker", "kimi"),)
    assert found[("breaker_service_breaker_state", (*kimi, ("state", "open")))] == 1
    assert found[("breaker_service_breaker_state", (*kimi, ("state", "closed")))] == 0
    transition = (*kimi, ("from_state", "closed"), ("to_state", "open"))
    assert found[("breaker_service_breaker_transitions_total", transition)] == 1
    calls = "breaker_service_breaker_calls_total"
    assert found[(calls, (*kimi, ("outcome", "success")))] == 1
    assert found[(calls, (*kimi, ("outcome", "failure")))] == 2
    assert ("breaker_service_breaker_rejections_total", kimi) in found
    assert (
        found[("breaker_service_retries_scheduled_total", (("provider", "kimi"),))] == 1
    )
    upload_count = "breaker_service_upload_seconds_count"
    assert found[(upload_count, (("outcome", "ok"),))] == 1
    assert found[(upload_count, (("outcome", "error"),))] == 2
    assert found[("breaker_service_event_log_backlog", ())] >= 0


async def test_metrics_protected_when_not_public(open_service: OpenService) -> None:
    """With ``metrics_public=False`` the scrape needs a reader token."""
    async with open_service(metrics_public=False) as service:
        anonymous = await service.client.get("/metrics")
        assert_problem(anonymous, 401, "unauthorized")
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        reader = await service.client.get(
            "/metrics", headers=service.auth("breakers:read")
        )
    assert reader.status_code == 200
    assert "breaker_service_breaker_state" in reader.text


# -- configuration and docs ----------------------------------------------------------


def test_refuses_to_build_without_a_key(tmp_path: Path, upstream: Upstream) -> None:
    """No key and auth not disabled: ``ConfigError`` naming the variable, before start."""
    settings = make_settings(tmp_path, upstream.url, breaker_service_jwt_secret=None)
    with pytest.raises(ConfigError, match="BREAKER_SERVICE_JWT_SECRET") as caught:
        create_app(settings)
    assert caught.value.variable == "BREAKER_SERVICE_JWT_SECRET"


async def test_auth_disabled_says_so(
    open_service: OpenService, caplog: pytest.LogCaptureFixture
) -> None:
    """``auth_disabled=True`` without a key: everyone is an admin, logged and in /readyz."""
    caplog.set_level(logging.WARNING, logger="breaker_service.api")
    async with open_service(
        auth_disabled=True, breaker_service_jwt_secret=None
    ) as service:
        assert any("AUTH IS DISABLED" in r.getMessage() for r in caplog.records)
        ready = (await service.client.get("/readyz")).json()
        assert ready["auth_disabled"] is True
        assert "AUTH_DISABLED" in ready["warning"]
        listed = await service.client.get("/breakers")
        assert listed.status_code == 200
        opened = await service.client.post(
            "/breakers/kimi/force-open", json={"reason": "no auth"}
        )
        assert opened.status_code == 200, opened.text
        assert opened.json()["last_transition"]["actor"].startswith("anonymous")


async def test_openapi_and_docs(service: Service) -> None:
    """``/docs`` serves the UI and ``/openapi.json`` lists the routes."""
    docs = await service.client.get("/docs")
    assert docs.status_code == 200
    assert "text/html" in docs.headers["content-type"]
    schema = (await service.client.get("/openapi.json")).json()
    for path in (
        "/healthz",
        "/readyz",
        "/breakers",
        "/breakers/{name}",
        "/breakers/{name}/events",
        "/breakers/{name}/state",
        "/breakers/{name}/force-open",
        "/breakers/{name}/reset",
        "/uploads",
        "/uploads/by-path",
        "/outbox",
        "/providers",
        "/metrics",
    ):
        assert path in schema["paths"], path


async def test_unknown_route_and_method_are_problems(service: Service) -> None:
    """Starlette's own 404 and 405 use the same problem shape."""
    assert_problem(await service.client.get("/nothing-here"), 404, "http-error")
    assert_problem(await service.client.delete("/breakers"), 405, "http-error")


async def test_open_kimi_and_glm_without_key_is_503_and_counts_a_rejection(
    open_service: OpenService,
) -> None:
    """Order kimi,glm; kimi's breaker open, glm has no key: 503 circuit-open, a rejection counted."""
    async with open_service(upload_provider_order="kimi,glm") as service:
        service.upstream.provider.reconfigure({"down": True})
        path = service.file("e.txt")
        for _ in range(2):
            await upload(service, path, provider=None)
        refused = await upload(service, path, provider=None)
        body = assert_problem(refused, 503, "circuit-open")
        assert body["breaker"] == "kimi"
        assert int(refused.headers["retry-after"]) >= 1
        state = (
            await service.client.get("/breakers/kimi", headers=service.auth())
        ).json()
        assert state["rejections"] == 1
        named = await upload(service, path, provider="glm")
        assert_problem(named, 503, "upload-rejected")

"""The HTTP service through ``httpx.ASGITransport`` with the lifespan running: health,
breakers, their audit trail, operator actions, configuration and the OpenAPI schema.

The app, its settings and fixtures come from ``api_helpers``; uploads and metrics are
in ``test_api_uploads.py``.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

import anyio
import api_helpers
import httpx
import pytest
from api_helpers import (
    OpenService,
    Service,
    Upstream,
    assert_problem,
    make_settings,
    upload,
)

from breaker_service import __version__
from breaker_service.api import create_app
from breaker_service.api.routes.breakers import EventKind
from breaker_service.errors import ConfigError
from breaker_service.events.model import ALL_KINDS
from breaker_service.migrate import SCHEMA_HEAD

# The shared fixtures: pytest finds them here by name.
pytestmark = pytest.mark.usefixtures("clean_environment")
upstream_server = api_helpers.upstream_server
upstream = api_helpers.upstream
open_service = api_helpers.open_service
service = api_helpers.service

# -- health --------------------------------------------------------------------------


async def test_healthz_needs_no_token(service: Service) -> None:
    """``/healthz`` answers without a token."""
    response = await service.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_when_ready(service: Service) -> None:
    """``/readyz`` is 200 with the schema at head, no problems and the outbox off."""
    response = await service.client.get(
        "/readyz", headers=service.auth("breakers:read")
    )
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
        # applied in memory (fail-safe), queued for the log, and said so: 503
        assert response.status_code == 503, response.text
        assert response.json()["durable"] is False
        assert response.json()["breaker"]["state"] == "forced_open"
        ready = await service.client.get(
            "/readyz", headers=service.auth("breakers:read")
        )
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


async def test_unknown_event_kind_is_a_422(service: Service) -> None:
    """``kind=bogus`` is refused (it was an empty 200, as if no such event happened)."""
    await make_history(service)
    body = assert_problem(await events(service, kind="bogus"), 422, "invalid-request")
    assert body["errors"][0]["loc"] == ["query", "kind", 0]
    mixed = await events(service, kind=["success", "bogus"])
    assert_problem(mixed, 422, "invalid-request")
    assert set(get_args(EventKind)) == ALL_KINDS  # the schema names every stored kind


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
    assert schema["info"]["version"] == __version__


async def test_unknown_route_and_method_are_problems(service: Service) -> None:
    """Starlette's own 404 and 405 use the same problem shape."""
    assert_problem(await service.client.get("/nothing-here"), 404, "http-error")
    assert_problem(await service.client.delete("/breakers"), 405, "http-error")

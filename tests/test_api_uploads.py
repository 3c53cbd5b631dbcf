"""The HTTP service's uploads, outbox, providers and metrics, through
``httpx.ASGITransport`` with the lifespan running (fixtures from ``api_helpers``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import api_helpers
import pytest
from api_helpers import (
    OpenService,
    Service,
    assert_problem,
    samples,
    upload,
)

# The shared fixtures: pytest finds them here by name.
pytestmark = pytest.mark.usefixtures("clean_environment")
upstream_server = api_helpers.upstream_server
upstream = api_helpers.upstream
open_service = api_helpers.open_service
service = api_helpers.service

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
    """``/metrics`` (to a reader) counts what happened, by breaker and outcome."""
    async with open_service(retry_max_attempts=2) as service:
        assert (await upload(service, service.file("ok.txt"))).status_code == 200
        service.upstream.provider.reconfigure({"down": True})
        for _ in range(2):  # two failed calls (two attempts each): open
            failed = await upload(service, service.file("fails.txt"))
            assert_problem(failed, 502)
        refused = await upload(service, service.file("fails.txt"))
        assert_problem(refused, 503, "circuit-open")
        response = await service.client.get(
            "/metrics", headers=service.auth("breakers:read")
        )
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
        found[("breaker_service_retries_scheduled_total", (("provider", "kimi"),))] == 2
    )
    upload_count = "breaker_service_upload_seconds_count"
    assert found[(upload_count, (("outcome", "ok"),))] == 1
    assert found[(upload_count, (("outcome", "error"),))] == 3
    assert found[("breaker_service_event_log_backlog", ())] >= 0


async def test_metrics_protected_when_not_public(open_service: OpenService) -> None:
    """By default (``metrics_public=False``) the scrape needs a reader token."""
    async with open_service() as service:
        anonymous = await service.client.get("/metrics")
        assert_problem(anonymous, 401, "unauthorized")
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        reader = await service.client.get(
            "/metrics", headers=service.auth("breakers:read")
        )
    assert reader.status_code == 200
    assert "breaker_service_breaker_state" in reader.text


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

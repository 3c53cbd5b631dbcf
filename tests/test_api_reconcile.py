"""``GET /uploads/intents`` and ``POST /uploads/reconcile``; file counts in ``/providers``."""

from __future__ import annotations

import api_helpers
import pytest
from api_helpers import Service, assert_problem, samples, upload

pytestmark = pytest.mark.usefixtures("clean_environment")
upstream_server = api_helpers.upstream_server
upstream = api_helpers.upstream
open_service = api_helpers.open_service
service = api_helpers.service


async def test_reconcile_needs_the_admin_scope(service: Service) -> None:
    """A reader may look at the intents, not reconcile."""
    reader = service.auth("breakers:read")
    listed = await service.client.get("/uploads/intents", headers=reader)
    assert listed.status_code == 200, listed.text
    assert listed.json()["open_total"] == 0
    refused = await service.client.post("/uploads/reconcile", headers=reader)
    assert_problem(refused, 403)


async def test_an_ambiguous_failure_is_reconciled_on_demand(service: Service) -> None:
    """Stored then 500: the failed upload's copy is deleted, the actor is the token's."""
    provider = service.upstream.provider
    provider.reconfigure({"error_rate": 1.0, "mix": {"store_500": 1.0}})
    response = await upload(service, service.file("a.txt"))
    assert response.status_code == 502, response.text
    assert len(provider.files) == 1
    for stored in provider.files.values():  # the provider's clock is the test's
        stored.created_at = int(service.clock.time())
    provider.reconfigure({"error_rate": 0.0})
    done = await service.client.post(
        "/uploads/reconcile", headers=service.auth(sub="carol")
    )
    assert done.status_code == 200, done.text
    [kimi] = done.json()["providers"]
    assert len(kimi["deleted"]) == 1
    assert provider.files == {}
    listed = await service.client.get("/uploads/intents", headers=service.auth())
    [action] = listed.json()["actions"]
    assert action["action"] == "deleted"
    assert action["actor"] == "carol"
    providers = await service.client.get("/providers", headers=service.auth())
    [row] = [p for p in providers.json()["providers"] if p["name"] == "kimi"]
    assert row["files"]["count"] == 0
    assert row["files"]["limit"] == 1000


async def test_open_intents_are_a_metric(service: Service) -> None:
    """``breaker_service_upload_intents_open`` is in ``/metrics``."""
    response = await service.client.get("/metrics", headers=service.auth())
    found = samples(response.text)
    assert found[("breaker_service_upload_intents_open", ())] == 0.0


async def test_a_full_file_quota_is_507_and_shown_in_providers(
    service: Service,
) -> None:
    """The provider's file quota is full: its own problem, and ``/providers`` says so."""
    provider = service.upstream.provider
    provider.reconfigure({"max_files": 0})
    try:
        response = await upload(service, service.file("a.txt"))
    finally:
        provider.reconfigure({"max_files": None})
    body = assert_problem(response, 507, "provider-file-quota")
    assert "max file count" in body["detail"]
    providers = await service.client.get("/providers", headers=service.auth())
    [row] = [p for p in providers.json()["providers"] if p["name"] == "kimi"]
    assert "max file count" in row["files"]["quota_full"]

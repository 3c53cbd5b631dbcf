"""``POST /uploads/batch``: per-item answers, limits, auth, NDJSON progress."""

from __future__ import annotations

import json

import api_helpers
import pytest
from api_helpers import Service, assert_problem

pytestmark = pytest.mark.usefixtures("clean_environment")
upstream_server = api_helpers.upstream_server
upstream = api_helpers.upstream
open_service = api_helpers.open_service
service = api_helpers.service


async def test_each_item_answers_for_itself(service: Service) -> None:
    """Two good files and one outside the allowed dirs: two results, one problem."""
    good = [str(service.file(f"g{i}.txt", f"content {i}\n".encode())) for i in (1, 2)]
    response = await service.client.post(
        "/uploads/batch",
        json={"paths": [*good, "/etc/hostname"], "provider": "kimi", "force": True},
        headers=service.auth("uploads:write"),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["uploaded"], body["failed"]) == (2, 1)
    by_path = {item["path"]: item for item in body["items"]}
    for path in good:
        assert by_path[path]["ok"] is True
        assert by_path[path]["result"]["provider_file_id"]
        assert by_path[path]["result"]["recorded"] == "database"
    refused = by_path["/etc/hostname"]
    assert refused["ok"] is False
    assert refused["problem"]["type"] == "urn:breaker-service:upload-rejected"
    assert refused["problem"]["reason"] == "outside_allowed_dirs"
    assert refused["problem"]["status"] == 400


async def test_streaming_gives_one_line_per_item_then_a_summary(
    service: Service,
) -> None:
    """``?stream=true``: NDJSON, one line per finished item, the summary last."""
    paths = [str(service.file(f"s{i}.txt", f"s {i}\n".encode())) for i in range(3)]
    response = await service.client.post(
        "/uploads/batch?stream=true",
        json={"paths": paths, "provider": "kimi", "force": True},
        headers=service.auth("uploads:write"),
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert sorted(line["path"] for line in lines[:-1]) == sorted(paths)
    assert all(line["ok"] for line in lines[:-1])
    assert lines[-1] == {"summary": {"uploaded": 3, "failed": 0}}


async def test_limits_and_auth(service: Service) -> None:
    """More than 100 paths is 422; a reader's token is 403; no token is 401."""
    too_many = {"paths": [f"/x/{i}" for i in range(101)]}
    response = await service.client.post(
        "/uploads/batch", json=too_many, headers=service.auth("uploads:write")
    )
    assert response.status_code == 422
    forbidden = await service.client.post(
        "/uploads/batch",
        json={"paths": ["/x"]},
        headers=service.auth("breakers:read"),
    )
    assert_problem(forbidden, 403, "forbidden")
    anonymous = await service.client.post("/uploads/batch", json={"paths": ["/x"]})
    assert_problem(anonymous, 401, "unauthorized")
    empty = await service.client.post(
        "/uploads/batch", json={"paths": []}, headers=service.auth("uploads:write")
    )
    assert empty.status_code == 422

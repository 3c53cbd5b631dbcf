"""``POST /uploads/batch``: per-item answers, limits, auth, NDJSON progress."""

from __future__ import annotations

import json
from typing import Any

import api_helpers
import pytest
from api_helpers import OpenService, Service, assert_problem

from breaker_service.api.routes.batch_files import MAX_BATCH_FILES

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


def _parts(*files: tuple[str, bytes], **fields: str) -> dict[str, Any]:
    return {
        "files": [("files", (name, content)) for name, content in files],
        "data": fields,
    }


async def test_multipart_batch_answers_per_file_in_order(service: Service) -> None:
    """Several files in one request: each answered by index and name, in order."""
    response = await service.client.post(
        "/uploads/batch/files",
        **_parts(("a.txt", b"alpha\n"), ("b.txt", b"bravo\n"), ("a.txt", b"other a\n")),
        headers=service.auth("uploads:write"),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["uploaded"], body["failed"]) == (3, 0)
    assert [(i["index"], i["filename"]) for i in body["items"]] == [
        (0, "a.txt"),
        (1, "b.txt"),
        (2, "a.txt"),
    ]
    assert all(i["result"]["recorded"] == "database" for i in body["items"])
    assert len({i["result"]["sha256"] for i in body["items"]}) == 3
    assert "path" not in json.dumps(body["items"][0])  # no server path leaks
    stored = sorted(f.bytes for f in service.upstream.provider.files.values())
    assert stored == sorted(len(c) for c in (b"alpha\n", b"bravo\n", b"other a\n"))
    spool = service.root / ".spool"
    assert not spool.exists() or not any(spool.iterdir())  # the spool is removed


async def test_multipart_batch_refuses_one_file_and_uploads_the_rest(
    open_service: OpenService,
) -> None:
    """A file over the provider limit is its own 413 problem; the others upload."""
    async with open_service(kimi_max_bytes=64) as service:
        response = await service.client.post(
            "/uploads/batch/files?stream=true",
            **_parts(("small.txt", b"s\n"), ("big.bin", b"x" * 200)),
            headers=service.auth("uploads:write"),
        )
    assert response.status_code == 200, response.text
    lines = [json.loads(line) for line in response.text.splitlines()]
    by_name = {line["filename"]: line for line in lines[:-1]}
    assert by_name["small.txt"]["ok"] is True
    assert by_name["big.bin"]["ok"] is False
    assert by_name["big.bin"]["problem"]["status"] == 413
    assert lines[-1] == {"summary": {"uploaded": 1, "failed": 1}}


async def test_multipart_batch_limits_and_auth(service: Service) -> None:
    """Too many files or fields is 400, bad fields 422, reader 403, no token 401."""
    writer = service.auth("uploads:write")
    too_many = await service.client.post(
        "/uploads/batch/files",
        **_parts(*[(f"f{i}.txt", b"x") for i in range(MAX_BATCH_FILES + 1)]),
        headers=writer,
    )
    assert_problem(too_many, 400)
    none = await service.client.post(
        "/uploads/batch/files", data={"provider": "kimi"}, headers=writer
    )
    assert_problem(none, 422, "invalid-request")
    bad = await service.client.post(
        "/uploads/batch/files",
        **_parts(("a.txt", b"a"), concurrency="99"),
        headers=writer,
    )
    assert_problem(bad, 422, "invalid-request")
    long_field = await service.client.post(
        "/uploads/batch/files",
        **_parts(("a.txt", b"a"), purpose="p" * 5000),
        headers=writer,
    )
    assert_problem(long_field, 400)
    forbidden = await service.client.post(
        "/uploads/batch/files",
        **_parts(("a.txt", b"a")),
        headers=service.auth("breakers:read"),
    )
    assert_problem(forbidden, 403, "forbidden")
    anonymous = await service.client.post(
        "/uploads/batch/files", **_parts(("a.txt", b"a"))
    )
    assert_problem(anonymous, 401, "unauthorized")
    assert service.upstream.provider.files == {}

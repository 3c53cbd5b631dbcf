"""Hostile bodies: the token and the size are checked before the body is read."""

from __future__ import annotations

from collections.abc import AsyncIterator

import api_helpers
import pytest
from api_helpers import OpenService, Service, assert_problem

pytestmark = pytest.mark.usefixtures("clean_environment")
upstream_server = api_helpers.upstream_server
upstream = api_helpers.upstream
open_service = api_helpers.open_service
service = api_helpers.service

MIB = 1 << 20


class Counted:
    """A request body that counts what the server pulled from it."""

    def __init__(self, total: int, chunk: int = 64 * 1024, head: bytes = b"") -> None:
        self.total = total
        self.chunk = chunk
        self.head = head
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.head:
            self.pulled += len(self.head)
            yield self.head
        sent = 0
        while sent < self.total:
            block = b"0" * min(self.chunk, self.total - sent)
            sent += len(block)
            self.pulled += len(block)
            yield block


def _multipart_head(boundary: str) -> bytes:
    return (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        pytest.param(
            "/uploads", "multipart/form-data; boundary=b0undary", id="multipart"
        ),
        pytest.param("/uploads/by-path", "application/json", id="json"),
        pytest.param("/breakers/kimi/force-open", "application/json", id="admin"),
    ],
)
async def test_no_token_is_401_before_any_body_byte(
    service: Service, path: str, content_type: str
) -> None:
    """200 MB with no token: 401 and not one byte of the body pulled."""
    body = Counted(200 * MIB, head=_multipart_head("b0undary"))
    response = await service.client.post(
        path, content=body, headers={"content-type": content_type}
    )
    assert_problem(response, 401, "unauthorized")
    assert body.pulled == 0


async def test_the_wrong_scope_is_403_before_any_body_byte(service: Service) -> None:
    """A reader's token on an upload: 403 without reading the body."""
    body = Counted(10 * MIB)
    response = await service.client.post(
        "/uploads/by-path",
        content=body,
        headers={"content-type": "application/json", **service.auth("breakers:read")},
    )
    assert_problem(response, 403, "forbidden")
    assert body.pulled == 0


async def test_a_declared_length_over_the_limit_is_413_at_once(
    open_service: OpenService,
) -> None:
    """``Content-Length`` past the largest provider limit: 413, nothing read."""
    async with open_service(kimi_max_bytes=MIB, glm_max_bytes=MIB) as running:
        body = Counted(5 * MIB, head=_multipart_head("b0undary"))
        response = await running.client.post(
            "/uploads",
            content=body,
            headers={
                "content-type": "multipart/form-data; boundary=b0undary",
                "content-length": str(5 * MIB + len(body.head)),
                **running.auth(),
            },
        )
    body_json = assert_problem(response, 413, "body-too-large")
    assert body_json["limit"] < 2 * MIB
    assert body.pulled == 0


async def test_a_streamed_body_is_cut_at_the_limit(open_service: OpenService) -> None:
    """No length declared (chunked): read up to the limit, then 413; no more is read."""
    async with open_service(kimi_max_bytes=MIB, glm_max_bytes=MIB) as running:
        body = Counted(50 * MIB, head=_multipart_head("b0undary"))
        response = await running.client.post(
            "/uploads",
            content=body,
            headers={
                "content-type": "multipart/form-data; boundary=b0undary",
                **running.auth(),
            },
        )
        spool = list((running.root / ".spool").glob("**/*"))
    limit = assert_problem(response, 413, "body-too-large")["limit"]
    assert body.pulled <= limit + body.chunk + len(body.head)
    assert [p for p in spool if p.is_file()] == []


async def test_a_big_json_body_is_413(service: Service) -> None:
    """A JSON route takes a few KiB: 1 MiB of JSON is refused while being read."""
    body = Counted(MIB)
    response = await service.client.post(
        "/uploads/by-path",
        content=body,
        headers={"content-type": "application/json", **service.auth()},
    )
    limit = assert_problem(response, 413, "body-too-large")["limit"]
    assert body.pulled <= limit + body.chunk


async def test_form_fields_are_bounded(service: Service) -> None:
    """A 900 KB ``purpose`` field is refused (422), not stored."""
    path = service.file("a.txt")
    response = await service.client.post(
        "/uploads",
        files={"file": ("a.txt", path.read_bytes())},
        data={"purpose": "p" * 900_000},
        headers=service.auth(),
    )
    assert response.status_code == 422, response.text

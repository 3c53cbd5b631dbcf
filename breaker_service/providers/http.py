"""``HttpFilesProvider``: an OpenAI-style ``POST <base><path>`` multipart file upload.

Kimi (Moonshot), GLM (Zhipu) and any OpenAI-compatible gateway are instances with
their own base URL, path, key, purpose, size limit and error dialect. The file is
streamed from disk by httpx's multipart encoder (read in chunks, never whole).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from ..errors import ProviderRejected, ProviderUnavailable
from .base import ProviderFile, UploadBody
from .errors import map_response, map_transport_error, scrub
from .multipart import MultipartStream

__all__ = ["HttpFilesProvider", "make_http_client"]


def make_http_client(
    *,
    connect: float = 5.0,
    read: float = 60.0,
    write: float = 60.0,
    pool: float = 5.0,
    max_connections: int = 100,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """The process-wide client: pooled connections and explicit timeouts."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(connect=connect, read=read, write=write, pool=pool),
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        transport=transport,
        follow_redirects=False,
    )


class HttpFilesProvider:
    """Uploads files to one OpenAI-style files endpoint."""

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        path: str,
        api_key: str | None,
        key_variable: str,
        purpose: str,
        max_bytes: int,
        client: httpx.AsyncClient,
        dialect: str = "openai",
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.path = path if path.startswith("/") else "/" + path
        self.default_purpose = purpose
        self.max_bytes = max_bytes
        self.dialect = dialect
        self.key_variable = key_variable
        self._api_key = api_key or None
        self._client = client

    @property
    def url(self) -> str:
        """The upload endpoint."""
        return self.base_url + self.path

    @property
    def unavailable_reason(self) -> str | None:
        """Set when no API key is configured."""
        if self._api_key is None:
            return f"no API key: set {self.key_variable}"
        return None

    def __repr__(self) -> str:
        return f"<HttpFilesProvider {self.name} {self.url}>"

    async def upload(
        self, body: Path | UploadBody, *, filename: str, purpose: str | None = None
    ) -> ProviderFile:
        """POST the file as multipart ``file`` plus ``purpose``; map every error once.

        An ``UploadBody`` is sent as an async multipart stream read through its one
        verified handle (never reopened by name, no file I/O on the event loop); a
        plain path is streamed by httpx's encoder.
        """
        if self._api_key is None:
            raise ProviderRejected(
                f"{self.name}: {self.unavailable_reason}",
                provider=self.name,
                code="no_api_key",
            )
        purpose = purpose or self.default_purpose
        secrets = (self._api_key,)
        try:
            if isinstance(body, Path):
                with body.open("rb") as stream:
                    response = await self._client.post(
                        self.url,
                        files={"file": (filename, stream, "application/octet-stream")},
                        data={"purpose": purpose},
                        headers={"Authorization": f"Bearer {self._api_key}"},
                    )
            else:
                form = MultipartStream(body, filename=filename, purpose=purpose)
                response = await self._client.post(
                    self.url,
                    content=form.stream(),
                    headers={
                        "Authorization": f"Bearer {self._api_key}",
                        "Content-Type": form.content_type,
                        "Content-Length": str(form.length),
                    },
                )
        except httpx.HTTPError as exc:
            raise map_transport_error(exc, self.name, secrets) from None
        if response.status_code >= 400:
            raise map_response(
                response, self.name, dialect=self.dialect, secrets=secrets
            )
        return self._parse(response, filename, purpose)

    def _parse(
        self, response: httpx.Response, filename: str, purpose: str
    ) -> ProviderFile:
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("id"), str)
            or not body["id"]
        ):
            text = scrub(response.text[:200], (self._api_key,))
            msg = f"{self.name}: HTTP {response.status_code} reply without a file id: {text!r}"
            raise ProviderUnavailable(
                msg, provider=self.name, status=response.status_code, code="bad_reply"
            )
        size = body.get("bytes")
        created = body.get("created_at")
        return ProviderFile(
            provider=self.name,
            file_id=body["id"],
            filename=str(body.get("filename") or filename),
            bytes=int(size) if isinstance(size, int) else -1,
            purpose=str(body.get("purpose") or purpose),
            status=str(body["status"]) if body.get("status") is not None else None,
            created_at=int(created) if isinstance(created, int) else None,
            raw=body,
        )

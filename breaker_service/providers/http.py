"""``HttpFilesProvider``: an OpenAI-style ``POST <base><path>`` multipart file upload.

Kimi (Moonshot), GLM (Zhipu) and any OpenAI-compatible gateway are instances with
their own base URL, path, key, purpose, size limit and error dialect. The file is
streamed from disk by httpx's multipart encoder (read in chunks, never whole).

The same path lists (``GET``, cursor paging with ``after``/``has_more``; Zhipu
filters by ``purpose``) and, with ``/{id}``, deletes: the ``FileCatalog`` port the
reconciler uses. A 404 on delete means the file is already gone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from ..errors import ProviderRejected, ProviderUnavailable
from .base import FilePage, ProviderFile, UploadBody
from .errors import map_response, map_transport_error, scrub
from .multipart import MultipartStream

__all__ = ["FILE_QUOTAS", "HttpFilesProvider", "make_http_client"]

FILE_QUOTAS: dict[str, int] = {"kimi": 1000, "glm": 100}
"""Files a provider keeps per account, by dialect (Moonshot; Zhipu ``file-extract``)."""

PAGE_SIZE = 100


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
        max_files: int | None = None,
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
        self.max_files = (
            max_files if max_files is not None else FILE_QUOTAS.get(dialect)
        )

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

    def _headers(self) -> dict[str, str]:
        if self._api_key is None:
            raise ProviderRejected(
                f"{self.name}: {self.unavailable_reason}",
                provider=self.name,
                code="no_api_key",
            )
        return {"Authorization": f"Bearer {self._api_key}"}

    async def _send(
        self, method: str, url: str, params: dict[str, str] | None = None
    ) -> httpx.Response:
        headers = self._headers()
        try:
            return await self._client.request(
                method, url, params=params, headers=headers
            )
        except httpx.HTTPError as exc:
            raise map_transport_error(exc, self.name, (self._api_key,)) from None

    async def list_page(
        self, *, purpose: str | None = None, after: str | None = None
    ) -> FilePage:
        """One page of the files this account holds (``FileCatalog``)."""
        params = {"limit": str(PAGE_SIZE)}
        if purpose is None and self.dialect == "glm":
            purpose = self.default_purpose  # Zhipu lists one purpose at a time
        if purpose is not None:
            params["purpose"] = purpose
        if after is not None:
            params["after"] = after
        response = await self._send("GET", self.url, params)
        if response.status_code >= 400:
            raise map_response(
                response, self.name, dialect=self.dialect, secrets=(self._api_key,)
            )
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            text = scrub(response.text[:200], (self._api_key,))
            msg = f"{self.name}: file list without data: {text!r}"
            raise ProviderUnavailable(
                msg, provider=self.name, status=response.status_code, code="bad_reply"
            )
        files = tuple(
            self._file(item)
            for item in data
            if isinstance(item, dict) and isinstance(item.get("id"), str)
        )
        more = isinstance(body, dict) and body.get("has_more") is True
        cursor = None
        if more and files:
            last = body.get("last_id")
            cursor = last if isinstance(last, str) and last else files[-1].file_id
        return FilePage(files, cursor)

    async def delete_file(self, file_id: str) -> bool:
        """Delete one file (``FileCatalog``); False when the provider has no such file."""
        response = await self._send("DELETE", f"{self.url}/{file_id}")
        if response.status_code == 404:
            return False
        if response.status_code >= 400:
            raise map_response(
                response, self.name, dialect=self.dialect, secrets=(self._api_key,)
            )
        return True

    def _file(self, body: dict[str, Any]) -> ProviderFile:
        size = body.get("bytes")
        created = body.get("created_at")
        return ProviderFile(
            provider=self.name,
            file_id=str(body["id"]),
            filename=str(body.get("filename") or ""),
            bytes=int(size) if isinstance(size, int) else -1,
            purpose=str(body.get("purpose") or ""),
            status=str(body["status"]) if body.get("status") is not None else None,
            created_at=int(created) if isinstance(created, int | float) else None,
            raw=body,
        )

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

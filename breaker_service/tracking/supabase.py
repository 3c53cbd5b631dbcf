"""Delivery to Supabase through the real ``supabase`` client (async, PostgREST upsert).

Writes are ``upsert(rows, on_conflict="id")``, so a repeated delivery is harmless.
PostgREST errors and httpx transport errors are mapped once into the project's
``ProviderError`` kinds: authentication and schema problems are permanent (the
operator must fix the configuration), 5xx, 429 and transport failures transient.
The key never appears in an error or a log.
"""

from __future__ import annotations

from typing import Any

import httpx

from ..errors import ProviderError, ProviderRejected, ProviderUnavailable
from ..providers.errors import map_transport_error, scrub

__all__ = ["AUTH_HINT", "SupabaseSink", "map_postgrest_error"]

AUTH_HINT = "(check SUPABASE_SERVICE_KEY)"

_AUTH_CODES = {"PGRST300", "PGRST301", "PGRST302", "PGRST303", "401", "403", "42501"}
_TRANSIENT_CODES = {
    "429",
    "500",
    "502",
    "503",
    "504",
    "520",
    "PGRST000",
    "PGRST001",
    "PGRST002",
    "PGRST003",
    "57014",
    "40001",
    "40P01",
}


def map_postgrest_error(exc: Exception, key: str | None) -> ProviderError:
    """A ``postgrest.APIError`` as transient (retry) or permanent (park as failed)."""
    code = str(getattr(exc, "code", "") or "")
    message = scrub(str(getattr(exc, "message", "") or exc), (key,))
    text = f"supabase: {code + ': ' if code else ''}{message}"
    if code in _AUTH_CODES or "api key" in message.lower() or "jwt" in message.lower():
        return ProviderRejected(f"{text} {AUTH_HINT}", provider="supabase", code="auth")
    if code.isdigit() and 300 <= int(code) < 400:
        return ProviderRejected(
            f"{text} (a redirect, not followed: check SUPABASE_URL)",
            provider="supabase",
            code="redirect",
        )
    if code in _TRANSIENT_CODES:
        status = int(code) if code.isdigit() else None
        return ProviderUnavailable(text, provider="supabase", status=status, code=code)
    return ProviderRejected(
        text + " (check the table and migrations/supabase/*.sql; SUPABASE_TABLE)",
        provider="supabase",
        code="schema" if code else "rejected",
    )


class SupabaseSink:
    """Upserts tracking rows into one Supabase table."""

    def __init__(
        self, url: str, key: str, table: str, *, timeout: float = 10.0
    ) -> None:
        self.url = url
        self.table = table
        self.timeout = timeout
        self._key = key
        self._client: Any = None
        self._http: httpx.AsyncClient | None = None

    async def _connect(self) -> Any:
        if self._client is None:
            from supabase import AsyncClientOptions, acreate_client  # noqa: PLC0415 - deferred: heavy import

            # The timeout goes on our own httpx client: postgrest's ``timeout``
            # parameter is deprecated (a DeprecationWarning on every client). No
            # redirects: a 3xx elsewhere would carry the service-role ``apikey`` along.
            if self._http is None:
                self._http = httpx.AsyncClient(
                    timeout=httpx.Timeout(self.timeout), follow_redirects=False
                )
            options = AsyncClientOptions(
                httpx_client=self._http,
                postgrest_client_retry=False,
                auto_refresh_token=False,
                persist_session=False,
            )
            self._client = await acreate_client(self.url, self._key, options=options)
        return self._client

    async def upsert(self, rows: list[dict[str, Any]]) -> int:
        """Upsert ``rows`` by id; returns how many the server acknowledged."""
        from postgrest.exceptions import APIError  # noqa: PLC0415 - deferred: as supabase

        try:
            client = await self._connect()
            response = (
                await client.table(self.table).upsert(rows, on_conflict="id").execute()
            )
        except APIError as exc:
            raise map_postgrest_error(exc, self._key) from None
        except httpx.HTTPError as exc:
            raise map_transport_error(exc, "supabase", (self._key,)) from None
        return len(response.data or [])

    async def aclose(self) -> None:
        """Close the client's HTTP connections."""
        client, self._client = self._client, None
        http, self._http = self._http, None
        postgrest = getattr(client, "_postgrest", None)
        if postgrest is not None:
            await postgrest.aclose()
        if http is not None:
            await http.aclose()

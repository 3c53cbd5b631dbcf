"""Build the configured providers from their specs: Kimi, GLM and any compatible ones."""

from __future__ import annotations

import httpx

from ..config import HttpSettings, Settings
from .base import Provider
from .http import HttpFilesProvider, make_http_client

__all__ = ["build_providers", "http_client_for"]


def http_client_for(
    settings: HttpSettings, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The shared ``httpx.AsyncClient`` with the configured timeouts."""
    return make_http_client(
        connect=settings.http_connect_timeout,
        read=settings.http_read_timeout,
        write=settings.http_write_timeout,
        pool=settings.http_pool_timeout,
        max_connections=settings.http_max_connections,
        transport=transport,
    )


def build_providers(
    settings: Settings, client: httpx.AsyncClient
) -> dict[str, Provider]:
    """Every provider the settings describe, keyed by name (with or without keys)."""
    return {
        name: HttpFilesProvider(
            name=spec.name,
            base_url=spec.base_url,
            path=spec.path,
            api_key=spec.api_key.get_secret_value() if spec.api_key else None,
            key_variable=spec.key_variable,
            purpose=spec.purpose,
            max_bytes=spec.max_bytes,
            client=client,
            dialect=spec.dialect,
        )
        for name, spec in settings.providers.items()
    }

"""Build the configured providers: Kimi, GLM and any OpenAI-compatible ones."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
from dotenv import dotenv_values

from ..config import Settings
from .base import Provider
from .http import HttpFilesProvider, make_http_client

__all__ = ["build_providers", "http_client_for"]


def http_client_for(
    settings: Settings, transport: httpx.AsyncBaseTransport | None = None
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


def _key_from_env(variable: str, env_file: str | Path | None = ".env") -> str | None:
    value = os.environ.get(variable)
    if value is None and env_file is not None and Path(env_file).is_file():
        value = dotenv_values(env_file).get(variable)
    return value or None


def build_providers(
    settings: Settings, client: httpx.AsyncClient
) -> dict[str, Provider]:
    """Every provider the settings describe, keyed by name (with or without keys)."""
    providers: dict[str, Provider] = {
        "kimi": HttpFilesProvider(
            name="kimi",
            base_url=settings.kimi_base_url,
            path="/v1/files",
            api_key=settings.kimi_api_key.get_secret_value()
            if settings.kimi_api_key
            else None,
            key_variable="KIMI_API_KEY (or MOONSHOT_API_KEY)",
            purpose=settings.kimi_purpose,
            max_bytes=settings.kimi_max_bytes,
            client=client,
            dialect="kimi",
        ),
        "glm": HttpFilesProvider(
            name="glm",
            base_url=settings.glm_base_url,
            path="/api/paas/v4/files",
            api_key=settings.glm_api_key.get_secret_value()
            if settings.glm_api_key
            else None,
            key_variable="GLM_API_KEY (or ZHIPUAI_API_KEY)",
            purpose=settings.glm_purpose,
            max_bytes=settings.glm_max_bytes,
            client=client,
            dialect="glm",
        ),
    }
    for extra in settings.openai_compat_providers:
        providers[extra.name] = HttpFilesProvider(
            name=extra.name,
            base_url=extra.base_url,
            path=extra.path,
            api_key=_key_from_env(extra.api_key_env),
            key_variable=extra.api_key_env,
            purpose=extra.purpose,
            max_bytes=extra.max_bytes,
            client=client,
            dialect="openai",
        )
    return providers

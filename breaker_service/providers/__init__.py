"""Providers: the ``Provider`` port, the httpx adapter, the catalog and the flaky server."""

from .base import FileCatalog, FilePage, Provider, ProviderFile
from .catalog import build_providers, http_client_for
from .http import HttpFilesProvider, make_http_client

__all__ = [
    "FileCatalog",
    "FilePage",
    "HttpFilesProvider",
    "Provider",
    "ProviderFile",
    "build_providers",
    "http_client_for",
    "make_http_client",
]

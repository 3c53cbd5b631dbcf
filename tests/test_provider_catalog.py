"""Providers' own file lists and deletes (``FileCatalog``), and the file-quota error."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from upload_helpers import (
    KEY_VARIABLES,
    flaky_server,
    make_settings,
    reusing_servers,
    write_file,
)

from breaker_service.config import Settings
from breaker_service.errors import ProviderQuotaExceeded, ProviderRejected
from breaker_service.providers import FileCatalog, build_providers, http_client_for
from breaker_service.providers.base import Provider
from breaker_service.providers.errors import map_response


@pytest.fixture(scope="module", autouse=True)
def _servers() -> Iterator[None]:
    with reusing_servers():
        yield


@pytest.fixture(autouse=True)
def _no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KEY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@contextlib.asynccontextmanager
async def providers_for(settings: Settings) -> AsyncIterator[dict[str, Provider]]:
    """The configured providers on their shared client."""
    async with http_client_for(settings) as client:
        yield build_providers(settings, client)


@pytest.mark.parametrize("flavor", ["kimi", "glm"])
async def test_list_pages_and_delete(flavor: str, tmp_path: Path) -> None:
    """Five files, two a page: three pages in order; a delete, then a 404 is False."""
    paths = [write_file(tmp_path / f"f{i}.txt") for i in range(5)]
    with flaky_server(flavor, page_size=2) as server:
        settings = make_settings(tmp_path, kimi_url=server.url, glm_url=server.url)
        async with providers_for(settings) as providers:
            provider = providers[flavor]
            assert isinstance(provider, FileCatalog)
            ids = [(await provider.upload(p, filename=p.name)).file_id for p in paths]
            listed: list[str] = []
            cursor: str | None = None
            pages = 0
            while True:
                page = await provider.list_page(after=cursor)
                pages += 1
                listed.extend(f.file_id for f in page.files)
                if page.cursor is None:
                    break
                cursor = page.cursor
            assert listed == ids
            assert pages == 3
            assert all(f.created_at is not None for f in page.files)
            assert await provider.delete_file(ids[0]) is True
            assert await provider.delete_file(ids[0]) is False
        assert ids[0] not in server.state.files


async def test_glm_lists_one_purpose(tmp_path: Path) -> None:
    """Zhipu's list is asked for the configured purpose."""
    path = write_file(tmp_path / "a.txt")
    with flaky_server("glm") as server:
        settings = make_settings(tmp_path, glm_url=server.url)
        async with providers_for(settings) as providers:
            glm = providers["glm"]
            assert isinstance(glm, FileCatalog)
            await glm.upload(path, filename=path.name, purpose="batch")
            assert (await glm.list_page()).files == ()
            assert len((await glm.list_page(purpose="batch")).files) == 1


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        pytest.param(
            400,
            {
                "error": {
                    "type": "invalid_request_error",
                    "message": "exceeded the max file count 1000, please delete "
                    "previous uploaded files",
                }
            },
            ProviderQuotaExceeded,
            id="moonshot-max-file-count",
        ),
        pytest.param(
            400,
            {"error": {"code": "1000", "message": "file count limit reached"}},
            ProviderQuotaExceeded,
            id="glm-file-count-limit",
        ),
        pytest.param(
            429,
            {"error": {"type": "exceeded_current_quota_error", "message": "balance"}},
            ProviderRejected,
            id="moonshot-balance-is-not-the-file-quota",
        ),
        pytest.param(
            400,
            {"error": {"type": "invalid_request_error", "message": "file too large"}},
            ProviderRejected,
            id="other-400",
        ),
    ],
)
def test_a_full_file_quota_is_its_own_error(
    status: int, body: dict[str, object], kind: type[ProviderRejected]
) -> None:
    """The quota replies map to ``ProviderQuotaExceeded`` (permanent), others do not."""
    error = map_response(httpx.Response(status, json=body), "kimi", dialect="kimi")
    assert type(error) is kind
    assert not error.transient

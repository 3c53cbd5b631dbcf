"""Providers over real sockets: error mapping per dialect, timeouts, keys, streaming."""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import logging
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from upload_helpers import (
    GLM_KEY,
    KIMI_KEY,
    Reply,
    flaky_server,
    make_settings,
    open_orchestrator,
    reply_server,
    write_file,
)

from breaker_service.config import Settings, load_settings
from breaker_service.errors import (
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)
from breaker_service.providers import (
    HttpFilesProvider,
    Provider,
    build_providers,
    http_client_for,
)
from breaker_service.providers.errors import map_transport_error
from breaker_service.providers.flaky import free_port

pytestmark = pytest.mark.usefixtures("reuse_servers", "clean_environment")


SAMPLE = b"hello providers\n"


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    """A small file to upload."""
    return write_file(tmp_path / "files" / "sample.txt", SAMPLE)


@contextlib.asynccontextmanager
async def providers_for(settings: Settings) -> AsyncIterator[dict[str, Provider]]:
    """The configured providers on their shared client, closed afterwards."""
    async with http_client_for(settings) as client:
        yield build_providers(settings, client)


RATE_LIMITED = "rate_limit_reached_error"
Expected = tuple[type[ProviderError], int, str, float | None]
"""The error's kind, status, code and ``retry_after``."""


@pytest.mark.parametrize(
    ("provider", "fault", "expected"),
    [
        pytest.param(
            "kimi",
            "429",
            (ProviderUnavailable, 429, RATE_LIMITED, None),
            id="kimi-429-no-retry-after",
        ),
        pytest.param(
            "kimi",
            "429_retry_after",
            (ProviderUnavailable, 429, RATE_LIMITED, 2.5),
            id="kimi-429-retry-after",
        ),
        pytest.param(
            "kimi", "500", (ProviderUnavailable, 500, "server_error", None), id="500"
        ),
        pytest.param(
            "kimi", "502", (ProviderUnavailable, 502, "server_error", None), id="502"
        ),
        pytest.param(
            "kimi", "503", (ProviderUnavailable, 503, "server_error", None), id="503"
        ),
        pytest.param(
            "kimi", "504", (ProviderUnavailable, 504, "server_error", None), id="504"
        ),
        pytest.param(
            "kimi",
            "quota",
            (ProviderRejected, 429, "exceeded_current_quota_error", None),
            id="kimi-quota-429",
        ),
        pytest.param(
            "glm", "429", (ProviderUnavailable, 429, "1302", None), id="glm-1302"
        ),
        pytest.param(
            "glm",
            "quota",
            (ProviderRejected, 429, "1113", None),
            id="glm-1113-arrears",
        ),
        pytest.param(
            "glm",
            "429_retry_after",
            (ProviderUnavailable, 429, RATE_LIMITED, 2.5),
            id="glm-429-retry-after",
        ),
    ],
)
async def test_injected_faults_map_to_error_kinds(
    sample: Path, provider: str, fault: str, expected: Expected
) -> None:
    """Each injected error reply becomes its kind with status, code and Retry-After."""
    kind, status, code, retry_after = expected
    with flaky_server(provider, script=[fault], retry_after=2.5) as server:
        settings = make_settings(sample.parent, kimi_url=server.url, glm_url=server.url)
        async with providers_for(settings) as providers:
            with pytest.raises(ProviderError) as caught:
                await providers[provider].upload(sample, filename=sample.name)
    error = caught.value
    assert type(error) is kind
    assert (error.provider, error.status, error.code) == (provider, status, code)
    assert error.retry_after == retry_after
    assert error.transient is (kind is ProviderUnavailable)
    assert server.requests == 1


@pytest.mark.parametrize(
    ("provider", "status"),
    [
        pytest.param("kimi", 400, id="400"),
        pytest.param("kimi", 401, id="401"),
        pytest.param("kimi", 403, id="403"),
        pytest.param("kimi", 404, id="404"),
        pytest.param("glm", 434, id="glm-434"),
        pytest.param("glm", 435, id="glm-435"),
    ],
)
async def test_client_error_statuses_are_rejected(
    sample: Path, provider: str, status: int
) -> None:
    """4xx replies (and Zhipu's own 434/435) are permanent: ``ProviderRejected``."""
    with flaky_server(provider, down=True, down_status=status) as server:
        settings = make_settings(sample.parent, kimi_url=server.url, glm_url=server.url)
        async with providers_for(settings) as providers:
            with pytest.raises(ProviderRejected) as caught:
                await providers[provider].upload(sample, filename=sample.name)
    assert caught.value.status == status
    assert not caught.value.transient


async def test_wrong_key_is_rejected_401(sample: Path) -> None:
    """A key the server refuses is a 401 ``ProviderRejected`` (no retry will help)."""
    with flaky_server("kimi", api_key="sk-the-right-key-000") as server:
        settings = make_settings(sample.parent, kimi_url=server.url)
        async with providers_for(settings) as providers:
            with pytest.raises(ProviderRejected) as caught:
                await providers["kimi"].upload(sample, filename=sample.name)
    assert caught.value.status == 401
    assert caught.value.code == "invalid_authentication_error"
    assert server.state.stats["unauthorised"] == 1


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        pytest.param(429, "1302", ProviderUnavailable, id="1302-rate-limit"),
        pytest.param(429, "1303", ProviderUnavailable, id="1303-rate-limit"),
        pytest.param(429, "1305", ProviderUnavailable, id="1305-overloaded"),
        pytest.param(400, "1302", ProviderUnavailable, id="1302-under-400"),
        pytest.param(429, "1113", ProviderRejected, id="1113-arrears-429"),
        pytest.param(400, "1113", ProviderRejected, id="1113-arrears-400"),
        pytest.param(434, "1220", ProviderRejected, id="434-no-permission"),
        pytest.param(435, "1221", ProviderRejected, id="435-file-refused"),
        pytest.param(500, "1234", ProviderUnavailable, id="500-other-code"),
        pytest.param(400, "1210", ProviderRejected, id="400-other-code"),
    ],
)
async def test_glm_codes(
    sample: Path, status: int, code: str, kind: type[ProviderError]
) -> None:
    """Zhipu codes decide before the status: 1113 is permanent, 1302/1303/1305 transient."""
    body = {"error": {"code": code, "message": f"glm says {code}"}}
    with reply_server([Reply(status, body)]) as server:
        settings = make_settings(sample.parent, glm_url=server.url)
        async with providers_for(settings) as providers:
            with pytest.raises(ProviderError) as caught:
                await providers["glm"].upload(sample, filename=sample.name)
    assert type(caught.value) is kind
    assert (caught.value.status, caught.value.code) == (status, code)
    assert f"glm says {code}" in str(caught.value)


@pytest.mark.parametrize(
    ("provider", "fault", "requests", "outcome"),
    [
        pytest.param("kimi", "quota", 1, ProviderRejected, id="kimi-quota-not-retried"),
        pytest.param("glm", "quota", 1, ProviderRejected, id="glm-1113-not-retried"),
        pytest.param("kimi", "429", 2, None, id="kimi-429-retried"),
        pytest.param("glm", "429", 2, None, id="glm-1302-retried"),
        pytest.param("kimi", "503", 2, None, id="kimi-503-retried"),
    ],
)
async def test_permanent_errors_are_not_retried(
    sample: Path,
    provider: str,
    fault: str,
    requests: int,
    outcome: type[ProviderError] | None,
) -> None:
    """Through the resilient call, quota errors stop at once; transient ones are retried."""
    with flaky_server(provider, script=[fault]) as server:
        settings = make_settings(sample.parent, kimi_url=server.url, glm_url=server.url)
        async with open_orchestrator(settings) as orchestrator:
            if outcome is None:
                result = await orchestrator.upload(sample, provider=provider)
                assert result.attempts == 2
            else:
                with pytest.raises(outcome):
                    await orchestrator.upload(sample, provider=provider)
    assert server.requests == requests


async def test_hang_is_a_timeout(sample: Path) -> None:
    """A server that never answers hits the read timeout: ``ProviderTimeout``."""
    with flaky_server("kimi", script=["hang"]) as server:
        settings = make_settings(
            sample.parent, kimi_url=server.url, http_read_timeout=0.3
        )
        async with providers_for(settings) as providers:
            started = time.monotonic()
            with pytest.raises(ProviderTimeout) as caught:
                await providers["kimi"].upload(sample, filename=sample.name)
            waited = time.monotonic() - started
    assert caught.value.code == "ReadTimeout"
    assert caught.value.kind == "timeout"
    assert caught.value.transient
    assert waited >= 0.25  # the read timeout, not the server's 1 s hang


async def test_dropped_connection_is_unavailable(sample: Path) -> None:
    """A connection dropped mid-reply is a transient ``ProviderUnavailable``."""
    with flaky_server("kimi", script=["drop"]) as server:
        settings = make_settings(sample.parent, kimi_url=server.url)
        async with providers_for(settings) as providers:
            with pytest.raises(ProviderUnavailable) as caught:
                await providers["kimi"].upload(sample, filename=sample.name)
    assert caught.value.status is None
    assert caught.value.code == "RemoteProtocolError"
    assert server.state.stats["fault_drop"] == 1


async def test_refused_connection_is_unavailable(sample: Path) -> None:
    """Nothing listening on the port is a transient ``ProviderUnavailable``."""
    url = f"http://127.0.0.1:{free_port()}"
    settings = make_settings(sample.parent, kimi_url=url)
    async with providers_for(settings) as providers:
        with pytest.raises(ProviderUnavailable) as caught:
            await providers["kimi"].upload(sample, filename=sample.name)
    assert caught.value.code == "ConnectError"


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(Reply(200, {"object": "file", "bytes": 3}), id="json-without-id"),
        pytest.param(Reply(200, {"id": ""}), id="empty-id"),
        pytest.param(Reply(200, {"id": 42}), id="id-not-a-string"),
        pytest.param(Reply(200, ["file-1"]), id="json-list"),
        pytest.param(Reply(200, "<html>gateway</html>"), id="not-json"),
    ],
)
async def test_reply_without_id_is_bad_reply(sample: Path, reply: Reply) -> None:
    """A 200 without a usable file id is ``ProviderUnavailable`` with code bad_reply."""
    with reply_server([reply]) as server:
        settings = make_settings(sample.parent, kimi_url=server.url)
        async with providers_for(settings) as providers:
            with pytest.raises(ProviderUnavailable) as caught:
                await providers["kimi"].upload(sample, filename=sample.name)
    assert (caught.value.status, caught.value.code) == (200, "bad_reply")


async def test_successful_reply_is_parsed(sample: Path) -> None:
    """The flaky server's file record comes back as a ``ProviderFile``."""
    with flaky_server("kimi") as server:
        settings = make_settings(sample.parent, kimi_url=server.url)
        async with providers_for(settings) as providers:
            answer = await providers["kimi"].upload(sample, filename="renamed.txt")
    stored = server.state.files[answer.file_id]
    assert answer.provider == "kimi"
    assert (answer.filename, answer.bytes, answer.purpose) == (
        "renamed.txt",
        len(SAMPLE),
        "file-extract",
    )
    assert stored.sha256 == hashlib.sha256(SAMPLE).hexdigest()
    assert server.state.stats["unauthorised"] == 0


@pytest.mark.parametrize(
    ("provider", "variable"),
    [
        pytest.param("kimi", "KIMI_API_KEY", id="kimi"),
        pytest.param("glm", "GLM_API_KEY", id="glm"),
    ],
)
async def test_no_key_is_unavailable_not_a_crash(
    sample: Path, provider: str, variable: str
) -> None:
    """Without a key the provider says why, and upload is refused naming the variable."""
    with flaky_server(provider) as server:
        settings = make_settings(
            sample.parent,
            kimi_url=server.url,
            glm_url=server.url,
            kimi_key=None,
            glm_key=None,
        )
        async with providers_for(settings) as providers:
            reason = providers[provider].unavailable_reason
            with pytest.raises(ProviderRejected) as caught:
                await providers[provider].upload(sample, filename=sample.name)
    assert reason is not None
    assert variable in reason
    assert variable in str(caught.value)
    assert caught.value.code == "no_api_key"
    assert server.requests == 0


async def test_alternative_key_variable_is_accepted(
    sample: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``MOONSHOT_API_KEY`` and ``ZHIPUAI_API_KEY`` configure the keys too."""
    monkeypatch.setenv("MOONSHOT_API_KEY", KIMI_KEY)
    monkeypatch.setenv("ZHIPUAI_API_KEY", GLM_KEY)
    with flaky_server("kimi") as kimi, flaky_server("glm") as glm:
        settings = load_settings(
            env_file=None,
            upload_allowed_dirs=str(sample.parent),
            kimi_base_url=kimi.url,
            glm_base_url=glm.url,
        )
        async with providers_for(settings) as providers:
            assert providers["kimi"].unavailable_reason is None
            await providers["kimi"].upload(sample, filename=sample.name)
            await providers["glm"].upload(sample, filename=sample.name)
    assert (kimi.uploaded, glm.uploaded) == (1, 1)


async def test_openai_compatible_provider_from_settings(
    sample: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gateway configured by name, URL, path, key variable and purpose just works."""
    gateway_key = "gw-key-5d8e1f0c"
    monkeypatch.setenv("GATEWAY_KEY", gateway_key)
    with flaky_server("openai", api_key=gateway_key) as server:
        settings = make_settings(
            sample.parent,
            openai_compat_providers=[
                {
                    "name": "gateway",
                    "base_url": server.url,
                    "path": "/v1/files",
                    "api_key_env": "GATEWAY_KEY",
                    "purpose": "assistants",
                }
            ],
        )
        async with open_orchestrator(settings) as orchestrator:
            result = await orchestrator.upload(sample, provider="gateway")
            status = {row["name"]: row for row in orchestrator.provider_status()}
    assert result.provider == "gateway"
    assert result.purpose == "assistants"
    assert server.state.files[result.provider_file_id].purpose == "assistants"
    assert status["gateway"]["available"] is True
    assert status["gateway"]["in_order"] is False


async def test_openai_compatible_provider_without_key(
    sample: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gateway whose key variable is unset is unavailable, naming that variable."""
    monkeypatch.delenv("GATEWAY_KEY", raising=False)
    settings = make_settings(
        sample.parent,
        openai_compat_providers=[
            {
                "name": "gateway",
                "base_url": "http://127.0.0.1:9",
                "api_key_env": "GATEWAY_KEY",
            }
        ],
    )
    async with providers_for(settings) as providers:
        reason = providers["gateway"].unavailable_reason
    assert reason is not None
    assert "GATEWAY_KEY" in reason


async def test_every_provider_is_built_from_its_spec(
    sample: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kimi, GLM and a compatible gateway: one provider per spec, fields carried over."""
    monkeypatch.setenv("GATEWAY_KEY", "gw-key-1")
    settings = make_settings(
        sample.parent,
        openai_compat_providers=[
            {
                "name": "gateway",
                "base_url": "http://gw.test",
                "api_key_env": "GATEWAY_KEY",
            }
        ],
    )
    async with providers_for(settings) as providers:
        assert list(providers) == list(settings.providers) == ["kimi", "glm", "gateway"]
        for name, spec in settings.providers.items():
            provider = providers[name]
            assert isinstance(provider, HttpFilesProvider)
            assert provider.url == spec.base_url.rstrip("/") + spec.path
            assert (provider.dialect, provider.key_variable) == (
                spec.dialect,
                spec.key_variable,
            )
            assert (provider.default_purpose, provider.max_bytes) == (
                spec.purpose,
                spec.max_bytes,
            )
            assert provider.unavailable_reason is None


async def test_openai_dialect_insufficient_quota(sample: Path) -> None:
    """OpenAI's ``insufficient_quota`` 429 is permanent, other 429s transient."""
    gateway = {"name": "gateway", "base_url": "", "api_key_env": "GATEWAY_KEY"}
    quota = {"error": {"type": "insufficient_quota", "message": "no credit"}}
    busy = {"error": {"type": "requests", "message": "slow down"}}
    with (
        reply_server([Reply(429, quota), Reply(429, busy)]) as server,
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setenv("GATEWAY_KEY", "gw-key-1")  # read with the settings, at load
        settings = make_settings(
            sample.parent,
            openai_compat_providers=[{**gateway, "base_url": server.url}],
        )
        async with providers_for(settings) as providers:
            with pytest.raises(ProviderRejected):
                await providers["gateway"].upload(sample, filename=sample.name)
            with pytest.raises(ProviderUnavailable):
                await providers["gateway"].upload(sample, filename=sample.name)


def _all_httpx_errors() -> list[type[httpx.HTTPError]]:
    """``httpx.HTTPError`` and every subclass of it, recursively."""
    found: list[type[httpx.HTTPError]] = []
    pending: list[type[httpx.HTTPError]] = [httpx.HTTPError]
    while pending:
        cls = pending.pop()
        if cls not in found:
            found.append(cls)
            pending.extend(cls.__subclasses__())
    return sorted(found, key=lambda cls: cls.__name__)


def _instantiate(cls: type[httpx.HTTPError]) -> httpx.HTTPError:
    """An instance of ``cls`` with a message, and a request or response if it takes one."""
    request = httpx.Request("POST", "http://127.0.0.1/v1/files")
    parameters = inspect.signature(cls).parameters
    if "response" in parameters:
        response = httpx.Response(503, request=request)
        return cls("boom", request=request, response=response)  # type: ignore[call-arg]
    if "request" in parameters:
        return cls("boom", request=request)  # type: ignore[call-arg]
    return cls("boom")


def test_every_httpx_error_is_mapped() -> None:
    """``map_transport_error`` turns every httpx exception class into a ``ProviderError`` kind."""
    classes = _all_httpx_errors()
    names = {cls.__name__ for cls in classes}
    assert {"ReadTimeout", "ConnectError", "RemoteProtocolError", "ProxyError"} <= names
    assert len(classes) >= 20
    kinds = (ProviderTimeout, ProviderUnavailable, ProviderRejected)
    for cls in classes:
        exc = _instantiate(cls)
        error = map_transport_error(exc, "kimi", (KIMI_KEY,))
        assert isinstance(error, kinds), cls
        assert error.provider == "kimi"
        if isinstance(exc, httpx.HTTPStatusError):  # mapped by its status, like a reply
            assert error.status == exc.response.status_code
            continue
        assert error.code == cls.__name__
        assert str(error).startswith("kimi: ")
        if issubclass(cls, httpx.TimeoutException):
            assert type(error) is ProviderTimeout, cls
        elif issubclass(
            cls, httpx.NetworkError | httpx.RemoteProtocolError | httpx.ProxyError
        ):
            assert type(error) is ProviderUnavailable, cls
        else:
            assert type(error) is not ProviderTimeout, cls


@pytest.mark.parametrize(
    "cls",
    [
        pytest.param(httpx.ConnectTimeout, id="connect"),
        pytest.param(httpx.ReadTimeout, id="read"),
        pytest.param(httpx.WriteTimeout, id="write"),
        pytest.param(httpx.PoolTimeout, id="pool"),
    ],
)
def test_timeouts_map_to_provider_timeout(cls: type[httpx.TimeoutException]) -> None:
    """Each httpx timeout is a transient ``ProviderTimeout`` of kind timeout."""
    error = map_transport_error(_instantiate(cls), "glm")
    assert type(error) is ProviderTimeout
    assert error.kind == "timeout"
    assert error.transient


def test_transport_error_messages_are_scrubbed() -> None:
    """A key inside an httpx error message never reaches ours."""
    request = httpx.Request("POST", "http://127.0.0.1/v1/files")
    exc = httpx.ConnectError(
        f"failed with Bearer {GLM_KEY} and {KIMI_KEY}", request=request
    )
    error = map_transport_error(exc, "glm", (GLM_KEY,))
    assert GLM_KEY not in str(error)
    assert KIMI_KEY not in str(error)


ECHOES = [
    Reply(500, {"error": {"type": "server_error", "message": "bad <AUTH>"}}),
    Reply(401, {"error": {"code": "1000", "message": "refused <AUTH>"}}),
    Reply(429, {"error": "rate limited for <AUTH>"}, {"Retry-After": "0"}),
    Reply(400, {"message": "auth header was <AUTH>"}),
    Reply(503, "plain text error with <AUTH>"),
    Reply(200, {"object": "file", "echo": "<AUTH>"}),
    Reply(429, {"error": {"type": "<AUTH>", "message": "echoed in the type"}}),
    Reply(403, {"error": {"code": "<AUTH>", "message": "echoed in the code"}}),
]


@pytest.mark.parametrize(
    ("provider", "key"),
    [
        pytest.param("kimi", KIMI_KEY, id="kimi-sk-key"),
        pytest.param("glm", GLM_KEY, id="glm-plain-key"),
    ],
)
async def test_no_key_in_errors_or_logs(
    sample: Path, caplog: pytest.LogCaptureFixture, provider: str, key: str
) -> None:
    """A server echoing the Authorization header leaks the key into no message or log."""
    with reply_server(ECHOES) as server:
        settings = make_settings(sample.parent, kimi_url=server.url, glm_url=server.url)
        caplog.set_level(logging.DEBUG)
        errors: list[ProviderError] = []
        async with providers_for(settings) as providers:
            for _ in ECHOES:
                with pytest.raises(ProviderError) as caught:
                    await providers[provider].upload(sample, filename=sample.name)
                errors.append(caught.value)
    assert all(a == f"Bearer {key}" for a in server.authorizations)
    assert len(errors) == len(ECHOES)
    for error in errors:
        assert key not in str(error)
        assert key not in repr(error)
        assert all(key not in str(arg) for arg in error.args)
        assert key not in str(error.code)
    assert key not in caplog.text
    for record in caplog.records:
        assert key not in record.getMessage()


async def test_large_file_is_streamed(tmp_path: Path) -> None:
    """A 30 MB upload keeps peak Python memory far below the file size."""
    big = tmp_path / "files" / "big.bin"
    big.parent.mkdir()
    block = bytes(range(256)) * 4096  # 1 MiB
    digest = hashlib.sha256()
    with big.open("wb") as stream:
        for index in range(30):
            chunk = block[index:] + block[:index]
            stream.write(chunk)
            digest.update(chunk)
    warm = write_file(tmp_path / "files" / "warm.txt", b"warm up imports\n")
    with flaky_server("kimi") as server:
        settings = make_settings(big.parent, kimi_url=server.url)
        async with providers_for(settings) as providers:
            await providers["kimi"].upload(warm, filename=warm.name)  # lazy imports
            tracemalloc.start()
            try:
                answer = await providers["kimi"].upload(big, filename=big.name)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
    assert answer.bytes == 30 * 1024 * 1024
    assert server.state.files[answer.file_id].sha256 == digest.hexdigest()
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"

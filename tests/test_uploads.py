"""The upload orchestrator over real sockets: validation, choice, fallback, records, batches."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from upload_helpers import (
    GLM_KEY,
    KIMI_KEY,
    FlakyServer,
    Reply,
    flaky_server,
    make_settings,
    open_orchestrator,
    reply_server,
    write_file,
)

from breaker_service.breaker import BreakerState
from breaker_service.clock import FakeClock
from breaker_service.errors import (
    CircuitOpenError,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    UnknownProviderError,
    UploadRejected,
)
from breaker_service.uploads import BatchItem, sha256_of

# threshold 3 with 3 attempts: one upload to a dead provider opens its breaker
FAST: dict[str, Any] = {
    "retry_max_attempts": 3,
    "circuit_breaker_failure_threshold": 1,  # one failed upload (its 3 attempts)
    "circuit_breaker_timeout": 30.0,
}


pytestmark = pytest.mark.usefixtures("reuse_servers", "clean_environment")


@dataclass
class Pair:
    """Kimi and GLM flaky servers and the directory uploads are allowed from."""

    kimi: FlakyServer
    glm: FlakyServer
    allowed: Path

    @property
    def requests(self) -> int:
        """Upload requests both servers received."""
        return self.kimi.requests + self.glm.requests


@contextlib.contextmanager
def pair(
    tmp_path: Path,
    *,
    kimi_script: list[str | None] | None = None,
    kimi_down: bool = False,
    retry_after: float = 1.0,
) -> Iterator[Pair]:
    """A Kimi and a GLM flaky server, healthy unless told otherwise."""
    allowed = tmp_path / "allowed"
    allowed.mkdir(exist_ok=True)
    with (
        flaky_server(
            "kimi", script=kimi_script or [], down=kimi_down, retry_after=retry_after
        ) as kimi,
        flaky_server("glm") as glm,
    ):
        yield Pair(kimi, glm, allowed)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Pair]:
    """Healthy Kimi and GLM servers."""
    with pair(tmp_path) as both:
        yield both


# -- path validation -------------------------------------------------------------------


def _traversal(allowed: Path) -> str:
    write_file(allowed.parent / "outside.txt")
    return f"{allowed}/../outside.txt"


def _deep_traversal(allowed: Path) -> str:
    (allowed / "sub").mkdir()
    return f"{allowed}/sub/../../../../../../etc/passwd"


def _symlink_escape(allowed: Path) -> str:
    target = write_file(allowed.parent / "secret.txt")
    (allowed / "link.txt").symlink_to(target)
    return str(allowed / "link.txt")


def _symlinked_dir_escape(allowed: Path) -> str:
    write_file(allowed.parent / "elsewhere" / "data.txt")
    (allowed / "dir-link").symlink_to(allowed.parent / "elsewhere")
    return str(allowed / "dir-link" / "data.txt")


def _sibling_prefix(allowed: Path) -> str:
    # "/x/allowed-evil" starts with "/x/allowed" as a string, not as a path
    return str(write_file(allowed.parent / f"{allowed.name}-evil" / "f.txt"))


def _symlink_loop(allowed: Path) -> str:
    (allowed / "a").symlink_to(allowed / "b")
    (allowed / "b").symlink_to(allowed / "a")
    return str(allowed / "a")


def _directory(allowed: Path) -> str:
    (allowed / "subdir").mkdir()
    return str(allowed / "subdir")


def _allowed_itself(allowed: Path) -> str:
    return str(allowed)


def _device(_allowed: Path) -> str:
    return "/dev/null"  # /dev is an allowed dir in this case


def _fifo(allowed: Path) -> str:
    os.mkfifo(allowed / "pipe")
    return str(allowed / "pipe")


def _missing(allowed: Path) -> str:
    return str(allowed / "nope.txt")


def _dangling_symlink(allowed: Path) -> str:
    (allowed / "dangling").symlink_to(allowed / "gone.txt")
    return str(allowed / "dangling")


def _empty(allowed: Path) -> str:
    return str(write_file(allowed / "empty.txt", b""))


def _oversized(allowed: Path) -> str:
    return str(write_file(allowed / "big.txt", b"x" * 101))


def _nul_byte(allowed: Path) -> str:
    write_file(allowed / "a.txt")
    return f"{allowed}/a.txt\x00.pdf"


@pytest.mark.parametrize(
    ("make_path", "reason"),
    [
        pytest.param(_traversal, "outside_allowed_dirs", id="dotdot-traversal"),
        pytest.param(_deep_traversal, "outside_allowed_dirs", id="deep-traversal"),
        pytest.param(_symlink_escape, "outside_allowed_dirs", id="symlink-escape"),
        pytest.param(
            _symlinked_dir_escape, "outside_allowed_dirs", id="symlinked-dir-escape"
        ),
        pytest.param(_sibling_prefix, "outside_allowed_dirs", id="sibling-prefix"),
        pytest.param(_symlink_loop, "invalid_path", id="symlink-loop"),
        pytest.param(_directory, "not_a_file", id="directory"),
        pytest.param(_allowed_itself, "not_a_file", id="the-allowed-dir"),
        pytest.param(_device, "not_a_file", id="device-dev-null"),
        pytest.param(_fifo, "not_a_file", id="fifo"),
        pytest.param(_missing, "not_found", id="missing"),
        pytest.param(_dangling_symlink, "not_found", id="dangling-symlink"),
        pytest.param(_empty, "empty", id="empty"),
        pytest.param(_oversized, "too_large", id="over-provider-max-bytes"),
        pytest.param(_nul_byte, "invalid_path", id="nul-byte"),
    ],
)
async def test_invalid_paths_are_rejected_before_any_request(
    servers: Pair, make_path: Callable[[Path], str], reason: str
) -> None:
    """Each bad path is ``UploadRejected`` with its reason, and no provider is called."""
    path = make_path(servers.allowed)
    settings = make_settings(
        f"{servers.allowed},/dev",
        kimi_url=servers.kimi.url,
        glm_url=servers.glm.url,
        kimi_max_bytes=100,
        glm_max_bytes=100,
    )
    async with open_orchestrator(settings) as orchestrator:
        for provider in (None, "kimi", "glm"):
            with pytest.raises(UploadRejected) as caught:
                await orchestrator.upload(path, provider=provider)
            assert caught.value.reason == reason, caught.value
            assert "\x00" not in caught.value.path
    assert servers.requests == 0


async def test_unreadable_file_is_rejected(servers: Pair) -> None:
    """A file we may not read is ``UploadRejected`` (unreadable) before any request."""
    path = write_file(servers.allowed / "locked.txt")
    path.chmod(0)
    if os.access(path, os.R_OK):
        pytest.skip(
            "running as root: os.access reports a mode-000 file as readable, "
            "so the unreadable case cannot be produced here"
        )
    settings = make_settings(
        servers.allowed, kimi_url=servers.kimi.url, glm_url=servers.glm.url
    )
    async with open_orchestrator(settings) as orchestrator:
        with pytest.raises(UploadRejected) as caught:
            await orchestrator.upload(path)
    assert caught.value.reason == "unreadable"
    assert servers.requests == 0


@pytest.mark.parametrize(
    "relative",
    [
        pytest.param(False, id="absolute"),
        pytest.param(True, id="relative-to-cwd"),
    ],
)
async def test_symlink_inside_allowed_dir_is_fine(
    servers: Pair, monkeypatch: pytest.MonkeyPatch, relative: bool
) -> None:
    """A symlink pointing inside the allowed dir is uploaded as its target."""
    target = write_file(servers.allowed / "docs" / "real.txt", b"inside\n")
    (servers.allowed / "alias.txt").symlink_to(target)
    settings = make_settings(
        servers.allowed, kimi_url=servers.kimi.url, glm_url=servers.glm.url
    )
    path = servers.allowed / "alias.txt"
    if relative:
        monkeypatch.chdir(servers.allowed / "docs")
        path = Path("..") / "alias.txt"
    async with open_orchestrator(settings) as orchestrator:
        result = await orchestrator.upload(path)
    assert result.filename == "real.txt"
    assert result.bytes == len(b"inside\n")
    assert result.sha256 == sha256_of(target)
    assert servers.kimi.uploaded == 1


async def test_size_limit_per_provider_skips_to_a_larger_one(
    servers: Pair,
) -> None:
    """A file over Kimi's limit goes to GLM; asked of Kimi alone it is refused."""
    path = write_file(servers.allowed / "mid.txt", b"y" * 50)
    settings = make_settings(
        servers.allowed,
        kimi_url=servers.kimi.url,
        glm_url=servers.glm.url,
        kimi_max_bytes=10,
        glm_max_bytes=100,
    )
    async with open_orchestrator(settings) as orchestrator:
        result = await orchestrator.upload(path)
        with pytest.raises(UploadRejected) as caught:
            await orchestrator.upload(path, provider="kimi", force=True)
    assert result.provider == "glm"
    assert caught.value.reason == "too_large"
    assert (servers.kimi.requests, servers.glm.requests) == (0, 1)


# -- provider choice ----------------------------------------------------------------


@pytest.mark.parametrize(
    "provider",
    [
        pytest.param("kimi", id="kimi"),
        pytest.param("glm", id="glm"),
        pytest.param("GLM", id="case-insensitive"),
    ],
)
async def test_explicit_provider(servers: Pair, provider: str) -> None:
    """A named provider is the only one used."""
    path = write_file(servers.allowed / "a.txt")
    settings = make_settings(
        servers.allowed, kimi_url=servers.kimi.url, glm_url=servers.glm.url
    )
    async with open_orchestrator(settings) as orchestrator:
        result = await orchestrator.upload(path, provider=provider)
    name = provider.lower()
    assert result.provider == name
    assert result.providers_tried == (name,)
    assert not result.fallback
    assert result.attempts == 1
    assert servers.kimi.uploaded == (name == "kimi")
    assert servers.glm.uploaded == (name == "glm")


async def test_default_order_uses_the_first_provider(servers: Pair) -> None:
    """Without a name the configured order decides (``kimi,glm``, then ``glm,kimi``)."""
    path = write_file(servers.allowed / "a.txt")
    settings = make_settings(
        servers.allowed, kimi_url=servers.kimi.url, glm_url=servers.glm.url
    )
    async with open_orchestrator(settings) as orchestrator:
        first = await orchestrator.upload(path)
    reordered = make_settings(
        servers.allowed,
        kimi_url=servers.kimi.url,
        glm_url=servers.glm.url,
        upload_provider_order="glm,kimi",
    )
    async with open_orchestrator(reordered) as orchestrator:
        second = await orchestrator.upload(path)
    assert (first.provider, second.provider) == ("kimi", "glm")


async def test_unknown_provider(servers: Pair) -> None:
    """An unknown provider name is ``UnknownProviderError`` listing the known ones."""
    path = write_file(servers.allowed / "a.txt")
    settings = make_settings(
        servers.allowed, kimi_url=servers.kimi.url, glm_url=servers.glm.url
    )
    async with open_orchestrator(settings) as orchestrator:
        with pytest.raises(UnknownProviderError) as caught:
            await orchestrator.upload(path, provider="openai")
    assert caught.value.name == "openai"
    assert caught.value.known == ["glm", "kimi"]
    assert servers.requests == 0


async def test_explicit_provider_with_open_breaker_fails_at_once(
    tmp_path: Path,
) -> None:
    """A named provider whose breaker is open fails with ``CircuitOpenError`` and no request."""
    clock = FakeClock()
    with pair(tmp_path, kimi_down=True) as both:
        path = write_file(both.allowed / "a.txt")
        settings = make_settings(
            both.allowed, kimi_url=both.kimi.url, glm_url=both.glm.url, **FAST
        )
        async with open_orchestrator(settings, clock=clock) as orchestrator:
            with pytest.raises(ProviderUnavailable):
                await orchestrator.upload(path, provider="kimi")
            assert orchestrator.registry.get("kimi").state is BreakerState.OPEN
            requests, sleeps = both.kimi.requests, list(clock.sleeps)
            with pytest.raises(CircuitOpenError) as caught:
                await orchestrator.upload(path, provider="kimi")
    assert requests == 3
    assert both.kimi.requests == requests
    assert clock.sleeps == sleeps
    assert caught.value.breaker == "kimi"
    assert 0 < caught.value.retry_after < 30.0 + 1e-6  # the cooldown, float-rounded
    assert both.glm.requests == 0


async def test_explicit_provider_forced_open(servers: Pair) -> None:
    """An operator's ``force_open`` refuses named uploads too, with a ``retry_after``."""
    path = write_file(servers.allowed / "a.txt")
    settings = make_settings(
        servers.allowed,
        kimi_url=servers.kimi.url,
        glm_url=servers.glm.url,
        upload_provider_order="glm,kimi",
        **FAST,
    )
    async with open_orchestrator(settings) as orchestrator:
        await orchestrator.registry.get("glm").force_open("maintenance", "test")
        with pytest.raises(CircuitOpenError) as caught:
            await orchestrator.upload(path, provider="glm")
        fallback = await orchestrator.upload(path)
    assert caught.value.state == "forced_open"
    assert caught.value.retry_after > 0
    assert (fallback.provider, fallback.providers_tried) == ("kimi", ("glm", "kimi"))
    assert fallback.fallback
    assert servers.glm.requests == 0


# -- fallback, retries and Retry-After -----------------------------------------------


async def test_fallback_when_kimi_is_down(tmp_path: Path) -> None:
    """Kimi down: its breaker opens, later uploads skip it without a call and go to GLM."""
    clock = FakeClock()
    with pair(tmp_path, kimi_down=True) as both:
        files = [write_file(both.allowed / f"f{i}.txt") for i in range(5)]
        settings = make_settings(
            both.allowed, kimi_url=both.kimi.url, glm_url=both.glm.url, **FAST
        )
        async with open_orchestrator(settings, clock=clock) as orchestrator:
            first = await orchestrator.upload(files[0])
            after_first = both.kimi.requests
            state = orchestrator.registry.get("kimi").state
            later = [await orchestrator.upload(f) for f in files[1:]]
            status = {row["name"]: row for row in orchestrator.provider_status()}
            # the provider recovers and the cooldown passes: Kimi is used again
            both.kimi.state.reconfigure({"down": False})
            clock.advance(31.0)
            recovered = await orchestrator.upload(write_file(both.allowed / "g.txt"))
    assert after_first == 3
    assert state is BreakerState.OPEN
    assert (first.provider, first.providers_tried, first.fallback) == (
        "glm",
        ("kimi", "glm"),
        True,
    )
    assert first.attempts == 4
    for result in later:
        assert result.provider == "glm"
        assert result.providers_tried == ("kimi", "glm")
        assert result.fallback
        assert result.attempts == 1
    assert status["kimi"]["breaker"] == "open"
    assert status["kimi"]["retry_after"] > 0
    assert both.kimi.requests == after_first + 1  # only the half-open probe
    assert both.glm.uploaded == 5
    assert (recovered.provider, recovered.fallback) == ("kimi", False)


async def test_every_provider_failing_raises_the_last_error(tmp_path: Path) -> None:
    """When every provider fails, the last provider's error is raised and nothing recorded."""
    with (
        flaky_server("kimi", down=True) as kimi,
        flaky_server("glm", down=True, down_status=502) as glm,
    ):
        allowed = tmp_path / "allowed"
        path = write_file(allowed / "a.txt")
        settings = make_settings(allowed, kimi_url=kimi.url, glm_url=glm.url, **FAST)
        async with open_orchestrator(settings) as orchestrator:
            with pytest.raises(ProviderUnavailable) as caught:
                await orchestrator.upload(path)
            recorded = await orchestrator.store.recent()
    assert caught.value.provider == "glm"
    assert caught.value.status == 502
    assert (kimi.requests, glm.requests) == (3, 3)
    assert recorded == []


@pytest.mark.parametrize(
    ("retry_after", "max_delay"),
    [
        pytest.param(2.0, 5.0, id="2s"),
        pytest.param(0.5, 5.0, id="half-second"),
        pytest.param(4.0, 5.0, id="4s-under-cap"),
    ],
)
async def test_retry_after_is_honoured(
    tmp_path: Path, retry_after: float, max_delay: float
) -> None:
    """A 429 with ``Retry-After`` waits at least that long (on the fake clock), then succeeds."""
    clock = FakeClock()
    with pair(
        tmp_path, kimi_script=["429_retry_after"], retry_after=retry_after
    ) as both:
        path = write_file(both.allowed / "a.txt")
        settings = make_settings(
            both.allowed,
            kimi_url=both.kimi.url,
            glm_url=both.glm.url,
            retry_max_delay=max_delay,
        )
        async with open_orchestrator(settings, clock=clock) as orchestrator:
            result = await orchestrator.upload(path, provider="kimi")
    assert result.attempts == 2
    assert both.kimi.requests == 2
    assert len(clock.sleeps) == 1
    assert clock.sleeps[0] >= retry_after
    assert result.elapsed >= retry_after


async def test_retry_after_beyond_the_cap_falls_back(tmp_path: Path) -> None:
    """A ``Retry-After`` longer than ``RETRY_MAX_DELAY`` is not waited for: fall back."""
    clock = FakeClock()
    with pair(tmp_path, kimi_script=["429_retry_after"], retry_after=120) as both:
        path = write_file(both.allowed / "a.txt")
        settings = make_settings(
            both.allowed, kimi_url=both.kimi.url, glm_url=both.glm.url
        )
        async with open_orchestrator(settings, clock=clock) as orchestrator:
            result = await orchestrator.upload(path)
    assert clock.sleeps == []
    assert both.kimi.requests == 1
    assert (result.provider, result.providers_tried) == ("glm", ("kimi", "glm"))
    assert result.attempts == 2


async def test_timeouts_are_retried(tmp_path: Path) -> None:
    """A hung request times out and the retry succeeds."""
    clock = FakeClock()
    with pair(tmp_path, kimi_script=["hang", "hang"]) as both:
        path = write_file(both.allowed / "a.txt")
        settings = make_settings(
            both.allowed,
            kimi_url=both.kimi.url,
            glm_url=both.glm.url,
            http_read_timeout=0.3,
        )
        async with open_orchestrator(settings, clock=clock) as orchestrator:
            result = await orchestrator.upload(path, provider="kimi")
            breaker = orchestrator.registry.get("kimi")
    assert result.attempts == 3
    assert both.kimi.requests == 3
    assert both.kimi.state.stats["fault_hang"] == 2
    assert len(clock.sleeps) == 2
    assert breaker.timeouts == 1  # a call's first timeout counts; its retries do not


async def test_timeouts_exhausting_retries_raise_provider_timeout(
    tmp_path: Path,
) -> None:
    """Hanging on every attempt of a named provider ends in ``ProviderTimeout``."""
    with pair(tmp_path, kimi_script=["hang", "hang"]) as both:
        path = write_file(both.allowed / "a.txt")
        settings = make_settings(
            both.allowed,
            kimi_url=both.kimi.url,
            glm_url=both.glm.url,
            http_read_timeout=0.2,
            retry_max_attempts=2,
        )
        async with open_orchestrator(settings) as orchestrator:
            with pytest.raises(ProviderTimeout):
                await orchestrator.upload(path, provider="kimi")
    assert both.kimi.requests == 2
    assert both.kimi.uploaded == 0


# -- records and dedup ----------------------------------------------------------------


def _uploads_rows(database: Path) -> list[tuple[str, str, str]]:
    with contextlib.closing(sqlite3.connect(database)) as conn:
        rows = conn.execute(
            "SELECT id, provider, sha256 FROM uploads ORDER BY id"
        ).fetchall()
    return [(str(a), str(b), str(c)) for a, b, c in rows]


async def test_only_successful_uploads_are_recorded(tmp_path: Path) -> None:
    """The SQL ``uploads`` table gets one row per success and none for failures."""
    database = tmp_path / "uploads.db"
    with pair(tmp_path, kimi_script=["quota", None, "quota", None]) as both:
        files = [write_file(both.allowed / f"f{i}.txt") for i in range(4)]
        settings = make_settings(
            both.allowed,
            kimi_url=both.kimi.url,
            glm_url=both.glm.url,
            database_url=f"sqlite+aiosqlite:///{database}",
        )
        results = []
        failures = 0
        async with open_orchestrator(settings, sql=True) as orchestrator:
            for path in files:
                try:
                    results.append(await orchestrator.upload(path, provider="kimi"))
                except ProviderRejected:
                    failures += 1
            with pytest.raises(UploadRejected):
                await orchestrator.upload(both.allowed / "missing.txt")
            recent = await orchestrator.store.recent()
    rows = _uploads_rows(database)
    assert (len(results), failures) == (2, 2)
    assert sorted(rows) == sorted((r.upload_id, "kimi", r.sha256) for r in results)
    assert {r.upload_id for r in recent} == {r.upload_id for r in results}
    assert both.kimi.uploaded == 2


async def test_records_survive_a_restart_for_dedup(tmp_path: Path) -> None:
    """A second orchestrator on the same database deduplicates against the first's records."""
    database = tmp_path / "uploads.db"
    with pair(tmp_path) as both:
        path = write_file(both.allowed / "a.txt")
        settings = make_settings(
            both.allowed,
            kimi_url=both.kimi.url,
            glm_url=both.glm.url,
            database_url=f"sqlite+aiosqlite:///{database}",
        )
        async with open_orchestrator(settings, sql=True) as orchestrator:
            first = await orchestrator.upload(path)
        async with open_orchestrator(settings, sql=True) as orchestrator:
            again = await orchestrator.upload(path)
    assert again.deduplicated
    assert again.provider_file_id == first.provider_file_id
    assert both.kimi.uploaded == 1
    assert len(_uploads_rows(database)) == 1


async def test_dedup_and_force(servers: Pair) -> None:
    """The same content twice is uploaded once (even under another name); ``force`` re-uploads."""
    content = b"same bytes\n"
    first_path = write_file(servers.allowed / "one.txt", content)
    copy_path = write_file(servers.allowed / "copy-of-one.txt", content)
    settings = make_settings(
        servers.allowed, kimi_url=servers.kimi.url, glm_url=servers.glm.url
    )
    async with open_orchestrator(settings) as orchestrator:
        first = await orchestrator.upload(first_path)
        again = await orchestrator.upload(first_path)
        copy = await orchestrator.upload(copy_path)
        uploaded_before_force = servers.kimi.uploaded
        forced = await orchestrator.upload(first_path, force=True)
        other_provider = await orchestrator.upload(first_path, provider="glm")
    assert not first.deduplicated
    assert again.deduplicated
    assert copy.deduplicated
    assert again.provider_file_id == copy.provider_file_id == first.provider_file_id
    assert uploaded_before_force == 1
    assert not forced.deduplicated
    assert forced.provider_file_id != first.provider_file_id
    assert servers.kimi.uploaded == 2
    assert not other_provider.deduplicated  # dedup is per provider
    assert servers.glm.uploaded == 1


# -- batches ------------------------------------------------------------------------


async def test_upload_many_with_mixed_results(tmp_path: Path) -> None:
    """Invalid files and provider failures are reported per file; the batch never raises."""
    with pair(tmp_path, kimi_script=["quota", "quota"]) as both:
        good = [write_file(both.allowed / f"good{i}.txt") for i in range(6)]
        invalid: list[str | os.PathLike[str]] = [
            both.allowed / "missing.txt",
            write_file(both.allowed / "empty.txt", b""),
            _traversal(both.allowed),
        ]
        paths: list[str | os.PathLike[str]] = [*good[:3], *invalid, *good[3:]]
        settings = make_settings(
            both.allowed, kimi_url=both.kimi.url, glm_url=both.glm.url
        )
        seen: list[tuple[int, int, BatchItem]] = []
        async with open_orchestrator(settings) as orchestrator:
            items = await orchestrator.upload_many(
                paths,
                concurrency=3,
                provider="kimi",
                progress=lambda done, total, item: seen.append((done, total, item)),
            )
    assert [item.path for item in items] == [os.fspath(p) for p in paths]
    ok = [item for item in items if item.ok]
    rejected = [i for i in items if isinstance(i.error, UploadRejected)]
    refused = [i for i in items if isinstance(i.error, ProviderRejected)]
    assert (len(ok), len(rejected), len(refused)) == (4, 3, 2)
    assert {i.path for i in rejected} == {os.fspath(p) for p in invalid}
    for item in items:
        assert (item.result is None) != (item.error is None)
    assert sorted(done for done, _, _ in seen) == list(range(1, len(paths) + 1))
    assert {total for _, total, _ in seen} == {len(paths)}
    assert sorted(id(item) for _, _, item in seen) == sorted(id(i) for i in items)
    assert both.kimi.requests == 6
    assert both.kimi.uploaded == 4


async def test_upload_many_never_raises(servers: Pair) -> None:
    """Even an unknown provider fails each file, not the batch."""
    paths = [write_file(servers.allowed / f"{i}.txt") for i in range(3)]
    settings = make_settings(
        servers.allowed, kimi_url=servers.kimi.url, glm_url=servers.glm.url
    )
    calls: list[int] = []
    async with open_orchestrator(settings) as orchestrator:
        items = await orchestrator.upload_many(
            paths, provider="nope", progress=lambda done, _t, _i: calls.append(done)
        )
        empty = await orchestrator.upload_many([])
    assert all(isinstance(item.error, UnknownProviderError) for item in items)
    assert sorted(calls) == [1, 2, 3]
    assert empty == []
    assert servers.requests == 0


# -- keys and secrets -----------------------------------------------------------------


async def test_kimi_without_key_is_unavailable_and_glm_is_used(
    servers: Pair,
) -> None:
    """No Kimi key: listed unavailable with a reason; uploads go to GLM; naming it fails."""
    path = write_file(servers.allowed / "a.txt")
    settings = make_settings(
        servers.allowed,
        kimi_url=servers.kimi.url,
        glm_url=servers.glm.url,
        kimi_key=None,
    )
    async with open_orchestrator(settings) as orchestrator:
        status = {row["name"]: row for row in orchestrator.provider_status()}
        result = await orchestrator.upload(path)
        with pytest.raises(UploadRejected) as caught:
            await orchestrator.upload(path, provider="kimi", force=True)
    assert status["kimi"]["available"] is False
    assert "KIMI_API_KEY" in str(status["kimi"]["reason"])
    assert status["glm"]["available"] is True
    assert status["glm"]["reason"] is None
    assert result.provider == "glm"
    assert caught.value.reason == "provider_unavailable"
    assert "KIMI_API_KEY" in str(caught.value)
    assert servers.kimi.requests == 0


async def test_no_provider_with_a_key(servers: Pair) -> None:
    """With no key at all, an upload fails with a reason naming the variables."""
    path = write_file(servers.allowed / "a.txt")
    settings = make_settings(
        servers.allowed,
        kimi_url=servers.kimi.url,
        glm_url=servers.glm.url,
        kimi_key=None,
        glm_key=None,
    )
    async with open_orchestrator(settings) as orchestrator:
        with pytest.raises(UploadRejected) as caught:
            await orchestrator.upload(path)
    assert caught.value.reason == "no_provider"
    assert "KIMI_API_KEY" in str(caught.value)
    assert "GLM_API_KEY" in str(caught.value)
    assert servers.requests == 0


async def test_secrets_never_in_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Across retries, fallback and a batch, neither key appears in any log record."""
    echo = {"error": {"type": "server_error", "message": "denied <AUTH>"}}
    allowed = tmp_path / "allowed"
    files = [write_file(allowed / f"f{i}.txt") for i in range(4)]
    with (
        reply_server([Reply(503, echo)] * 6) as kimi,
        flaky_server("glm", script=["503", "quota"]) as glm,
    ):
        settings = make_settings(allowed, kimi_url=kimi.url, glm_url=glm.url, **FAST)
        caplog.set_level(logging.DEBUG)
        async with open_orchestrator(settings) as orchestrator:
            items = await orchestrator.upload_many(files, concurrency=1)
            status = orchestrator.provider_status()
    assert f"Bearer {KIMI_KEY}" in kimi.authorizations
    assert any(item.ok for item in items)
    assert any(not item.ok for item in items)
    texts = [caplog.text, repr(status)]
    texts += [str(item.error) for item in items if item.error is not None]
    for record in caplog.records:
        texts.append(record.getMessage())
        if record.exc_info and record.exc_info[1] is not None:
            texts.append(str(record.exc_info[1]))
    for key in (KIMI_KEY, GLM_KEY):
        assert all(key not in text for text in texts)
    assert any("[RETRY]" in record.getMessage() for record in caplog.records)

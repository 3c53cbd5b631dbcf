"""Shared fixtures: a clean environment, a fake clock, testing mode off; PostgreSQL.

Fixtures that several test modules need are defined here once. Those a module wants
for every test (``clean_environment``, ``testing_mode_off``, ``reuse_servers``) are
not autouse here: the module says ``pytestmark = pytest.mark.usefixtures(...)``.

PostgreSQL for the ``postgres`` tests: ``postgres_url`` is
``BREAKER_TEST_POSTGRES_URL`` when set, else a throwaway cluster started from the
server binaries (``tests/pg.py``) once per session.
``fresh_postgres_url`` gives each test its own empty database on that server.
``postgres_cluster`` is always a throwaway cluster the tests control (stop/start for
outage tests), started separately when the URL points at an external server.

Without PostgreSQL these tests are skipped with a loud reason; with
``BREAKER_TEST_REQUIRE_POSTGRES=1`` (CI) they fail instead. Tests that use these
fixtures get the ``postgres`` marker automatically, so ``-m "not postgres"`` works.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from breaker_helpers import Provider
from pg import PostgresCluster, PostgresUnavailable, fresh_database
from pydantic import AliasChoices
from upload_helpers import reusing_servers

from breaker_service import testing
from breaker_service.clock import FakeClock
from breaker_service.config import Settings, normalize_database_url


def _settings_variables() -> frozenset[str]:
    """Every variable that sets a field of ``Settings``: its name and its aliases."""
    names = set()
    for name, field in Settings.model_fields.items():
        names.add(name.upper())
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(choice).upper() for choice in alias.choices)
        elif isinstance(alias, str):
            names.add(alias.upper())
    return frozenset(names)


HIDDEN_VARIABLES = _settings_variables() | {"GATEWAY_KEY"}
"""What ``clean_environment`` hides: the settings' variables (and ``X__Y`` nested
under them), and the key variable the config tests' compatible provider names."""


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No setting of the developer's environment or ``./.env`` leaks in (nor into
    child processes): our variables are removed and the test runs in ``tmp_path``."""
    for key in list(os.environ):
        if key.upper().split("__", 1)[0] in HIDDEN_VARIABLES:
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def clock() -> FakeClock:
    """A fresh fake clock."""
    return FakeClock()


@pytest.fixture
def kimi(clock: FakeClock) -> Provider:
    """The scripted "kimi" provider on the test's clock."""
    return Provider("kimi", clock)


@pytest.fixture
def testing_mode_off() -> Iterator[None]:
    """Real backoff values (through the fake clock), whatever the suite set before;
    the mode is left as it was found."""
    previous = (testing.STATE.enabled, testing.STATE.attempts)
    testing.set_testing(False)
    yield
    testing.STATE.enabled, testing.STATE.attempts = previous


@pytest.fixture(scope="module")
def reuse_servers() -> Iterator[None]:
    """Flaky servers run for the whole module and are reset for each test."""
    with reusing_servers():
        yield


@pytest.fixture
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite gives up on a lock after 0.3 s instead of 5 s (the test stays quick)."""
    monkeypatch.setattr("breaker_service.events.sql_engine.SQLITE_BUSY_TIMEOUT_MS", 300)


POSTGRES_FIXTURES = frozenset(
    {"postgres_url", "postgres_cluster", "fresh_postgres_url"}
)
_SKIP_REASONS: list[str] = []


def _postgres_required() -> bool:
    return os.environ.get("BREAKER_TEST_REQUIRE_POSTGRES", "").strip() == "1"


def _postgres_unavailable(reason: str) -> NoReturn:
    """Fail when PostgreSQL is required (CI), else skip, loudly, with the reason."""
    if _postgres_required():
        pytest.fail(
            "PostgreSQL is required (BREAKER_TEST_REQUIRE_POSTGRES=1) but could not "
            f"be started: {reason}",
            pytrace=False,
        )
    _SKIP_REASONS.append(reason)
    pytest.skip(
        "POSTGRESQL TESTS SKIPPED: no server could be started "
        f"({reason.splitlines()[0]}). Install the PostgreSQL server binaries or set "
        "BREAKER_TEST_POSTGRES_URL; BREAKER_TEST_REQUIRE_POSTGRES=1 makes this a failure."
    )


class _ThrowawayPostgres:
    """Starts one throwaway cluster on first use; remembers a failure to start."""

    def __init__(self) -> None:
        self.cluster: PostgresCluster | None = None
        self.error: str | None = None

    def get(self) -> PostgresCluster:
        if self.cluster is None and self.error is None:
            try:
                self.cluster = PostgresCluster.create()
            except PostgresUnavailable as exc:
                self.error = str(exc)
        if self.cluster is None:
            assert self.error is not None
            _postgres_unavailable(self.error)
        return self.cluster

    def cleanup(self) -> None:
        if self.cluster is not None:
            self.cluster.cleanup()


@pytest.fixture(scope="session")
def throwaway_postgres() -> Iterator[_ThrowawayPostgres]:
    """The session's throwaway cluster, started lazily and removed at the end."""
    holder = _ThrowawayPostgres()
    yield holder
    holder.cleanup()


@pytest.fixture(scope="session")
def postgres_cluster(throwaway_postgres: _ThrowawayPostgres) -> PostgresCluster:
    """A throwaway cluster the tests may stop and start (restart it before returning)."""
    return throwaway_postgres.get()


@pytest.fixture(scope="session")
def postgres_url(throwaway_postgres: _ThrowawayPostgres) -> str:
    """``BREAKER_TEST_POSTGRES_URL`` if set, else the throwaway cluster's database."""
    external = os.environ.get("BREAKER_TEST_POSTGRES_URL", "").strip()
    if external:
        return normalize_database_url(external)
    return throwaway_postgres.get().url


@pytest.fixture
async def fresh_postgres_url(postgres_url: str) -> AsyncIterator[str]:
    """A new, empty database for one test, dropped after it."""
    async with fresh_database(postgres_url) as url:
        yield url


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a PostgreSQL fixture ``postgres``."""
    for item in items:
        if POSTGRES_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say at the end, not only per test, that the PostgreSQL tests did not run."""
    if _SKIP_REASONS:
        terminalreporter.section("PostgreSQL", sep="!", red=True, bold=True)
        terminalreporter.line(
            "PostgreSQL tests were SKIPPED (set BREAKER_TEST_REQUIRE_POSTGRES=1 to fail "
            f"instead): {_SKIP_REASONS[0]}",
            red=True,
        )

"""Configuration: defaults, environment and ``.env``, validation, per-provider overrides."""

from __future__ import annotations

import re
import traceback
from pathlib import Path

import pytest
from pydantic import AliasChoices, BaseModel, SecretStr, ValidationError

from breaker_service.config import (
    AuthSettings,
    DatabaseSettings,
    EventLogSettings,
    FleetSettings,
    HttpSettings,
    ProviderSettings,
    ProviderSpec,
    ResilienceSettings,
    ServiceSettings,
    Settings,
    SupabaseSettings,
    UploadSettings,
    load_settings,
    normalize_database_url,
)
from breaker_service.errors import BreakerServiceError, ConfigError


def _variables_of(model: type[BaseModel]) -> frozenset[str]:
    """Every variable that sets a field of ``model``: its name and its aliases."""
    names = set()
    for name, field in model.model_fields.items():
        names.add(name.upper())
        if isinstance(field.validation_alias, AliasChoices):
            names.update(str(a).upper() for a in field.validation_alias.choices)
    return frozenset(names)


pytestmark = pytest.mark.usefixtures("clean_environment")


def _config_error(**env: str) -> ConfigError:
    """Load settings with ``env`` set and return the ConfigError it must raise."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        with pytest.raises(ConfigError) as caught:
            load_settings(env_file=None)
    return caught.value


# -- defaults --------------------------------------------------------------------

SEED_DEFAULTS = [
    pytest.param("resilience_enabled", True, id="RESILIENCE_ENABLED"),
    pytest.param("resilience_retry_enabled", True, id="RESILIENCE_RETRY_ENABLED"),
    pytest.param("retry_max_attempts", 3, id="RETRY_MAX_ATTEMPTS"),
    pytest.param("retry_base_delay", 1.0, id="RETRY_BASE_DELAY"),
    pytest.param("retry_max_delay", 60.0, id="RETRY_MAX_DELAY"),
    pytest.param("retry_exponential_base", 2.0, id="RETRY_EXPONENTIAL_BASE"),
    pytest.param("retry_jitter", True, id="RETRY_JITTER"),
    pytest.param(
        "resilience_circuit_breaker_enabled",
        True,
        id="RESILIENCE_CIRCUIT_BREAKER_ENABLED",
    ),
    pytest.param(
        "circuit_breaker_failure_threshold", 5, id="CIRCUIT_BREAKER_FAILURE_THRESHOLD"
    ),
    pytest.param(
        "circuit_breaker_success_threshold", 2, id="CIRCUIT_BREAKER_SUCCESS_THRESHOLD"
    ),
    pytest.param("circuit_breaker_timeout", 60.0, id="CIRCUIT_BREAKER_TIMEOUT"),
    pytest.param(
        "circuit_breaker_half_open_max_calls",
        1,
        id="CIRCUIT_BREAKER_HALF_OPEN_MAX_CALLS",
    ),
    pytest.param(
        "database_url", "sqlite+aiosqlite:///./breaker_service.db", id="DATABASE_URL"
    ),
]


@pytest.mark.parametrize(("field", "default"), SEED_DEFAULTS)
def test_seed_default(field: str, default: object) -> None:
    """Every variable of the seed report keeps its default when unset."""
    settings = load_settings(env_file=None)
    value = getattr(settings, field)
    assert value == default
    assert type(value) is type(default)


def test_defaults_need_no_dotenv_file() -> None:
    """The default ``.env`` path may be missing: defaults apply."""
    settings = load_settings()
    assert settings.retry_max_attempts == 3
    assert settings.provider_overrides == {}


def test_defaults_turn_everything_on() -> None:
    """By default both halves of the resilience layer are active."""
    settings = load_settings(env_file=None)
    assert settings.retry_active
    assert settings.breaker_active


def test_settings_are_frozen() -> None:
    """Settings cannot be changed after start-up."""
    settings = load_settings(env_file=None)
    with pytest.raises(ValidationError):
        settings.retry_max_attempts = 5  # type: ignore[misc]


# -- reading the environment and .env -----------------------------------------------

FROM_ENVIRONMENT = [
    pytest.param("RESILIENCE_ENABLED", "false", "resilience_enabled", False, id="off"),
    pytest.param("RETRY_MAX_ATTEMPTS", "7", "retry_max_attempts", 7, id="attempts"),
    pytest.param("RETRY_BASE_DELAY", "0.25", "retry_base_delay", 0.25, id="base"),
    pytest.param("RETRY_MAX_DELAY", "5", "retry_max_delay", 5.0, id="max-delay"),
    pytest.param(
        "RETRY_EXPONENTIAL_BASE", "3", "retry_exponential_base", 3.0, id="exponent"
    ),
    pytest.param("RETRY_JITTER", "0", "retry_jitter", False, id="jitter-0"),
    pytest.param("RETRY_JITTER", "no", "retry_jitter", False, id="jitter-no"),
    pytest.param(
        "CIRCUIT_BREAKER_FAILURE_THRESHOLD",
        "9",
        "circuit_breaker_failure_threshold",
        9,
        id="failures",
    ),
    pytest.param(
        "CIRCUIT_BREAKER_TIMEOUT", "12.5", "circuit_breaker_timeout", 12.5, id="cb"
    ),
    pytest.param(
        "retry_max_attempts", "4", "retry_max_attempts", 4, id="lowercase-name"
    ),
    pytest.param(
        "DATABASE_URL",
        "sqlite+aiosqlite:////var/lib/b.db",
        "database_url",
        "sqlite+aiosqlite:////var/lib/b.db",
        id="database",
    ),
]


@pytest.mark.parametrize(("variable", "raw", "field", "expected"), FROM_ENVIRONMENT)
def test_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    raw: str,
    field: str,
    expected: object,
) -> None:
    """A variable in the environment sets its field, parsed to the field's type."""
    monkeypatch.setenv(variable, raw)
    assert getattr(load_settings(env_file=None), field) == expected


def test_reads_the_default_dotenv_in_the_working_directory(tmp_path: Path) -> None:
    """``load_settings()`` reads ``./.env``."""
    (tmp_path / ".env").write_text("RETRY_MAX_ATTEMPTS=8\nRETRY_JITTER=false\n")
    settings = load_settings()
    assert settings.retry_max_attempts == 8
    assert settings.retry_jitter is False


def test_reads_the_given_env_file(tmp_path: Path) -> None:
    """``load_settings(env_file=...)`` reads that file, comments and quotes included."""
    env_file = tmp_path / "service.env"
    env_file.write_text(
        "# tuning for the staging box\n"
        "RETRY_MAX_ATTEMPTS=6\n"
        'DATABASE_URL="postgres://svc@db.internal:5432/breakers"\n'
    )
    settings = load_settings(env_file=env_file)
    assert settings.retry_max_attempts == 6
    assert settings.database_url == "postgresql+asyncpg://svc@db.internal:5432/breakers"


def test_env_file_none_ignores_the_dotenv_file(tmp_path: Path) -> None:
    """``env_file=None`` reads the environment only."""
    (tmp_path / ".env").write_text("RETRY_MAX_ATTEMPTS=8\n")
    assert load_settings(env_file=None).retry_max_attempts == 3


def test_environment_beats_dotenv(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A real environment variable wins over the same one in ``.env``."""
    (tmp_path / ".env").write_text("RETRY_MAX_ATTEMPTS=8\n")
    monkeypatch.setenv("RETRY_MAX_ATTEMPTS", "9")
    assert load_settings().retry_max_attempts == 9


def test_explicit_values_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keyword arguments to ``load_settings`` win over the environment."""
    monkeypatch.setenv("RETRY_MAX_ATTEMPTS", "9")
    assert load_settings(env_file=None, retry_max_attempts=4).retry_max_attempts == 4


def test_invalid_value_in_dotenv_names_the_variable(tmp_path: Path) -> None:
    """A bad value read from ``.env`` fails like one from the environment."""
    (tmp_path / ".env").write_text("RETRY_MAX_ATTEMPTS=zero\n")
    with pytest.raises(ConfigError, match="RETRY_MAX_ATTEMPTS"):
        load_settings()


# -- validation ------------------------------------------------------------------

INVALID = [
    pytest.param("RETRY_MAX_ATTEMPTS", "abc", ">= 1 and <= 100", id="attempts-abc"),
    pytest.param("RETRY_MAX_ATTEMPTS", "0", ">= 1 and <= 100", id="attempts-0"),
    pytest.param("RETRY_MAX_ATTEMPTS", "-2", ">= 1 and <= 100", id="attempts-negative"),
    pytest.param("RETRY_MAX_ATTEMPTS", "2.5", ">= 1", id="attempts-fraction"),
    pytest.param("RETRY_BASE_DELAY", "-1", ">= 0", id="base-negative"),
    pytest.param("RETRY_BASE_DELAY", "soon", ">= 0", id="base-text"),
    pytest.param("RETRY_MAX_DELAY", "-0.5", ">= 0", id="max-negative"),
    pytest.param("RETRY_EXPONENTIAL_BASE", "0.5", ">= 1", id="exponent-below-1"),
    pytest.param("RETRY_JITTER", "maybe", "true or false", id="jitter-maybe"),
    pytest.param("RESILIENCE_ENABLED", "sometimes", "true or false", id="enabled-text"),
    pytest.param(
        "CIRCUIT_BREAKER_FAILURE_THRESHOLD", "0", ">= 1", id="failure-threshold-0"
    ),
    pytest.param(
        "CIRCUIT_BREAKER_SUCCESS_THRESHOLD", "0", ">= 1", id="success-threshold-0"
    ),
    pytest.param(
        "CIRCUIT_BREAKER_HALF_OPEN_MAX_CALLS", "0", ">= 1", id="half-open-calls-0"
    ),
    pytest.param("CIRCUIT_BREAKER_TIMEOUT", "0", "> 0", id="breaker-timeout-0"),
    pytest.param("CIRCUIT_BREAKER_TIMEOUT", "-5", "> 0", id="breaker-timeout-negative"),
]


@pytest.mark.parametrize(("variable", "raw", "accepted"), INVALID)
def test_invalid_value_names_the_variable_and_its_range(
    variable: str, raw: str, accepted: str
) -> None:
    """One ConfigError naming the variable, the bad value and what is accepted."""
    error = _config_error(**{variable: raw})
    message = str(error)
    assert error.variable == variable
    assert message.startswith("invalid configuration: ")
    assert f"{variable}={raw!r}" in message
    assert accepted in message


def test_base_delay_above_max_delay_names_both() -> None:
    """RETRY_BASE_DELAY > RETRY_MAX_DELAY is refused, naming both variables."""
    error = _config_error(RETRY_BASE_DELAY="10", RETRY_MAX_DELAY="5")
    assert error.variable == "RETRY_BASE_DELAY"
    assert "RETRY_BASE_DELAY (10.0) must not exceed RETRY_MAX_DELAY (5.0)" in str(error)


def test_base_delay_equal_to_max_delay_is_fine() -> None:
    """The ordering rule allows equal delays."""
    settings = load_settings(env_file=None, retry_base_delay=5.0, retry_max_delay=5.0)
    assert settings.retry_base_delay == settings.retry_max_delay == 5.0


def test_every_invalid_variable_is_reported_at_once() -> None:
    """Two bad variables give one message naming both."""
    error = _config_error(RETRY_MAX_ATTEMPTS="0", CIRCUIT_BREAKER_FAILURE_THRESHOLD="0")
    assert "RETRY_MAX_ATTEMPTS" in str(error)
    assert "CIRCUIT_BREAKER_FAILURE_THRESHOLD" in str(error)


def test_config_error_is_a_value_error_in_our_tree() -> None:
    """Callers can catch ConfigError, BreakerServiceError or ValueError."""
    error = _config_error(RETRY_MAX_ATTEMPTS="0")
    assert isinstance(error, BreakerServiceError)
    assert isinstance(error, ValueError)


BAD_DATABASE_URLS = [
    pytest.param("not a url", "sqlite+aiosqlite:///PATH", id="no-scheme"),
    pytest.param("", "sqlite+aiosqlite:///PATH", id="empty"),
    pytest.param("mysql://root:hunter2@db/app", "got scheme 'mysql'", id="mysql"),
    pytest.param("sqlite://breakers.db", "three slashes", id="sqlite-two-slashes"),
    pytest.param("postgresql://svc:hunter2@/app", "needs a host", id="pg-no-host"),
    pytest.param("postgres://svc:hunter2@db:port/app", "port", id="pg-bad-port"),
    pytest.param("postgresql://svc:hunter2@db:99999/app", "port", id="pg-port-range"),
    pytest.param("postgresql://svc:hunter2@[::1/app", "DATABASE_URL", id="pg-bad-ipv6"),
]


@pytest.mark.parametrize(("url", "hint"), BAD_DATABASE_URLS)
def test_unusable_database_url_is_refused(url: str, hint: str) -> None:
    """An unparseable DATABASE_URL fails at start-up, naming DATABASE_URL."""
    error = _config_error(DATABASE_URL=url)
    assert error.variable == "DATABASE_URL"
    assert "DATABASE_URL" in str(error)
    assert hint in str(error)


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("mysql://root:hunter2@db/app", id="bad-scheme"),
        pytest.param("postgresql://svc:hunter2@/app", id="no-host"),
        pytest.param("postgres://svc:hunter2@db:port/app", id="bad-port"),
        pytest.param("postgresql://svc:hunter2@[::1/app", id="bad-ipv6"),
    ],
)
def test_database_url_password_is_never_echoed(url: str) -> None:
    """Neither the message nor the printed traceback shows the password."""
    error = _config_error(DATABASE_URL=url)
    assert "hunter2" not in str(error)
    assert "hunter2" not in repr(error)
    assert "hunter2" not in "".join(traceback.format_exception(error))


# -- database URL normalisation ----------------------------------------------------

NORMALISED = [
    pytest.param(
        "postgres://svc:pw@db:5432/app",
        "postgresql+asyncpg://svc:pw@db:5432/app",
        id="postgres",
    ),
    pytest.param(
        "postgresql://svc@db/app", "postgresql+asyncpg://svc@db/app", id="postgresql"
    ),
    pytest.param(
        "POSTGRES://svc@db/app", "postgresql+asyncpg://svc@db/app", id="upper-case"
    ),
    pytest.param(
        "postgresql+asyncpg://svc@db/app",
        "postgresql+asyncpg://svc@db/app",
        id="already-async",
    ),
    pytest.param(
        "postgresql://svc@/app?host=/run/postgresql",
        "postgresql+asyncpg://svc@/app?host=/run/postgresql",
        id="unix-socket",
    ),
    pytest.param("sqlite:///./b.db", "sqlite+aiosqlite:///./b.db", id="sqlite"),
    pytest.param(
        "sqlite+aiosqlite:////abs/b.db", "sqlite+aiosqlite:////abs/b.db", id="absolute"
    ),
    pytest.param(
        "  sqlite:///:memory:  ", "sqlite+aiosqlite:///:memory:", id="whitespace"
    ),
]


@pytest.mark.parametrize(("raw", "expected"), NORMALISED)
def test_normalize_database_url(raw: str, expected: str) -> None:
    """Plain schemes get their async driver; async URLs pass unchanged."""
    assert normalize_database_url(raw) == expected


def test_settings_normalise_a_postgres_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """DATABASE_URL=postgres://... is stored as postgresql+asyncpg://..."""
    monkeypatch.setenv("DATABASE_URL", "postgres://svc:pw@db:5432/app")
    settings = load_settings(env_file=None)
    assert settings.database_url == "postgresql+asyncpg://svc:pw@db:5432/app"


# -- per-provider overrides ----------------------------------------------------------


def test_provider_override_applies_to_that_provider_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CIRCUIT_BREAKER_TIMEOUT__GLM=30 changes glm and nothing else."""
    monkeypatch.setenv("CIRCUIT_BREAKER_TIMEOUT__GLM", "30")
    settings = load_settings(env_file=None)
    assert settings.for_provider("glm").circuit_breaker_timeout == 30.0
    assert settings.for_provider("GLM").circuit_breaker_timeout == 30.0
    assert settings.for_provider("kimi").circuit_breaker_timeout == 60.0
    assert settings.for_provider(None).circuit_breaker_timeout == 60.0
    assert settings.resilience.circuit_breaker_timeout == 60.0
    assert settings.circuit_breaker_timeout == 60.0


def test_provider_override_keeps_the_other_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An override changes one field; the rest come from the global settings."""
    monkeypatch.setenv("RETRY_MAX_ATTEMPTS", "5")
    monkeypatch.setenv("RETRY_MAX_ATTEMPTS__KIMI", "2")
    settings = load_settings(env_file=None)
    kimi = settings.for_provider("kimi")
    assert kimi.retry_max_attempts == 2
    assert settings.for_provider("glm").retry_max_attempts == 5
    assert kimi.model_dump(exclude={"retry_max_attempts"}) == (
        settings.resilience.model_dump(exclude={"retry_max_attempts"})
    )


def test_provider_override_can_switch_retries_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """RESILIENCE_RETRY_ENABLED__GLM=false turns retries off for glm alone."""
    monkeypatch.setenv("RESILIENCE_RETRY_ENABLED__GLM", "false")
    settings = load_settings(env_file=None)
    assert not settings.for_provider("glm").retry_active
    assert settings.for_provider("glm").breaker_active
    assert settings.for_provider("kimi").retry_active


def test_for_provider_returns_plain_resilience_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The resolved settings hold the retry and breaker fields only."""
    monkeypatch.setenv("CIRCUIT_BREAKER_TIMEOUT__GLM", "30")
    resolved = load_settings(env_file=None).for_provider("glm")
    assert type(resolved) is ResilienceSettings


@pytest.mark.parametrize(
    "variable",
    [
        pytest.param("DATABASE_URL__GLM", id="not-a-resilience-variable"),
        pytest.param("SOMETHING_ELSE__GLM", id="unknown-variable"),
    ],
)
def test_unrelated_double_underscore_variables_are_ignored(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """Only retry and breaker variables can be overridden per provider."""
    monkeypatch.setenv(variable, "30")
    assert load_settings(env_file=None).provider_overrides == {}


def test_provider_override_read_from_the_default_dotenv(tmp_path: Path) -> None:
    """An override in ``./.env`` applies like one in the environment."""
    (tmp_path / ".env").write_text("CIRCUIT_BREAKER_TIMEOUT__GLM=30\n")
    assert load_settings().for_provider("glm").circuit_breaker_timeout == 30.0


def test_provider_override_read_from_the_given_env_file(tmp_path: Path) -> None:
    """An override in the file passed as ``env_file`` applies."""
    env_file = tmp_path / "service.env"
    env_file.write_text("CIRCUIT_BREAKER_TIMEOUT__GLM=30\n")
    settings = load_settings(env_file=env_file)
    assert settings.for_provider("glm").circuit_breaker_timeout == 30.0


def test_env_file_none_ignores_overrides_in_the_dotenv_file(tmp_path: Path) -> None:
    """``env_file=None`` reads no override from ``./.env`` either."""
    (tmp_path / ".env").write_text("CIRCUIT_BREAKER_TIMEOUT__KIMI=31\n")
    settings = load_settings(env_file=None)
    assert settings.provider_overrides == {}
    assert settings.for_provider("kimi").circuit_breaker_timeout == 60.0


INVALID_OVERRIDES = [
    pytest.param("CIRCUIT_BREAKER_TIMEOUT__GLM", "abc", "> 0", id="timeout-text"),
    pytest.param("CIRCUIT_BREAKER_TIMEOUT__GLM", "-3", "> 0", id="timeout-negative"),
    pytest.param("RETRY_MAX_ATTEMPTS__KIMI", "0", ">= 1 and <= 100", id="attempts-0"),
    pytest.param(
        "CIRCUIT_BREAKER_FAILURE_THRESHOLD__KIMI", "0", ">= 1", id="threshold-0"
    ),
]


@pytest.mark.parametrize(("variable", "raw", "accepted"), INVALID_OVERRIDES)
def test_invalid_override_names_the_suffixed_variable(
    variable: str, raw: str, accepted: str
) -> None:
    """A bad override fails at start-up naming e.g. CIRCUIT_BREAKER_TIMEOUT__GLM."""
    error = _config_error(**{variable: raw})
    assert error.variable == variable
    assert f"{variable}={raw!r}" in str(error)
    assert accepted in str(error)


def test_override_breaking_the_delay_order_names_the_override() -> None:
    """RETRY_BASE_DELAY__GLM above the max delay is refused, naming the override."""
    error = _config_error(RETRY_BASE_DELAY__GLM="100")
    assert error.variable == "RETRY_BASE_DELAY__GLM"
    assert "must not exceed" in str(error)


# -- the enable switches --------------------------------------------------------------

SWITCHES = [
    pytest.param({}, True, True, id="defaults"),
    pytest.param({"RESILIENCE_ENABLED": "false"}, False, False, id="layer-off"),
    pytest.param({"RESILIENCE_RETRY_ENABLED": "false"}, False, True, id="retry-off"),
    pytest.param(
        {"RESILIENCE_CIRCUIT_BREAKER_ENABLED": "false"}, True, False, id="breaker-off"
    ),
    pytest.param(
        {"RESILIENCE_ENABLED": "false", "RESILIENCE_RETRY_ENABLED": "true"},
        False,
        False,
        id="layer-off-wins",
    ),
]


@pytest.mark.parametrize(("env", "retry_active", "breaker_active"), SWITCHES)
def test_enable_switches(
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    retry_active: bool,
    breaker_active: bool,
) -> None:
    """RESILIENCE_ENABLED turns off both halves; each half has its own switch."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    resolved = load_settings(env_file=None).resilience
    assert resolved.retry_active is retry_active
    assert resolved.breaker_active is breaker_active


# -- the public variables ------------------------------------------------------------

README = Path(__file__).resolve().parent.parent / "README.md"


def _readme_variables() -> list[str]:
    """The variables named in the first column of the README's configuration table."""
    table = README.read_text().split("| variable | default | meaning |", 1)[1]
    rows = table.split("\n\n", 1)[0].splitlines()[2:]
    first_columns = [row.split("|")[1] for row in rows]
    return sorted(
        {
            name
            for column in first_columns
            for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", column)
        }
    )


def test_readme_names_some_variables() -> None:
    """The table parsed: the report's variables and the aliases are in it."""
    names = _readme_variables()
    assert {"RETRY_MAX_ATTEMPTS", "DATABASE_URL", "MOONSHOT_API_KEY"} <= set(names)


@pytest.mark.parametrize("variable", _readme_variables())
def test_every_readme_variable_sets_a_field(variable: str) -> None:
    """Each documented variable still names a field or one of its aliases."""
    assert variable in _variables_of(Settings)


# -- sections --------------------------------------------------------------------

SECTIONS: list[tuple[str, type[BaseModel]]] = [
    ("resilience", ResilienceSettings),
    ("database", DatabaseSettings),
    ("fleet", FleetSettings),
    ("event_log", EventLogSettings),
    ("http", HttpSettings),
    ("supabase", SupabaseSettings),
    ("auth", AuthSettings),
    ("uploads", UploadSettings),
    ("service", ServiceSettings),
]


def test_every_field_is_in_exactly_one_section() -> None:
    """The sections (and the provider fields) partition the flat fields."""
    groups = [set(model.model_fields) for _, model in SECTIONS]
    groups.append(set(ProviderSettings.model_fields))
    groups.append({"provider_overrides"})
    assert sum(len(group) for group in groups) == len(Settings.model_fields)
    assert set().union(*groups) == set(Settings.model_fields)


@pytest.mark.parametrize(("attribute", "model"), SECTIONS)
def test_section_matches_the_flat_fields(
    attribute: str, model: type[BaseModel]
) -> None:
    """``settings.<section>`` is a frozen model with the flat fields' values."""
    settings = load_settings(env_file=None, breaker_service_jwt_secret="s" * 32)
    section = getattr(settings, attribute)
    assert type(section) is model
    assert section.model_config.get("frozen") is True
    for name in model.model_fields:
        assert getattr(section, name) == getattr(settings, name), name
    assert getattr(settings, attribute) is section, "built once"


SECTION_FROM_ENVIRONMENT = [
    pytest.param(
        "EVENT_LOG_BATCH_SIZE", "7", "event_log.event_log_batch_size", 7, id="log"
    ),
    pytest.param(
        "DATABASE_URL",
        "postgres://svc@db/app",
        "database.database_url",
        "postgresql+asyncpg://svc@db/app",
        id="database-normalised",
    ),
    pytest.param(
        "BREAKER_REPLICA_ID", "r-7", "fleet.breaker_replica_id", "r-7", id="fleet"
    ),
    pytest.param("HTTP_READ_TIMEOUT", "9", "http.http_read_timeout", 9.0, id="http"),
    pytest.param(
        "OUTBOX_BATCH_SIZE", "5", "supabase.outbox_batch_size", 5, id="outbox"
    ),
    pytest.param("AUTH_DISABLED", "true", "auth.auth_disabled", True, id="auth"),
    pytest.param(
        "UPLOAD_PROVIDER_ORDER",
        "GLM, kimi",
        "uploads.provider_order",
        ["glm", "kimi"],
        id="uploads",
    ),
    pytest.param("SERVICE_PORT", "9000", "service.service_port", 9000, id="port"),
    pytest.param(
        "CIRCUIT_BREAKER_TIMEOUT",
        "12",
        "resilience.circuit_breaker_timeout",
        12.0,
        id="resilience",
    ),
]


@pytest.mark.parametrize(
    ("variable", "raw", "where", "expected"), SECTION_FROM_ENVIRONMENT
)
def test_section_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    raw: str,
    where: str,
    expected: object,
) -> None:
    """A variable shows up, validated, in its section and as the flat attribute."""
    monkeypatch.setenv(variable, raw)
    settings = load_settings(env_file=None)
    section, field = where.split(".")
    assert getattr(getattr(settings, section), field) == expected
    assert getattr(settings, field) == expected


def test_supabase_section_says_whether_tracking_is_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``supabase_enabled`` needs both the URL and a key, on the section and flat."""
    monkeypatch.setenv("SUPABASE_URL", "https://xyz.supabase.co")
    assert not load_settings(env_file=None).supabase.supabase_enabled
    monkeypatch.setenv("SUPABASE_KEY", "service-role-key")
    settings = load_settings(env_file=None)
    assert settings.supabase.supabase_enabled
    assert settings.supabase_enabled


def test_model_copy_rebuilds_the_sections() -> None:
    """A copy with changed fields shows them in its sections and resolutions."""
    settings = load_settings(env_file=None)
    assert settings.resilience.circuit_breaker_timeout == 60.0
    assert settings.for_provider("kimi").circuit_breaker_timeout == 60.0
    assert settings.providers["kimi"].base_url == "https://api.moonshot.cn"
    copied = settings.model_copy(
        update={"circuit_breaker_timeout": 5.0, "kimi_base_url": "http://k.test"}
    )
    assert copied.resilience.circuit_breaker_timeout == 5.0
    assert copied.for_provider("kimi").circuit_breaker_timeout == 5.0
    assert copied.providers["kimi"].base_url == "http://k.test"
    assert settings.resilience.circuit_breaker_timeout == 60.0


# -- provider specs ------------------------------------------------------------------


def test_builtin_provider_specs_by_default() -> None:
    """Kimi and GLM are specs like any other, without keys until one is set."""
    providers = load_settings(env_file=None).providers
    assert list(providers) == ["kimi", "glm"]
    assert providers["kimi"] == ProviderSpec(
        name="kimi",
        base_url="https://api.moonshot.cn",
        path="/v1/files",
        api_key=None,
        key_variable="KIMI_API_KEY (or MOONSHOT_API_KEY)",
        purpose="file-extract",
        max_bytes=100 * 1024 * 1024,
        dialect="kimi",
    )
    assert providers["glm"] == ProviderSpec(
        name="glm",
        base_url="https://open.bigmodel.cn",
        path="/api/paas/v4/files",
        api_key=None,
        key_variable="GLM_API_KEY (or ZHIPUAI_API_KEY)",
        purpose="file-extract",
        max_bytes=100 * 1024 * 1024,
        dialect="glm",
    )


@pytest.mark.parametrize(
    ("name", "key_variable"),
    [
        pytest.param("kimi", "KIMI_API_KEY", id="kimi"),
        pytest.param("kimi", "MOONSHOT_API_KEY", id="moonshot"),
        pytest.param("glm", "GLM_API_KEY", id="glm"),
        pytest.param("glm", "ZHIPUAI_API_KEY", id="zhipuai"),
    ],
)
def test_builtin_provider_spec_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, name: str, key_variable: str
) -> None:
    """``<NAME>_BASE_URL``, ``_PURPOSE``, ``_MAX_BYTES`` and the key fill the spec."""
    prefix = name.upper()
    monkeypatch.setenv(key_variable, "sk-spec-key")
    monkeypatch.setenv(f"{prefix}_BASE_URL", "http://files.test")
    monkeypatch.setenv(f"{prefix}_PURPOSE", "batch")
    monkeypatch.setenv(f"{prefix}_MAX_BYTES", "1234")
    spec = load_settings(env_file=None).providers[name]
    assert spec.api_key == SecretStr("sk-spec-key")
    assert (spec.base_url, spec.purpose, spec.max_bytes, spec.dialect) == (
        "http://files.test",
        "batch",
        1234,
        name,
    )
    assert "sk-spec-key" not in repr(spec)


GATEWAY = (
    '[{"name": "gateway", "base_url": "https://gw.test", "path": "/files", '
    '"api_key_env": "GATEWAY_KEY", "purpose": "assistants", "max_bytes": 99}]'
)


def test_compatible_provider_spec_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An ``OPENAI_COMPAT_PROVIDERS`` entry is a spec with the key its variable holds."""
    monkeypatch.setenv("OPENAI_COMPAT_PROVIDERS", GATEWAY)
    monkeypatch.setenv("GATEWAY_KEY", "gw-secret")
    providers = load_settings(env_file=None).providers
    assert list(providers) == ["kimi", "glm", "gateway"]
    assert providers["gateway"] == ProviderSpec(
        name="gateway",
        base_url="https://gw.test",
        path="/files",
        api_key=SecretStr("gw-secret"),
        key_variable="GATEWAY_KEY",
        purpose="assistants",
        max_bytes=99,
        dialect="openai",
    )


def test_compatible_provider_key_unset_or_empty_is_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No value (or an empty one) for ``api_key_env`` leaves the spec without a key."""
    monkeypatch.setenv("OPENAI_COMPAT_PROVIDERS", GATEWAY)
    assert load_settings(env_file=None).providers["gateway"].api_key is None
    monkeypatch.setenv("GATEWAY_KEY", "")
    assert load_settings(env_file=None).providers["gateway"].api_key is None


def test_compatible_provider_key_read_from_the_given_env_file(tmp_path: Path) -> None:
    """The key variable is read from the env file the settings are loaded from."""
    env_file = tmp_path / "service.env"
    env_file.write_text(f"OPENAI_COMPAT_PROVIDERS='{GATEWAY}'\nGATEWAY_KEY=from-file\n")
    spec = load_settings(env_file=env_file).providers["gateway"]
    assert spec.api_key == SecretStr("from-file")


def test_env_file_none_reads_no_compatible_key_from_dotenv(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``env_file=None`` ignores a key in ``./.env``, like every other variable."""
    (tmp_path / ".env").write_text("GATEWAY_KEY=from-dotenv\n")
    monkeypatch.setenv("OPENAI_COMPAT_PROVIDERS", GATEWAY)
    assert load_settings(env_file=None).providers["gateway"].api_key is None
    assert load_settings().providers["gateway"].api_key == SecretStr("from-dotenv")


def test_compatible_provider_given_as_a_keyword(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Providers passed to ``load_settings`` also get their key from the environment."""
    monkeypatch.setenv("GATEWAY_KEY", "gw-secret")
    settings = load_settings(
        env_file=None,
        openai_compat_providers=[
            {
                "name": "gateway",
                "base_url": "https://gw.test",
                "api_key_env": "GATEWAY_KEY",
            }
        ],
    )
    assert settings.providers["gateway"].api_key == SecretStr("gw-secret")
    assert settings.providers["gateway"].path == "/v1/files"


def test_compatible_provider_may_replace_a_builtin_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An entry named ``kimi`` replaces the built-in spec, keeping its place."""
    monkeypatch.setenv("OPENAI_COMPAT_PROVIDERS", GATEWAY.replace("gateway", "kimi"))
    providers = load_settings(env_file=None).providers
    assert list(providers) == ["kimi", "glm"]
    assert providers["kimi"].dialect == "openai"
    assert providers["kimi"].base_url == "https://gw.test"


def test_invalid_compatible_provider_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A malformed entry fails at start-up naming OPENAI_COMPAT_PROVIDERS."""
    monkeypatch.setenv("OPENAI_COMPAT_PROVIDERS", GATEWAY.replace("https://", "ftp://"))
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=None)
    assert caught.value.variable == "OPENAI_COMPAT_PROVIDERS"


# -- for_provider resolves once --------------------------------------------------------


def test_for_provider_resolves_once_per_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same object comes back for a provider, whatever the case of its name."""
    monkeypatch.setenv("CIRCUIT_BREAKER_TIMEOUT__GLM", "30")
    settings = load_settings(env_file=None)
    glm = settings.for_provider("glm")
    assert settings.for_provider("glm") is glm
    assert settings.for_provider("GLM") is glm
    assert settings.for_provider("kimi") is settings.for_provider("kimi")


def test_provider_without_overrides_shares_the_global_settings() -> None:
    """No override: the provider's settings are the global section itself."""
    settings = load_settings(env_file=None)
    assert settings.for_provider("kimi") is settings.resilience
    assert settings.for_provider(None) is settings.resilience

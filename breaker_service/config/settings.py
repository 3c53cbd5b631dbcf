"""Configuration from the environment and ``.env``, validated once at start-up.

Every variable of the original report keeps its name and default. Any retry or
breaker variable can be overridden for one provider by suffixing ``__<PROVIDER>``
(``CIRCUIT_BREAKER_TIMEOUT__GLM=30``). Invalid values raise ``ConfigError`` naming
the variable and what it accepts; secrets are never echoed.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from .errors import ConfigError

__all__ = [
    "CompatProvider",
    "ResilienceSettings",
    "Settings",
    "load_settings",
    "normalize_database_url",
]

_OVERRIDE = re.compile(
    r"^(?P<var>[A-Z][A-Z0-9_]*?)__(?P<provider>[A-Za-z0-9][A-Za-z0-9_.-]*)$"
)


class CompatProvider(BaseModel):
    """An OpenAI-compatible files API configured without code (``OPENAI_COMPAT_PROVIDERS``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")
    base_url: str = Field(pattern=r"^https?://")
    path: str = "/v1/files"
    api_key_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    purpose: str = "assistants"
    max_bytes: int = Field(512 * 1024 * 1024, ge=1)


class ResilienceSettings(BaseModel):
    """The retry and breaker settings, resolvable per provider."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    resilience_enabled: bool = True
    resilience_retry_enabled: bool = True
    resilience_circuit_breaker_enabled: bool = True
    breaker_scope: Literal["instance", "shared"] = "instance"

    retry_max_attempts: int = Field(3, ge=1, le=100)
    retry_base_delay: float = Field(1.0, ge=0, le=3600)
    retry_max_delay: float = Field(60.0, ge=0, le=86400)
    retry_exponential_base: float = Field(2.0, ge=1, le=100)
    retry_jitter: bool = True
    retry_deadline: float | None = Field(None, gt=0, le=86400)
    retry_attempt_timeout: float | None = Field(None, gt=0, le=86400)
    retry_budget_ratio: float = Field(0.2, ge=0, le=1)
    retry_budget_min_concurrency: int = Field(3, ge=0, le=10_000)

    circuit_breaker_failure_threshold: int = Field(5, ge=1, le=100_000)
    circuit_breaker_success_threshold: int = Field(2, ge=1, le=100_000)
    circuit_breaker_timeout: float = Field(60.0, gt=0, le=86400)
    circuit_breaker_half_open_max_calls: int = Field(1, ge=1, le=100_000)
    circuit_breaker_half_open_trial_timeout: float = Field(60.0, gt=0, le=86400)
    circuit_breaker_timeout_multiplier: float = Field(1.0, ge=1, le=100)
    circuit_breaker_max_timeout: float = Field(600.0, gt=0, le=864000)
    circuit_breaker_failure_rate_threshold: float | None = Field(None, gt=0, le=1)
    circuit_breaker_window_type: Literal["count", "time"] = "count"
    circuit_breaker_window_size: int = Field(20, ge=1, le=100_000)
    circuit_breaker_window_duration: float = Field(60.0, gt=0, le=86400)
    circuit_breaker_minimum_calls: int = Field(10, ge=1, le=100_000)
    circuit_breaker_slow_call_duration: float | None = Field(None, gt=0, le=86400)

    @model_validator(mode="after")
    def _delays_are_ordered(self) -> Self:
        if self.retry_base_delay > self.retry_max_delay:
            msg = (
                f"RETRY_BASE_DELAY ({self.retry_base_delay}) must not exceed "
                f"RETRY_MAX_DELAY ({self.retry_max_delay})"
            )
            raise ValueError(msg)
        if self.circuit_breaker_timeout > self.circuit_breaker_max_timeout:
            msg = (
                f"CIRCUIT_BREAKER_TIMEOUT ({self.circuit_breaker_timeout}) must not "
                f"exceed CIRCUIT_BREAKER_MAX_TIMEOUT ({self.circuit_breaker_max_timeout})"
            )
            raise ValueError(msg)
        return self

    @property
    def retry_active(self) -> bool:
        """Retries run only when the whole layer and the retry half are on."""
        return self.resilience_enabled and self.resilience_retry_enabled

    @property
    def breaker_active(self) -> bool:
        """Breakers protect only when the whole layer and the breaker half are on."""
        return self.resilience_enabled and self.resilience_circuit_breaker_enabled


_RESILIENCE_VARS = frozenset(name.upper() for name in ResilienceSettings.model_fields)


def normalize_database_url(url: str) -> str:
    """Give the async driver for the plain schemes; refuse anything we cannot run."""
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        msg = "DATABASE_URL cannot be parsed as a URL (an IPv6 host needs [brackets])"
        raise ValueError(msg) from None
    scheme = parts.scheme.lower()
    if scheme in {"sqlite", "sqlite+aiosqlite"}:
        if not url.split(":", 1)[1].startswith("///"):
            msg = "DATABASE_URL: a SQLite URL needs three slashes: sqlite+aiosqlite:///./file.db"
            raise ValueError(msg)
        return "sqlite+aiosqlite" + url[len(parts.scheme) :]
    if scheme in {"postgres", "postgresql", "postgresql+asyncpg"}:
        if not parts.hostname and "host=" not in parts.query:
            msg = "DATABASE_URL: a PostgreSQL URL needs a host: postgresql+asyncpg://user@host:5432/db"
            raise ValueError(msg)
        try:
            _ = parts.port
        except ValueError:
            msg = "DATABASE_URL: the port is not a number"
            raise ValueError(msg) from None
        return "postgresql+asyncpg" + url[len(parts.scheme) :]
    msg = (
        "DATABASE_URL must be sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB "
        f"(got scheme {scheme or 'none'!r})"
    )
    raise ValueError(msg)


def _default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _default_replica_id() -> str:
    # Stable across restarts on the same host: instance-scoped breakers are keyed by it.
    return socket.gethostname() or "localhost"


class _ProviderOverrideSource(PydanticBaseSettingsSource):
    """Collects ``VAR__PROVIDER`` variables into ``provider_overrides``."""

    def __init__(self, settings_cls: type[BaseSettings], env_file: Path | None) -> None:
        super().__init__(settings_cls)
        self._env_file = env_file

    def get_field_value(
        self, field: FieldInfo, field_name: str
    ) -> tuple[Any, str, bool]:
        return (
            None,
            field_name,
            False,
        )  # pragma: no cover - not used: __call__ does it all

    def __call__(self) -> dict[str, Any]:
        merged: dict[str, str] = {}
        if self._env_file is not None and self._env_file.is_file():
            merged.update(
                {
                    k: v
                    for k, v in dotenv_values(self._env_file).items()
                    if v is not None
                }
            )
        merged.update(os.environ)
        overrides: dict[str, dict[str, str]] = {}
        for key, value in merged.items():
            match = _OVERRIDE.match(key)
            if match and match["var"] in _RESILIENCE_VARS:
                provider = match["provider"].lower()
                overrides.setdefault(provider, {})[match["var"].lower()] = value
        return {"provider_overrides": overrides} if overrides else {}


class Settings(ResilienceSettings, BaseSettings):
    """Everything breaker-service reads from its environment."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    database_url: str = "sqlite+aiosqlite:///./breaker_service.db"
    database_auto_migrate: bool = True
    breaker_instance_id: str = Field(
        default_factory=_default_instance_id, min_length=1, max_length=190
    )
    breaker_replica_id: str = Field(
        default_factory=_default_replica_id,
        min_length=1,
        max_length=190,
        pattern=r"^[^@]+$",
    )

    event_log_flush_interval: float = Field(0.05, gt=0, le=60)
    event_log_batch_size: int = Field(1000, ge=1, le=100_000)
    event_log_buffer_max: int = Field(200_000, ge=100, le=10_000_000)
    event_log_snapshot_every: int = Field(500, ge=1, le=10_000_000)
    event_log_retention_days: float = Field(7.0, gt=0, le=36500)
    event_log_on_malformed: Literal["fail", "skip"] = "fail"

    provider_overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)

    # Providers (see breaker_service/providers). Keys are secrets: never logged.
    kimi_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("KIMI_API_KEY", "MOONSHOT_API_KEY")
    )
    kimi_base_url: str = "https://api.moonshot.cn"
    kimi_purpose: str = "file-extract"
    kimi_max_bytes: int = Field(100 * 1024 * 1024, ge=1)
    glm_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("GLM_API_KEY", "ZHIPUAI_API_KEY")
    )
    glm_base_url: str = "https://open.bigmodel.cn"
    glm_purpose: str = "file-extract"
    glm_max_bytes: int = Field(100 * 1024 * 1024, ge=1)
    openai_compat_providers: list[CompatProvider] = Field(default_factory=list)

    http_connect_timeout: float = Field(5.0, gt=0, le=600)
    http_read_timeout: float = Field(60.0, gt=0, le=3600)
    http_write_timeout: float = Field(60.0, gt=0, le=3600)
    http_pool_timeout: float = Field(5.0, gt=0, le=600)
    http_max_connections: int = Field(100, ge=1, le=10_000)

    # Supabase tracking (see breaker_service/tracking): off unless URL and key are set.
    supabase_url: str | None = Field(None, pattern=r"^https?://")
    supabase_service_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("SUPABASE_SERVICE_KEY", "SUPABASE_KEY")
    )
    supabase_table: str = Field(
        "provider_uploads", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"
    )
    supabase_timeout: float = Field(10.0, gt=0, le=600)
    outbox_batch_size: int = Field(100, ge=1, le=10_000)
    outbox_interval: float = Field(1.0, gt=0, le=3600)
    outbox_lease_seconds: float = Field(60.0, gt=0, le=86400)

    def shared_scope_used(self) -> bool:
        """Whether any breaker is configured for ``BREAKER_SCOPE=shared``."""
        if self.breaker_scope == "shared":
            return True
        return any(
            o.get("breaker_scope") == "shared" for o in self.provider_overrides.values()
        )

    @property
    def supabase_enabled(self) -> bool:
        """Tracking to Supabase is on when both ``SUPABASE_URL`` and a key are set."""
        return bool(self.supabase_url and self.supabase_service_key)

    # The HTTP service (see breaker_service/api)
    breaker_service_jwt_secret: SecretStr | None = None
    breaker_service_jwt_public_key: SecretStr | None = None
    breaker_service_jwt_private_key: SecretStr | None = None
    breaker_service_jwt_algorithm: Literal["HS256", "RS256", "ES256"] = "HS256"
    breaker_service_jwt_audience: str = "breaker-service"
    breaker_service_jwt_issuer: str = "breaker-service"
    breaker_service_jwt_leeway: float = Field(30.0, ge=0, le=600)
    auth_disabled: bool = False
    metrics_public: bool = True
    service_host: str = "127.0.0.1"
    service_port: int = Field(8080, ge=0, le=65535)
    upload_spool_dir: str | None = None

    @model_validator(mode="after")
    def _jwt_key_fits_algorithm(self) -> Self:
        secret = self.breaker_service_jwt_secret
        if secret is not None and len(secret.get_secret_value().encode()) < 32:
            msg = "BREAKER_SERVICE_JWT_SECRET must be at least 32 bytes long"
            raise ValueError(msg)
        if (
            self.breaker_service_jwt_algorithm != "HS256"
            and secret is not None
            and self.breaker_service_jwt_public_key is None
        ):
            msg = (
                f"BREAKER_SERVICE_JWT_ALGORITHM={self.breaker_service_jwt_algorithm} needs "
                "BREAKER_SERVICE_JWT_PUBLIC_KEY (a PEM public key), not a shared secret"
            )
            raise ValueError(msg)
        return self

    @property
    def auth_configured(self) -> bool:
        """Whether a token verification key is configured."""
        if self.breaker_service_jwt_algorithm == "HS256":
            return self.breaker_service_jwt_secret is not None
        return self.breaker_service_jwt_public_key is not None

    # Uploads (see breaker_service/uploads)
    upload_allowed_dirs: str = "."
    upload_provider_order: str = "kimi,glm"
    upload_max_concurrency: int = Field(8, ge=1, le=1000)

    @property
    def allowed_dirs(self) -> list[Path]:
        """``UPLOAD_ALLOWED_DIRS`` as resolved paths (comma- or os.pathsep-separated)."""
        parts = re.split(rf"[,{re.escape(os.pathsep)}]", self.upload_allowed_dirs)
        return [Path(p.strip()).expanduser().resolve() for p in parts if p.strip()]

    @property
    def provider_order(self) -> list[str]:
        """``UPLOAD_PROVIDER_ORDER`` as a list of provider names."""
        return [
            p.strip().lower()
            for p in self.upload_provider_order.split(",")
            if p.strip()
        ]

    @model_validator(mode="after")
    def _database_url_is_usable(self) -> Self:
        object.__setattr__(
            self, "database_url", normalize_database_url(self.database_url)
        )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Init values win, then the environment, then ``.env``, then overrides."""
        # the file really read: load_settings(env_file=...) only reaches the dotenv source
        env_file = getattr(dotenv_settings, "env_file", None)
        path = Path(str(env_file)) if isinstance(env_file, str | Path) else None
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            _ProviderOverrideSource(settings_cls, path),
        )

    def resilience(self) -> ResilienceSettings:
        """The global retry and breaker settings."""
        return self.for_provider(None)

    def for_provider(self, provider: str | None) -> ResilienceSettings:
        """The retry and breaker settings for ``provider``, with its overrides applied."""
        base = {name: getattr(self, name) for name in ResilienceSettings.model_fields}
        overrides = (
            self.provider_overrides.get(provider.lower(), {}) if provider else {}
        )
        if not overrides or provider is None:
            return ResilienceSettings.model_validate(base)
        try:
            return ResilienceSettings.model_validate({**base, **overrides})
        except ValidationError as exc:
            suffix = f"__{provider.upper()}"
            raise _config_error(exc, ResilienceSettings, suffix=suffix) from None


def _describe(field: FieldInfo) -> str:
    """Say in words what a field accepts, from its annotation and constraints."""
    annotation = field.annotation
    text = {
        int: "an integer",
        float: "a number",
        bool: "true or false",
        str: "a string",
    }.get(
        annotation,  # type: ignore[arg-type]
        "a value",
    )
    if "None" in repr(annotation):
        text = "a number, or empty for none"
    if "Literal" in repr(annotation):
        args = getattr(annotation, "__args__", ())
        return "one of " + ", ".join(repr(a) for a in args)
    bounds = []
    for meta in field.metadata:
        for attr, word in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            bound = getattr(meta, attr, None)
            if bound is not None:
                bounds.append(f"{word} {bound}")
    return text + (" " + " and ".join(bounds) if bounds else "")


_SECRET_HINTS = ("KEY", "SECRET", "TOKEN", "PASSWORD", "DATABASE_URL")


def _config_error(
    exc: ValidationError, model: type[BaseModel], *, suffix: str = ""
) -> ConfigError:
    """Turn pydantic's report into one line per variable, naming each and its range."""
    lines: list[str] = []
    first_var: str | None = None
    for error in exc.errors(include_url=False):
        loc = [str(p) for p in error.get("loc", ())]
        if loc and loc[0] in model.model_fields:
            var = loc[0].upper() + suffix
            field = model.model_fields[loc[0]]
            shown = (
                ""
                if any(h in var for h in _SECRET_HINTS)
                else f"={error.get('input')!r}"
            )
            detail = error.get("msg", "invalid")
            if detail.startswith("Value error, "):
                detail = detail.removeprefix("Value error, ")
            lines.append(
                f"{var}{shown} is invalid: expected {_describe(field)} ({detail})"
            )
        else:
            var = None
            msg = error.get("msg", "invalid").removeprefix("Value error, ")
            if suffix:
                msg = re.sub(
                    r"\b([A-Z][A-Z_]+)\b(?= \()", lambda m: m.group(1) + suffix, msg
                )
            lines.append(msg)
            match = re.search(r"\b([A-Z][A-Z0-9_]{3,})\b", msg)
            var = match.group(1) if match else None
        first_var = first_var or var
    return ConfigError("invalid configuration: " + "; ".join(lines), variable=first_var)


def load_settings(env_file: str | Path | None = ".env", **values: Any) -> Settings:
    """Read and validate the settings, raising ``ConfigError`` that names the variable."""
    try:
        settings = Settings(_env_file=env_file, **values)
    except ValidationError as exc:
        raise _config_error(exc, Settings) from None
    for provider in settings.provider_overrides:
        settings.for_provider(provider)
    return settings

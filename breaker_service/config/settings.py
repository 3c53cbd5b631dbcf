"""``Settings``: every section read from one flat environment, and ``load_settings``."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from dotenv import dotenv_values
from pydantic import BaseModel, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from .messages import config_error, unparsable_error
from .resilience import RESILIENCE_VARIABLES, ResilienceSettings
from .sections import (
    AuthSettings,
    DatabaseSettings,
    EventLogSettings,
    FleetSettings,
    HttpSettings,
    ServiceSettings,
    SupabaseSettings,
    UploadSettings,
)
from .specs import ProviderSettings, ProviderSpec, compat_key_variables, provider_specs

__all__ = ["Settings", "load_settings"]

_OVERRIDE = re.compile(
    r"^(?P<var>[A-Z][A-Z0-9_]*?)__(?P<provider>[A-Za-z0-9][A-Za-z0-9_.-]*)$"
)

_Section = TypeVar("_Section", bound=BaseModel)


class _Views:
    """What a ``Settings`` instance derives from its fields, kept once computed."""

    __slots__ = ("resolved", "sections", "specs")

    def __init__(self) -> None:
        self.sections: dict[type[BaseModel], BaseModel] = {}
        self.specs: Mapping[str, ProviderSpec] | None = None
        self.resolved: dict[str | None, ResilienceSettings] = {}


class _ProviderSource(PydanticBaseSettingsSource):
    """``VAR__PROVIDER`` overrides and the compatible providers' keys.

    Runs after the init, environment and ``.env`` sources, so ``current_state``
    already holds the ``OPENAI_COMPAT_PROVIDERS`` in force, naming their key variables.
    """

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
        values: dict[str, Any] = {}
        overrides: dict[str, dict[str, str]] = {}
        for key, value in merged.items():
            match = _OVERRIDE.match(key)
            if match and match["var"] in RESILIENCE_VARIABLES:
                provider = match["provider"].lower()
                overrides.setdefault(provider, {})[match["var"].lower()] = value
        if overrides:
            values["provider_overrides"] = overrides
        raw = self.current_state.get("openai_compat_providers")
        keys = {v: merged[v] for v in compat_key_variables(raw) if merged.get(v)}
        if keys:
            values["openai_compat_api_keys"] = keys
        return values


class Settings(
    ResilienceSettings,
    DatabaseSettings,
    FleetSettings,
    EventLogSettings,
    ProviderSettings,
    HttpSettings,
    SupabaseSettings,
    AuthSettings,
    UploadSettings,
    ServiceSettings,
    BaseSettings,
):
    """Everything breaker-service reads from its environment, flat and by section."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    provider_overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)

    # Views built on first use. A slot, not a pydantic private attribute: reading it
    # is a plain attribute read (no ``__getattr__``), and a copy starts without it,
    # so ``model_copy(update=...)`` can never see its original's views.
    __slots__ = ("_cached",)
    if TYPE_CHECKING:
        _cached: _Views

    def _views(self) -> _Views:
        try:
            return self._cached
        except AttributeError:
            object.__setattr__(self, "_cached", _Views())
            return self._cached

    def _section(self, section: type[_Section]) -> _Section:
        views = self._views().sections
        view = views.get(section)
        if not isinstance(view, section):
            fields = {name: getattr(self, name) for name in section.model_fields}
            view = section.model_construct(**fields)  # validated already, as Settings
            views[section] = view
        return view

    @property
    def resilience(self) -> ResilienceSettings:
        """The global retry and breaker settings (``for_provider`` adds overrides)."""
        return self._section(ResilienceSettings)

    @property
    def database(self) -> DatabaseSettings:
        """``DATABASE_URL`` (normalised) and ``DATABASE_AUTO_MIGRATE``."""
        return self._section(DatabaseSettings)

    @property
    def fleet(self) -> FleetSettings:
        """This process's instance and replica ids."""
        return self._section(FleetSettings)

    @property
    def event_log(self) -> EventLogSettings:
        """The ``EVENT_LOG_*`` settings."""
        return self._section(EventLogSettings)

    @property
    def http(self) -> HttpSettings:
        """The shared HTTP client's timeouts and pool size."""
        return self._section(HttpSettings)

    @property
    def supabase(self) -> SupabaseSettings:
        """Supabase tracking and its outbox relay."""
        return self._section(SupabaseSettings)

    @property
    def auth(self) -> AuthSettings:
        """Token verification and the ways around it."""
        return self._section(AuthSettings)

    @property
    def uploads(self) -> UploadSettings:
        """The upload orchestrator's settings."""
        return self._section(UploadSettings)

    @property
    def service(self) -> ServiceSettings:
        """Where the HTTP service listens."""
        return self._section(ServiceSettings)

    @property
    def providers(self) -> Mapping[str, ProviderSpec]:
        """One spec per configured provider, by name: kimi, glm, then compatible ones."""
        views = self._views()
        if views.specs is None:
            views.specs = MappingProxyType(provider_specs(self))
        return views.specs

    def shared_scope_used(self) -> bool:
        """Whether any breaker is configured for ``BREAKER_SCOPE=shared``."""
        if self.breaker_scope == "shared":
            return True
        return any(
            o.get("breaker_scope") == "shared" for o in self.provider_overrides.values()
        )

    def for_provider(self, provider: str | None) -> ResilienceSettings:
        """The retry and breaker settings for ``provider``, with its overrides applied.

        Resolved once per provider (name case ignored) and kept: settings are frozen.
        """
        key = provider.lower() if provider else None
        cache = self._views().resolved
        resolved = cache.get(key)
        if resolved is None:
            resolved = cache[key] = self._resolve(provider)
        return resolved

    def _resolve(self, provider: str | None) -> ResilienceSettings:
        overrides = (
            self.provider_overrides.get(provider.lower(), {}) if provider else {}
        )
        if not overrides or provider is None:
            return self.resilience
        try:
            return ResilienceSettings.model_validate(
                {**self.resilience.model_dump(), **overrides}
            )
        except ValidationError as exc:
            suffix = f"__{provider.upper()}"
            raise config_error(exc, ResilienceSettings, suffix=suffix) from None

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
            _ProviderSource(settings_cls, path),
        )


def load_settings(env_file: str | Path | None = ".env", **values: Any) -> Settings:
    """Read and validate the settings, raising ``ConfigError`` that names the variable."""
    try:
        settings = Settings(_env_file=env_file, **values)
    except ValidationError as exc:
        raise config_error(exc, Settings) from None
    except SettingsError as exc:  # a complex value (JSON) that does not parse
        raise unparsable_error(exc) from None
    for provider in settings.provider_overrides:
        settings.for_provider(provider)
    return settings

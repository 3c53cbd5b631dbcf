"""Provider specs: Kimi, GLM and each ``OPENAI_COMPAT_PROVIDERS`` entry in one shape.

``ProviderSettings`` holds the provider variables; ``provider_specs`` turns them
into one ``ProviderSpec`` per provider, which ``providers.catalog`` builds in one
loop. The built-in providers' fixed facts (upload path, error dialect) live here
only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr

__all__ = [
    "CompatProvider",
    "ProviderSettings",
    "ProviderSpec",
    "compat_key_variables",
    "provider_specs",
]


class CompatProvider(BaseModel):
    """An OpenAI-compatible files API configured without code (``OPENAI_COMPAT_PROVIDERS``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")
    base_url: str = Field(pattern=r"^https?://")
    path: str = "/v1/files"
    api_key_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    purpose: str = "assistants"
    max_bytes: int = Field(512 * 1024 * 1024, ge=1)


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """One files API: where to post, with which key, default purpose, size limit, dialect."""

    name: str
    base_url: str
    path: str
    api_key: SecretStr | None
    key_variable: str  # named when the key is missing: "no API key: set ..."
    purpose: str
    max_bytes: int
    dialect: Literal["openai", "kimi", "glm"]


class ProviderSettings(BaseModel):
    """``KIMI_*``, ``GLM_*`` and ``OPENAI_COMPAT_PROVIDERS``. Keys are never logged."""

    model_config = ConfigDict(frozen=True, extra="forbid")

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
    # Filled at load from the environment and the env file: each compatible
    # provider's ``api_key_env`` variable and its value.
    openai_compat_api_keys: dict[str, SecretStr] = Field(default_factory=dict)


def _key_variables(field: str) -> str:
    """``KIMI_API_KEY (or MOONSHOT_API_KEY)``: the variables that set a key field."""
    alias = ProviderSettings.model_fields[field].validation_alias
    names = [str(a) for a in alias.choices] if isinstance(alias, AliasChoices) else []
    first, *others = names or [field.upper()]
    return first + "".join(f" (or {other})" for other in others)


_BUILT_IN: tuple[tuple[Literal["kimi", "glm"], str], ...] = (
    ("kimi", "/v1/files"),
    ("glm", "/api/paas/v4/files"),
)
"""The built-in providers: name (also their error dialect) and upload path; the
rest comes from their ``<name>_*`` fields in ``ProviderSettings``."""


def provider_specs(settings: ProviderSettings) -> dict[str, ProviderSpec]:
    """Kimi, GLM, then the compatible providers (which may replace a built-in one)."""
    specs: dict[str, ProviderSpec] = {
        name: ProviderSpec(
            name=name,
            base_url=getattr(settings, f"{name}_base_url"),
            path=path,
            api_key=getattr(settings, f"{name}_api_key"),
            key_variable=_key_variables(f"{name}_api_key"),
            purpose=getattr(settings, f"{name}_purpose"),
            max_bytes=getattr(settings, f"{name}_max_bytes"),
            dialect=name,
        )
        for name, path in _BUILT_IN
    }
    for compat in settings.openai_compat_providers:
        specs[compat.name] = ProviderSpec(
            name=compat.name,
            base_url=compat.base_url,
            path=compat.path,
            api_key=settings.openai_compat_api_keys.get(compat.api_key_env),
            key_variable=compat.api_key_env,
            purpose=compat.purpose,
            max_bytes=compat.max_bytes,
            dialect="openai",
        )
    return specs


def compat_key_variables(raw: object) -> list[str]:
    """Each ``api_key_env`` of a not yet validated ``OPENAI_COMPAT_PROVIDERS`` value."""
    if not isinstance(raw, list | tuple):
        return []
    names: list[str] = []
    for entry in raw:
        if isinstance(entry, CompatProvider):
            names.append(entry.api_key_env)
        elif isinstance(entry, Mapping) and isinstance(entry.get("api_key_env"), str):
            names.append(entry["api_key_env"])
    return names

"""The configuration sections besides resilience and providers, one model each.

Each field is named after its variable (``event_log_batch_size`` reads
``EVENT_LOG_BATCH_SIZE``), so a name means the same in the environment, on
``Settings`` and on its section.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Literal, Self
from urllib.parse import parse_qsl, urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    model_validator,
)

__all__ = [
    "AuthSettings",
    "DatabaseSettings",
    "EventLogSettings",
    "FleetSettings",
    "HttpSettings",
    "ServiceSettings",
    "SupabaseSettings",
    "UploadSettings",
    "normalize_database_url",
]

_SECTION = ConfigDict(frozen=True, extra="forbid")


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
        url = "postgresql+asyncpg" + url[len(parts.scheme) :]
        return _asyncpg_query(url, parts.query)
    msg = (
        "DATABASE_URL must be sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB "
        f"(got scheme {scheme or 'none'!r})"
    )
    raise ValueError(msg)


_SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# The query parameters asyncpg takes as text (SQLAlchemy passes the query through as
# keyword arguments: any other name would be a TypeError at the first connection).
_ASYNCPG_QUERY = frozenset(
    {"ssl", "host", "port", "target_session_attrs", "krbsrvname", "gsslib", "passfile"}
    | {"prepared_statement_cache_size"}
)
_LIBPQ_SSL_FILES = frozenset({"sslrootcert", "sslcert", "sslkey", "sslcrl"})


def _asyncpg_query(url: str, query: str) -> str:
    """libpq's ``sslmode`` as asyncpg's ``ssl``; any parameter asyncpg lacks refused."""
    if not query:
        return url
    for name, value in parse_qsl(query, keep_blank_values=True):
        key = "ssl" if name == "sslmode" else name
        if key in _LIBPQ_SSL_FILES:
            msg = (
                f"DATABASE_URL: ?{name}= is not read by asyncpg; set "
                f"PG{name.upper()} in the environment instead (with ?sslmode=)"
            )
            raise ValueError(msg)
        if key not in _ASYNCPG_QUERY:
            msg = (
                f"DATABASE_URL: the query parameter {name!r} is not understood by "
                f"asyncpg (accepted: sslmode, {', '.join(sorted(_ASYNCPG_QUERY))})"
            )
            raise ValueError(msg)
        if key == "ssl" and value not in _SSL_MODES:
            msg = f"DATABASE_URL: ?{name}= must be one of {', '.join(_SSL_MODES)}"
            raise ValueError(msg)
    # only the name changes; the rest of the query stays as written
    raw = (
        "ssl" + p[len("sslmode") :] if p.startswith("sslmode=") else p
        for p in query.split("&")
    )
    return url.split("?", 1)[0] + "?" + "&".join(raw)


def _check_http_url(url: str, variable: str) -> None:
    """An ``http(s)://host[:port][/path]`` URL, or ``ValueError`` naming ``variable``."""
    example = "like https://xyz.supabase.co"
    if any(c.isspace() for c in url):
        msg = f"{variable} contains white space ({example})"
        raise ValueError(msg)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        msg = f"{variable}: the port is not a number from 0 to 65535 ({example})"
        raise ValueError(msg) from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        msg = f"{variable} needs http:// or https:// and a host ({example})"
        raise ValueError(msg)
    if parts.query or parts.fragment or parts.username or parts.password:
        msg = f"{variable} takes no query, fragment or credentials ({example})"
        raise ValueError(msg)
    del port


class DatabaseSettings(BaseModel):
    """``DATABASE_*``: where the event log lives and whether to migrate it."""

    model_config = _SECTION

    database_url: str = "sqlite+aiosqlite:///./breaker_service.db"
    database_auto_migrate: bool = True

    @model_validator(mode="after")
    def _database_url_is_usable(self) -> Self:
        object.__setattr__(
            self, "database_url", normalize_database_url(self.database_url)
        )
        return self


def _default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _default_replica_id() -> str:
    # Stable across restarts on the same host: instance-scoped breakers are keyed by it.
    return socket.gethostname() or "localhost"


class FleetSettings(BaseModel):
    """``BREAKER_INSTANCE_ID`` and ``BREAKER_REPLICA_ID``: who this process is."""

    model_config = _SECTION

    breaker_instance_id: str = Field(
        default_factory=_default_instance_id, min_length=1, max_length=190
    )
    breaker_replica_id: str = Field(
        default_factory=_default_replica_id,
        min_length=1,
        max_length=190,
        pattern=r"^[^@]+$",
    )


class EventLogSettings(BaseModel):
    """``EVENT_LOG_*``: batching, buffering, snapshots and retention of the log."""

    model_config = _SECTION

    event_log_flush_interval: float = Field(0.05, gt=0, le=60)
    event_log_batch_size: int = Field(1000, ge=1, le=100_000)
    event_log_buffer_max: int = Field(200_000, ge=100, le=10_000_000)
    event_log_snapshot_every: int = Field(500, ge=1, le=10_000_000)
    event_log_retention_days: float = Field(7.0, gt=0, le=36500)
    event_log_on_malformed: Literal["fail", "skip"] = "fail"


class HttpSettings(BaseModel):
    """``HTTP_*``: timeouts and pool size of the one shared ``httpx.AsyncClient``."""

    model_config = _SECTION

    http_connect_timeout: float = Field(5.0, gt=0, le=600)
    http_read_timeout: float = Field(60.0, gt=0, le=3600)
    http_write_timeout: float = Field(60.0, gt=0, le=3600)
    http_pool_timeout: float = Field(5.0, gt=0, le=600)
    http_max_connections: int = Field(100, ge=1, le=10_000)


class SupabaseSettings(BaseModel):
    """``SUPABASE_*`` and ``OUTBOX_*``: tracking, off unless URL and key are set."""

    model_config = _SECTION

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

    @model_validator(mode="after")
    def _supabase_url_is_usable(self) -> Self:
        # Checked here: otherwise the first delivery fails, in the background, with
        # whatever the HTTP client says about a bad port or host.
        if self.supabase_url is not None:
            _check_http_url(self.supabase_url, "SUPABASE_URL")
        return self

    @property
    def supabase_enabled(self) -> bool:
        """Tracking to Supabase is on when both ``SUPABASE_URL`` and a key are set."""
        return bool(self.supabase_url and self.supabase_service_key)


class AuthSettings(BaseModel):
    """``BREAKER_SERVICE_JWT_*``, ``AUTH_DISABLED``, ``*_PUBLIC``: who may call."""

    model_config = _SECTION

    breaker_service_jwt_secret: SecretStr | None = None
    breaker_service_jwt_public_key: SecretStr | None = None
    breaker_service_jwt_private_key: SecretStr | None = None
    breaker_service_jwt_algorithm: Literal["HS256", "RS256", "ES256"] = "HS256"
    breaker_service_jwt_audience: str = "breaker-service"
    breaker_service_jwt_issuer: str = "breaker-service"
    breaker_service_jwt_leeway: float = Field(30.0, ge=0, le=600)
    breaker_service_jwt_max_lifetime: float | None = Field(None, gt=0, le=31_536_000)
    auth_disabled: bool = False
    # Both closed by default: breaker names, counts and database errors are detail
    # for operators (``breakers:read``); /healthz and a bare /readyz status stay open.
    metrics_public: bool = False
    readyz_detail_public: bool = False

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


class UploadSettings(BaseModel):
    """``UPLOAD_*``: where uploads may come from, fallback order, concurrency, spool,
    and how orphans at the providers are reconciled."""

    model_config = _SECTION

    # No default: unset, uploads of server paths are refused (a permissive "." let
    # a writer upload the .env, the database and the logs of the working directory).
    upload_allowed_dirs: str = ""
    upload_provider_order: str = "kimi,glm"
    upload_max_concurrency: int = Field(8, ge=1, le=1000)
    upload_batch_deadline: float = Field(300.0, ge=0, le=86400)
    upload_allow_hardlinks: bool = False
    upload_spool_dir: str | None = None
    upload_orphans: Literal["delete", "report"] = "delete"
    upload_reconcile_interval: float = Field(300.0, ge=0, le=86400)
    upload_intent_stale_after: float = Field(900.0, ge=1, le=604800)

    @model_validator(mode="after")
    def _spool_dir_is_allowed(self) -> Self:
        # A spooled request body is uploaded by path, so it must pass the same check:
        # refused here once, not with a 400 on every multipart upload.
        if not self.upload_spool_dir:
            return self
        spool = Path(self.upload_spool_dir).expanduser()
        allowed = self.allowed_dirs
        # as resolved and as written: they differ when an allowed dir is a symlink
        forms = [*allowed, *(Path(os.path.abspath(d)) for d in self._dir_parts())]
        inside = all(
            any(form == d or form.is_relative_to(d) for d in forms)
            for form in (Path(os.path.abspath(spool)), spool.resolve())
        )
        if not inside:
            where = (
                f"outside UPLOAD_ALLOWED_DIRS ({self.upload_allowed_dirs})"
                if allowed
                else "set but UPLOAD_ALLOWED_DIRS is not"
            )
            msg = (
                f"UPLOAD_SPOOL_DIR={self.upload_spool_dir} is {where}: files sent to "
                "POST /uploads are spooled there and uploaded from there, so it must "
                "lie inside an allowed directory (unset: <first allowed dir>/.spool)"
            )
            raise ValueError(msg)
        return self

    @property
    def allowed_dirs(self) -> list[Path]:
        """``UPLOAD_ALLOWED_DIRS`` as resolved paths (comma- or os.pathsep-separated)."""
        return [d.resolve() for d in self._dir_parts()]

    def _dir_parts(self) -> list[Path]:
        parts = re.split(rf"[,{re.escape(os.pathsep)}]", self.upload_allowed_dirs)
        return [Path(p.strip()).expanduser() for p in parts if p.strip()]

    @property
    def provider_order(self) -> list[str]:
        """``UPLOAD_PROVIDER_ORDER`` as a list of provider names."""
        return [
            p.strip().lower()
            for p in self.upload_provider_order.split(",")
            if p.strip()
        ]


class ServiceSettings(BaseModel):
    """``SERVICE_HOST`` and ``SERVICE_PORT``: where ``serve`` listens."""

    model_config = _SECTION

    service_host: str = "127.0.0.1"
    service_port: int = Field(8080, ge=0, le=65535)
    service_shutdown_delivery_seconds: float = Field(10.0, ge=0, le=600)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"

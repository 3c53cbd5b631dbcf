"""Configuration from the environment and ``.env``, validated once at start-up.

Every variable of the original report keeps its name and default. Any retry or
breaker variable can be overridden for one provider by suffixing ``__<PROVIDER>``
(``CIRCUIT_BREAKER_TIMEOUT__GLM=30``). Invalid values raise ``ConfigError`` naming
the variable and what it accepts; secrets are never echoed.

The variables stay flat (``settings.database_url`` reads ``DATABASE_URL``) and are
grouped into frozen sections, each a model whose fields ``Settings`` inherits:

===================  ========================  =====================================
``settings.``        type                      variables
===================  ========================  =====================================
``resilience``       ``ResilienceSettings``    ``RESILIENCE_*``, ``RETRY_*``,
                                               ``CIRCUIT_BREAKER_*``, ``BREAKER_SCOPE``
                                               (``for_provider(name)`` adds overrides)
``database``         ``DatabaseSettings``      ``DATABASE_URL``, ``DATABASE_AUTO_MIGRATE``
``fleet``            ``FleetSettings``         ``BREAKER_INSTANCE_ID``, ``BREAKER_REPLICA_ID``
``event_log``        ``EventLogSettings``      ``EVENT_LOG_*``
``providers``        name -> ``ProviderSpec``  ``KIMI_*``, ``GLM_*``,
                                               ``OPENAI_COMPAT_PROVIDERS`` and their keys
``http``             ``HttpSettings``          ``HTTP_*``
``supabase``         ``SupabaseSettings``      ``SUPABASE_*``, ``OUTBOX_*``
``auth``             ``AuthSettings``          ``BREAKER_SERVICE_JWT_*``,
                                               ``AUTH_DISABLED``, ``METRICS_PUBLIC``,
                                               ``READYZ_DETAIL_PUBLIC``
``uploads``          ``UploadSettings``        ``UPLOAD_*``
``service``          ``ServiceSettings``       ``SERVICE_HOST``, ``SERVICE_PORT``
===================  ========================  =====================================

A section's fields keep the variable's name (``settings.event_log.event_log_batch_size``),
so one name means one thing everywhere. Sections are built once, on first use.
"""

from .resilience import ResilienceSettings
from .sections import (
    AuthSettings,
    DatabaseSettings,
    EventLogSettings,
    FleetSettings,
    HttpSettings,
    ServiceSettings,
    SupabaseSettings,
    UploadSettings,
    normalize_database_url,
)
from .settings import Settings, load_settings
from .specs import CompatProvider, ProviderSettings, ProviderSpec

__all__ = [
    "AuthSettings",
    "CompatProvider",
    "DatabaseSettings",
    "EventLogSettings",
    "FleetSettings",
    "HttpSettings",
    "ProviderSettings",
    "ProviderSpec",
    "ResilienceSettings",
    "ServiceSettings",
    "Settings",
    "SupabaseSettings",
    "UploadSettings",
    "load_settings",
    "normalize_database_url",
]

"""How the command line and the service log: readable by default, JSON on request.

Our own loggers (``breaker_service.*``: the ``[RETRY]`` and ``[CIRCUIT]`` lines)
log at ``LOG_LEVEL`` (INFO by default); third-party loggers (httpx's line per
request, uvicorn's access log, Alembic, SQLAlchemy) are held at WARNING so those
lines do not drown, unless ``-v/--verbose`` brings them back. ``LOG_FORMAT=json``
writes one JSON object per line (``python-json-logger``), with the structured
fields our lines carry (provider, attempt, delay, from_state, to_state, reason,
actor, ...) as keys, for log shippers. The library itself adds no handlers: this
is for the processes the CLI starts.
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

__all__ = ["THIRD_PARTY", "configure_logging"]

THIRD_PARTY = (
    "httpx",
    "httpcore",
    "uvicorn.access",
    "alembic",
    "sqlalchemy",
    "asyncio",
    "hpack",
    "supabase",
    "postgrest",
)
"""Loggers held at WARNING unless ``--verbose`` (uvicorn's start and stop lines stay)."""

_TEXT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure_logging(
    *, level: str = "INFO", log_format: str = "text", verbose: bool = False
) -> None:
    """Install one stderr handler on the root logger; quiet third parties."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter(_TEXT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    quiet = logging.INFO if verbose else logging.WARNING
    for name in THIRD_PARTY:
        logging.getLogger(name).setLevel(quiet)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

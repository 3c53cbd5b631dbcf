"""Which replica this process is, stable where the breakers' state lives.

Instance-scoped breakers write to ``breaker@replica`` streams and restore only their
own replica's streams, so the replica id must survive a new host name (a fresh
container on the same ``/data`` volume, ``compose up --build``). The rules:

- ``BREAKER_REPLICA_ID`` set: that id, always.
- SQLite (one node): the id kept in ``<database file>.replica-id``; without that
  file, the one replica whose streams the log already holds (a database written
  before this file existed); else the host name. The choice is written to the file.
- PostgreSQL: replicas share the database, so nothing there says which one this
  is. In shared scope an unset id is a start-up error; in instance scope the host
  name is used (set the id explicitly: compose does, and in Kubernetes the
  StatefulSet pod name is the stable choice).
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from .config import Settings
from .errors import ConfigError, EventLogError
from .integrity import sqlite_path

__all__ = ["check_replica_id", "resolve_replica_id"]

logger = logging.getLogger("breaker_service.service")

_MAX_LENGTH = 190


def _explicit(settings: Settings) -> bool:
    return "breaker_replica_id" in settings.model_fields_set


def check_replica_id(settings: Settings, url: str) -> None:
    """Before connecting: PostgreSQL in shared scope needs ``BREAKER_REPLICA_ID``."""
    if (
        not _explicit(settings)
        and url.startswith("postgresql")
        and settings.shared_scope_used()
    ):
        msg = (
            "BREAKER_REPLICA_ID must be set when replicas share PostgreSQL "
            "(BREAKER_SCOPE=shared): a stable name per replica, e.g. the "
            "StatefulSet pod name"
        )
        raise ConfigError(msg, variable="BREAKER_REPLICA_ID")


async def resolve_replica_id(settings: Settings, url: str, engine: AsyncEngine) -> str:
    """The replica id for this process under the rules in the module docstring."""
    check_replica_id(settings, url)
    path = sqlite_path(url)
    if _explicit(settings) or path is None:
        return settings.breaker_replica_id
    keeper = path.with_name(path.name + ".replica-id")
    kept = _read(keeper)
    if kept is not None:
        return kept
    found = await _replicas_in_log(engine)
    if len(found) == 1:
        chosen = found[0]
        logger.info("replica id %r taken from the event log's streams", chosen)
    else:
        chosen = settings.breaker_replica_id or socket.gethostname() or "localhost"
        if len(found) > 1:
            logger.warning(
                "the event log holds streams of several replicas (%s); this node is %r. "
                "Set BREAKER_REPLICA_ID to choose",
                ", ".join(found),
                chosen,
            )
    _write(keeper, chosen)
    return chosen


def _read(keeper: Path) -> str | None:
    try:
        value = keeper.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        msg = f"cannot read the replica id kept in {keeper}: {exc.strerror or exc}"
        raise ConfigError(msg, variable="BREAKER_REPLICA_ID") from None
    if not value or len(value) > _MAX_LENGTH or "@" in value:
        msg = f"{keeper} holds no usable replica id; fix or delete it"
        raise ConfigError(msg, variable="BREAKER_REPLICA_ID")
    return value


def _write(keeper: Path, value: str) -> None:
    tmp = keeper.with_name(keeper.name + ".tmp")
    try:
        tmp.write_text(value + "\n", encoding="utf-8")
        with tmp.open("rb") as stream:
            os.fsync(stream.fileno())
        tmp.replace(keeper)
    except (
        OSError
    ) as exc:  # a read-only volume: still the same id while the log says so
        logger.warning("could not keep the replica id in %s: %s", keeper, exc)


async def _replicas_in_log(engine: AsyncEngine) -> list[str]:
    """Replica suffixes of the instance streams in snapshots and transitions."""
    query = text(
        "SELECT stream FROM breaker_snapshots WHERE stream LIKE '%@%' "
        "UNION SELECT DISTINCT stream FROM breaker_events "
        "WHERE kind = 'transition' AND stream LIKE '%@%'"
    )
    try:
        async with engine.connect() as conn:
            streams = (await conn.execute(query)).scalars().all()
    except SQLAlchemyError as exc:
        msg = f"cannot read the event log's streams: {type(exc).__name__}"
        raise EventLogError(msg) from None
    return sorted({s.rsplit("@", 1)[1] for s in streams})

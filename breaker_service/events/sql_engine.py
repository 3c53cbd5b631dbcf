"""The engine of the SQL event log: SQLite tuned for a shared, crash-safe log.

SQLite runs in WAL mode with ``synchronous=NORMAL`` (a committed batch survives a
process crash; an OS crash may lose the last batches, never corrupt the log) and a
``busy_timeout`` so the CLI and the service can share the file.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = ["SQLITE_BUSY_TIMEOUT_MS", "create_engine", "redact_url"]

SQLITE_BUSY_TIMEOUT_MS = 5000


def redact_url(url: str) -> str:
    """The database URL with any password replaced, for logs and errors."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparseable URL is shown as its scheme only
        return url.split(":", 1)[0] + "://..."


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine with SQLite tuned for a shared, crash-safe log.

    On PostgreSQL pooled connections are pinged before use, so the first write after
    a server restart does not fail on a connection the server already closed.
    """
    if url.startswith("postgresql"):
        kwargs.setdefault("pool_pre_ping", True)
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

    return engine

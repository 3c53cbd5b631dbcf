"""A bounded ``PRAGMA quick_check`` of a SQLite database file before it is used.

A damaged file can still open and answer simple queries, so a service on it would
say "ready" and accept admin actions it can never persist. Start-up checks the file
first (bounded in time: a huge file is checked for ``timeout`` seconds, then
trusted with a warning) and refuses to start on corruption.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

from sqlalchemy.engine import make_url

from .errors import StorageCorrupt

__all__ = ["check_sqlite_file", "sqlite_path", "verify_sqlite"]

logger = logging.getLogger("breaker_service.storage")

_PROBLEMS_SHOWN = 3


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL (``None`` for PostgreSQL or an in-memory SQLite)."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    return Path(database)


def check_sqlite_file(path: Path, *, timeout: float = 10.0) -> list[str] | None:
    """``PRAGMA quick_check`` of ``path``: ``[]`` when sound, the problems otherwise.

    ``None`` when the check was cut short by ``timeout`` (the file is then trusted).
    A missing file is sound: the schema creates it.
    """
    if not path.exists():
        return []
    deadline = time.monotonic() + timeout
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout)
    except sqlite3.DatabaseError as exc:
        return [" ".join(str(exc).split())]
    timed_out = False

    def interrupt() -> int:
        nonlocal timed_out
        timed_out = time.monotonic() > deadline
        return 1 if timed_out else 0

    try:
        conn.set_progress_handler(interrupt, 10_000)
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.OperationalError as exc:
        if timed_out:
            return None
        if "locked" in str(exc) or "busy" in str(exc):
            return None  # another process holds it: the engine's busy timeout copes
        return [" ".join(str(exc).split())]
    except sqlite3.DatabaseError as exc:
        return [" ".join(str(exc).split())]
    finally:
        conn.close()
    problems = [" ".join(str(row[0]).split()) for row in rows]
    return [] if problems == ["ok"] else problems


def verify_sqlite(url: str, *, timeout: float = 10.0) -> None:
    """Raise ``StorageCorrupt`` (one line: the file and the way out) if damaged."""
    path = sqlite_path(url)
    if path is None:
        return
    problems = check_sqlite_file(path, timeout=timeout)
    if problems is None:
        logger.warning(
            "integrity check of %s cut short after %.0fs; starting without it",
            path,
            timeout,
        )
        return
    if problems:
        shown = "; ".join(problems[:_PROBLEMS_SHOWN])
        more = len(problems) - _PROBLEMS_SHOWN
        if more > 0:
            shown += f" (+{more} more)"
        msg = (
            f"database file {path} is damaged ({shown}): restore it from a backup, "
            "or run `breaker-service db check` for details"
        )
        raise StorageCorrupt(msg, path=str(path))

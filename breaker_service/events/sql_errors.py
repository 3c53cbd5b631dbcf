"""The one translation of database errors into the exception tree.

Every SQL adapter (event log, trial gate, upload store, outbox, migrations) runs its
database work inside ``sql_errors(action)``: whatever SQLAlchemy, the DBAPI driver or
the network raises there leaves as ``EventLogError`` (or the ``StorageError`` class
given), saying which action failed with the first line of the driver's message and
never the SQL or its parameters. A unique violation can be given its own meaning
(``ConcurrencyError`` for a taken breaker version, a duplicate upload).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from ..errors import EventLogError, StorageError

__all__ = ["describe", "is_unique_violation", "sql_errors"]


@contextlib.contextmanager
def sql_errors(
    action: str,
    *,
    error: type[StorageError] = EventLogError,
    on_unique: Callable[[], StorageError] | None = None,
) -> Iterator[None]:
    """Translate database errors raised in the block into ``error`` naming ``action``.

    ``on_unique`` builds the error for a unique-constraint violation instead.
    Our own errors raised in the block pass through untouched.
    """
    try:
        yield
    except IntegrityError as exc:
        if on_unique is not None and is_unique_violation(exc):
            raise on_unique() from exc
        raise error(describe(action, exc)) from exc
    except (SQLAlchemyError, OSError) as exc:  # OSError: refused, reset, timed out
        raise error(describe(action, exc)) from exc


def is_unique_violation(exc: IntegrityError) -> bool:
    """Whether a unique constraint or index refused the write (SQLite or PostgreSQL)."""
    text = str(exc.orig).lower()
    return "unique" in text or "duplicate key" in text


def describe(action: str, exc: BaseException) -> str:
    """``<action> failed: <type>: <first line>``, without SQL or parameters."""
    return f"{action} failed: {type(exc).__name__}: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    """The driver's own message when there is one (SQLAlchemy appends SQL and data)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__

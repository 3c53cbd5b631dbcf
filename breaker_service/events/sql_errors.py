"""The one translation of database errors into the exception tree.

Every SQL adapter (event log, trial gate, upload store, outbox, migrations) runs its
database work inside ``sql_errors(action)``: whatever SQLAlchemy, the DBAPI driver or
the network raises there leaves as ``EventLogError`` (or the ``StorageError`` class
given), saying which action failed with the first line of the driver's message and
never the SQL or its parameters. A unique violation can be given its own meaning
(``ConcurrencyError`` for a taken breaker version, a duplicate upload), and so can a
data error (``UnstorableEvent``): the row itself cannot be stored, whatever the
connection does, as opposed to a refused, reset, locked or timed-out connection.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    ProgrammingError,
    SQLAlchemyError,
    StatementError,
)

from ..errors import EventLogError, StorageError

__all__ = ["describe", "is_data_error", "is_unique_violation", "sql_errors"]

# SQLSTATE classes of errors about the data, not the connection: 22 data exception
# (invalid byte sequence, value too long, out of range), 23 integrity constraint
# violation (NOT NULL, CHECK, foreign key; unique violations are told apart first).
_DATA_SQLSTATE_CLASSES = frozenset({"22", "23"})


@contextlib.contextmanager
def sql_errors(
    action: str,
    *,
    error: type[StorageError] = EventLogError,
    on_unique: Callable[[], StorageError] | None = None,
    on_data: type[StorageError] | None = None,
) -> Iterator[None]:
    """Translate database errors raised in the block into ``error`` naming ``action``.

    ``on_unique`` builds the error for a unique-constraint violation instead;
    ``on_data`` is the class for a row the store refuses for its content
    (``is_data_error``). Our own errors raised in the block pass through untouched.
    """
    try:
        yield
    # OSError: refused, reset, timed out; UnicodeError, OverflowError: a value the
    # driver cannot encode (SQLite raises them unwrapped).
    except (SQLAlchemyError, OSError, UnicodeError, OverflowError) as exc:
        if (
            on_unique is not None
            and isinstance(exc, IntegrityError)
            and is_unique_violation(exc)
        ):
            raise on_unique() from exc
        chosen = on_data if on_data is not None and is_data_error(exc) else error
        raise chosen(describe(action, exc)) from exc


def is_unique_violation(exc: IntegrityError) -> bool:
    """Whether a unique constraint or index refused the write (SQLite or PostgreSQL)."""
    text = str(exc.orig).lower()
    return "unique" in text or "duplicate key" in text


def is_data_error(exc: BaseException) -> bool:
    """Whether the store refused the data itself, so the same write can never succeed.

    PostgreSQL says so by SQLSTATE class (22, 23); SQLite by a constraint or data
    error, or a parameter it cannot bind; either driver, or SQLAlchemy's own bind
    processing, by failing to encode a value (a lone surrogate, an int too large, an
    object JSON cannot hold). Connection, lock, timeout and pool errors are not.
    """
    if isinstance(exc, (UnicodeError, OverflowError)):
        return True
    if not isinstance(exc, StatementError):
        return False
    if not isinstance(exc, DBAPIError):
        return True  # SQLAlchemy could not process a bound value
    orig = exc.orig
    if isinstance(orig, (UnicodeError, OverflowError)) or isinstance(
        orig.__cause__ if orig is not None else None, UnicodeError
    ):
        return True
    if isinstance(exc, IntegrityError) and is_unique_violation(exc):
        return False  # a conflict with another row, not this row's content
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if isinstance(state, str) and state:
        return state[:2] in _DATA_SQLSTATE_CLASSES
    if isinstance(exc, IntegrityError):
        return True
    if isinstance(exc, DataError):
        return True
    return (
        isinstance(exc, ProgrammingError)
        and "error binding parameter" in str(orig).lower()
    )


def describe(action: str, exc: BaseException) -> str:
    """``<action> failed: <type>: <first line>``, without SQL or parameters."""
    return f"{action} failed: {type(exc).__name__}: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    """The driver's own message when there is one (SQLAlchemy appends SQL and data)."""
    if isinstance(exc, StatementError) and exc.orig is not None:
        exc = exc.orig
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__

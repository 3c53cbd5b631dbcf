"""Events the store refuses for their content: what to set aside, what to write instead.

A row is refused for what it holds (a NUL on PostgreSQL, a lone surrogate anywhere,
a text too long for its column), never for the connection; retrying it would block
the log for ever. The recorder keeps the whole event as a ``DeadLetter`` (escaped
JSON, storable anywhere) and writes a stand-in: the same event with its free text
escaped and bounded, so state, version and counts still reach the log and replay
equals life. Only when the stand-in is refused too does the event stay out of it.
"""

from __future__ import annotations

import json
from typing import Any

from .model import KIND_TRANSITION, DeadLetter, OutcomeRow, TransitionRecord

__all__ = [
    "TEXT_LIMIT",
    "dead_letter",
    "escape_unstorable",
    "is_storable",
    "stand_in",
    "unstorable_field",
]

TEXT_LIMIT = 200
"""Characters of the bounded text columns (breaker, actor, detail)."""
KIND_LIMIT = 16
ERROR_LIMIT = 2000

Item = OutcomeRow | TransitionRecord


def is_storable(text: str) -> bool:
    """Whether every backend stores ``text``: UTF-8 encodable (no lone surrogate), no NUL."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def escape_unstorable(text: str, limit: int | None = None) -> str:
    """``text`` with NULs and lone surrogates as backslash escapes, cut at ``limit``."""
    escaped = (
        text.replace("\x00", "\\x00")
        .encode("utf-8", "backslashreplace")
        .decode("utf-8")
    )
    return escaped if limit is None else escaped[:limit]


def _fields(item: Item) -> dict[str, Any]:
    if isinstance(item, TransitionRecord):
        return {"kind": KIND_TRANSITION, **item.as_dict()}
    breaker, kind, version, at, detail, status, duration, count, last_at = item
    return {
        "breaker": breaker,
        "kind": kind,
        "state_version": version,
        "at": at,
        "detail": detail,
        "status": status,
        "duration": duration,
        "count": count,
        "last_at": last_at,
    }


def unstorable_field(item: Item) -> str | None:
    """The first text field of ``item`` no backend could store, or ``None``."""
    for name, value in _fields(item).items():
        if isinstance(value, str) and not is_storable(value):
            return name
    return None


def dead_letter(item: Item, *, error: str, at: float) -> DeadLetter:
    """``item`` set aside: its whole content as ASCII JSON, with the store's ``error``."""
    fields = _fields(item)
    return DeadLetter(
        breaker=escape_unstorable(str(fields["breaker"]), TEXT_LIMIT),
        kind=escape_unstorable(str(fields["kind"]), KIND_LIMIT),
        at=at,
        error=escape_unstorable(error, ERROR_LIMIT),
        content=json.dumps(fields, ensure_ascii=True, default=repr),
    )


def stand_in(item: Item) -> Item | None:
    """``item`` with its free text escaped and bounded; ``None`` if that changes nothing.

    The breaker's name and the kind stay as they are: an event written under another
    name would belong to another breaker.
    """
    if isinstance(item, TransitionRecord):
        reason = escape_unstorable(item.reason)
        actor = (
            None if item.actor is None else escape_unstorable(item.actor, TEXT_LIMIT)
        )
        if reason == item.reason and actor == item.actor:
            return None
        return TransitionRecord(
            breaker=item.breaker,
            from_state=item.from_state,
            to_state=item.to_state,
            version=item.version,
            at=item.at,
            reason=reason,
            actor=actor,
            open_timeout=item.open_timeout,
        )
    breaker, kind, version, at, detail, status, duration, count, last_at = item
    if detail is None:
        return None
    escaped = escape_unstorable(detail, TEXT_LIMIT)
    if escaped == detail:
        return None
    return (breaker, kind, version, at, escaped, status, duration, count, last_at)

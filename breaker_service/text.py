"""Operator text (reasons, actors) checked at every entry before it reaches the log.

A reason or actor is stored in the event log, shown in the dashboard and written
to logs. A NUL byte makes PostgreSQL refuse the whole batch; other control
characters forge log lines; a lone surrogate cannot be encoded as UTF-8. So such
text is refused with ``InvalidText`` (a ``ValueError``; the API answers 422), and
its length is capped.
"""

from __future__ import annotations

import unicodedata

from .errors import InvalidText

__all__ = ["MAX_ACTOR", "MAX_REASON", "checked_text"]

MAX_REASON = 500
MAX_ACTOR = 200


def checked_text(value: str, field: str, *, limit: int) -> str:
    """``value`` if it is printable text of at most ``limit`` characters, else refuse."""
    if not isinstance(value, str):
        msg = f"{field} must be text"
        raise InvalidText(msg, field=field)
    if len(value) > limit:
        msg = f"{field} is {len(value)} characters; at most {limit} are allowed"
        raise InvalidText(msg, field=field)
    for position, char in enumerate(value):
        category = unicodedata.category(char)
        if category == "Cs":
            msg = f"{field} holds a lone surrogate at position {position}"
            raise InvalidText(msg, field=field)
        if category == "Cc" and char != " ":
            msg = (
                f"{field} holds a control character (U+{ord(char):04X}) at position "
                f"{position}: reasons and actors are one line of printable text"
            )
            raise InvalidText(msg, field=field)
    return value

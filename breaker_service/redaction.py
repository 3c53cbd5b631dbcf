"""Scrubbing secrets out of text before it reaches a log line or an error message.

Pure string work with no dependencies, so every layer can use it: the provider
adapters (which also know the configured keys), the Supabase sink and the retry
engine's ``[RETRY]`` lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["error_text", "scrub"]

_KEYLIKE = re.compile(r"\b(sk-|Bearer\s+)[A-Za-z0-9._\-]{4,}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")

ERROR_TEXT_LIMIT = 300
"""Longest error text put on a log line (provider replies can be whole pages)."""


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` without any of ``secrets`` and without anything that looks like a key."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _KEYLIKE.sub(lambda m: m.group(1) + "***", text)


def error_text(exc: BaseException, secrets: Iterable[str | None] = ()) -> str:
    """An error's message for one log line: scrubbed, on one line, at most 300 chars.

    The class name stands in for an empty message (``TimeoutError()``).
    """
    text = str(exc) or type(exc).__name__
    text = _CONTROL.sub(" ", scrub(text, secrets)).strip()
    if len(text) > ERROR_TEXT_LIMIT:
        text = text[: ERROR_TEXT_LIMIT - 1] + "…"
    return text

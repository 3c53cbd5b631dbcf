"""``IntentJournal``: where an upload intent goes when the database cannot take it.

The intent must be durable before the provider is called, or a lost answer would
leave a file nobody knows of. When the database refuses the intent (locked, full,
unreachable), it is appended to this JSON-lines file next to the database, with
``O_APPEND`` and ``fsync``, and the upload goes ahead. Folding inserts the intents
into ``upload_intents`` (an intent already there is left as it is) before the upload
journal is folded, so a journaled record completes its intent. A torn last line was
never acknowledged (its upload never started) and is dropped; other unreadable lines
are set aside in ``<journal>.rejected``.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from .intents import UploadIntent
from .journal import JournalError
from .jsonl import append_durably, set_aside

__all__ = ["IntentJournal"]

logger = logging.getLogger("breaker_service.uploads")

_FIELDS = {f.name for f in fields(UploadIntent)}


class IntentJournal:
    """Append-only, fsynced intents not yet in the database."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.rejected_path = self.path.with_name(self.path.name + ".rejected")
        self._lock = asyncio.Lock()

    async def append(self, intent: UploadIntent) -> None:
        """Make ``intent`` durable here; ``JournalError`` if it cannot be."""
        line = json.dumps(intent.as_dict(), separators=(",", ":")) + "\n"
        async with self._lock:
            try:
                await asyncio.to_thread(append_durably, self.path, line.encode())
            except OSError as exc:
                msg = f"intent journal {self.path} cannot be written: {exc.strerror or exc}"
                raise JournalError(msg) from None

    def pending(self) -> list[UploadIntent]:
        """The intents journaled here, oldest first (unreadable lines skipped)."""
        return self._read()[0]

    def _read(self) -> tuple[list[UploadIntent], int]:
        """(intents, complete lines read); bad lines are set aside."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return [], 0
        lines = data.split(b"\n")
        torn = lines.pop()
        if torn:
            logger.warning("intent journal %s ends in a torn line: dropped", self.path)
        found = []
        for raw in lines:
            if not raw.strip():
                continue
            try:
                values: dict[str, Any] = json.loads(raw)
                found.append(
                    UploadIntent(**{k: v for k, v in values.items() if k in _FIELDS})
                )
            except (ValueError, TypeError):
                self._set_aside(raw)
        return found, len(lines)

    async def fold_into(self, begin: Callable[[UploadIntent], Awaitable[Any]]) -> int:
        """Write every journaled intent with ``begin`` (idempotent), then forget them.

        A failure keeps the file for next time (what was written is written again,
        harmlessly); returns how many were written.
        """
        async with self._lock:
            intents, lines = await asyncio.to_thread(self._read)
            for intent in intents:
                await begin(intent)
            if lines:
                await asyncio.to_thread(self._forget, lines)
            if intents:
                logger.info(
                    "intent journal: %d intent(s) folded into the database",
                    len(intents),
                )
            return len(intents)

    def _forget(self, count: int) -> None:
        """Drop the first ``count`` lines; keep whatever was appended meanwhile."""
        fd = os.open(self.path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with os.fdopen(os.dup(fd), "rb") as stream:
                lines = stream.read().split(b"\n")
            lines.pop()  # the torn remainder (b"" after a final newline)
            keep = [x for x in lines[count:] if x.strip()]
            if not keep:
                self.path.unlink()
                return
            os.ftruncate(fd, 0)
            os.pwrite(fd, b"\n".join(keep) + b"\n", 0)
            os.fsync(fd)
        finally:
            os.close(fd)

    def _set_aside(self, raw: bytes) -> None:
        set_aside(self.rejected_path, [raw])
        logger.error("intent journal %s: an unreadable line set aside", self.path)

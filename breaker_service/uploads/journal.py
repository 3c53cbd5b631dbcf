"""``UploadJournal``: where a provider's success goes when the database cannot take it.

An upload the provider accepted must never be forgotten: if the local commit fails
(locked, full or unreachable database), the result is appended to this journal, a
JSON-lines file next to the database, written with ``O_APPEND`` and ``fsync`` (file
and, on creation, directory) before the caller is told "recorded in the journal".
The journal is folded into the database at the next start and by a background task
once the database answers again; folding is idempotent (the store ignores an upload
id it already has), so a crash mid-fold writes nothing twice. A torn last line (a
crash mid-append) was never acknowledged and is dropped; any other unreadable line
is moved to ``<journal>.rejected`` for an operator, never silently lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from ..errors import BreakerServiceError
from .jsonl import append_durably, fsync_directory, set_aside
from .model import UploadResult

__all__ = ["JournalError", "UploadJournal"]

logger = logging.getLogger("breaker_service.uploads")

_FIELDS = {f.name for f in fields(UploadResult)}


class JournalError(BreakerServiceError):
    """The journal could not be written (disk full, read-only, missing directory)."""


class UploadJournal:
    """Append-only, fsynced record of uploads not yet in the database."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.rejected_path = self.path.with_name(self.path.name + ".rejected")
        self._lock = asyncio.Lock()

    async def append(self, result: UploadResult) -> None:
        """Make ``result`` durable in the journal; ``JournalError`` if it cannot be."""
        line = json.dumps(_encode(result), separators=(",", ":")) + "\n"
        async with self._lock:
            try:
                await asyncio.to_thread(append_durably, self.path, line.encode())
            except OSError as exc:
                msg = f"upload journal {self.path} cannot be written: {exc.strerror or exc}"
                raise JournalError(msg) from None

    def pending(self) -> list[UploadResult]:
        """What the journal holds, oldest first (unreadable lines set aside)."""
        with self._locked() as fd:
            return self._read(fd)[0] if fd is not None else []

    def __len__(self) -> int:
        return len(self.pending())

    async def fold_into(self, record: Callable[[UploadResult], Awaitable[Any]]) -> int:
        """Write every journaled upload with ``record`` (idempotent), then forget them.

        Stops at the first failure and keeps the rest (and that one) for next time;
        returns how many were written.
        """
        async with self._lock:
            if not self.path.exists():
                return 0
            results = await asyncio.to_thread(self.pending)
            folded = 0
            try:
                for result in results:
                    await record(result)
                    folded += 1
            finally:
                if folded:
                    await asyncio.to_thread(self._forget, folded)
            if folded:
                logger.info(
                    "upload journal: %d upload(s) folded into the database", folded
                )
            return folded

    def _forget(self, count: int) -> None:
        """Drop the first ``count`` results; keep whatever was appended meanwhile."""
        with self._locked() as fd:
            if fd is None:
                return
            results, _ = self._read(fd)
            keep = results[count:]
            if not keep:
                self.path.unlink()
                return
            tmp = self.path.with_name(self.path.name + ".tmp")
            body = "".join(
                json.dumps(_encode(r), separators=(",", ":")) + "\n" for r in keep
            )
            tmp.write_text(body, encoding="utf-8")
            with tmp.open("rb") as stream:
                os.fsync(stream.fileno())
            tmp.replace(self.path)
            fsync_directory(self.path.parent)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[int | None]:
        """The journal's descriptor under an exclusive lock, or None if there is none."""
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            yield None
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)

    def _read(self, fd: int) -> tuple[list[UploadResult], int]:
        """Parse the journal; bad lines go to ``.rejected``; returns (results, set aside)."""
        with os.fdopen(os.dup(fd), "rb") as stream:
            data = stream.read()
        lines = data.split(b"\n")
        torn = lines.pop()  # b"" when the file ends with a newline
        if torn:
            logger.warning(
                "upload journal %s ends in a torn line (a crash mid-append); it was "
                "never acknowledged and is dropped",
                self.path,
            )
        results: list[UploadResult] = []
        bad: list[bytes] = []
        for raw in lines:
            if not raw.strip():
                continue
            try:
                results.append(_decode(json.loads(raw)))
            except (ValueError, TypeError, KeyError):
                bad.append(raw)
        if bad or torn:
            self._set_aside(bad)
            body = b"".join(
                json.dumps(_encode(r), separators=(",", ":")).encode() + b"\n"
                for r in results
            )
            os.ftruncate(fd, 0)
            os.pwrite(fd, body, 0)
            os.fsync(fd)
        return results, len(bad)

    def _set_aside(self, bad: list[bytes]) -> None:
        if not bad:
            return
        set_aside(self.rejected_path, bad)
        logger.error(
            "upload journal %s: %d unreadable line(s) set aside in %s",
            self.path,
            len(bad),
            self.rejected_path,
        )


def _encode(result: UploadResult) -> dict[str, Any]:
    data = asdict(result)
    data["providers_tried"] = list(result.providers_tried)
    return data


def _decode(data: dict[str, Any]) -> UploadResult:
    values = {k: v for k, v in data.items() if k in _FIELDS}
    values["providers_tried"] = tuple(values.get("providers_tried", ()))
    result = UploadResult(**values)
    if not isinstance(result.upload_id, str) or not isinstance(
        result.provider_file_id, str
    ):
        msg = "upload_id and provider_file_id must be strings"
        raise TypeError(msg)
    return result

"""``FileSource``: the file that was checked is the file that is hashed and sent.

Validation looks at a path; between that look and the upload (hashing, every retry
after a backoff) the path can be swapped for a symlink, a FIFO or another file.
So the validated file is opened once (``O_NOFOLLOW``: no symlink at the last
component; ``O_NONBLOCK``: a FIFO cannot hang the open), the handle is ``fstat``-ed
(a regular file with the device, inode and size that were validated, and one link
unless hard links are allowed), and every read (the hash, each attempt's body)
goes through that handle from offset 0, capped at the validated size. A file that
changed size or identity fails the upload clearly (``UploadRejected``, reason
``file_changed``). All file I/O runs in worker threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import stat
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Self

from ..errors import UploadRejected
from .validation import ValidatedFile

__all__ = ["CHUNK", "FileSource"]

CHUNK = 256 * 1024


class FileSource:
    """An open, verified handle on a validated file; an async context manager."""

    def __init__(self, file: ValidatedFile, fd: int) -> None:
        self.file = file
        self._fd = fd

    @property
    def filename(self) -> str:
        """The name sent to the provider."""
        return self.file.filename

    @property
    def size(self) -> int:
        """The validated size: exactly what is read and sent."""
        return self.file.size

    @classmethod
    async def open(cls, file: ValidatedFile, *, allow_hardlinks: bool = False) -> Self:
        """Open ``file`` once and prove it is the one validated (or ``UploadRejected``)."""
        fd = await asyncio.to_thread(_open_verified, file, allow_hardlinks)
        return cls(file, fd)

    async def sha256(self) -> str:
        """The SHA-256 of the validated bytes, read from the handle."""
        digest = hashlib.sha256()
        async for block in self.chunks():
            digest.update(block)
        return digest.hexdigest()

    async def chunks(self, size: int = CHUNK) -> AsyncIterator[bytes]:
        """The file's bytes from offset 0 (each call starts again: one per attempt)."""
        offset = 0
        while offset < self.size:
            want = min(size, self.size - offset)
            block = await asyncio.to_thread(os.pread, self._fd, want, offset)
            if not block:
                raise self._changed(f"it ended after {offset} of {self.size} bytes")
            offset += len(block)
            yield block
        await asyncio.to_thread(self._check_unchanged)

    def _check_unchanged(self) -> None:
        info = os.fstat(self._fd)
        if info.st_size != self.size:
            raise self._changed(
                f"it is now {info.st_size} bytes, {self.size} were validated"
            )

    def _changed(self, detail: str) -> UploadRejected:
        return UploadRejected(
            f"{self.filename} changed during the upload ({detail})",
            reason="file_changed",
            path=str(self.file.path),
        )

    def close(self) -> None:
        """Close the handle (idempotent)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _open_verified(file: ValidatedFile, allow_hardlinks: bool) -> int:
    shown = str(file.path)
    try:
        fd = os.open(file.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            reason, msg = "file_changed", f"{shown} was replaced by a symbolic link"
        elif exc.errno == errno.ENOENT:
            reason, msg = "file_changed", f"{shown} disappeared after validation"
        else:
            reason, msg = "unreadable", f"{shown} cannot be opened: {exc.strerror}"
        raise UploadRejected(msg, reason=reason, path=shown) from None
    try:
        _verify(fd, file, allow_hardlinks)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _verify(fd: int, file: ValidatedFile, allow_hardlinks: bool) -> None:
    shown = str(file.path)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        msg = f"{shown} is no longer a regular file (swapped for a device, socket or pipe)"
        raise UploadRejected(msg, reason="file_changed", path=shown)
    if file.inode >= 0 and (info.st_dev, info.st_ino) != (file.device, file.inode):
        msg = f"{shown} was replaced by another file after validation"
        raise UploadRejected(msg, reason="file_changed", path=shown)
    if info.st_size != file.size:
        msg = f"{shown} is now {info.st_size} bytes; {file.size} were validated"
        raise UploadRejected(msg, reason="file_changed", path=shown)
    if info.st_nlink > 1 and not allow_hardlinks:
        msg = (
            f"{shown} has {info.st_nlink} hard links: a link can make a file from "
            "outside UPLOAD_ALLOWED_DIRS look inside; set UPLOAD_ALLOW_HARDLINKS=true "
            "to allow it"
        )
        raise UploadRejected(msg, reason="hard_link", path=shown)
    os.set_blocking(fd, True)  # a regular file: plain blocking reads (in threads)

"""Durable JSON-lines files: the primitives both journals write with.

A line is appended under an exclusive ``flock`` with ``O_APPEND`` and ``fsync`` (and
the directory fsynced when the file is new), never glued onto a torn last line; lines
that cannot be read are set aside, fsynced, in a ``.rejected`` file an operator sees.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["append_durably", "fsync_directory", "set_aside"]


def append_durably(path: Path, data: bytes) -> None:
    """Append ``data`` (whole lines) to ``path`` and make it durable before returning."""
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data  # after a torn line: never glue onto it
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        fsync_directory(path.parent)


def set_aside(rejected: Path, lines: Sequence[bytes]) -> None:
    """Append unreadable ``lines`` to ``rejected``, fsynced (nothing is silently lost)."""
    if not lines:
        return
    with rejected.open("ab") as stream:
        for raw in lines:
            stream.write(raw + b"\n")
        stream.flush()
        os.fsync(stream.fileno())


def fsync_directory(directory: Path) -> None:
    """Make a new or renamed entry in ``directory`` durable."""
    with contextlib.suppress(OSError):  # some filesystems refuse fsync on directories
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

"""Path validation before any network call (the original Batch 4 security rules).

Containment is decided first, on the path as written (made absolute, ``..``
folded), before the file system is touched, so a path outside
``UPLOAD_ALLOWED_DIRS`` gets the same answer whether or not it exists. Then the
path is resolved (symlinks followed) and must still land inside an allowed
directory; it must be a readable, non-empty regular file within the size limit.
Anything else is ``UploadRejected`` with a reason, and no provider is called. What
is sent is read through ``FileSource`` (``source.py``), which opens the validated
file once and proves it is still the same file.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ..errors import UploadRejected

__all__ = [
    "ValidatedFile",
    "no_allowed_dirs",
    "sha256_of",
    "text_name",
    "validate_path",
]

NO_ALLOWED_DIRS = (
    "uploads of server paths are off: UPLOAD_ALLOWED_DIRS is not set "
    "(name the directories uploads may come from)"
)


@dataclass(frozen=True, slots=True)
class ValidatedFile:
    """A file that passed validation: its real path, name, size and identity."""

    path: Path
    filename: str
    size: int
    device: int = -1  # st_dev at validation (-1: unknown)
    inode: int = -1  # st_ino at validation


def _reject(reason: str, message: str, path: str | os.PathLike[str]) -> UploadRejected:
    return UploadRejected(message, reason=reason, path=str(path))


def no_allowed_dirs(path: str | os.PathLike[str] = "") -> UploadRejected:
    """The refusal when ``UPLOAD_ALLOWED_DIRS`` is unset: there is no default."""
    return _reject("no_allowed_dirs", NO_ALLOWED_DIRS, path)


def validate_path(
    path: str | os.PathLike[str], allowed_dirs: list[Path], max_bytes: int
) -> ValidatedFile:
    """Check ``path`` against the rules; return it resolved, or raise ``UploadRejected``."""
    shown = os.fspath(path)
    if "\x00" in shown:
        raise _reject(
            "invalid_path", "the path contains a NUL byte", shown.replace("\x00", "?")
        )
    if not allowed_dirs:
        raise no_allowed_dirs(shown)
    written = Path(os.path.abspath(Path(shown).expanduser()))
    if not _inside(written, allowed_dirs):
        raise _reject(
            "outside_allowed_dirs",
            f"{shown} is outside UPLOAD_ALLOWED_DIRS",
            shown,
        )
    try:
        real = Path(shown).expanduser().resolve(strict=True)
    except FileNotFoundError:
        raise _reject("not_found", f"no such file: {shown}", shown) from None
    except (OSError, RuntimeError) as exc:  # symlink loops, permission on a parent
        raise _reject(
            "invalid_path", f"cannot resolve {shown}: {exc.__class__.__name__}", shown
        ) from None
    if not _inside(real, allowed_dirs):
        raise _reject(
            "outside_allowed_dirs",
            f"{shown} resolves outside UPLOAD_ALLOWED_DIRS",
            shown,
        )
    info = real.stat()
    if stat.S_ISDIR(info.st_mode):
        raise _reject("not_a_file", f"{shown} is a directory", shown)
    if not stat.S_ISREG(info.st_mode):
        raise _reject(
            "not_a_file",
            f"{shown} is not a regular file (device, socket or pipe)",
            shown,
        )
    if not os.access(real, os.R_OK):
        raise _reject("unreadable", f"{shown} is not readable", shown)
    if info.st_size == 0:
        raise _reject("empty", f"{shown} is empty", shown)
    if info.st_size > max_bytes:
        raise _reject(
            "too_large",
            f"{shown} is {info.st_size} bytes; the limit is {max_bytes}",
            shown,
        )
    return ValidatedFile(
        path=real,
        filename=text_name(real.name),
        size=info.st_size,
        device=info.st_dev,
        inode=info.st_ino,
    )


def text_name(name: str) -> str:
    """``name`` as storable text: bytes that were not UTF-8 on disk become U+FFFD.

    Python keeps such bytes as lone surrogates, which no database, JSON reader or
    HTTP header accepts; the file is still opened by its real path.
    """
    return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in name)


def _inside(path: Path, allowed_dirs: list[Path]) -> bool:
    return any(path == d or path.is_relative_to(d) for d in allowed_dirs)


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    """The file's SHA-256, read in chunks (never whole)."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(chunk):
            digest.update(block)
    return digest.hexdigest()

"""Path validation before any network call (the original Batch 4 security rules).

The path is resolved (symlinks followed) and must land inside one of
``UPLOAD_ALLOWED_DIRS``; it must be a readable, non-empty regular file within the
size limit. Anything else is ``UploadRejected`` with a reason, and no provider is
called.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ..errors import UploadRejected

__all__ = ["ValidatedFile", "sha256_of", "validate_path"]


@dataclass(frozen=True, slots=True)
class ValidatedFile:
    """A file that passed validation: its real path, name and size."""

    path: Path
    filename: str
    size: int


def _reject(reason: str, message: str, path: str | os.PathLike[str]) -> UploadRejected:
    return UploadRejected(message, reason=reason, path=str(path))


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
        raise _reject(
            "outside_allowed_dirs", "no UPLOAD_ALLOWED_DIRS are configured", shown
        )
    try:
        real = Path(shown).expanduser().resolve(strict=True)
    except FileNotFoundError:
        raise _reject("not_found", f"no such file: {shown}", shown) from None
    except (OSError, RuntimeError) as exc:  # symlink loops, permission on a parent
        raise _reject(
            "invalid_path", f"cannot resolve {shown}: {exc.__class__.__name__}", shown
        ) from None
    if not any(real == d or real.is_relative_to(d) for d in allowed_dirs):
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
    return ValidatedFile(path=real, filename=real.name, size=info.st_size)


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    """The file's SHA-256, read in chunks (never whole)."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(chunk):
            digest.update(block)
    return digest.hexdigest()

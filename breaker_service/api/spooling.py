"""Files sent in a request, written under the spool directory before they are uploaded.

The orchestrator uploads paths inside ``UPLOAD_ALLOWED_DIRS``; a file that arrives in
a multipart body is copied there first, under a safe name and within the largest
provider's limit, so it goes through the same validation as any other path.
"""

from __future__ import annotations

import re
from pathlib import Path

from starlette.datastructures import UploadFile

from ..config import Settings
from ..errors import UploadRejected
from ..uploads import UploadOrchestrator
from ..uploads.validation import no_allowed_dirs

__all__ = ["largest_limit", "safe_name", "spool_root", "spool_upload"]

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_CHUNK = 1 << 20


def spool_root(
    settings: Settings, orchestrator: UploadOrchestrator, file_name: str = ""
) -> Path:
    """``UPLOAD_SPOOL_DIR``, or ``.spool`` in the first allowed directory (created).

    With no allowed directory there is nowhere to upload from: the ``no_allowed_dirs``
    refusal, naming ``file_name``.
    """
    if settings.upload_spool_dir:
        root = Path(settings.upload_spool_dir)
    elif orchestrator.allowed_dirs:
        root = orchestrator.allowed_dirs[0] / ".spool"
    else:
        raise no_allowed_dirs(file_name)
    root.mkdir(parents=True, exist_ok=True)
    return root


def largest_limit(orchestrator: UploadOrchestrator) -> int:
    """The largest file any configured provider accepts."""
    return max(p.max_bytes for p in orchestrator.providers.values())


def safe_name(filename: str | None) -> str:
    """The client's file name reduced to ``[A-Za-z0-9._-]`` (never a path)."""
    return _SAFE_NAME.sub("_", Path(filename or "upload").name).strip("._") or "upload"


async def spool_upload(file: UploadFile, folder: Path, limit: int) -> Path:
    """Write the request's file into ``folder`` under a safe name, within ``limit``.

    A file no provider accepts is refused (413) before it is fully written.
    """
    target = folder / safe_name(file.filename)
    size = 0
    with target.open("wb") as out:
        while chunk := await file.read(_CHUNK):
            size += len(chunk)
            if size > limit:
                msg = f"the upload exceeds the largest provider limit of {limit} bytes"
                raise UploadRejected(msg, reason="too_large")
            out.write(chunk)
    return target

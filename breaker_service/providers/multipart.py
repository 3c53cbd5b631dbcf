"""``MultipartStream``: a ``multipart/form-data`` body streamed from an ``UploadBody``.

httpx's multipart encoder reads file objects synchronously, on the event loop, and
by whatever the object does when read. The upload must send the bytes of the one
verified handle (``uploads.source.FileSource``), read in worker threads: so the few
bytes of form framing are written here around the body's async chunks, with an
exact ``Content-Length``.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

from .base import UploadBody

__all__ = ["MultipartStream"]


def _quoted(value: str) -> str:
    """A header parameter value, escaped as browsers and httpx do (HTML5 rules).

    A name that was not valid UTF-8 on disk (surrogate escapes) is sent with each
    undecodable byte as U+FFFD: the header is UTF-8, whatever the file system held.
    """
    text = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in value)
    return text.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


class MultipartStream:
    """The ``purpose`` field and the ``file`` part, framed around ``body``'s bytes."""

    def __init__(self, body: UploadBody, *, filename: str, purpose: str) -> None:
        self._body = body
        boundary = secrets.token_hex(16)
        self.content_type = f"multipart/form-data; boundary={boundary}"
        self._head = (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="purpose"\r\n\r\n'
            f"{purpose}\r\n"
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; '
            f'filename="{_quoted(filename)}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        self._tail = f"\r\n--{boundary}--\r\n".encode()
        self.length = len(self._head) + body.size + len(self._tail)

    async def stream(self) -> AsyncIterator[bytes]:
        """The whole body, from the start (httpx asks again on each attempt)."""
        yield self._head
        async for block in self._body.chunks():
            yield block
        yield self._tail

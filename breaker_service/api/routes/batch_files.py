"""``POST /uploads/batch/files``: the multipart variant of the batch, several files sent.

Each ``files`` part is spooled under the spool directory (safe name, the largest
provider's limit), then the spooled paths go through ``upload_many`` exactly as
``POST /uploads/batch`` does: bounded concurrency, one answer per item in the order
the files were sent (or one NDJSON line per finished item with ``?stream=true``),
the wait for an open breaker within ``UPLOAD_BATCH_DEADLINE``. Items name the
client's file name and its index, never the server's spool path.

The form is parsed with explicit limits (files, fields, field size); the body as a
whole is capped by ``BodyGuard`` before any byte is read.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.datastructures import FormData, UploadFile

from ...errors import BreakerServiceError, UploadRejected
from ...uploads import BatchItem, UploadOrchestrator
from ...uploads.orchestrator import Progress
from ..dependencies import OrchestratorDep, SettingsDep, Writer
from ..openapi import AUTHENTICATED, WITH_BODY, problem_responses
from ..problems import InvalidQuery, problem_document
from ..spooling import largest_limit, safe_name, spool_root, spool_upload
from .batch import ndjson_progress, summary

__all__ = ["MAX_BATCH_FILES", "router"]

router = APIRouter(tags=["uploads"], responses=problem_responses(*AUTHENTICATED))

MAX_BATCH_FILES = 20
"""Files per multipart request: more is several requests (each is spooled first)."""

_MAX_FIELDS = 8  # provider, purpose, concurrency, force, and some slack
_FIELD_BYTES = 1024  # a text field is a name or a number

_FORM_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "minItems": 1,
                            "maxItems": MAX_BATCH_FILES,
                        },
                        "provider": {"type": "string", "maxLength": 100},
                        "purpose": {"type": "string", "maxLength": 100},
                        "concurrency": {"type": "integer", "minimum": 1, "maximum": 32},
                        "force": {"type": "boolean"},
                    },
                }
            }
        },
    }
}


@dataclass(frozen=True, slots=True)
class _Form:
    """The form's fields, checked."""

    files: list[UploadFile]
    provider: str | None
    purpose: str | None
    concurrency: int | None
    force: bool


@dataclass(slots=True)
class _Sent:
    """One file of the request: its index, the client's name, where it was spooled."""

    index: int
    filename: str
    path: Path | None = None
    refused: BreakerServiceError | None = None

    def answer(self, item: BatchItem | None) -> dict[str, Any]:
        head: dict[str, Any] = {"index": self.index, "filename": self.filename}
        error = self.refused if item is None else item.error
        if item is not None and item.result is not None:
            return head | {"ok": True, "result": item.result.as_dict()}
        assert error is not None
        return head | {"ok": False, "problem": problem_document(error)}


@router.post(
    "/uploads/batch/files",
    response_model=None,
    openapi_extra=_FORM_SCHEMA,
    responses={
        200: {"content": {"application/x-ndjson": {"schema": {"type": "string"}}}},
        **problem_responses(*WITH_BODY, 503),
    },
)
async def upload_batch_files(
    request: Request,
    _who: Writer,
    settings: SettingsDep,
    orchestrator: OrchestratorDep,
    stream: Annotated[bool, Query(description="NDJSON, one line per item")] = False,
) -> dict[str, Any] | StreamingResponse:
    """Upload each sent file; one answer per file (result or problem)."""
    form_data = await request.form(
        max_files=MAX_BATCH_FILES, max_fields=_MAX_FIELDS, max_part_size=_FIELD_BYTES
    )
    folder: Path | None = None
    try:
        form = _checked(form_data)
        folder = Path(
            tempfile.mkdtemp(prefix="batch-", dir=spool_root(settings, orchestrator))
        )
        sent = await _spool_all(form.files, folder, largest_limit(orchestrator))
    except BaseException:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        await form_data.close()
    batch = _Batch(orchestrator, form, sent, folder)
    if stream:
        return StreamingResponse(batch.lines(), media_type="application/x-ndjson")
    items = await batch.answers()
    return {"items": items, **summary(items)}


def _checked(form: FormData) -> _Form:
    """The form's fields, or 422 naming the one that is wrong."""
    files = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
    if not files or len(files) != len(form.getlist("files")):
        raise InvalidQuery("'files' must hold one or more files")
    unknown = set(form.keys()) - {
        "files",
        "provider",
        "purpose",
        "concurrency",
        "force",
    }
    if unknown:
        raise InvalidQuery(f"unknown form field {sorted(unknown)[0]!r}")
    concurrency = _text(form, "concurrency")
    if concurrency is not None and not (
        concurrency.isdecimal() and 1 <= int(concurrency) <= 32
    ):
        raise InvalidQuery("'concurrency' must be a whole number from 1 to 32")
    force = (_text(form, "force") or "false").lower()
    if force not in {"true", "false", "1", "0"}:
        raise InvalidQuery("'force' must be true or false")
    return _Form(
        files=files,
        provider=_text(form, "provider"),
        purpose=_text(form, "purpose"),
        concurrency=int(concurrency) if concurrency is not None else None,
        force=force in {"true", "1"},
    )


def _text(form: FormData, name: str) -> str | None:
    values = form.getlist(name)
    if not values:
        return None
    value = values[-1]
    if not isinstance(value, str) or len(value) > 100:
        raise InvalidQuery(f"'{name}' must be a text of at most 100 characters")
    return value or None


async def _spool_all(files: list[UploadFile], folder: Path, limit: int) -> list[_Sent]:
    """Each file into its own sub-folder (two files may share a name)."""
    sent: list[_Sent] = []
    for index, file in enumerate(files):
        item = _Sent(index, safe_name(file.filename))
        place = folder / str(index)
        place.mkdir()
        try:
            item.path = await spool_upload(file, place, limit)
        except UploadRejected as exc:
            item.refused = exc
        sent.append(item)
    return sent


class _Batch:
    """The spooled files through ``upload_many``; the spool is removed when it ends."""

    def __init__(
        self,
        orchestrator: UploadOrchestrator,
        form: _Form,
        sent: list[_Sent],
        folder: Path,
    ) -> None:
        self.orchestrator = orchestrator
        self.form = form
        self.sent = sent
        self.folder = folder
        self.by_path = {str(s.path): s for s in sent if s.path is not None}

    async def run(self, progress: Progress | None = None) -> list[BatchItem]:
        try:
            return await self.orchestrator.upload_many(
                list(self.by_path),
                concurrency=self.form.concurrency,
                provider=self.form.provider,
                purpose=self.form.purpose,
                force=self.form.force,
                progress=progress,
            )
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    async def answers(self) -> list[dict[str, Any]]:
        """Every file's answer, in the order the files were sent."""
        done = {item.path: item for item in await self.run()}
        return [s.answer(done.get(str(s.path))) for s in self.sent]

    async def lines(self) -> AsyncIterator[bytes]:
        """Refused files first, then one line per file as it finishes."""
        refused = [s.answer(None) for s in self.sent if s.refused is not None]
        for answer in refused:
            yield (json.dumps(answer) + "\n").encode()
        async for line in ndjson_progress(
            self.run,
            len(self.by_path),
            lambda item: self.by_path[item.path].answer(item),
            already=refused,
        ):
            yield line

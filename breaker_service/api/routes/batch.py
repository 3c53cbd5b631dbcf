"""``POST /uploads/batch``: many server-side files through the same orchestrator.

The batch is ``upload_many``: bounded concurrency, the same validation and auth as
single uploads, one answer per item (its result, or its problem+json document),
and the wait for an open breaker within ``UPLOAD_BATCH_DEADLINE`` when no other
provider can take the files. With ``?stream=true`` the answer is NDJSON: one line
per finished item, in the order they finish, then a summary line, so a client can
show progress.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from ...uploads import BatchItem, UploadOrchestrator
from ...uploads.orchestrator import Progress
from ..dependencies import OrchestratorDep, Writer
from ..openapi import AUTHENTICATED, WITH_BODY, problem_responses
from ..problems import problem_document

__all__ = [
    "MAX_BATCH_ITEMS",
    "BatchByPaths",
    "answer",
    "ndjson_progress",
    "router",
    "summary",
]

router = APIRouter(tags=["uploads"], responses=problem_responses(*AUTHENTICATED))

MAX_BATCH_ITEMS = 100
"""Paths per request: a bigger batch is several requests (bounded work per request)."""


class BatchByPaths(BaseModel):
    """Files already on the server, inside ``UPLOAD_ALLOWED_DIRS``."""

    paths: list[Annotated[str, Field(min_length=1, max_length=4096)]] = Field(
        min_length=1, max_length=MAX_BATCH_ITEMS
    )
    provider: str | None = Field(None, max_length=100)
    purpose: str | None = Field(None, max_length=100)
    force: bool = False
    concurrency: int | None = Field(None, ge=1, le=32)


def answer(item: BatchItem) -> dict[str, Any]:
    """One item's line: its result, or its problem+json document."""
    if item.result is not None:
        return {"path": item.path, "ok": True, "result": item.result.as_dict()}
    assert item.error is not None
    return {"path": item.path, "ok": False, "problem": problem_document(item.error)}


def summary(items: list[dict[str, Any]]) -> dict[str, int]:
    """How many items uploaded and how many failed."""
    uploaded = sum(1 for i in items if i["ok"])
    return {"uploaded": uploaded, "failed": len(items) - uploaded}


@router.post(
    "/uploads/batch",
    response_model=None,
    responses={
        200: {"content": {"application/x-ndjson": {"schema": {"type": "string"}}}},
        **problem_responses(*WITH_BODY),
    },
)
async def upload_batch(
    body: BatchByPaths,
    _who: Writer,
    orchestrator: OrchestratorDep,
    stream: Annotated[bool, Query(description="NDJSON, one line per item")] = False,
) -> dict[str, Any] | StreamingResponse:
    """Upload each path; one answer per item (result or problem), never all-or-nothing."""
    if stream:
        return StreamingResponse(
            _ndjson(orchestrator, body), media_type="application/x-ndjson"
        )
    items = [answer(i) for i in await _run(orchestrator, body)]
    return {"items": items, **summary(items)}


async def _run(
    orchestrator: UploadOrchestrator,
    body: BatchByPaths,
    progress: Progress | None = None,
) -> list[BatchItem]:
    return await orchestrator.upload_many(
        body.paths,
        concurrency=body.concurrency,
        provider=body.provider,
        purpose=body.purpose,
        force=body.force,
        progress=progress,
    )


async def _ndjson(
    orchestrator: UploadOrchestrator, body: BatchByPaths
) -> AsyncIterator[bytes]:
    async for line in ndjson_progress(
        lambda progress: _run(orchestrator, body, progress), len(body.paths), answer
    ):
        yield line


async def ndjson_progress(
    run: Callable[[Progress], Coroutine[Any, Any, list[BatchItem]]],
    count: int,
    describe: Callable[[BatchItem], dict[str, Any]],
    already: Sequence[dict[str, Any]] = (),
) -> AsyncIterator[bytes]:
    """Lines as items finish; the batch runs in a task the stream waits on.

    A client that goes away does not cancel the batch: uploads in flight finish and
    are recorded (cancelling one after the provider stored it would orphan it).
    ``already`` holds lines the caller sent before (items refused up front); they
    count in the summary.
    """
    finished: asyncio.Queue[BatchItem] = asyncio.Queue()
    task = asyncio.create_task(
        run(lambda _done, _total, item: finished.put_nowait(item))
    )
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)
    answers: list[dict[str, Any]] = list(already)
    for _ in range(count):
        line = describe(await finished.get())
        answers.append(line)
        yield (json.dumps(line) + "\n").encode()
    await task
    yield (json.dumps({"summary": summary(answers)}) + "\n").encode()


_RUNNING: set[asyncio.Task[list[BatchItem]]] = set()
"""Batches whose client may have gone: held until they finish."""

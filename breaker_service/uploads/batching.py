"""Batches: many uploads with bounded concurrency, one answer per file.

One failure never fails the batch. A file that meets an open breaker with no other
provider to take it waits for the breaker's ``retry_after`` and tries again, as
long as that fits in the batch's deadline; a forced-open breaker is an operator's
decision and is not waited for.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from ..clock import Clock
from ..errors import CircuitOpenError
from .model import UploadResult

__all__ = ["BatchItem", "Progress", "Waiting", "run_batch"]


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One file of ``upload_many``: its result or its error."""

    path: str
    result: UploadResult | None = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        """Whether this file was uploaded."""
        return self.result is not None


Progress = Callable[[int, int, BatchItem], None]
Waiting = Callable[[str, float], None]
"""Told ``(breaker, seconds)`` when a batch waits for an open breaker."""

_MIN_PAUSE = 0.05  # a breaker about to half-open: look again shortly, never spin


async def run_batch(
    upload: Callable[[str | os.PathLike[str]], Awaitable[UploadResult]],
    paths: Sequence[str | os.PathLike[str]],
    *,
    concurrency: int,
    clock: Clock,
    deadline: float,
    progress: Progress | None = None,
    waiting: Waiting | None = None,
) -> list[BatchItem]:
    """``upload`` each path, ``concurrency`` at a time, within ``deadline`` seconds."""
    limit = asyncio.Semaphore(max(1, concurrency))
    total = len(paths)
    done = 0
    ends = clock.monotonic() + deadline

    async def one(path: str | os.PathLike[str]) -> BatchItem:
        nonlocal done
        async with limit:
            while True:
                try:
                    item = BatchItem(os.fspath(path), result=await upload(path))
                except CircuitOpenError as exc:
                    pause = _pause_for(exc, ends - clock.monotonic())
                    if pause is None:
                        item = BatchItem(os.fspath(path), error=exc)
                    else:
                        if waiting is not None:
                            waiting(exc.breaker, pause)
                        await clock.sleep(pause)
                        continue
                except Exception as exc:  # noqa: BLE001 - reported per file, never fatal
                    item = BatchItem(os.fspath(path), error=exc)
                break
        done += 1
        if progress is not None:
            progress(done, total, item)
        return item

    return list(await asyncio.gather(*(one(p) for p in paths)))


def _pause_for(refused: CircuitOpenError, left: float) -> float | None:
    """How long to wait for an open breaker before retrying, or None: fail now."""
    if refused.state == "forced_open":
        return None
    pause = max(refused.retry_after, _MIN_PAUSE)
    return pause if pause <= left else None

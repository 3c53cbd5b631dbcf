"""A transition's commit waits for its own batch, not for the buffer to run dry."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

from breaker_service.events import MemoryEventLog, TransitionRecord
from breaker_service.events.model import OutcomeRow, Snapshot
from breaker_service.events.recorder import EventRecorder


class SlowLog(MemoryEventLog):
    """A memory log whose every append takes a while, like a busy database."""

    async def append(
        self,
        outcomes: Sequence[OutcomeRow] = (),
        transitions: Sequence[TransitionRecord] = (),
        snapshots: Sequence[Snapshot] = (),
        *,
        want_ids: bool = True,
    ) -> dict[str, int]:
        await asyncio.sleep(0.02)
        return await super().append(outcomes, transitions, snapshots, want_ids=want_ids)


async def test_commit_returns_once_its_batch_is_written_under_steady_traffic() -> None:
    """Callers keep refilling the buffer; the trip is committed in well under the timeout."""
    recorder = EventRecorder(SlowLog(), batch_size=100, commit_timeout=1.0)
    keep_going = True

    async def traffic() -> None:
        at = 1.0
        while keep_going:
            recorder.buffer.extend(
                ("glm", "success", 0, at, None, None, None, 1) for _ in range(150)
            )
            at += 1
            await asyncio.sleep(0.005)

    feeder = asyncio.create_task(traffic())
    await asyncio.sleep(0.05)
    record = TransitionRecord(
        "kimi", "closed", "open", 1, 2.0, "5 consecutive failures", None, 60.0
    )
    started = time.perf_counter()
    committed = await recorder.commit_transition(record)
    waited = time.perf_counter() - started
    keep_going = False
    feeder.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await feeder
    await recorder.aclose()
    assert committed is True
    assert waited < 0.5, f"waited {waited:.2f}s for a flush that never ran dry"
    assert any(e.kind == "transition" for e in recorder.log.events)  # type: ignore[attr-defined]

"""Helpers for the fleet tests: replica processes, the flaky provider, log queries.

A replica is ``tests/scripts/replica.py`` in its own OS process, driven by JSON
lines over stdin/stdout (see that script). Every wait here has a timeout, and
``fleet`` kills whatever is still running when it exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from breaker_service.events.schema import breaker_events as E  # noqa: N812
from breaker_service.events.sql import create_engine
from breaker_service.migrate import upgrade
from breaker_service.providers.flaky import (
    FaultConfig,
    FlakyProvider,
    create_app,
    serve_in_thread,
)

__all__ = [
    "REPLY_TIMEOUT",
    "START_TIMEOUT",
    "ReplicaProcess",
    "TransitionRow",
    "flaky_provider",
    "fleet",
    "outcome_totals",
    "percentile",
    "start_replica",
    "transition_rows",
]

SCRIPT = Path(__file__).parent / "scripts" / "replica.py"
START_TIMEOUT = 60.0  # seconds: a child imports everything and may wait to migrate
REPLY_TIMEOUT = 15.0  # seconds any one command may take
_LINE_LIMIT = 1 << 20


@dataclass
class ReplicaProcess:
    """One replica process and its pipes; ``stderr`` is a file (it never blocks)."""

    label: str
    process: asyncio.subprocess.Process
    stderr: Path
    ready: dict[str, Any] = field(default_factory=dict)

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the replica's stderr, for assertion messages."""
        try:
            return self.stderr.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    async def send(self, command: dict[str, Any]) -> None:
        """Write one command without waiting for its answer."""
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write((json.dumps(command) + "\n").encode())
        await stdin.drain()

    async def receive(self, within: float = REPLY_TIMEOUT) -> dict[str, Any]:
        """The next answer line; fails with the replica's log if none comes in time."""
        stdout = self.process.stdout
        assert stdout is not None
        try:
            line = await asyncio.wait_for(stdout.readline(), within)
        except TimeoutError:
            msg = f"replica {self.label} did not answer within {within}s\n{self.log_tail()}"
            raise AssertionError(msg) from None
        if not line:
            msg = f"replica {self.label} exited ({self.process.returncode})\n{self.log_tail()}"
            raise AssertionError(msg)
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            msg = f"replica {self.label} failed: {answer['error']}\n{self.log_tail()}"
            raise AssertionError(msg)
        return answer

    async def request(
        self, command: dict[str, Any], within: float = REPLY_TIMEOUT
    ) -> dict[str, Any]:
        """Send one command and wait (up to ``within`` seconds) for its answer."""
        await self.send(command)
        return await self.receive(within)

    async def wait_state(
        self, state: str, version: int | None = None, within: float = 5.0
    ) -> dict[str, Any]:
        """Ask the replica to wait for ``state``; fail if it does not get there."""
        answer = await self.request(
            {
                "op": "wait_state",
                "state": state,
                "version": version,
                "timeout": within,
            },
            within + REPLY_TIMEOUT,
        )
        assert answer["reached"], (
            f"replica {self.label} stayed {answer['state']} v{answer['version']} "
            f"(wanted {state} v{version})\n{self.log_tail()}"
        )
        return answer

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, leases left behind."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)

    async def stop(self, within: float = 10.0) -> None:
        """Ask the replica to quit (it flushes and closes); kill it if it will not."""
        if self.process.returncode is None:
            with contextlib.suppress(OSError, AssertionError, TimeoutError):
                await self.send({"op": "quit"})
                await asyncio.wait_for(self.process.wait(), within)
        self.kill()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.process.wait(), within)


async def start_replica(
    config: dict[str, Any], directory: Path, *, within: float = START_TIMEOUT
) -> ReplicaProcess:
    """Start a replica with ``config`` and wait for its ready line."""
    label = str(config["instance_id"])
    stderr = directory / f"{label}.stderr"
    with stderr.open("wb") as err:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SCRIPT),
            json.dumps(config),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            cwd=directory,
            limit=_LINE_LIMIT,
        )
    replica = ReplicaProcess(label, process, stderr)
    try:
        replica.ready = await replica.receive(within)
    except BaseException:
        await replica.stop(within=1.0)
        raise
    assert replica.ready.get("ready"), replica.ready
    return replica


@contextlib.asynccontextmanager
async def fleet(
    url: str, count: int, directory: Path, *, premigrate: bool = True, **config: Any
) -> AsyncIterator[list[ReplicaProcess]]:
    """``count`` replicas started together (ids ``r0``..), stopped or killed after.

    With ``premigrate`` the schema is created first, so the replicas take the fast
    start-up path; without it they race to migrate the empty database themselves.
    """
    if premigrate:
        engine = create_engine(url)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()
    started: list[ReplicaProcess] = []

    async def one(i: int) -> None:
        started.append(
            await start_replica(
                {
                    "url": url,
                    "instance_id": f"r{i}-proc",
                    "replica_id": f"r{i}",
                    **config,
                },
                directory,
            )
        )

    try:
        await asyncio.gather(*(one(i) for i in range(count)))
        started.sort(key=lambda r: r.label)
        yield started
    finally:
        await asyncio.gather(*(r.stop() for r in started))


@contextlib.contextmanager
def flaky_provider(
    config: FaultConfig | None = None,
) -> Iterator[tuple[FlakyProvider, str]]:
    """The fault-injecting provider on a real port; its ``stats`` count requests."""
    provider = FlakyProvider(config)
    with serve_in_thread(create_app(provider)) as url:
        yield provider, url


@dataclass(frozen=True, slots=True)
class TransitionRow:
    """A stored transition."""

    id: int
    from_state: str
    to_state: str
    version: int
    instance_id: str
    stream: str


async def transition_rows(url: str, breaker: str) -> list[TransitionRow]:
    """Every stored transition of ``breaker`` (all streams), in id order."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(
                    E.c.id,
                    E.c.from_state,
                    E.c.to_state,
                    E.c.state_version,
                    E.c.instance_id,
                    E.c.stream,
                )
                .where(E.c.breaker == breaker, E.c.kind == "transition")
                .order_by(E.c.id)
            )
            return [
                TransitionRow(int(i), str(f), str(t), int(v), str(inst), str(s))
                for i, f, t, v, inst, s in rows
            ]
    finally:
        await engine.dispose()


async def outcome_totals(url: str, breaker: str) -> dict[str, int]:
    """Outcome events of ``breaker`` per kind, counting coalesced rows by ``count``."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(E.c.kind, func.sum(E.c.count))
                .where(E.c.breaker == breaker, E.c.kind != "transition")
                .group_by(E.c.kind)
            )
            return {str(kind): int(total) for kind, total in rows}
    finally:
        await engine.dispose()


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]

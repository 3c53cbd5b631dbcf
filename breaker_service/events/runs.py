"""Outcome runs: a breaker's consecutive equal outcomes kept as one counted row.

Between two flushes each breaker appends its outcomes to a ``RunLog``: a call equal
to the open run (same kind, state version, detail, status and wall-clock second)
only bumps its count and last time, so a flush writes one row per run, not per
call, and the rows written per second follow the flush rate, not the call rate.
A run's ``at`` and ``last_at`` are its first and last call; ``duration`` is the
total of its timed calls. Runs never span a second, so a time-based window replays
into the same one-second buckets.

Memory is bounded per breaker whatever the call rate or the writer's speed: past
``limit`` closed runs the log compacts itself (``compact``): the older runs of each
state version merge per (outcome, second) in an order that keeps what replay reads
(totals, the trailing failures, the half-open successes, per-second buckets), and
the newest runs holding ``keep_calls`` calls (a count window's size) stay as they
were; seconds a time window can still see stay apart. Counts stay exact; only the
order inside a merged second, and the seconds no window reads, are given up. The
bound: ``limit`` runs, plus a count window's calls, plus a time window's seconds
times the distinct outcomes in them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .model import KIND_SUCCESS, OutcomeRow

__all__ = ["RUNS_MAX", "RunLog", "coalesce", "compact", "is_ok"]

RUNS_MAX = 1024
"""Closed runs a breaker keeps between flushes before it compacts them."""

_NEVER_FROM = float("inf")
_NEVER_UNTIL = float("-inf")


def is_ok(row: OutcomeRow) -> bool:
    """Whether a run's calls count as good (a success that was not slow)."""
    return row[1] == KIND_SUCCESS and row[4] != "slow"


class RunLog:
    """One breaker's outcomes since the last flush: closed runs and the open one.

    The hot path of a plain CLOSED success reads ``ok_from``/``ok_until`` (the
    second the open run covers, when it is a plain success of the current version)
    and bumps ``count`` and ``last``; everything else goes through ``add``.
    """

    __slots__ = (
        "_next_compaction",
        "at",
        "closed",
        "count",
        "detail",
        "duration",
        "keep",
        "keep_calls",
        "keep_seconds",
        "kind",
        "last",
        "limit",
        "merged",
        "name",
        "ok_from",
        "ok_until",
        "status",
        "version",
    )

    def __init__(
        self,
        name: str,
        *,
        limit: int = RUNS_MAX,
        keep_calls: int = 0,
        keep_seconds: int = 0,
        keep: bool = True,
    ) -> None:
        self.name = name
        self.limit = limit
        self.keep_calls = keep_calls  # a count window's size: its calls keep order
        self.keep_seconds = keep_seconds  # a time window's span: its seconds stay apart
        self.keep = keep  # False: a breaker without a recorder; runs are dropped
        self.closed: list[OutcomeRow] = []
        self.merged = 0  # runs merged away by compaction, for health and tests
        self._next_compaction = max(limit, 2 * keep_calls + 2)
        self.kind = KIND_SUCCESS
        self.version = 0
        self.at = 0.0
        self.last = 0.0
        self.detail: str | None = None
        self.status: int | None = None
        self.duration: float | None = None
        self.count = 0
        self.ok_from = _NEVER_FROM
        self.ok_until = _NEVER_UNTIL

    def __len__(self) -> int:
        """Rows waiting: closed runs and the open one."""
        return len(self.closed) + (1 if self.count else 0)

    def add(  # noqa: PLR0917 - the fields of an outcome, as the breaker has them
        self,
        kind: str,
        version: int,
        at: float,
        detail: str | None = None,
        status: int | None = None,
        duration: float | None = None,
        *,
        current: bool = False,
    ) -> None:
        """Count one call: into the open run if it is equal, else as a new run.

        ``current``: the call is of the breaker's current state version, so further
        plain successes may take the hot path into this run.
        """
        if (
            self.count
            and kind == self.kind
            and version == self.version
            and detail == self.detail
            and status == self.status
            and int(self.at) == int(at)
            and at >= self.last
        ):
            self.count += 1
            self.last = at
            if duration is not None:
                self.duration = (self.duration or 0.0) + duration
            return
        self._close()
        self.kind, self.version, self.detail, self.status = (
            kind,
            version,
            detail,
            status,
        )
        self.at = self.last = at
        self.duration = duration
        self.count = 1
        if current and kind == KIND_SUCCESS and detail is None and status is None:
            second = int(at)
            self.ok_from, self.ok_until = float(second), float(second + 1)
        else:
            self.ok_from, self.ok_until = _NEVER_FROM, _NEVER_UNTIL

    def fence(self) -> None:
        """The state version moved on: no more hot-path calls into the open run."""
        self.ok_from, self.ok_until = _NEVER_FROM, _NEVER_UNTIL

    def _close(self) -> None:
        if not self.count:
            return
        if self.keep:
            self.closed.append(
                (
                    self.name,
                    self.kind,
                    self.version,
                    self.at,
                    self.detail,
                    self.status,
                    self.duration,
                    self.count,
                    self.last if self.last != self.at else None,
                )
            )
            if len(self.closed) > self._next_compaction:
                self._compact()
        self.count = 0

    def _compact(self) -> None:
        before = len(self.closed)
        self.closed = compact(
            self.closed, self.keep_calls, self.limit // 2, self.keep_seconds
        )
        self.merged += before - len(self.closed)
        self._next_compaction = max(
            self.limit, 2 * self.keep_calls + 2, 2 * len(self.closed)
        )

    def drain(self) -> list[OutcomeRow]:
        """Close the open run and hand over every run (the flush writes them)."""
        self._close()
        self.fence()
        rows, self.closed = self.closed, []
        self._next_compaction = max(self.limit, 2 * self.keep_calls + 2)
        return rows


def compact(
    rows: list[OutcomeRow], keep_calls: int, target: int, keep_seconds: int = 0
) -> list[OutcomeRow]:
    """Merge one breaker's older runs so that replay folds them to the same state.

    Runs are taken in stretches of one state version (their order with transitions
    is kept). In each, the newest runs holding ``keep_calls`` calls stay as they
    are (a count window reads them); the older ones merge per (kind, detail,
    status, second), seconds in order, good calls last in each second up to the
    stretch's last good call and the failures after it merged behind: totals,
    trailing failures, half-open successes and per-second buckets fold the same.
    If that leaves more than ``target`` rows, runs older than ``keep_seconds``
    (a time window's duration) before the stretch's newest second merge across
    seconds too: a time window forgets those seconds anyway by the stretch's end.
    Exact as long as the wall clock does not step back within a stretch.
    """
    out: list[OutcomeRow] = []
    for stretch in _stretches(rows):
        head, tail = _split_tail(stretch, keep_calls)
        out.extend(_merge(head, by_second=True))
        out.extend(tail)
    if len(out) <= target:
        return out
    coarse: list[OutcomeRow] = []
    for stretch in _stretches(out):
        head, tail = _split_tail(stretch, keep_calls)
        horizon = int(stretch[-1][3]) - keep_seconds
        cut = 0
        while cut < len(head) and int(head[cut][3]) < horizon:
            cut += 1
        coarse.extend(_merge(head[:cut], by_second=False))
        coarse.extend(head[cut:])
        coarse.extend(tail)
    return coarse


def _stretches(rows: list[OutcomeRow]) -> Iterator[list[OutcomeRow]]:
    """Maximal runs of rows with one state version, in order."""
    start = 0
    for i in range(1, len(rows) + 1):
        if i == len(rows) or rows[i][2] != rows[start][2]:
            yield rows[start:i]
            start = i


def _split_tail(
    rows: list[OutcomeRow], keep_calls: int
) -> tuple[list[OutcomeRow], list[OutcomeRow]]:
    """(older rows, newest rows holding at least ``keep_calls`` calls)."""
    cut, calls = len(rows), 0
    while cut > 0 and calls < keep_calls:
        cut -= 1
        calls += rows[cut][7]
    return rows[:cut], rows[cut:]


def _merge(rows: list[OutcomeRow], *, by_second: bool) -> list[OutcomeRow]:
    """Merge one version's runs: up to the last good call, then the failures after."""
    last_ok = max((i for i, r in enumerate(rows) if is_ok(r)), default=-1)
    return _group(rows[: last_ok + 1], by_second=by_second) + _group(
        rows[last_ok + 1 :], by_second=by_second
    )


def _group(rows: list[OutcomeRow], *, by_second: bool) -> list[OutcomeRow]:
    """Equal runs summed; ordered by second, then failures before good calls."""
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for row in rows:
        name, kind, version, at, detail, status, duration, count, last = row
        second = int(at) if by_second else 0
        key = (second, is_ok(row), kind, detail, status)
        end = at if last is None else last
        group = groups.get(key)
        if group is None:
            groups[key] = [
                name,
                kind,
                version,
                at,
                detail,
                status,
                duration,
                count,
                end,
            ]
            continue
        group[3] = min(group[3], at)
        group[8] = max(group[8], end)
        group[7] += count
        if duration is not None:
            group[6] = (group[6] or 0.0) + duration
    ordered = sorted(groups.items(), key=lambda item: (item[0][0], item[0][1]))
    return [
        (g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], None if g[8] == g[3] else g[8])
        for _key, g in ordered
    ]


def coalesce(rows: list[OutcomeRow], *, keep_order: bool = True) -> list[OutcomeRow]:
    """Merge buffered rows of a store that is down: consecutive runs, or all equal ones.

    With ``keep_order`` only a breaker's consecutive equal runs merge (order kept;
    a time window sees them at the first one's second); without it, equal
    outcomes merge regardless of order. Counts are summed, never dropped.
    """
    merged: dict[tuple[object, ...], list[Any]] = {}
    last_key: dict[str, tuple[object, ...]] = {}
    out: list[list[Any]] = []
    for row in rows:
        breaker, kind, version, at, detail, status, duration, count, last = row
        key: tuple[object, ...] = (breaker, kind, version, detail, status)
        end = at if last is None else last
        entry = merged.get(key)
        if entry is not None and (not keep_order or last_key.get(breaker) == key):
            entry[7] += count
            entry[8] = max(entry[8], end)
            if duration is not None:
                entry[6] = (entry[6] or 0.0) + duration
            continue
        entry = [breaker, kind, version, at, detail, status, duration, count, end]
        merged[key] = entry
        last_key[breaker] = key
        out.append(entry)
    return [
        (e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7], None if e[8] == e[3] else e[8])
        for e in out
    ]

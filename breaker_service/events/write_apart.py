"""Writing a round the store refused as a whole: piece by piece, in order.

A row the store refuses for its content (``UnstorableEvent``) would be refused on
every retry, so it is not retried: the round is halved until the bad event is
alone, everything else lands in order, and the bad event is set aside as a dead
letter (``breaker_dead_letters``) with a stand-in whose text is escaped, so replay
still equals life. A transition that lost its version to another writer is
narrowed down the same way, dropped and reported (the breaker reloads).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from ..clock import Clock
from ..errors import ConcurrencyError, EventLogError, UnstorableEvent
from .dead_letters import dead_letter, stand_in
from .log import EventLog
from .model import DeadLetter, OutcomeRow, Snapshot, TransitionRecord

__all__ = ["WriteApart"]

logger = logging.getLogger("breaker_service.events")

Item = OutcomeRow | TransitionRecord


class WriteApart:
    """The recorder's part that writes one round, apart when it must."""

    log: EventLog
    clock: Clock
    written: int
    dead_lettered: int
    unwritten_letters: deque[DeadLetter]
    on_conflict: Callable[[str], None] | None
    _pending: list[TransitionRecord]
    _conflicts: set[TransitionRecord]
    _waiters: dict[TransitionRecord, asyncio.Future[bool]]

    def _settle(self, record: TransitionRecord, *, committed: bool) -> None:
        """Tell a waiting ``commit_transition`` how its record fared."""
        waiter = self._waiters.get(record)
        if waiter is not None and not waiter.done():
            waiter.set_result(committed)

    async def _append(
        self,
        outs: list[OutcomeRow],
        transitions: list[TransitionRecord],
        snaps: list[Snapshot],
    ) -> None:
        """Write one round; if the store refuses it as a whole, write it apart.

        Raises ``EventLogError`` when the store fails, leaving in ``outs`` and
        ``transitions`` what is not written (all of it, or what writing apart left).
        """
        try:
            await self.log.append(outs, transitions, snaps, want_ids=False)
        except (ConcurrencyError, UnstorableEvent) as exc:
            refused = snaps[:]
            snaps.clear()  # due snapshots come with a later round
            # With snapshots in the round, the events alone are tried first.
            known = None if refused else exc
            if not await self._write_apart(outs, transitions, known) and refused:
                # Every event landed apart: the store refused a snapshot. Skip these
                # (counted as written, so the next are due later); replay reads more.
                logger.warning(
                    "[CIRCUIT] event store refused a snapshot of %s, skipped: %s",
                    ", ".join(s.breaker for s in refused),
                    exc,
                )
                snaps.extend(refused)
            return
        self._landed(transitions, len(outs) + len(transitions))

    def _landed(self, transitions: list[TransitionRecord], count: int) -> None:
        self.written += count
        for record in transitions:
            self._pending.remove(record)
            self._settle(record, committed=True)

    async def _write_apart(
        self,
        outs: list[OutcomeRow],
        transitions: list[TransitionRecord],
        refusal: ConcurrencyError | UnstorableEvent | None,
    ) -> bool:
        """Write a refused round piece by piece, in order, so no one event blocks it.

        A piece refused for its content is halved until the bad event is alone, and
        that one is set aside; a lost race is narrowed to its transition, which is
        reported (the breaker reloads). Outcomes keep their order, and come before
        the transitions of the round, as in one append. ``refusal`` is why these
        events failed together, if known. Returns whether any event was set aside or
        lost its race.
        """
        todo: list[list[Item]] = [[*outs, *transitions]]  # a stack: next piece last
        aside: list[DeadLetter] = []
        races = 0
        error = refusal  # why the piece on top failed, if known
        try:
            while todo:
                piece = todo[-1]
                if error is None:
                    try:
                        await self._write_piece(piece)
                    except (ConcurrencyError, UnstorableEvent) as exc:
                        error = exc
                    else:
                        todo.pop()
                        continue
                if len(piece) > 1:
                    race = isinstance(error, ConcurrencyError)
                    todo[-1:] = reversed(_split(piece, race=race))
                elif isinstance(error, UnstorableEvent):
                    aside.append(await self._set_aside(piece[0], error))
                    todo.pop()
                else:
                    self._lost_race(_transition_of(piece[0]))
                    races += 1
                    todo.pop()
                error = None
        except EventLogError:
            left = [item for piece in reversed(todo) for item in piece]
            outs[:] = [i for i in left if not isinstance(i, TransitionRecord)]
            transitions[:] = [i for i in left if isinstance(i, TransitionRecord)]
            raise
        finally:
            if aside:
                self._report(aside)
        outs.clear()
        transitions.clear()
        return bool(aside or races)

    async def _write_piece(self, piece: list[Item]) -> None:
        outs = [i for i in piece if not isinstance(i, TransitionRecord)]
        transitions = [i for i in piece if isinstance(i, TransitionRecord)]
        await self.log.append(outs, transitions, (), want_ids=False)
        self._landed(transitions, len(piece))

    def _lost_race(self, record: TransitionRecord) -> None:
        """Another writer took ``record``'s version: drop it, tell its waiter, reload."""
        self._pending.remove(record)
        self._conflicts.add(record)
        self._settle(record, committed=False)
        logger.warning(
            "[CIRCUIT] %s: transition to version %d lost to another writer; reloading",
            record.breaker,
            record.version,
        )
        if self.on_conflict is not None:
            self.on_conflict(record.breaker)

    async def _set_aside(self, item: Item, exc: UnstorableEvent) -> DeadLetter:
        """Keep a refused event as a dead letter; write its escaped stand-in if it fits.

        Written together in one transaction, so a store failure here leaves the event
        to be found again. A transition's waiter hears ``True`` if its stand-in landed
        (the state change is in the log), ``False`` if nothing of it could be written.
        """
        letter = dead_letter(item, error=str(exc), at=self.clock.time())
        substitute = stand_in(item)
        landed = lost = False
        if substitute is not None:
            try:
                await self._write_piece_with(substitute, letter)
                landed = True
            except ConcurrencyError:
                lost = True
            except UnstorableEvent:
                pass
        if not landed:
            try:
                await self.log.append(want_ids=False, dead_letters=[letter])
            except UnstorableEvent as refused:
                self.unwritten_letters.append(letter)
                logger.error(
                    "[CIRCUIT] %s: dead letter refused too (%s), kept in memory only: %s",
                    letter.breaker,
                    refused,
                    letter.content,
                )
        self.dead_lettered += 1
        if isinstance(item, TransitionRecord):
            if lost:
                self._lost_race(item)
            else:
                self._pending.remove(item)
                self._settle(item, committed=landed)
        return letter

    async def _write_piece_with(self, substitute: Item, letter: DeadLetter) -> None:
        """The stand-in and the dead letter of one event, in one transaction."""
        if isinstance(substitute, TransitionRecord):
            await self.log.append(
                (), [substitute], (), want_ids=False, dead_letters=[letter]
            )
        else:
            await self.log.append(
                [substitute], (), (), want_ids=False, dead_letters=[letter]
            )
        self.written += 1

    def _report(self, letters: list[DeadLetter]) -> None:
        """One log line per round written apart, however many events it set aside."""
        logger.error(
            "[CIRCUIT] event store refused %d event(s) for their content (%s); set "
            "aside in breaker_dead_letters (%d so far), escaped stand-ins written "
            "where they fit, the rest written in order: %s",
            len(letters),
            ", ".join(f"{letter.breaker} {letter.kind}" for letter in letters),
            self.dead_lettered,
            letters[0].error,
        )


def _split(piece: list[Item], *, race: bool) -> list[list[Item]]:
    """Smaller pieces, in order: halves, or for a lost race the outcomes and then
    each transition alone (only a transition can lose one)."""
    transitions = [i for i in piece if isinstance(i, TransitionRecord)]
    if not race or not transitions:
        half = len(piece) // 2
        return [piece[:half], piece[half:]]
    outs: list[Item] = [i for i in piece if not isinstance(i, TransitionRecord)]
    singles: list[list[Item]] = [[t] for t in transitions]
    return [outs, *singles] if outs else singles


def _transition_of(item: Item) -> TransitionRecord:
    """The transition a lost race is about (outcomes never conflict)."""
    if not isinstance(item, TransitionRecord):
        msg = f"an outcome cannot lose a race: {item!r}"
        raise TypeError(msg)
    return item

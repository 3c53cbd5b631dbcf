"""``plan_reconcile``: which provider files are ours, and what to do with each. Pure.

A provider file *matches* an intent when filename, size and purpose are equal and
the provider created it within the intent's window (from ``slack`` seconds before
it started to ``slack`` after it ended, or after now while it is open). Conservative
by construction:

- a recorded file (or one we cannot place in time) is never touched;
- a file matching no intent is not ours: untouched, only counted;
- a file that only one intent can own goes to it; an intent whose calls are all
  accounted for that way owns no other copy, which may leave a tied file with one
  candidate (deduced from the calls made, repeated until nothing changes);
- a file still matching two or more intents is a tie: never guessed, held (and so are
  those intents' other files); except when those intents are all of the same
  content (equal SHA-256) and exactly one of them is open: whichever upload made
  the copy, it holds that content, so it goes to the open intent that needs it
  (a retried upload after a crash meets its own earlier copy this way), and when
  they are all closed any of them would delete the copy, so it is deleted as the
  extra copy of the latest one with a call unaccounted for;
- an intent cannot own more copies than the calls it made (``attempts``): if more
  match, someone else's file may be among them, so all are held;
- an open intent that may still be under way (``settled`` says no) is left alone.

An open, settled intent adopts its earliest copy, or the one ``preferred`` names
(the id a client was told when nothing could record it); the rest are extra copies.
One with no copy is abandoned. Every unrecorded copy of a closed intent is an extra copy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from ..providers.base import ProviderFile
from .intents import OPEN, UploadIntent

__all__ = ["Plan", "matches", "plan_reconcile"]

DEFAULT_SLACK = 5.0  # seconds: provider clocks and whole-second created_at


@dataclass(slots=True)
class Plan:
    """What one reconciliation of one provider would do."""

    adopt: list[tuple[UploadIntent, ProviderFile]] = field(default_factory=list)
    delete: list[tuple[UploadIntent, ProviderFile]] = field(default_factory=list)
    abandon: list[UploadIntent] = field(default_factory=list)
    held: list[tuple[ProviderFile, str]] = field(default_factory=list)
    foreign: int = 0  # unrecorded files that match none of our intents
    recorded: int = 0  # listed files that are recorded here

    @property
    def orphans(self) -> int:
        """Copies of ours that stay unrecorded after this plan (held ones)."""
        return len(self.held)


def matches(intent: UploadIntent, file: ProviderFile, now: float, slack: float) -> bool:
    """Whether ``file`` may be a copy uploaded for ``intent`` (see the module doc)."""
    if file.created_at is None:
        return False
    if (intent.filename, intent.bytes, intent.purpose) != (
        file.filename,
        file.bytes,
        file.purpose,
    ):
        return False
    ends = intent.ended_at if intent.ended_at is not None else now
    return intent.started_at - slack <= file.created_at <= ends + slack


def plan_reconcile(
    files: Iterable[ProviderFile],
    intents: Iterable[UploadIntent],
    recorded: set[str],
    *,
    now: float,
    settled: Callable[[UploadIntent], bool],
    slack: float = DEFAULT_SLACK,
    preferred: Mapping[str, str] | None = None,
) -> Plan:
    """The plan for one provider's ``files`` against our ``intents`` (module doc)."""
    plan = Plan()
    intents = list(intents)
    owned: dict[str, list[ProviderFile]] = {i.id: [] for i in intents}
    contested: set[str] = set()
    candidates: list[tuple[ProviderFile, list[UploadIntent]]] = []
    for file in files:
        if file.file_id in recorded:
            plan.recorded += 1
            continue
        found = [i for i in intents if matches(i, file, now, slack)]
        if found:
            candidates.append((file, found))
        else:
            plan.foreign += 1
    for file, tied in _deduce(candidates, owned):
        found = _closed_same_content(_same_content_owner(tied), owned)
        if len(found) > 1:
            contested.update(i.id for i in found)
            plan.held.append((file, f"matches {len(found)} intents: not guessed"))
        else:
            owned[found[0].id].append(file)
    for intent in intents:
        told = (preferred or {}).get(intent.id)
        copies = sorted(
            owned[intent.id],
            key=lambda f: (f.file_id != told, f.created_at or 0, f.file_id),
        )
        _plan_intent(plan, intent, copies, intent.id in contested, settled)
    return plan


def _capacity(intent: UploadIntent) -> int:
    """How many unrecorded copies ``intent``'s calls can have left (one per call)."""
    recorded = intent.state != OPEN and intent.provider_file_id is not None
    return intent.attempts - (1 if recorded else 0)


def _deduce(
    candidates: list[tuple[ProviderFile, list[UploadIntent]]],
    owned: dict[str, list[ProviderFile]],
) -> list[tuple[ProviderFile, list[UploadIntent]]]:
    """Give each file that only one intent can own to it; return the files still tied.

    An intent whose calls are all accounted for by such files owns no other copy,
    so it drops out of the other files' candidates, which may leave them with one
    (deduction from the calls made, not a guess). Files whose every candidate is
    full stay tied: a file we cannot place is held, never forced.
    """
    pending = list(candidates)
    while True:
        tied = []
        for file, found in pending:
            if len(found) == 1:
                owned[found[0].id].append(file)
            else:
                tied.append((file, found))
        full = {
            i.id for _, found in tied for i in found if len(owned[i.id]) >= _capacity(i)
        }
        narrowed = [
            (file, [i for i in found if i.id not in full] or found)
            for file, found in tied
        ]
        if all(len(a) == len(b) for (_, a), (_, b) in zip(narrowed, tied, strict=True)):
            return narrowed
        pending = narrowed


def _same_content_owner(found: list[UploadIntent]) -> list[UploadIntent]:
    """A tie among intents of one content with one open intent: that one alone."""
    if len(found) < 2 or len({i.sha256 for i in found}) != 1:
        return found
    still_open = [i for i in found if i.state == OPEN]
    return still_open if len(still_open) == 1 else found


def _closed_same_content(
    found: list[UploadIntent], owned: dict[str, list[ProviderFile]]
) -> list[UploadIntent]:
    """A tie among closed intents of one content: any of them would delete the copy.

    Each is closed, so an unrecorded copy of any of them is an extra copy; which one
    made it changes only the audit, which names the latest that has a call left.
    """
    if len(found) < 2 or len({i.sha256 for i in found}) != 1:
        return found
    if any(i.state == OPEN for i in found):
        return found
    spare = [i for i in found if len(owned[i.id]) < _capacity(i)]
    return [max(spare, key=lambda i: i.started_at)] if spare else found


def _plan_intent(
    plan: Plan,
    intent: UploadIntent,
    copies: list[ProviderFile],
    contested: bool,
    settled: Callable[[UploadIntent], bool],
) -> None:
    is_open = intent.state == OPEN
    if is_open and not settled(intent):
        plan.held.extend((f, f"intent {intent.id} may be under way") for f in copies)
        return
    if contested:
        why = f"intent {intent.id} also matches a contested file"
        plan.held.extend((f, why) for f in copies)
        return
    ours = intent.attempts - (0 if is_open or intent.provider_file_id is None else 1)
    if len(copies) > ours:
        why = f"{len(copies)} copies match intent {intent.id}, which made {intent.attempts} calls"
        plan.held.extend((f, why) for f in copies)
        return
    if not is_open:
        plan.delete.extend((intent, f) for f in copies)
    elif not copies:
        plan.abandon.append(intent)
    else:
        plan.adopt.append((intent, copies[0]))
        plan.delete.extend((intent, f) for f in copies[1:])

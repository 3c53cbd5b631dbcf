"""Command output: the two Rich consoles, JSON, and the tables the commands print.

One table per kind of thing shown; the demo prints breakers through ``status_table``
too, so the CLI and the demo show the same columns in the same order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:  # the types only: importing them would load httpx and SQLAlchemy
    from ..events.model import StoredEvent
    from ..uploads import BatchItem

__all__ = [
    "console",
    "errors",
    "events_table",
    "fields_table",
    "print_json",
    "status_table",
    "uploads_table",
]

console = Console()
"""Results (stdout)."""

errors = Console(stderr=True)
"""Failures and progress bars (stderr), so stdout stays parseable."""

STATE_COLOURS = {
    "closed": "green",
    "open": "red",
    "half_open": "yellow",
    "forced_open": "magenta",
}

_STATUS_COLUMNS = (
    "name",
    "state",
    "failures",
    "successes",
    "rejections",
    "retry after",
    "last transition",
)


def print_json(value: Any) -> None:
    """``value`` as indented JSON on stdout (plain print: no Rich markup or wrapping)."""
    print(json.dumps(value, indent=2))


def status_table(rows: Iterable[Mapping[str, Any]], title: str = "breakers") -> Table:
    """Breakers as ``CircuitBreaker.status()`` (or ``GET /breakers``) gives them."""
    table = Table(title=title)
    for column in _STATUS_COLUMNS:
        table.add_column(column)
    for row in rows:
        last = row["last_transition"]
        table.add_row(
            row["name"],
            f"[{STATE_COLOURS.get(row['state'], 'white')}]{row['state']}[/]",
            str(row["failures"]),
            str(row["successes"]),
            str(row["rejections"]),
            f"{row['retry_after']:.1f}s" if row["retry_after"] else "-",
            f"{last['from_state']} -> {last['to_state']}: {last['reason']}"
            if last
            else "-",
        )
    return table


def events_table(name: str, events: Iterable[StoredEvent]) -> Table:
    """A breaker's audit trail: transitions with their reason, outcomes with counts."""
    table = Table(title=f"events of {name}")
    for column in ("id", "at", "kind", "detail", "by", "instance"):
        table.add_column(column)
    for e in events:
        if e.kind == "transition":
            detail = f"{e.from_state} -> {e.to_state}: {e.reason}"
        else:
            detail = (
                f"{e.detail or ''} x{e.count}" if e.count != 1 else (e.detail or "")
            )
        table.add_row(
            str(e.id),
            e.when.isoformat(timespec="milliseconds"),
            e.kind,
            detail,
            e.actor or "",
            e.instance_id,
        )
    return table


def uploads_table(items: Sequence[BatchItem]) -> Table:
    """One row per uploaded path: where it went, or the error that stopped it."""
    table = Table(title="uploads")
    for column in ("path", "result", "provider", "file id", "attempts", "tried"):
        table.add_column(column)
    for item in items:
        r = item.result
        if r is not None:
            note = (
                "deduplicated"
                if r.deduplicated
                else ("ok (fallback)" if r.fallback else "ok")
            )
            table.add_row(
                item.path,
                f"[green]{note}[/]",
                r.provider,
                r.provider_file_id,
                str(r.attempts),
                ", ".join(r.providers_tried),
            )
        else:
            table.add_row(
                item.path,
                f"[red]{type(item.error).__name__}[/]: {item.error}",
                "",
                "",
                "",
                "",
            )
    return table


def fields_table(title: str, fields: Mapping[str, Any]) -> Table:
    """A two-column field/value table."""
    table = Table(title=title)
    table.add_column("field")
    table.add_column("value")
    for key, value in fields.items():
        table.add_row(key, str(value))
    return table

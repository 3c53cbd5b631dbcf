"""``/breakers``: state, audit trail and past state of each breaker; operator actions.

Reading needs ``breakers:read``; ``force-open`` and ``reset`` need
``breakers:admin`` and record the token's subject as the actor.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field, field_validator

from ...breaker import BreakerRegistry, CircuitBreaker
from ...errors import NotDurable, UnknownBreakerError
from ...text import MAX_REASON, checked_text
from ...uploads import UploadOrchestrator
from ..auth import Principal
from ..dependencies import Admin, OrchestratorDep, Reader, RegistryDep
from ..openapi import AUTHENTICATED, WITH_BODY, problem_responses
from ..problems import InvalidQuery

__all__ = ["EventKind", "Reason", "router"]

router = APIRouter(tags=["breakers"], responses=problem_responses(*AUTHENTICATED))

EventKind = Literal["transition", "success", "failure", "timeout"]
"""What ``?kind=`` may name: ``events.model.ALL_KINDS`` (anything else is a 422)."""

ManualAction = Callable[[CircuitBreaker, str, str | None], Awaitable[bool]]
"""An operator action: ``CircuitBreaker.force_open`` or ``CircuitBreaker.reset``."""


class Reason(BaseModel):
    """Why an operator acts; recorded in the audit log."""

    reason: str = Field(min_length=1, max_length=MAX_REASON)

    @field_validator("reason")
    @classmethod
    def _printable(cls, value: str) -> str:
        return checked_text(value, "reason", limit=MAX_REASON)


@router.get("/breakers")
async def list_breakers(_who: Reader, registry: RegistryDep) -> dict[str, Any]:
    """Every breaker: state, counters, opened_at, retry_after, scope."""
    rows = []
    for breaker in registry.breakers():
        row = breaker.status()
        row["scope"] = "instance"
        rows.append(row)
    return {"breakers": rows}


@router.get("/breakers/{name}", responses=problem_responses(404))
async def get_breaker(name: str, _who: Reader, registry: RegistryDep) -> dict[str, Any]:
    """One breaker."""
    _known_breaker(registry, name)
    return registry.get(name).status()


@router.get("/breakers/{name}/events", responses=problem_responses(404, 503))
async def breaker_events(  # noqa: PLR0917 - FastAPI reads query parameters from the signature
    name: str,
    _who: Reader,
    registry: RegistryDep,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,  # a 64-bit row id
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    kind: Annotated[list[EventKind] | None, Query()] = None,
    since: str | None = None,
    until: str | None = None,
) -> dict[str, Any]:
    """The audit trail, oldest first, paged by id (``after``)."""
    _known_breaker(registry, name)
    events = await registry.history(
        name,
        after_id=after,
        limit=limit,
        kinds=None if kind is None else list[str](kind),
        since=_epoch(since, "since"),
        until=_epoch(until, "until"),
    )
    rows = [e.as_dict() for e in events]
    return {
        "events": rows,
        "next_after": rows[-1]["id"] if len(rows) == limit else None,
    }


@router.get("/breakers/{name}/state", responses=problem_responses(404, 503))
async def breaker_state_at(
    name: str, _who: Reader, registry: RegistryDep, at: str
) -> dict[str, Any]:
    """The state the breaker was in at a past time."""
    _known_breaker(registry, name)
    moment = _epoch(at, "at")
    assert moment is not None
    state = await registry.state_at(name, moment)
    return {
        "name": name,
        "at": datetime.fromtimestamp(moment, UTC).isoformat(),
        "state": state.value,
    }


def _operator_route(path: str, name: str, action: ManualAction, doc: str) -> None:
    """Register ``POST path``: ``action`` on a breaker, as the token's subject."""

    async def route(
        name: str,
        body: Reason,
        who: Admin,
        registry: RegistryDep,
        orchestrator: OrchestratorDep,
    ) -> dict[str, Any]:
        return await _act(
            action,
            name,
            reason=body,
            who=who,
            registry=registry,
            orchestrator=orchestrator,
        )

    route.__doc__ = doc
    router.post(path, name=name, responses=problem_responses(404, *WITH_BODY, 503))(
        route
    )


_operator_route(
    "/breakers/{name}/force-open",
    "force_open",
    CircuitBreaker.force_open,
    "Reject every call until reset; the token's subject is recorded as the actor.",
)
_operator_route(
    "/breakers/{name}/reset",
    "reset",
    CircuitBreaker.reset,
    "Back to closed; the token's subject is recorded as the actor.",
)


async def _act(
    action: ManualAction,
    name: str,
    *,
    reason: Reason,
    who: Principal,
    registry: BreakerRegistry,
    orchestrator: UploadOrchestrator,
) -> dict[str, Any]:
    """Apply an operator action to a breaker (or a configured provider's) as ``who``."""
    _known_breaker(registry, name, orchestrator=orchestrator)
    breaker = registry.get(name)
    if not await action(breaker, reason.reason, who.subject):
        msg = (
            f"{name} is {breaker.state.value} in memory, but the event log could not "
            "save it: it is written when the database answers, and lost on a restart "
            "before that"
        )
        raise NotDurable(msg, status=breaker.status())
    return breaker.status()


def _known_breaker(
    registry: BreakerRegistry,
    name: str,
    *,
    orchestrator: UploadOrchestrator | None = None,
) -> None:
    """Raise ``UnknownBreakerError`` (404) unless ``name`` is a breaker.

    With ``orchestrator``, a configured provider whose breaker was never used counts
    too: an operator may act on it before its first call.
    """
    if name in registry or (
        orchestrator is not None and name in orchestrator.providers
    ):
        return
    raise UnknownBreakerError(name)


def _epoch(value: str | None, name: str) -> float | None:
    """A query time (ISO 8601, UTC if no offset, or epoch seconds) as epoch seconds."""
    if value is None:
        return None
    msg = f"{name} must be an ISO 8601 time or epoch seconds, got {value!r}"
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidQuery(msg) from None
        seconds = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    try:  # nan, inf and times outside years 1-9999 cannot be shown or compared
        datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidQuery(msg) from None
    return seconds

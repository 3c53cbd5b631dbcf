"""The error answers in the OpenAPI document: ``problem+json``, declared per router.

Every router passes ``problem_responses(...)`` the statuses its routes can answer
with besides success, so the schema says what a client (and Schemathesis) will
see. The description of each status lists the problem types the one error table
(``problems.PROBLEM_STATUS``) maps to it, so the two cannot drift apart.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .problems import PROBLEM_MEDIA_TYPE, problem_kinds

__all__ = [
    "AUTHENTICATED",
    "WITH_BODY",
    "Problem",
    "problem_responses",
]

AUTHENTICATED = (401, 403, 422)
"""What a route behind a token can answer: no/bad token, missing scope, bad request."""
WITH_BODY = (400, 413)
"""What a route that reads a body can answer before it runs: unparsable, too large."""


class Problem(BaseModel):
    """An RFC 9457 problem document; some types add fields (``breaker``, ``reason``...)."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str = Field(pattern=r"^urn:breaker-service:[a-z-]+$")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str


_SCHEMA = Problem.model_json_schema()

_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "The bearer scheme and realm",
            "required": True,
            "schema": {"type": "string", "pattern": "^Bearer "},
        }
    },
    503: {
        "Retry-After": {
            "description": "Seconds before trying again, when the service knows",
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        }
    },
}


def _description(status: int) -> str:
    kinds = problem_kinds(status)
    phrase = HTTPStatus(status).phrase
    return f"{phrase}: {', '.join(kinds)}" if kinds else phrase


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """FastAPI ``responses=`` for ``statuses``, each a ``problem+json`` document."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in sorted(set(statuses)):
        response: dict[str, Any] = {
            "description": _description(status),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": _SCHEMA}},
        }
        if status in _HEADERS:
            response["headers"] = _HEADERS[status]
        responses[status] = response
    return responses

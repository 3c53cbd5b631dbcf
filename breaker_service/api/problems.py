"""Errors as ``application/problem+json``, mapped from the error tree in one table.

The handler looks an exception up along its class hierarchy, so a subclass gets
its parent's status unless it has its own row.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from ..errors import (
    BreakerServiceError,
    CircuitOpenError,
    ConfigError,
    EventLogError,
    InvalidText,
    NotDurable,
    ProviderError,
    ProviderQuotaExceeded,
    ProviderRejected,
    ProviderTimeout,
    StorageError,
    UnknownBreakerError,
    UnknownProviderError,
    UploadRejected,
)
from ..uploads.keeper import RecordNotSaved
from .auth import AuthError

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "PROBLEM_STATUS",
    "InvalidQuery",
    "install_problem_handlers",
    "problem",
    "problem_document",
    "problem_kinds",
    "problem_parts",
]

logger = logging.getLogger("breaker_service.api")


class InvalidQuery(BreakerServiceError, ValueError):
    """A query parameter outside what the schema can express (an unusable time, say)."""


# error class -> (HTTP status, problem type)
PROBLEM_STATUS: dict[type[BaseException], tuple[int, str]] = {
    AuthError: (401, "unauthorized"),
    CircuitOpenError: (503, "circuit-open"),
    UnknownProviderError: (404, "unknown-provider"),
    UnknownBreakerError: (404, "unknown-breaker"),
    UploadRejected: (422, "upload-rejected"),
    InvalidQuery: (422, "invalid-request"),
    InvalidText: (422, "invalid-request"),
    RecordNotSaved: (503, "record-not-saved"),
    NotDurable: (503, "not-durable"),
    ProviderTimeout: (504, "upstream-timeout"),
    ProviderQuotaExceeded: (507, "provider-file-quota"),  # delete files, reconcile
    ProviderRejected: (502, "upstream-rejected"),
    ProviderError: (502, "upstream-unavailable"),
    EventLogError: (503, "store-unavailable"),
    StorageError: (503, "store-unavailable"),
    ConfigError: (400, "bad-request"),
    BreakerServiceError: (500, "internal"),
}

_UPLOAD_REASON_STATUS = {
    "too_large": 413,
    "outside_allowed_dirs": 400,
    "no_allowed_dirs": 403,  # UPLOAD_ALLOWED_DIRS unset: the server takes no paths
    "invalid_path": 400,
    "no_provider": 503,
    "provider_unavailable": 503,
}

# Answers that come from no row above: auth by status, the body guard, the framework.
_OTHER_KINDS: dict[int, frozenset[str]] = {
    400: frozenset({"http-error"}),  # a multipart body that cannot be parsed
    403: frozenset({"forbidden"}),
    404: frozenset({"http-error"}),  # an unknown dashboard asset
    413: frozenset({"body-too-large"}),  # api.guard
}

PROBLEM_MEDIA_TYPE = "application/problem+json"


def problem(
    status: int,
    kind: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem+json response."""
    body = {
        "type": f"urn:breaker-service:{kind}",
        "title": kind.replace("-", " "),
        "status": status,
        "detail": detail,
        **extra,
    }
    return JSONResponse(
        body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE
    )


def problem_kinds(status: int) -> list[str]:
    """The problem types answered with ``status``: what the OpenAPI says of it."""
    kinds = {kind for code, kind in PROBLEM_STATUS.values() if code == status}
    if status in _UPLOAD_REASON_STATUS.values():
        kinds.add("upload-rejected")
    kinds |= _OTHER_KINDS.get(status, frozenset())
    return sorted(kinds)


def _lookup(exc: BaseException) -> tuple[int, str]:
    for cls in type(exc).__mro__:
        if cls in PROBLEM_STATUS:
            return PROBLEM_STATUS[cls]
    return 500, "internal"


def problem_parts(
    exc: BaseException,
) -> tuple[int, str, dict[str, str], dict[str, Any]]:
    """(status, kind, headers, extra fields) for one of our errors: the one table."""
    status, kind = _lookup(exc)
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if isinstance(exc, AuthError):
        status = exc.status
        kind = "unauthorized" if status == 401 else "forbidden"
        if status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="breaker-service"'
    elif isinstance(exc, CircuitOpenError):
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
        extra = {"breaker": exc.breaker, "retry_after": round(exc.retry_after, 3)}
    elif isinstance(exc, RecordNotSaved):
        # The provider has the file: the id lets a careful client avoid a second copy.
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
        extra = {
            "provider": exc.result.provider,
            "provider_file_id": exc.result.provider_file_id,
            "upload_id": exc.result.upload_id,
            "recorded": "not saved",
        }
    elif isinstance(exc, NotDurable):
        headers["Retry-After"] = "5"
        extra = {"applied_in_memory": True, "durable": False, "breaker": exc.status}
    elif isinstance(exc, StorageError):
        headers["Retry-After"] = "5"
    elif isinstance(exc, InvalidText):
        extra = {"field": exc.field}
    elif isinstance(exc, UploadRejected):
        status = _UPLOAD_REASON_STATUS.get(exc.reason, status)
        extra = {"reason": exc.reason}
    elif isinstance(exc, ProviderError):
        extra = {
            "provider": exc.provider,
            "upstream_status": exc.status,
            "code": exc.code,
        }
        if exc.retry_after is not None:
            headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    return status, kind, headers, extra


def problem_document(exc: BaseException) -> dict[str, Any]:
    """The problem+json body for ``exc`` (a batch item's answer)."""
    status, kind, _headers, extra = problem_parts(exc)
    return {
        "type": f"urn:breaker-service:{kind}",
        "title": kind.replace("-", " "),
        "status": status,
        "detail": str(exc)
        if isinstance(exc, BreakerServiceError)
        else "internal error",
        **extra,
    }


async def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    status, kind, headers, extra = problem_parts(exc)
    if status >= 500 and kind == "internal":
        logger.error("unhandled %s: %s", type(exc).__name__, exc)
    return problem(status, kind, str(exc), headers or None, **extra)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return problem(
        exc.status_code, "http-error", str(exc.detail), dict(exc.headers or {}) or None
    )


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in exc.errors()
    ]
    return problem(
        422, "invalid-request", "the request does not match the schema", errors=errors
    )


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unexpected error: %s", type(exc).__name__)
    return problem(500, "internal", "internal error")


def install_problem_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(BreakerServiceError, _domain_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)

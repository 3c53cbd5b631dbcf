"""The one place where httpx errors and provider error replies become our errors.

Transport errors map by class (timeouts -> ``ProviderTimeout``; connection and
protocol errors -> ``ProviderUnavailable``; configuration-type errors such as an
unsupported URL scheme -> ``ProviderRejected``). HTTP replies map by status, then by
the provider dialect's own codes (an exhausted Moonshot quota is a 429 that must not
be retried; Zhipu code 1113 is arrears). A full file-count quota (Moonshot's "exceeded
the max file count", Zhipu's file count limit) is ``ProviderQuotaExceeded``: a
reconcile may free orphans. API keys are scrubbed from every message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from ..errors import (
    ProviderError,
    ProviderQuotaExceeded,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)
from ..redaction import scrub
from ..retry.classify import DEFAULT_RETRY_STATUSES, parse_retry_after

__all__ = [
    "DIALECTS",
    "Dialect",
    "is_file_quota",
    "map_response",
    "map_transport_error",
    "scrub",
]

_FILE_QUOTA = re.compile(
    r"max(imum)?[ _]file[ _]count|file[ _]count[ _]limit|too many files"
    r"|exceed\w*[^.]{0,40}\bfiles?\b[^.]{0,20}\b(count|number|limit|quota)",
    re.IGNORECASE,
)


def is_file_quota(status: int, code: str | None, message: str | None) -> bool:
    """Whether a reply says the provider's file-count quota is full (any dialect)."""
    if status not in {400, 403, 429}:
        return False
    return any(
        text is not None and _FILE_QUOTA.search(text) for text in (code, message)
    )


def map_transport_error(
    exc: httpx.HTTPError, provider: str, secrets: Iterable[str | None] = ()
) -> ProviderError:
    """An httpx transport error as a ``ProviderError`` kind."""
    if isinstance(exc, httpx.HTTPStatusError):  # a status, not a transport failure
        return map_response(exc.response, provider, secrets=secrets)
    detail = scrub(
        f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, secrets
    )
    message = f"{provider}: {detail}"
    if isinstance(exc, httpx.TimeoutException):
        return ProviderTimeout(message, provider=provider, code=type(exc).__name__)
    if isinstance(
        exc, httpx.NetworkError | httpx.RemoteProtocolError | httpx.ProxyError
    ):
        return ProviderUnavailable(message, provider=provider, code=type(exc).__name__)
    # UnsupportedProtocol, LocalProtocolError, InvalidURL-like errors, decoding errors,
    # too many redirects: retrying will not help; the configuration or request is wrong.
    return ProviderRejected(message, provider=provider, code=type(exc).__name__)


Dialect = Callable[[int, str | None, str | None], bool | None]
"""(status, provider code or type, message) -> transient? None to use the status."""


def _openai(status: int, code: str | None, message: str | None) -> bool | None:
    if status == 429 and code in {"insufficient_quota", "billing_hard_limit_reached"}:
        return False
    return None


def _kimi(status: int, code: str | None, message: str | None) -> bool | None:
    if (
        code == "exceeded_current_quota_error"
    ):  # empty balance: a 429 that will not pass
        return False
    return None


_GLM_PERMANENT = {"1113"}  # arrears
_GLM_TRANSIENT = {"1302", "1303", "1305"}  # rate and concurrency limits


def _glm(status: int, code: str | None, message: str | None) -> bool | None:
    if code in _GLM_PERMANENT:
        return False
    if code in _GLM_TRANSIENT:
        return True
    if status in {434, 435}:  # Zhipu's own statuses: no permission / file refused
        return False
    return None


DIALECTS: dict[str, Dialect] = {"openai": _openai, "kimi": _kimi, "glm": _glm}


def _error_fields(body: Any) -> tuple[str | None, str | None]:
    """(code or type, message) from ``{"error": {...}}`` bodies of either dialect."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str):
        return None, error
    if not isinstance(error, dict):
        message = body.get("message") if isinstance(body, dict) else None
        return None, str(message) if message is not None else None
    code = error.get("code", error.get("type"))
    if error.get("type") and error.get("code") is None:
        code = error.get("type")
    message = error.get("message")
    return (str(code) if code is not None else None), (
        str(message) if message is not None else None
    )


def map_response(
    response: httpx.Response,
    provider: str,
    *,
    dialect: str = "openai",
    secrets: Iterable[str | None] = (),
) -> ProviderError:
    """An error reply (status >= 400) as a ``ProviderError`` kind with status, code and Retry-After."""
    status = response.status_code
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    code, message = _error_fields(body)
    if message is None:
        message = response.text[:200] if response.text else response.reason_phrase
    verdict = DIALECTS.get(dialect, _openai)(status, code, message)
    transient = status in DEFAULT_RETRY_STATUSES if verdict is None else verdict
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    text = scrub(
        f"{provider}: HTTP {status}{f' {code}' if code else ''}: {message}", secrets
    )
    kind: type[ProviderError] = ProviderUnavailable if transient else ProviderRejected
    if is_file_quota(status, code, message):
        kind = ProviderQuotaExceeded
    shown_code = scrub(code, secrets) if code is not None else None
    return kind(
        text, provider=provider, status=status, code=shown_code, retry_after=retry_after
    )

"""Classification: what is transient, from statuses, exceptions and provider hooks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest

from breaker_service.errors import (
    CircuitOpenError,
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)
from breaker_service.retry import (
    DEFAULT_RETRY_STATUSES,
    Classification,
    Classifier,
    parse_retry_after,
)

REQUEST = httpx.Request("POST", "https://api.example.test/v1/files")

RETRYABLE = (429, 500, 502, 503, 504)
NOT_RETRYABLE = (400, 401, 403, 404, 409, 422)


class StatusCodeError(Exception):
    """A foreign client's error that only carries ``status_code``."""

    def __init__(self, status_code: int, retry_after: str | None = None) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code
        self.headers = {"retry-after": retry_after} if retry_after else {}


def http_error(
    status: int, *, headers: dict[str, str] | None = None, json: object = None
) -> httpx.HTTPStatusError:
    """An ``httpx.HTTPStatusError`` as ``response.raise_for_status()`` would raise it."""
    response = httpx.Response(status, request=REQUEST, headers=headers, json=json)
    return httpx.HTTPStatusError(f"HTTP {status}", request=REQUEST, response=response)


def provider_error(status: int) -> ProviderError:
    """Our own error tree's generic provider error."""
    return ProviderError(f"HTTP {status}", provider="kimi", status=status)


CARRIERS: list[object] = [
    pytest.param(http_error, id="httpx"),
    pytest.param(provider_error, id="provider-error"),
    pytest.param(StatusCodeError, id="status-code-attribute"),
]


def test_default_retry_statuses_are_429_and_the_gateway_5xx() -> None:
    """The default retryable set is exactly 429, 500, 502, 503 and 504."""
    assert frozenset(RETRYABLE) == DEFAULT_RETRY_STATUSES


@pytest.mark.parametrize("carrier", CARRIERS)
@pytest.mark.parametrize("status", [pytest.param(s, id=str(s)) for s in RETRYABLE])
def test_retryable_http_statuses(
    carrier: Callable[[int], BaseException], status: int
) -> None:
    """429, 500, 502, 503 and 504 are transient, however the status arrives."""
    verdict = Classifier()(carrier(status))
    assert verdict.transient
    assert verdict.kind == str(status)
    assert verdict.status == status


@pytest.mark.parametrize("carrier", CARRIERS)
@pytest.mark.parametrize("status", [pytest.param(s, id=str(s)) for s in NOT_RETRYABLE])
def test_client_error_statuses_are_not_retryable(
    carrier: Callable[[int], BaseException], status: int
) -> None:
    """400, 401, 403, 404, 409 and 422 are permanent."""
    verdict = Classifier()(carrier(status))
    assert not verdict.transient
    assert verdict.status == status


TRANSPORT_ERRORS = [
    pytest.param(
        httpx.ConnectError("refused", request=REQUEST), False, id="ConnectError"
    ),
    pytest.param(
        httpx.ConnectTimeout("slow", request=REQUEST), True, id="ConnectTimeout"
    ),
    pytest.param(httpx.ReadTimeout("slow", request=REQUEST), True, id="ReadTimeout"),
    pytest.param(httpx.WriteTimeout("slow", request=REQUEST), True, id="WriteTimeout"),
    pytest.param(httpx.PoolTimeout("no connection"), True, id="PoolTimeout"),
    pytest.param(httpx.ReadError("reset", request=REQUEST), False, id="ReadError"),
    pytest.param(httpx.WriteError("broken pipe"), False, id="WriteError"),
    pytest.param(
        httpx.RemoteProtocolError("peer closed", request=REQUEST),
        False,
        id="RemoteProtocolError",
    ),
    pytest.param(httpx.ProxyError("proxy down"), False, id="ProxyError"),
    pytest.param(ConnectionResetError("reset"), False, id="ConnectionResetError"),
    pytest.param(ConnectionRefusedError("refused"), False, id="ConnectionRefusedError"),
    pytest.param(TimeoutError("slow"), True, id="TimeoutError"),
    pytest.param(ProviderTimeout("slow", provider="glm"), True, id="ProviderTimeout"),
    pytest.param(
        ProviderUnavailable("down", provider="glm"), False, id="ProviderUnavailable"
    ),
]


@pytest.mark.parametrize(("error", "is_timeout"), TRANSPORT_ERRORS)
def test_transport_errors_are_transient(
    error: BaseException,
    is_timeout: bool,
) -> None:
    """Connect, read, write and pool failures and timeouts are all worth a retry."""
    verdict = Classifier()(error)
    assert verdict.transient
    assert verdict.timeout is is_timeout
    assert verdict.status is None
    if is_timeout:
        assert verdict.kind == "timeout"


PERMANENT_ERRORS = [
    pytest.param(httpx.UnsupportedProtocol("ftp://"), id="UnsupportedProtocol"),
    pytest.param(httpx.LocalProtocolError("bad header"), id="LocalProtocolError"),
    pytest.param(ValueError("bad input"), id="ValueError"),
    pytest.param(KeyError("missing"), id="KeyError"),
    pytest.param(RuntimeError("bug"), id="RuntimeError"),
    pytest.param(
        ProviderRejected("quota", provider="kimi", status=429), id="rejected-429"
    ),
    pytest.param(CircuitOpenError("kimi", 12.0), id="CircuitOpenError"),
]


@pytest.mark.parametrize("error", PERMANENT_ERRORS)
def test_other_errors_are_not_transient(error: BaseException) -> None:
    """Bugs, bad requests, refusals and open circuits are never retried."""
    assert not Classifier()(error).transient


def test_circuit_open_has_its_own_kind() -> None:
    """An open circuit is reported as ``circuit_open``, not as a failure."""
    assert Classifier()(CircuitOpenError("kimi", 3.0)).kind == "circuit_open"


def test_retry_after_header_of_an_httpx_response_is_read() -> None:
    """``Retry-After: 7`` on a 503 gives ``retry_after == 7``."""
    verdict = Classifier()(http_error(503, headers={"Retry-After": "7"}))
    assert verdict.retry_after == 7.0


def test_retry_after_of_a_provider_error_is_kept() -> None:
    """A ProviderUnavailable carries the server's hint through."""
    error = ProviderUnavailable(
        "slow down", provider="kimi", status=429, retry_after=2.5
    )
    assert Classifier()(error).retry_after == 2.5


def test_retry_after_header_of_a_foreign_error_is_read() -> None:
    """Errors exposing ``headers`` and ``status_code`` give their Retry-After too."""
    assert Classifier()(StatusCodeError(503, retry_after="4")).retry_after == 4.0


@pytest.mark.parametrize("carrier", CARRIERS)
def test_retry_statuses_are_configurable(
    carrier: Callable[[int], BaseException],
) -> None:
    """With ``retry_statuses={503}`` a 429 is no longer retried, a 503 still is."""
    classifier = Classifier(retry_statuses={503})
    assert not classifier(carrier(429)).transient
    assert classifier(carrier(503)).transient


def test_retry_exceptions_are_configurable() -> None:
    """Without TimeoutError in ``retry_exceptions`` a bare timeout is permanent."""
    classifier = Classifier(retry_exceptions=(ConnectionError,))
    assert not classifier(TimeoutError()).transient
    assert classifier(ConnectionResetError()).transient


# -- provider-specific classification ----------------------------------------------------


def moonshot_quota(exc: BaseException) -> Classification | None:
    """Moonshot: a 429 with ``exceeded_current_quota_error`` is an empty wallet."""
    code: object = None
    if isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code == 429:
        body = exc.response.json()
        code = body.get("error", {}).get("type") if isinstance(body, dict) else None
    elif isinstance(exc, ProviderError):
        code = exc.code
    if code == "exceeded_current_quota_error":
        return Classification(transient=False, kind="quota", status=429)
    return None


def zhipu_arrears(exc: BaseException) -> Classification | None:
    """Zhipu: business code 1113 means the account is in arrears."""
    if isinstance(exc, ProviderError) and exc.code == "1113":
        return Classification(transient=False, kind="arrears", status=exc.status)
    return None


QUOTA_BODY = {"error": {"type": "exceeded_current_quota_error", "message": "no credit"}}
RATE_BODY = {"error": {"type": "rate_limit_reached_error", "message": "slow down"}}


@pytest.mark.parametrize(
    ("error", "transient", "kind"),
    [
        pytest.param(
            http_error(429, json=QUOTA_BODY), False, "quota", id="httpx-quota"
        ),
        pytest.param(
            http_error(429, json=RATE_BODY), True, "429", id="httpx-rate-limit"
        ),
        pytest.param(
            ProviderUnavailable(
                "quota",
                provider="kimi",
                status=429,
                code="exceeded_current_quota_error",
            ),
            False,
            "quota",
            id="provider-quota",
        ),
        pytest.param(
            ProviderUnavailable("busy", provider="kimi", status=429),
            True,
            "429",
            id="provider-rate-limit",
        ),
        pytest.param(
            ProviderError("arrears", provider="glm", status=429, code="1113"),
            False,
            "arrears",
            id="zhipu-arrears",
        ),
        pytest.param(http_error(503), True, "503", id="falls-through"),
    ],
)
def test_provider_hooks_decide_first(
    error: BaseException,
    transient: bool,
    kind: str,
) -> None:
    """A hook that answers wins; a hook that returns None leaves the default."""
    classifier = Classifier(hooks=[moonshot_quota, zhipu_arrears])
    verdict = classifier(error)
    assert verdict.transient is transient
    assert verdict.kind == kind


def test_with_hooks_puts_new_hooks_first_and_leaves_the_original_alone() -> None:
    """``with_hooks`` returns a copy whose new hooks are tried before the old ones."""
    base = Classifier(hooks=[lambda _: Classification(transient=True, kind="old")])
    extended = base.with_hooks(lambda _: Classification(transient=False, kind="new"))
    assert extended(ValueError()).kind == "new"
    assert base(ValueError()).kind == "old"


@pytest.mark.parametrize("carrier", CARRIERS)
@pytest.mark.parametrize(
    "status", [pytest.param(434, id="434"), pytest.param(435, id="435")]
)
def test_status_map_makes_non_standard_statuses_retryable(
    carrier: Callable[[int], BaseException], status: int
) -> None:
    """Zhipu's 434/435 mapped to 503 are retried like a 503."""
    classifier = Classifier(status_map={434: 503, 435: 503})
    assert not Classifier()(carrier(status)).transient
    assert classifier(carrier(status)).transient


def test_with_hooks_merges_status_maps() -> None:
    """``with_hooks(status_map=...)`` adds mappings to the existing ones."""
    classifier = Classifier(status_map={434: 503}).with_hooks(status_map={435: 502})
    assert classifier(provider_error(434)).transient
    assert classifier(provider_error(435)).transient
    assert not classifier(provider_error(436)).transient


# -- Retry-After parsing ----------------------------------------------------------------

NOW = datetime(2026, 1, 1, tzinfo=UTC).timestamp()


def http_date(seconds_from_now: float) -> str:
    """An IMF-fixdate ``seconds_from_now`` after NOW."""
    return format_datetime(
        datetime.fromtimestamp(NOW + seconds_from_now, UTC), usegmt=True
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("120", 120.0, id="seconds"),
        pytest.param(" 7 ", 7.0, id="padded"),
        pytest.param("1.5", 1.5, id="fraction"),
        pytest.param("0", 0.0, id="zero"),
        pytest.param("-5", 0.0, id="negative-is-now"),
        pytest.param(http_date(30), 30.0, id="http-date"),
        pytest.param(http_date(-30), 0.0, id="http-date-in-the-past"),
        pytest.param("Thu, 01 Jan 2026 00:00:30 -0000", None, id="date-without-zone"),
        pytest.param("soon", None, id="garbage"),
        pytest.param("nan", None, id="nan"),
        pytest.param("", None, id="empty"),
        pytest.param(None, None, id="absent"),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    """Delta-seconds or an HTTP date become seconds from now; anything else is None."""
    assert parse_retry_after(header, now=NOW) == expected

"""The ``[RETRY]`` and ``[CIRCUIT]`` lines: words operators grep for, fields, no secrets.

The original report logged ``[RETRY] Attempt {n} failed, retrying after {delay:.2f}s:
{error}`` and ``[CIRCUIT] State transition: {old} -> {new} for {provider}``. Ours keep
their own content and carry those words, the error's scrubbed message, and the same
values as structured fields (``extra=``) for JSON formatters.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any

import pytest
from breaker_helpers import Provider, fail_times, memory_registry
from upload_helpers import (
    GLM_KEY,
    KIMI_KEY,
    Reply,
    make_settings,
    open_orchestrator,
    reply_server,
    write_file,
)

from breaker_service.clock import FakeClock
from breaker_service.errors import ProviderUnavailable
from breaker_service.redaction import ERROR_TEXT_LIMIT, error_text
from breaker_service.retry import RetryPolicy

RETRY_FIELDS = ("provider", "attempt", "max_attempts", "delay", "status", "error")


pytestmark = pytest.mark.usefixtures("testing_mode_off")


class Failing:
    """Fails with ``errors`` in order, then answers ``"ok"``."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)

    async def __call__(self) -> str:
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def retry_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The records of the retry engine's logger."""
    return [r for r in caplog.records if r.name == "breaker_service.retry"]


def policy(clock: FakeClock, **options: Any) -> RetryPolicy:
    """A ``kimi`` policy on the fake clock, without jitter."""
    options.setdefault("jitter", False)
    return RetryPolicy(name="kimi", clock=clock, rng=random.Random(1), **options)


async def test_retry_line_carries_the_reports_words_and_the_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``retrying after``, the provider, attempt n/max, the status and the message."""
    caplog.set_level(logging.INFO, logger="breaker_service.retry")
    clock = FakeClock()
    error = ProviderUnavailable(
        "kimi: upstream overloaded", provider="kimi", status=503
    )
    assert await policy(clock).call(Failing(error)) == "ok"
    [record] = retry_records(caplog)
    assert record.levelno == logging.INFO
    assert record.getMessage() == (
        "[RETRY] kimi attempt 1/3 failed (503), retrying after 1.00s: "
        "kimi: upstream overloaded"
    )
    assert {field: getattr(record, field) for field in RETRY_FIELDS} == {
        "provider": "kimi",
        "attempt": 1,
        "max_attempts": 3,
        "delay": 1.0,
        "status": 503,
        "error": "kimi: upstream overloaded",
    }
    assert record.error_type == "ProviderUnavailable"  # type: ignore[attr-defined]
    assert record.kind == "503"  # type: ignore[attr-defined]


async def test_give_up_line_carries_reason_and_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """WARNING with the attempts, the kind and reason, and the last error's message."""
    caplog.set_level(logging.INFO, logger="breaker_service.retry")
    clock = FakeClock()
    errors = [TimeoutError("read timed out") for _ in range(2)]
    with pytest.raises(TimeoutError):
        await policy(clock, max_attempts=2).call(Failing(*errors))
    give_up = retry_records(caplog)[-1]
    assert give_up.levelno == logging.WARNING
    assert give_up.getMessage() == (
        "[RETRY] kimi giving up after attempt 2 (timeout, 2 attempts): read timed out"
    )
    fields = {name: getattr(give_up, name) for name in ("provider", "attempt", "error")}
    assert fields == {"provider": "kimi", "attempt": 2, "error": "read timed out"}
    assert give_up.max_attempts == 2  # type: ignore[attr-defined]
    assert give_up.status is None  # type: ignore[attr-defined]
    assert give_up.cause == "attempts"  # type: ignore[attr-defined]
    assert give_up.reason == "2 attempts"  # type: ignore[attr-defined]


async def test_an_error_without_a_message_is_named_by_its_class(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``TimeoutError()`` shows as ``TimeoutError``, not as an empty tail."""
    caplog.set_level(logging.INFO, logger="breaker_service.retry")
    await policy(FakeClock()).call(Failing(TimeoutError()))
    [record] = retry_records(caplog)
    assert record.getMessage().endswith("retrying after 1.00s: TimeoutError")


def test_error_text_is_one_bounded_line() -> None:
    """Newlines cannot forge log lines; a whole HTML page is cut to the limit."""
    forged = ValueError("boom\n[CIRCUIT] kimi: open -> closed (forged)\r\n")
    assert error_text(forged) == "boom [CIRCUIT] kimi: open -> closed (forged)"
    page = error_text(ValueError("<html>" + "x" * 5000))
    assert len(page) == ERROR_TEXT_LIMIT
    assert page.endswith("…")


async def test_a_key_echoed_by_an_error_is_scrubbed_from_retry_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An error that quotes an ``sk-`` key or a bearer token logs ``***`` instead."""
    caplog.set_level(logging.INFO, logger="breaker_service.retry")
    errors = [
        ConnectionError(f"refused: Authorization: Bearer {GLM_KEY}"),
        ConnectionError(f"invalid api key {KIMI_KEY}"),
    ]
    with pytest.raises(ConnectionError):
        await policy(FakeClock(), max_attempts=2).call(Failing(*errors))
    lines = [(r.getMessage(), r.error) for r in retry_records(caplog)]  # type: ignore[attr-defined]
    assert lines == [
        (
            "[RETRY] kimi attempt 1/2 failed (ConnectionError), retrying after 1.00s: "
            "refused: Authorization: Bearer ***",
            "refused: Authorization: Bearer ***",
        ),
        (
            "[RETRY] kimi giving up after attempt 2 (ConnectionError, 2 attempts): "
            "invalid api key sk-***",
            "invalid api key sk-***",
        ),
    ]


async def test_a_provider_reply_echoing_its_key_is_scrubbed_in_the_retry_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A real HTTP provider whose 503 quotes the request's key: the line shows ``***``.

    The GLM key does not look like a key; only the provider layer, which knows the
    configured key, can scrub it, and the retry line shows that scrubbed message.
    """
    caplog.set_level(logging.INFO, logger="breaker_service")
    echo = {"error": {"type": "server_error", "message": "denied for <AUTH>"}}
    allowed = tmp_path / "allowed"
    path = write_file(allowed / "report.txt")
    with reply_server([Reply(503, echo)]) as glm:
        settings = make_settings(
            allowed, glm_url=glm.url, retry_base_delay=0.001, retry_max_delay=0.01
        )
        async with open_orchestrator(settings) as orchestrator:
            result = await orchestrator.upload(path, "glm")
    assert result.attempts == 2
    assert glm.authorizations[0] == f"Bearer {GLM_KEY}"
    [record] = retry_records(caplog)
    message = record.getMessage()
    assert message.startswith("[RETRY] glm attempt 1/3 failed (503), retrying after ")
    assert "denied for Bearer ***" in message
    assert GLM_KEY not in message
    assert GLM_KEY not in record.error  # type: ignore[attr-defined]


async def test_a_json_formatter_can_emit_every_field(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The structured fields are plain JSON values on the record."""
    caplog.set_level(logging.INFO, logger="breaker_service.retry")
    await policy(FakeClock()).call(Failing(ConnectionError("reset by peer")))
    [record] = retry_records(caplog)
    document = json.loads(
        json.dumps({field: getattr(record, field) for field in RETRY_FIELDS})
    )
    assert document["error"] == "reset by peer"
    assert document["status"] is None


# -- the [CIRCUIT] transition line ----------------------------------------------------


async def test_transition_line_carries_state_transition_and_the_provider(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``[CIRCUIT] State transition: kimi: closed -> open (5 consecutive failures)``."""
    caplog.set_level(logging.INFO, logger="breaker_service.breaker")
    clock = FakeClock()
    async with memory_registry(clock) as registry:
        breaker = registry.get("kimi")
        await fail_times(breaker, Provider("kimi"), 5)
    [record] = [
        r
        for r in caplog.records
        if r.name == "breaker_service.breaker" and "->" in r.getMessage()
    ]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        "[CIRCUIT] State transition: kimi: closed -> open (5 consecutive failures)"
    )
    fields = ("provider", "from_state", "to_state", "reason", "actor")
    assert {field: record.__dict__.get(field, "missing") for field in fields} == {
        "provider": "kimi",
        "from_state": "closed",
        "to_state": "open",
        "reason": "5 consecutive failures",
        "actor": None,
    }

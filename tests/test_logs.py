"""Readable output by default, third parties with -v, JSON lines on request."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from breaker_service.logs import THIRD_PARTY, configure_logging


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in THIRD_PARTY}
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


def test_third_party_info_is_quiet_by_default_and_back_with_verbose() -> None:
    """httpx's per-request INFO lines are hidden unless ``-v``; ours stay at INFO."""
    configure_logging()
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    assert not logging.getLogger("uvicorn.access").isEnabledFor(logging.INFO)
    assert logging.getLogger("breaker_service.retry").isEnabledFor(logging.INFO)
    configure_logging(verbose=True)
    assert logging.getLogger("httpx").isEnabledFor(logging.INFO)


def test_json_lines_carry_the_structured_fields(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``LOG_FORMAT=json``: one object per line with provider, states, reason, actor."""
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging(log_format="json")
    logging.getLogger("breaker_service.breaker").warning(
        "[CIRCUIT] State transition: %s: %s -> %s (%s)",
        "kimi",
        "closed",
        "open",
        "5 consecutive failures",
        extra={
            "provider": "kimi",
            "from_state": "closed",
            "to_state": "open",
            "reason": "5 consecutive failures",
            "actor": None,
        },
    )
    [line] = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["message"].startswith("[CIRCUIT] State transition: kimi")
    assert (record["level"], record["logger"]) == ("WARNING", "breaker_service.breaker")
    assert (record["provider"], record["from_state"], record["to_state"]) == (
        "kimi",
        "closed",
        "open",
    )
    assert record["actor"] is None

"""The public surface: what ``breaker_service`` exports, and that it stays sorted."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import breaker_service

ROOT = Path(__file__).resolve().parent.parent


def test_all_is_sorted_and_complete() -> None:
    """``__all__`` is sorted and every name in it exists."""
    names = breaker_service.__all__
    assert names == sorted(names)
    for name in names:
        assert hasattr(breaker_service, name), name


def test_issue_api_names_are_exported() -> None:
    """The names other tools and docs rely on are importable from the top level."""
    from breaker_service import (  # noqa: F401, PLC0415
        BreakerRegistry,
        BreakerState,
        CircuitOpenError,
        FakeClock,
        RetryPolicy,
    )

    assert breaker_service.BreakerState.HALF_OPEN.value == "half_open"


def test_every_error_derives_from_the_root() -> None:
    """Every exported exception can be caught as ``BreakerServiceError``."""
    errors = [
        getattr(breaker_service, n)
        for n in breaker_service.__all__
        if isinstance(getattr(breaker_service, n), type)
        and issubclass(getattr(breaker_service, n), BaseException)
    ]
    assert errors
    for error in errors:
        assert issubclass(error, breaker_service.BreakerServiceError), error


def test_version_comes_from_the_package_metadata() -> None:
    """``__version__`` is the installed distribution's, which pyproject.toml sets."""
    assert breaker_service.__version__ == importlib.metadata.version("breaker-service")
    declared = re.search(
        r'^version = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(), re.MULTILINE
    )
    assert declared is not None
    assert breaker_service.__version__ == declared.group(1)


def test_the_version_is_written_down_once() -> None:
    """No module repeats the version string: everything reads ``__version__``."""
    version = breaker_service.__version__
    for path in (ROOT / "breaker_service").rglob("*.py"):
        assert f'"{version}"' not in path.read_text(), path

"""The command line through its real entry points, as subprocesses."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from breaker_service import __version__, demo
from breaker_service.cli.app import COMMANDS
from breaker_service.cli.parser import build_parser
from breaker_service.cli.render import status_table
from breaker_service.migrate import SCHEMA_HEAD

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).with_name("breaker-service")

pytestmark = pytest.mark.slow


def run(
    args: list[str], tmp_path: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``breaker-service`` script in ``tmp_path`` with a clean env."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RETRY_", "CIRCUIT_", "RESILIENCE_", "DATABASE_"))
    }
    clean["DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    clean.update(env)
    return subprocess.run(
        [str(SCRIPT), *args],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_help_lists_the_commands(tmp_path: Path) -> None:
    """``breaker-service --help`` works and names every command."""
    result = run(["--help"], tmp_path)
    assert result.returncode == 0
    for command in ("demo", "status", "events", "force-open", "reset", "db"):
        assert command in result.stdout


def test_python_dash_m(tmp_path: Path) -> None:
    """``python -m breaker_service --version`` runs the same program."""
    result = subprocess.run(
        [sys.executable, "-m", "breaker_service", "--version"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"breaker-service {__version__}"


def test_every_command_has_one_runner() -> None:
    """The dispatch table and the parser name the same commands."""
    parser = build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(COMMANDS) == set(sub.choices)


def test_help_does_not_load_the_heavy_libraries() -> None:
    """Importing the CLI loads no web, SQL, HTTP or JWT library: ``--help`` stays fast."""
    heavy = ("fastapi", "sqlalchemy", "alembic", "httpx", "jwt", "uvicorn")
    probe = (
        "import sys, breaker_service.cli; "
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "[]"


def test_the_demo_prints_breakers_with_the_cli_table() -> None:
    """One status table, one column order, for ``status`` and the demo."""
    assert vars(demo)["status_table"] is status_table
    row = {
        "name": "kimi",
        "state": "open",
        "failures": 3,
        "successes": 7,
        "rejections": 2,
        "retry_after": 2.5,
        "last_transition": {
            "from_state": "closed",
            "to_state": "open",
            "reason": "3 consecutive failures",
        },
    }
    console = Console(width=200, record=True)
    console.print(status_table([row], "after phase 2"))
    text = console.export_text()
    header = next(line for line in text.splitlines() if "name" in line)
    columns = [c.strip() for c in header.strip("┃│ ").split("┃") if c.strip()]
    assert columns == [
        "name",
        "state",
        "failures",
        "successes",
        "rejections",
        "retry after",
        "last transition",
    ]
    assert "closed -> open: 3 consecutive failures" in text
    assert "2.5s" in text


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        pytest.param("RETRY_MAX_ATTEMPTS", "abc", id="not-a-number"),
        pytest.param("RETRY_MAX_ATTEMPTS", "0", id="zero-attempts"),
        pytest.param("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "0", id="threshold"),
        pytest.param("DATABASE_URL", "mysql://x", id="database-url"),
    ],
)
def test_bad_configuration_exits_2_naming_the_variable(
    tmp_path: Path, variable: str, value: str
) -> None:
    """A bad variable: exit 2 and one line on stderr that names it, no traceback."""
    result = run(["status"], tmp_path, **{variable: value})
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert "Traceback" not in result.stderr


def test_db_upgrade_then_check(tmp_path: Path) -> None:
    """``db upgrade`` migrates an empty file; ``db check`` then agrees; ``db current`` names head."""
    assert run(["db", "upgrade"], tmp_path).returncode == 0
    check = run(["db", "check"], tmp_path)
    assert check.returncode == 0, check.stderr
    current = run(["db", "current"], tmp_path)
    assert SCHEMA_HEAD in current.stdout


def test_force_open_status_events_reset(tmp_path: Path) -> None:
    """Operator commands are recorded with reason and actor and visible in status and events."""
    assert (
        run(
            ["force-open", "kimi", "--reason", "maintenance", "--actor", "alice"],
            tmp_path,
        ).returncode
        == 0
    )
    status = run(["status", "--json"], tmp_path)
    assert status.returncode == 0, status.stderr
    breakers = {b["name"]: b for b in json.loads(status.stdout)["breakers"]}
    assert breakers["kimi"]["state"] == "forced_open"
    assert run(["reset", "kimi", "--reason", "done"], tmp_path).returncode == 0
    events = run(["events", "kimi", "--json", "--kind", "transition"], tmp_path)
    found = json.loads(events.stdout)
    assert [(e["to_state"], e["reason"], e["actor"]) for e in found] == [
        ("forced_open", "maintenance", "alice"),
        ("closed", "done", "cli"),
    ]


def test_events_rejects_a_bad_since(tmp_path: Path) -> None:
    """A malformed ``--since`` is a usage error naming the option."""
    result = run(["events", "kimi", "--since", "yesterday"], tmp_path)
    assert result.returncode == 2
    assert "--since" in result.stderr


def test_demo_once_shows_open_and_recovery(tmp_path: Path) -> None:
    """``demo --once`` finishes quickly and shows kimi opening, falling back and closing."""
    result = run(["demo", "--once"], tmp_path, COLUMNS="200")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "closed -> open" in result.stderr
    assert "half_open -> closed" in result.stderr
    assert "by fallback" in result.stdout
    # readable by default: no third-party INFO lines (httpx logged one per request)
    assert "HTTP Request:" not in result.stderr
    assert " INFO httpx " not in result.stderr
    assert " INFO uvicorn.access " not in result.stderr

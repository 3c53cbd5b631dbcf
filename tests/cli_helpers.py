"""Running the real ``breaker-service`` script with only the variables a test gives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(sys.executable).with_name("breaker-service")
KEPT = frozenset({"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT"})


def run_cli(
    args: list[str], cwd: Path, *, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """The script in ``cwd``: SQLite there unless ``DATABASE_URL`` is given."""
    clean = {k: v for k, v in os.environ.items() if k in KEPT}
    clean["DATABASE_URL"] = f"sqlite+aiosqlite:///{cwd / 'cli.db'}"
    clean.update(env)
    return subprocess.run(
        [str(SCRIPT), *args],
        cwd=cwd,
        env=clean,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The only non-empty line on stderr, with no traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]

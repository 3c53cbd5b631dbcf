"""Short-lived commands deliver their tracking before they exit (issue: 12 of 19 left)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tracking_helpers import SERVICE_KEY, make_files, stub_ids, supabase_server
from upload_helpers import KEY_VARIABLES, KIMI_KEY, flaky_server

SCRIPT = Path(sys.executable).with_name("breaker-service")

pytestmark = pytest.mark.slow


def _run(
    args: list[str], tmp_path: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("RETRY_", "CIRCUIT_", "RESILIENCE_", "DATABASE_", "SUPABASE_")
        )
        and k not in KEY_VARIABLES
    }
    clean.update(
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
        UPLOAD_ALLOWED_DIRS=str(tmp_path / "files"),
        RETRY_BASE_DELAY="0.01",
        RETRY_MAX_DELAY="0.05",
    )
    clean.update(env)
    return subprocess.run(
        [str(SCRIPT), *args],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_upload_delivers_every_record_before_it_exits(tmp_path: Path) -> None:
    """19 uploads while Supabase answers 503 at first: all 19 tracked at exit."""
    files = make_files(tmp_path, 19)
    with (
        flaky_server("kimi") as kimi,
        supabase_server(tmp_path / "supabase.db") as supabase,
    ):
        supabase.stub.fail_status = 503
        supabase.stub.fail_times = 4  # rows back off: delivered late, not never
        result = _run(
            ["upload", *map(str, files), "--provider", "kimi", "--concurrency", "8"],
            tmp_path,
            KIMI_API_KEY=KIMI_KEY,
            KIMI_BASE_URL=kimi.url,
            SUPABASE_URL=supabase.url,
            SUPABASE_SERVICE_KEY=SERVICE_KEY,
        )
        tracked = stub_ids(supabase.stub)
    assert result.returncode == 0, result.stderr
    assert len(tracked) == 19
    assert "19/19 uploaded" in result.stdout
    assert "0 pending" in result.stdout


def test_upload_says_what_remains_when_supabase_is_down(tmp_path: Path) -> None:
    """Supabase unreachable: uploads still succeed (exit 0), a warning names the rest."""
    files = make_files(tmp_path, 3)
    with flaky_server("kimi") as kimi:
        result = _run(
            [
                "upload",
                *map(str, files),
                "--provider",
                "kimi",
                "--tracking-timeout",
                "1",
            ],
            tmp_path,
            KIMI_API_KEY=KIMI_KEY,
            KIMI_BASE_URL=kimi.url,
            SUPABASE_URL="http://127.0.0.1:9",
            SUPABASE_SERVICE_KEY=SERVICE_KEY,
        )
    assert result.returncode == 0, result.stderr
    assert "3/3 uploaded" in result.stdout
    assert "warning: tracking: 0 delivered now, 3 pending" in " ".join(
        result.stderr.split()
    )


def test_outbox_deliver_delivers_what_an_earlier_process_left(tmp_path: Path) -> None:
    """Rows left pending by one process are delivered by ``outbox --deliver``."""
    files = make_files(tmp_path, 4)
    with flaky_server("kimi") as kimi:
        left = _run(
            [
                "upload",
                *map(str, files),
                "--provider",
                "kimi",
                "--tracking-timeout",
                "0",
            ],
            tmp_path,
            KIMI_API_KEY=KIMI_KEY,
            KIMI_BASE_URL=kimi.url,
            SUPABASE_URL="http://127.0.0.1:9",
            SUPABASE_SERVICE_KEY=SERVICE_KEY,
            # keep the supabase breaker closed: the rows just back off
            CIRCUIT_BREAKER_FAILURE_THRESHOLD__SUPABASE="1000",
        )
    assert left.returncode == 0, left.stderr
    with supabase_server(tmp_path / "supabase.db") as supabase:
        result = _run(
            ["outbox", "--deliver", "--json"],
            tmp_path,
            SUPABASE_URL=supabase.url,
            SUPABASE_SERVICE_KEY=SERVICE_KEY,
        )
        tracked = stub_ids(supabase.stub)
    assert result.returncode == 0, result.stderr
    assert len(tracked) == 4
    assert '"pending": 0' in result.stdout

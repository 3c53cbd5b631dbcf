"""``breaker-service reconcile`` through the installed script."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from test_cli import run
from test_reconcile import left_open, store_at
from upload_helpers import KIMI_KEY, flaky_server, write_file

from breaker_service.config import load_settings
from breaker_service.service import Service
from breaker_service.uploads.intents import UploadIntent

pytestmark = pytest.mark.slow


async def _seed(db: Path, url: str, intent: UploadIntent) -> None:
    settings = load_settings(
        env_file=None,
        database_url=f"sqlite+aiosqlite:///{db}",
        kimi_base_url=url,
        KIMI_API_KEY=KIMI_KEY,
    )
    async with await Service.open(settings) as service:
        assert service.intents is not None
        await service.intents.begin(intent)


def test_reconcile_lists_holds_then_adopts_after_a_crash(tmp_path: Path) -> None:
    """Another process's fresh intent is held; ``--after-crash`` adopts its copy."""
    path = write_file(tmp_path / "allowed" / "a.txt")
    intent = left_open(path)
    with flaky_server("kimi") as kimi:
        asyncio.run(_seed(tmp_path / "cli.db", kimi.url, intent))
        file_id = store_at(kimi, path)
        env = {
            "KIMI_BASE_URL": kimi.url,
            "KIMI_API_KEY": KIMI_KEY,
            "GLM_API_KEY": "",
            "BREAKER_REPLICA_ID": "replica-a",
            "UPLOAD_ALLOWED_DIRS": str(tmp_path / "allowed"),
        }
        listed = run(["reconcile", "--list", "--json"], tmp_path, **env)
        assert listed.returncode == 0, listed.stderr
        assert [i["id"] for i in json.loads(listed.stdout)["open"]] == [intent.id]
        held = run(["reconcile", "--json", "--provider", "kimi"], tmp_path, **env)
        assert held.returncode == 1, held.stderr
        body = json.loads(held.stdout)
        assert body["orphans"] == 1
        assert "under way" in body["providers"][0]["reported"][0]["why"]
        dry = run(
            ["reconcile", "--after-crash", "--dry-run", "--json", "--provider", "kimi"],
            tmp_path,
            **env,
        )
        assert dry.returncode == 0, dry.stderr
        [kimi_dry] = json.loads(dry.stdout)["providers"]
        assert [a["file_id"] for a in kimi_dry["adopted"]] == [file_id]
        done = run(
            ["reconcile", "--after-crash", "--json", "--provider", "kimi"],
            tmp_path,
            **env,
        )
        assert done.returncode == 0, done.stderr
        [kimi_done] = json.loads(done.stdout)["providers"]
        assert [a["file_id"] for a in kimi_done["adopted"]] == [file_id]
        after = run(["reconcile", "--list", "--json"], tmp_path, **env)
        assert json.loads(after.stdout)["open"] == []
        assert file_id in kimi.state.files

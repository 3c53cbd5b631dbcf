"""Upload files with Supabase unreachable, print ``UPLOADED <ids>``, then block.

Run by ``tests/test_tracking.py`` as
``python upload_then_block.py DB_URL FILES_DIR KIMI_URL KIMI_KEY SUPABASE_URL KEY N``
and killed with SIGKILL while blocked: the uploads and their outbox rows are
committed, the deliveries never happened, and nothing is closed or flushed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from breaker_service.clock import SystemClock
from breaker_service.config import load_settings
from breaker_service.uploads import UploadOrchestrator


async def main(argv: list[str], paths: list[Path]) -> None:
    """Upload ``paths``, report, and wait to be killed."""
    db_url, files_dir, kimi_url, kimi_key, supabase_url, key, _ = argv
    settings = load_settings(
        env_file=None,
        database_url=db_url,
        upload_allowed_dirs=files_dir,
        upload_provider_order="kimi",
        kimi_base_url=kimi_url,
        KIMI_API_KEY=kimi_key,
        SUPABASE_URL=supabase_url,
        SUPABASE_SERVICE_KEY=key,
        supabase_timeout=0.5,
        breaker_instance_id="doomed",
        retry_max_attempts=1,  # one refused delivery per batch, nothing more
        circuit_breaker_failure_threshold=1000,  # the supabase breaker stays closed
        outbox_interval=3600,
    )
    orchestrator = await UploadOrchestrator.open(settings, clock=SystemClock())
    ids = [(await orchestrator.upload(p)).upload_id for p in paths]
    sys.stdout.write(f"UPLOADED {','.join(ids)}\n")
    sys.stdout.flush()
    await asyncio.Event().wait()


if __name__ == "__main__":
    args = sys.argv[1:]
    files = sorted(Path(args[1]).iterdir())[: int(args[6])]
    asyncio.run(main(args, files))

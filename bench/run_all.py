"""Run every ``bench/bench_*.py`` (and ``bench/chaos.py``) in turn with this interpreter, passing the arguments on.

    python bench/run_all.py            # what ``python3 scripts/dev.py bench`` runs
    python bench/run_all.py --quick    # every benchmark's smoke run

Exits non-zero if any benchmark failed (after running all of them).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    """Run each benchmark script; the exit status is the first failure's, else 0."""
    scripts = [*sorted(BENCH.glob("bench_*.py")), BENCH / "chaos.py"]
    if not scripts:
        print(f"no bench_*.py in {BENCH}", file=sys.stderr)
        return 1
    failed: list[tuple[str, int]] = []
    for script in scripts:
        print(f"== {script.name} {' '.join(argv)}".rstrip(), flush=True)
        code = subprocess.call([sys.executable, str(script), *argv], cwd=BENCH.parent)
        if code != 0:
            failed.append((script.name, code))
        print(flush=True)
    for name, code in failed:
        print(f"{name} failed with exit status {code}", file=sys.stderr)
    return failed[0][1] if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""Set up the project's locked environment and run its jobs: ``run``, ``test``, ``bench``.

Needs nothing but Python 3.11+: it creates ``.venv``, installs the pinned ``uv``
into it, syncs the exact versions from ``uv.lock`` and then runs the job.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
UV_VERSION = "0.13.9"


def _run(*cmd: str | Path, env: dict[str, str] | None = None) -> int:
    printable = " ".join(str(c) for c in cmd)
    print(f"+ {printable}", flush=True)
    return subprocess.call([str(c) for c in cmd], cwd=ROOT, env=env)  # noqa: S603 - our own tools


def _check(*cmd: str | Path, env: dict[str, str] | None = None) -> None:
    code = _run(*cmd, env=env)
    if code != 0:
        raise SystemExit(code)


def _uv_env() -> dict[str, str]:
    env = dict(os.environ)
    env["UV_PROJECT_ENVIRONMENT"] = str(VENV)
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env["UV_PYTHON"] = str(BIN / "python")
    env.pop("VIRTUAL_ENV", None)
    return env


def setup() -> None:
    """Create ``.venv`` (if needed) and sync it to the lock file, frozen."""
    if sys.version_info < (3, 11):  # noqa: UP036 - say so clearly on an old Python
        raise SystemExit("breaker-service needs Python 3.11 or newer")
    python = BIN / "python"
    if not python.exists():
        if VENV.exists():
            shutil.rmtree(VENV)
        print(f"+ creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    uv = BIN / "uv"
    if not uv.exists():
        _check(python, "-m", "pip", "install", "--quiet", f"uv=={UV_VERSION}")
    _check(uv, "sync", "--frozen", "--all-groups", env=_uv_env())


def test(args: list[str]) -> int:
    """Lint, type-check and run the whole test suite; non-zero on any failure."""
    setup()
    _check(BIN / "ruff", "check", ".")
    _check(BIN / "ruff", "format", "--check", ".")
    _check(BIN / "mypy")
    # The suite mostly waits (sockets, subprocesses, PostgreSQL), so it runs in
    # BREAKER_TEST_WORKERS xdist workers (0: in this process), a test file per worker
    # at a time (its module-scoped servers start once); coverage follows them.
    workers = os.environ.get("BREAKER_TEST_WORKERS", "4")
    cmd: list[str | Path] = [BIN / "pytest", "--cov", "--cov-report="]
    if workers != "0":
        cmd += ["-n", workers, "--dist", "loadfile"]
    cmd += args
    code = _run(*cmd)
    if code == 5:
        print("pytest collected no tests: that is a failure here", flush=True)
        return 1
    if code == 0:
        _run(BIN / "coverage", "report", "--format=total")
    return code


def main(argv: list[str]) -> int:
    job = argv[0] if argv else "run"
    rest = argv[1:]
    if job == "setup":
        setup()
        return 0
    if job == "test":
        return test(rest)
    if job == "run":
        setup()
        return _run(BIN / "breaker-service", *(rest or ["demo"]))
    if job == "bench":
        setup()
        return _run(BIN / "python", "bench/run_all.py", *rest)
    print("usage: python3 scripts/dev.py [run|test|bench|setup] [args...]")
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

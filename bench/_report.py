"""What every benchmark shares: statistics, a machine description, BENCHMARKS.md sections.

Each benchmark owns one section of ``BENCHMARKS.md``, fenced by
``<!-- BEGIN name -->`` and ``<!-- END name -->``; ``write_section`` replaces that
block (or appends it) and leaves every other section as it was.
"""

from __future__ import annotations

import math
import os
import platform
import re
import statistics
from collections.abc import Sequence
from pathlib import Path

__all__ = ["BENCHMARKS_MD", "machine_info", "median", "percentile", "write_section"]

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"

HEADER = """\
# Benchmarks

Measured by the scripts in `bench/`; each section below is rewritten by its script
and names the machine it ran on. Run them all (this sets up the locked environment):

    python3 scripts/dev.py bench            # full runs, rewrites this file
    python3 scripts/dev.py bench --quick    # short smoke run, prints only
"""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def write_section(name: str, markdown: str, path: Path = BENCHMARKS_MD) -> Path:
    """Replace the ``name`` block of ``path`` with ``markdown`` (append it if absent).

    The file is created with a short header when missing, and replaced atomically.
    """
    if not _NAME.match(name):
        msg = f"section name must match {_NAME.pattern}, got {name!r}"
        raise ValueError(msg)
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}\n"
    text = path.read_text(encoding="utf-8") if path.exists() else HEADER
    fenced = re.compile(re.escape(begin) + r".*?" + re.escape(end) + r"\n?", re.DOTALL)
    if fenced.search(text):
        text = fenced.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block
    scratch = path.with_name(f".{path.name}.tmp")
    scratch.write_text(text, encoding="utf-8")
    os.replace(scratch, path)
    return path


def _cpu_model() -> str:
    """The CPU's marketing name where the platform tells it, else ``platform.processor``."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_info() -> str:
    """One line naming the interpreter, the OS and the CPU."""
    return (
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{platform.system()} {platform.release()} ({platform.machine()}), "
        f"{_cpu_model()}, {os.cpu_count()} logical CPUs"
    )


def median(values: Sequence[float]) -> float:
    """The median of a non-empty sequence."""
    return statistics.median(values)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between ranks."""
    if not values:
        msg = "percentile of an empty sequence"
        raise ValueError(msg)
    if not 0 <= q <= 100:
        msg = f"q must be within [0, 100], got {q}"
        raise ValueError(msg)
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)

"""What every benchmark result carries: the machine, the code version, and plain-text tables.

A figure without its machine is not comparable with anything, so each JSON result starts with
the CPU, the core count, the Python and library versions, the date, the git commit and the load
average around the run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
# Libraries whose versions change what a benchmark measures: the daemon's HTTP stack (aiohttp,
# uvloop, httptools for its upstream client), its kernels (numpy, numba), and the plots.
TRACKED_PACKAGES = ("hubhop", "aiohttp", "uvloop", "httptools", "numpy", "numba", "matplotlib")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine_info() -> dict[str, Any]:
    status = _git("status", "--porcelain")
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": _mem_total_gib(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        # None before the first commit; `git_dirty` says whether the tree had local changes.
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
        "packages": {name: _version(name) for name in TRACKED_PACKAGES},
        "load_average_at_start": load_average(),
    }


def add_run_arguments(parser: argparse.ArgumentParser, name: str, quick_help: str) -> None:
    """The flags every benchmark takes: --quick (a smoke run) and --out (where results go)."""
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO_ROOT / "bench" / "results" / name,
        metavar="DIR",
        help=f"where to write the JSON and PNG (default: bench/results/{name}/)",
    )


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")


def format_table(headers: list[str], rows: list[list[str]], title: str = "") -> str:
    """A plain fixed-width table: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        first = str(cells[0]).ljust(widths[0])
        rest = [str(cell).rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest])

    out = [title] if title else []
    out += [line(headers), "  ".join("-" * width for width in widths)]
    out += [line(row) for row in rows]
    return "\n".join(out)


def quantile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile with linear interpolation (numpy's default); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    lo = int(position)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (position - lo)


NO_MATPLOTLIB = "matplotlib is not installed (pip install matplotlib); no PNG written"


def pyplot() -> Any | None:
    """matplotlib.pyplot on the Agg backend (no display on a benchmark box), or None where
    matplotlib is not installed: plots are optional, the JSON and tables are the result."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def save_figure(plt: Any, figure: Any, path: Path, title: str, fontsize: int = 9) -> None:
    """Title, lay out and write `figure` as a PNG at `path`, then free it."""
    figure.suptitle(title, fontsize=fontsize)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)

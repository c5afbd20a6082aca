"""The files a run leaves: the JSON result (with the machine it ran on) and a latency CDF plot.

A figure without its machine is not comparable with anything, so the JSON names the CPU, the
cores, the Python and library versions, the git commit when the tool runs from a checkout, the
date and the load average. The plot needs matplotlib, which is optional: without it the PNG is
skipped and the caller says so; the JSON is the result.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

# The libraries whose versions change what a load generator measures.
VERSIONED = ("hubhop", "aiohttp", "hdrhistogram", "uvloop")
PACKAGE_DIR = Path(__file__).resolve().parent
NO_MATPLOTLIB = "matplotlib is not installed (pip install matplotlib): no PNG written"


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _commit() -> str | None:
    """The git commit of the checkout this package runs from; None when it is not one."""
    try:
        done = subprocess.run(
            ["git", "-C", str(PACKAGE_DIR), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    return {
        "cpu_model": _cpu(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": _commit(),
        "versions": {name: _installed(name) for name in VERSIONED},
        "load_average": load,
    }


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def write_cdf_png(path: Path, series: dict[str, list[tuple[float, float]]], title: str) -> bool:
    """Total latency CDF, one line per (lane, tier), log-scaled time; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display where load generators run
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return False
    figure, axes = plt.subplots(figsize=(7.5, 4.5))
    for label, points in series.items():
        if points:
            xs, ys = zip(*points, strict=True)
            axes.step(xs, ys, where="post", label=label)
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())  # 20, 50, not 2x10^1
    axes.set_xlabel("latency from planned send (ms)")
    axes.set_ylabel("fraction of answers")
    axes.set_ylim(0.0, 1.0)
    axes.grid(True, which="both", alpha=0.3)
    if series:
        axes.legend(fontsize=8, loc="lower right")
    save_figure(figure, axes, path, title)
    return True


def save_figure(figure: Any, axes: Any, path: Path, title: str) -> None:
    """Title, lay out, write `path` as a PNG and free the figure (matplotlib is loaded)."""
    import matplotlib.pyplot as plt

    axes.set_title(title, fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)  # about 100 kB: sharp on a screen, small in a repository
    plt.close(figure)

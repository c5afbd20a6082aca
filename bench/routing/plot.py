"""The routing benchmark's PNG: p99 per lane and system under skew and in the flood, and how much
of each lane each system served within its tier.

Optional: without matplotlib the JSON and the tables are the result, and a note says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench._report import NO_MATPLOTLIB, pyplot, save_figure
from bench.routing.plan import SYSTEMS
from bench.routing.summary import LANES


def write_png(path: Path, document: Mapping[str, Any]) -> str:
    """Write the plot; "" or why not."""
    plt = pyplot()
    if plt is None:
        return NO_MATPLOTLIB
    results = document["results"]
    systems = [s for s in SYSTEMS if s in results]
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    width = 0.8 / max(1, len(systems))
    panels = (("skew", "p99 under skew (s)"), ("flood", "p99 in the batch flood (s)"))
    for ax, (phase, title) in zip(axes[:2], panels, strict=True):
        for i, system in enumerate(systems):
            rows = results[system].get(phase, {})
            values = [(rows.get(lane, {}).get("p99_ms") or float("nan")) / 1000.0 for lane in LANES]
            xs = [x + i * width for x in range(len(LANES))]
            ax.bar(xs, values, width, label=system)
        ax.set_xticks([x + width * (len(systems) - 1) / 2 for x in range(len(LANES))], LANES)
        ax.set_yscale("log")
        ax.set_title(title + "; missing bar: over 1% unanswered", fontsize=9)
    for i, system in enumerate(systems):
        rows = results[system].get("skew", {})
        shares = [100.0 * (rows.get(lane, {}).get("within_tier_share") or 0.0) for lane in LANES]
        axes[2].bar([x + i * width for x in range(len(LANES))], shares, width, label=system)
    axes[2].set_xticks([x + width * (len(systems) - 1) / 2 for x in range(len(LANES))], LANES)
    axes[2].set_ylim(0, 105)
    axes[2].set_title("served within tier under skew (% of sent)", fontsize=9)
    axes[0].legend(fontsize=8)
    machine = document.get("machine", {})
    title = (
        f"bench/routing: {document.get('daemons')} daemons, "
        f"{'quick' if document.get('quick') else 'full'} run, {machine.get('cpu_model', '?')}, "
        f"{str(machine.get('date', '?'))[:10]}"
    )
    save_figure(plt, figure, path, title)
    return ""

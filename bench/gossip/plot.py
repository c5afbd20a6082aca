"""The gossip PNG: update latency CDFs, join and failure bars, simulator spread against N.

Panels: (1) CDF of the time each other node took to see a record change, per system and N;
(2) join: from the last join until all list all alive, per system and N; (3) kill -9: first
and all marking the node dead, per system and N; (4) simulator: rounds to reach 50/99/100% of
nodes against N (log scale), for an update and for a failure.

matplotlib is optional: without it the plot is skipped with a message and the JSON and table
are still written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench._report import NO_MATPLOTLIB, pyplot, save_figure

COLORS = {"hubhop": "#1f77b4", "serf": "#d62728"}
STYLES = ["-", "--", ":"]


def plot(results: dict[str, Any], sizes: list[int], title: str, path: Path) -> str | None:
    """Write the PNG; returns None, or why it was skipped."""
    plt = pyplot()
    if plt is None:
        return NO_MATPLOTLIB

    figure, axes = plt.subplots(2, 2, figsize=(13, 9))
    systems = [s for s in ("hubhop", "serf") if results.get(s)]

    ax = axes[0][0]
    for system in systems:
        for style, n in zip(STYLES, sizes, strict=False):
            updates = results[system].get(str(n), {}).get("update", {}).get("updates", [])
            values = sorted(v for u in updates for v in u["per_node_s"])
            if values:
                ys = [(k + 1) / len(values) for k in range(len(values))]
                ax.step(values, ys, where="post", ls=style, color=COLORS[system],
                        label=f"{system} N={n}")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("record change seen by another node (s, log scale)")
    ax.set_ylabel("fraction of (update, node) pairs")
    ax.set_title("update dissemination")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)

    def bars(ax: Any, series: Sequence[tuple[str, str, tuple[str, ...]]], ylabel: str) -> None:
        width = 0.8 / max(1, len(series))
        for k, (system, label, key) in enumerate(series):
            values = []
            for n in sizes:
                node: Any = results.get(system, {}).get(str(n), {})
                for part in key:
                    node = node.get(part) if isinstance(node, dict) else None
                values.append(node if isinstance(node, int | float) else 0.0)
            xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(sizes))]
            hatch = "//" if "first" in label else None
            drawn = ax.bar(xs, values, width, label=label, color=COLORS[system], hatch=hatch,
                           alpha=0.6 if hatch else 0.9)  # fmt: skip
            ax.bar_label(drawn, fmt="%.2g", fontsize=7)
        ax.set_xticks(range(len(sizes)), [f"N={n}" for n in sizes])
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8)

    bars(
        axes[0][1],
        [(s, s, ("join", "complete_after_last_join_s")) for s in systems],
        "all list all alive, after the last join (s)",
    )
    axes[0][1].set_title("join")
    bars(
        axes[1][0],
        [(s, f"{s} first", ("failure", "first_s")) for s in systems]
        + [(s, f"{s} all", ("failure", "all_s")) for s in systems],
        "kill -9 until marked dead (s)",
    )
    axes[1][0].set_title("failure detection")

    ax = axes[1][1]
    sim = results.get("simulator", {})
    drawn_any = False
    for kind, color in (("dissemination", "#1f77b4"), ("failure", "#2ca02c")):
        by_n = sorted(sim.get(kind, {}).items(), key=lambda kv: int(kv[0]))
        xs = [int(n) for n, _ in by_n]
        for style, p in zip(STYLES, (50, 99, 100), strict=True):
            ys = [r.get(f"rounds_{p}") for _, r in by_n]
            if xs and all(y is not None for y in ys):
                ax.plot(xs, ys, ls=style, marker="o", color=color, label=f"{kind} {p}%")
                drawn_any = True
    if drawn_any:
        ax.set_xscale("log")
        ax.set_xlabel("nodes (log scale)")
        ax.set_ylabel("rounds: gossip intervals (update), probe intervals (failure)")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, sim.get("skipped", "no simulator results"), ha="center", wrap=True)
    ax.set_title("simulator: spread against N")
    ax.grid(alpha=0.3)

    save_figure(plt, figure, path, title, fontsize=10)
    return None

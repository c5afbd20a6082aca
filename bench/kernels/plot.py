"""The kernels PNG: log-log time against size, and the cold starts.

Panels: (1) one decision against rows, one line per implementation (numba, NumPy reference,
Python loop), markers at the median, whiskers at the min and max of the round medians, the
targets as red marks and the empty-call floors as dotted lines; (2) one path recomputation
against nodes, numba and the reference, with the 10,000-node target; (3) cold-start wall time
per kind of process, with the 1 s warm-cache budget drawn above the baseline.

matplotlib is optional: without it the plot is skipped with a message and the JSON and table
are still written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench._report import NO_MATPLOTLIB, pyplot, save_figure
from bench.kernels.summary import DECIDE_IMPLS, IMPL_TITLES, PATHS_IMPLS, fmt

COLORS = {"numba": "#1f77b4", "numpy_ref": "#ff7f0e", "python_loop": "#2ca02c"}
FLOOR_STYLE = {"python_noop": ("#7f7f7f", ":"), "numba_noop": ("#1f77b4", ":")}


def plot(
    results: dict[str, Any],
    cold: dict[str, Any] | None,
    goals: list[dict[str, Any]],
    title: str,
    path: Path,
) -> str | None:
    """Write the PNG; returns None, or why it was skipped."""
    plt = pyplot()
    if plt is None:
        return NO_MATPLOTLIB

    figure, axes = plt.subplots(1, 3, figsize=(17, 5.8), width_ratios=(1.2, 1.0, 0.8))
    _lines(axes[0], results["decide"], DECIDE_IMPLS, "µs")
    for impl, by_size in results["floor"].items():
        for stats in by_size.values():
            color, style = FLOOR_STYLE.get(impl, ("#7f7f7f", ":"))
            axes[0].axhline(
                stats["median"],
                color=color,
                linestyle=style,
                linewidth=1,
                label=f"{IMPL_TITLES.get(impl, impl)} ({stats['median']:.2g} µs)",
            )
    _target(axes[0], 1_000, 10.0, "target ≤ 10 µs")
    _target(axes[0], 10_000, 60.0, "target ≤ 60 µs")
    axes[0].set_xlabel("candidate rows (node x backend), log scale")
    axes[0].set_ylabel("one decision from the Python call (µs, log scale)")
    axes[0].set_title("decide: one request over all rows")
    axes[0].legend(fontsize=8, loc="upper left")

    _lines(axes[1], results["paths"], PATHS_IMPLS, "ms")
    _target(axes[1], 10_000, 20.0, "target < 20 ms")
    axes[1].set_xlabel("nodes (about ten links each), log scale")
    axes[1].set_ylabel("one recomputation from one source (ms, log scale)")
    axes[1].set_title("shortest_paths: Dijkstra from one node")
    axes[1].legend(fontsize=8, loc="upper left")

    _cold(axes[2], cold)
    save_figure(plt, figure, path, title)
    return None


def _lines(ax: Any, group: dict[str, Any], impls: tuple[str, ...], unit: str) -> None:
    for impl in impls:
        by_size = group.get(impl)
        if not by_size:
            continue
        sizes = sorted(int(s) for s in by_size)
        medians = [by_size[str(s)]["median"] for s in sizes]
        low = [m - by_size[str(s)]["round_median_min"] for s, m in zip(sizes, medians, strict=True)]
        high = [
            by_size[str(s)]["round_median_max"] - m for s, m in zip(sizes, medians, strict=True)
        ]
        ax.errorbar(
            sizes,
            medians,
            yerr=[[max(0.0, v) for v in low], [max(0.0, v) for v in high]],
            marker="o",
            capsize=3,
            color=COLORS.get(impl),
            label=IMPL_TITLES.get(impl, impl),
        )
        for s, m in zip(sizes, medians, strict=True):
            ax.annotate(
                fmt(m),
                (s, m),
                (4, -10),
                textcoords="offset points",
                fontsize=7,
                color=COLORS.get(impl),
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)


def _target(ax: Any, x: float, y: float, label: str) -> None:
    ax.plot([x], [y], marker="_", markersize=22, markeredgewidth=2.5, color="#d62728")
    ax.annotate(label, (x, y), (6, 3), textcoords="offset points", fontsize=7, color="#d62728")


def _cold(ax: Any, cold: dict[str, Any] | None) -> None:
    ax.set_title("cold start: fresh process, kernels once")
    if not cold:
        ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    kinds = list(cold)
    medians = [cold[k]["median_s"] for k in kinds]
    low = [m - cold[k]["min_s"] for k, m in zip(kinds, medians, strict=True)]
    high = [cold[k]["max_s"] - m for k, m in zip(kinds, medians, strict=True)]
    colors = ["#7f7f7f", "#d62728", "#1f77b4"]
    ax.bar(kinds, medians, yerr=[low, high], capsize=4, color=colors[: len(kinds)])
    for i, kind in enumerate(kinds):
        added = "" if kind == "baseline" else f"\n(+{cold[kind]['added_s']:.2f} s)"
        ax.annotate(
            f"{medians[i]:.2f} s{added}",
            (i, medians[i] + high[i]),
            (0, 3),
            textcoords="offset points",
            ha="center",
            fontsize=8,
        )
    if "baseline" in cold:
        budget = cold["baseline"]["median_s"] + 1.0
        ax.axhline(budget, color="#d62728", linestyle="--", linewidth=1)
        ax.annotate(
            "baseline + 1 s (warm-cache target)",
            (len(kinds) - 0.5, budget),
            (0, 3),
            textcoords="offset points",
            ha="right",
            fontsize=7,
            color="#d62728",
        )
    ax.set_ylabel("process wall time, spawn to exit (s)")
    ax.set_xticks(range(len(kinds)))
    labels = {
        "baseline": "numpy + numba\nimport only",
        "no_cache": "kernels,\nempty cache",
        "warm_cache": "kernels,\nwarm cache",
    }
    ax.set_xticklabels([labels.get(k, k) for k in kinds])
    ax.set_ylim(0, max(m + h for m, h in zip(medians, high, strict=True)) * 1.18)
    ax.grid(True, axis="y", alpha=0.3)

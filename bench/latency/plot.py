"""The latency PNG: error CDFs and estimated-against-true scatters.

Panels: (1) CDF of the probed links' absolute error (ms); (2) CDF of Vivaldi's relative error
over all pairs of the daemons; (3) probed median RTT against the true RTT;
(4) the coordinates' RTT estimate against the true RTT. A scatter's diagonal is a perfect
estimate.

matplotlib is optional: without it the plot is skipped with a message, and the JSON and tables
are still written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench._report import NO_MATPLOTLIB, pyplot, save_figure


def _cdf(ax: Any, values: list[float], label: str) -> None:
    ordered = sorted(values)
    if ordered:
        ax.plot(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], label=label)


def plot(daemons: dict[str, Any], title: str, path: Path) -> str | None:
    """Write the PNG; returns None, or why it was skipped."""
    plt = pyplot()
    if plt is None:
        return NO_MATPLOTLIB
    scatter = daemons.get("judged", {}).get("scatter", {})
    probes = scatter.get("probes", [])
    vivaldi = scatter.get("vivaldi", [])
    figure, axes = plt.subplots(2, 2, figsize=(13, 10))

    ax = axes[0][0]
    _cdf(ax, [abs(m - t) for t, m in probes], f"{len(probes)} probed links")
    ax.axvline(0.05, color="grey", linestyle=":", label="0.05 ms")
    ax.set_xscale("symlog", linthresh=0.01)
    ax.set_xlabel("|probed median RTT - true RTT| (ms)")
    ax.set_ylabel("share of links")
    ax.set_title("probe accuracy")
    ax.legend()

    ax = axes[0][1]
    _cdf(ax, [abs(e - t) / t for t, e in vivaldi], f"daemons ({len(vivaldi)} pairs)")
    ax.axvline(0.05, color="grey", linestyle=":", label="5%")
    ax.set_xscale("log")
    ax.set_xlabel("Vivaldi relative error |est - true| / true")
    ax.set_title("coordinate accuracy (all pairs)")
    ax.legend()

    for ax, points, what in (
        (axes[1][0], probes, "probed median RTT"),
        (axes[1][1], vivaldi, "coordinate estimate"),
    ):
        if points:
            ax.scatter([t for t, _ in points], [e for _, e in points], s=6, alpha=0.5)
            top = max(max(t, e) for t, e in points) * 1.05
            ax.plot([0, top], [0, top], color="grey", linewidth=0.8)
        ax.set_xlabel("true RTT (ms)")
        ax.set_ylabel(f"{what} (ms)")
        ax.set_title(f"{what} against the truth")

    save_figure(plt, figure, path, title)
    return None

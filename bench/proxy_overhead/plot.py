"""The proxy_overhead PNG: latency CDFs per variant, and added latency and throughput bars.

Panels: (1, 2) the concurrency-1 latency CDF of each small workload, one line per variant;
(3) median added latency over direct per workload, with whiskers at the min and max of the
per-round added latency; (4) throughput relative to direct (concurrent req/s for the small
requests, MB/s for the upload), labelled with the absolute figure.

matplotlib is optional: without it the plot is skipped with a message and the JSON and table
are still written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench._report import NO_MATPLOTLIB, pyplot, save_figure
from bench.proxy_overhead.summary import CDF_PERCENTILES, DIRECT
from bench.proxy_overhead.workloads import WORKLOADS

COLORS = {"direct": "#4d4d4d", "hubhop": "#1f77b4", "haproxy": "#d62728"}


def plot(results: dict[str, Any], title: str, path: Path) -> str | None:
    """Write the PNG; returns None, or why it was skipped."""
    plt = pyplot()
    if plt is None:
        return NO_MATPLOTLIB
    from matplotlib import ticker

    figure, axes = plt.subplots(2, 2, figsize=(13, 9))
    latency = [w for w in WORKLOADS if w.kind == "latency"]
    for ax, workload in zip(axes[0], latency, strict=False):
        for variant, entry in results[workload.name].items():
            cdf = entry["c1"]["cdf_us"]
            ax.plot(
                cdf,
                [p / 100 for p in CDF_PERCENTILES],
                label=f"{variant} (median {entry['c1']['median_us']:.0f} µs)",
                color=COLORS.get(variant),
            )
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel("latency at concurrency 1 (µs, log scale)")
        ax.set_ylabel("fraction of requests")
        ax.set_title(workload.title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right")

    _added_bars(axes[1][0], results)
    _throughput_bars(axes[1][1], results)
    save_figure(plt, figure, path, title, fontsize=10)
    return None


def _variants(results: dict[str, Any]) -> list[str]:
    first = next(iter(results.values()))
    return [v for v in first if v != DIRECT]


def _added_bars(ax: Any, results: dict[str, Any]) -> None:
    variants = _variants(results)
    width = 0.8 / max(1, len(variants))
    for index, variant in enumerate(variants):
        xs, heights, low, high = [], [], [], []
        for position, workload in enumerate(WORKLOADS):
            c1 = results[workload.name].get(variant, {}).get("c1")
            if c1 is None:
                continue
            # The upload's added time is in ms and would flatten the others: show it per MB.
            scale = 1.0 if workload.kind == "latency" else 16.0
            xs.append(position + (index - (len(variants) - 1) / 2) * width)
            median = c1["added_median_us"] / scale
            heights.append(median)
            low.append(max(0.0, median - c1["added_round_min_us"] / scale))
            high.append(max(0.0, c1["added_round_max_us"] / scale - median))
        ax.bar(
            xs,
            heights,
            width,
            yerr=[low, high],
            capsize=4,
            label=variant,
            color=COLORS.get(variant),
        )
        for x, height, above in zip(xs, heights, high, strict=True):
            ax.annotate(f"{height:.0f}", (x, height + above), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(WORKLOADS)))
    ax.set_xticklabels(
        [w.name if w.kind == "latency" else f"{w.name}\n(per MB)" for w in WORKLOADS]
    )
    ax.set_ylabel("added median latency over direct (µs)")
    ax.set_title("what one hop adds (whiskers: min..max of per-round added latency)")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend()


def _throughput_bars(ax: Any, results: dict[str, Any]) -> None:
    first = next(iter(results.values()))
    variants = list(first)
    width = 0.8 / max(1, len(variants))
    for index, variant in enumerate(variants):
        for position, workload in enumerate(WORKLOADS):
            entry = results[workload.name].get(variant)
            if entry is None:
                continue
            if workload.kind == "latency":
                figure, base = entry["cN"]["req_per_s"], results[workload.name][DIRECT]["cN"]
                ratio, label = figure / base["req_per_s"], f"{figure:.0f}/s"
            else:
                figure = entry["c1"]["mb_per_s"]
                ratio = figure / results[workload.name][DIRECT]["c1"]["mb_per_s"]
                label = f"{figure:.0f} MB/s"
            x = position + (index - (len(variants) - 1) / 2) * width
            ax.bar(
                x,
                ratio,
                width,
                color=COLORS.get(variant),
                label=variant if position == 0 else None,
            )
            ax.annotate(
                label,
                (x, ratio),
                (0, 3),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=7,
                rotation=90,
            )
    ax.set_xticks(range(len(WORKLOADS)))
    ax.set_xticklabels(
        [
            f"{w.name}\n({'req/s, concurrent' if w.kind == 'latency' else 'MB/s'})"
            for w in WORKLOADS
        ],
    )
    ax.set_ylabel("throughput relative to direct")
    ax.set_ylim(0, 1.45)
    ax.set_title("throughput (1.0 = direct)")
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend()

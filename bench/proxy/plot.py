"""The proxy PNG: latency CDFs, added latency, CPU per request, throughput, the upload.

Panels, top row: the concurrency-1 latency CDF of each small workload, one line per variant;
the added p50 latency over direct at 1 and N connections (a dot at the added p99). Bottom row:
proxy CPU per request at 1 and N connections, with the 1.2x-the-minimal-proxy line issue 6
sets for hubhop; requests/s at N connections relative to direct; the upload's MB/s, labelled
with the proxy's peak RSS during it.

matplotlib is optional: without it the plot is skipped with a message and the JSON and table
are still written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench._report import NO_MATPLOTLIB, pyplot, save_figure
from bench.proxy.summary import CDF_PERCENTILES, CONCURRENCY_KEYS, CPU_TARGET_RATIO, DIRECT, MINIMAL
from bench.proxy.workloads import WORKLOADS

COLORS = {
    "direct": "#4d4d4d",
    "aiohttp-minimal": "#2ca02c",
    "hubhop": "#1f77b4",
    "haproxy": "#d62728",
}
SMALL = [w for w in WORKLOADS if w.kind == "latency"]
UPLOAD = next(w for w in WORKLOADS if w.kind == "transfer")


def plot(
    results: dict[str, Any], cpu: dict[str, Any], concurrency: int, title: str, path: Path
) -> str | None:
    """Write the PNG; returns None, or why it was skipped."""
    plt = pyplot()
    if plt is None:
        return NO_MATPLOTLIB
    figure, axes = plt.subplots(2, 3, figsize=(18, 10))
    for ax, workload in zip(axes[0], SMALL, strict=False):
        _cdf(ax, results[workload.name], workload.title)
    _added(axes[0][2], results, concurrency)
    _cpu(axes[1][0], cpu, concurrency)
    _throughput(axes[1][1], results, concurrency)
    _upload(axes[1][2], results[UPLOAD.name])
    save_figure(plt, figure, path, title, fontsize=10)
    return None


def _cdf(ax: Any, by_variant: dict[str, Any], title: str) -> None:
    from matplotlib import ticker

    for variant, entry in by_variant.items():
        ax.plot(
            entry["c1"]["cdf_us"],
            [p / 100 for p in CDF_PERCENTILES],
            label=f"{variant} (p50 {entry['c1']['median_us']:.0f} µs)",
            color=COLORS.get(variant),
        )
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel("latency at 1 connection (µs, log scale)")
    ax.set_ylabel("fraction of requests")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")


def _bar(
    ax: Any, position: int, index: int, count: int, height: float, variant: str, **extra: Any
) -> float:
    """Bar `index` of `count` in the group at `position`, in the variant's colour (labelled in
    the first group only); returns its x."""
    width = 0.8 / max(1, count)
    x = position + (index - (count - 1) / 2) * width
    label = variant if position == 0 else None
    ax.bar(x, height, width, color=COLORS.get(variant), label=label, **extra)
    return x


def _proxies(results: dict[str, Any]) -> list[str]:
    return [v for v in next(iter(results.values())) if v != DIRECT]


def _added(ax: Any, results: dict[str, Any], concurrency: int) -> None:
    groups = [(w.name, key) for w in SMALL for key in CONCURRENCY_KEYS]
    variants = _proxies(results)
    for index, variant in enumerate(variants):
        for position, (workload, key) in enumerate(groups):
            figures = results[workload][variant][key]
            x = _bar(ax, position, index, len(variants), figures["added_median_us"], variant)
            ax.plot([x], [figures["added_p99_us"]], "o", color=COLORS.get(variant), ms=4)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(
        [f"{w}\n{'1' if k == 'c1' else concurrency} conn." for w, k in groups], fontsize=8
    )
    ax.set_yscale("symlog", linthresh=100)
    ax.set_ylabel("added latency over direct (µs; bar p50, dot p99)")
    ax.set_title("what one hop adds")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)


def _cpu(ax: Any, cpu: dict[str, Any], concurrency: int) -> None:
    variants = list(cpu["c1"]["us_per_request"])
    for index, variant in enumerate(variants):
        for position, key in enumerate(CONCURRENCY_KEYS):
            span = cpu[key]["us_per_request"].get(variant)
            if span is None:
                continue
            median = span["median"]
            whiskers = [[median - span["min"]], [span["max"] - median]]
            x = _bar(ax, position, index, len(variants), median, variant, yerr=whiskers, capsize=3)
            ax.annotate(f"{median:.0f}", (x, span["max"]), ha="center", va="bottom", fontsize=8)
        if variant == MINIMAL:
            for position, key in enumerate(CONCURRENCY_KEYS):
                limit = cpu[key]["us_per_request"][MINIMAL]["median"] * CPU_TARGET_RATIO
                ax.hlines(limit, position - 0.45, position + 0.45, colors="black", linestyles="--")
    ax.set_xticks(range(len(CONCURRENCY_KEYS)))
    ax.set_xticklabels(["1 connection", f"{concurrency} connections"])
    ax.set_ylabel("proxy CPU per request (µs; whiskers: rounds' min..max)")
    ax.set_title(f"CPU per request (dashed: {CPU_TARGET_RATIO}x {MINIMAL}, hubhop's target)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)


def _throughput(ax: Any, results: dict[str, Any], concurrency: int) -> None:
    variants = list(next(iter(results.values())))
    for index, variant in enumerate(variants):
        for position, workload in enumerate(SMALL):
            cn = results[workload.name][variant]["cN"]
            x = _bar(ax, position, index, len(variants), cn["ratio_to_direct"], variant)
            ax.annotate(
                f"{cn['req_per_s']:.0f}/s",
                (x, cn["ratio_to_direct"]),
                (0, 3),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=7,
                rotation=90,
            )
    ax.set_xticks(range(len(SMALL)))
    ax.set_xticklabels([w.name for w in SMALL])
    ax.set_ylabel("requests/s relative to direct")
    ax.set_ylim(0, 1.45)
    ax.set_title(f"throughput at {concurrency} connections (1.0 = direct)")
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)


def _upload(ax: Any, by_variant: dict[str, Any]) -> None:
    size_mb = next(iter(by_variant.values()))["c1"]["upload_bytes"] / 1e6
    for position, (variant, entry) in enumerate(by_variant.items()):
        c1 = entry["c1"]
        ax.bar(position, c1["mb_per_s"], 0.6, color=COLORS.get(variant))
        peak, growth = c1.get("peak_rss_mib"), c1.get("rss_growth_mib")
        label = f"{c1['mb_per_s']:.0f} MB/s"
        if peak is not None:
            label += f"\npeak RSS {peak:.0f} MiB\n(+{growth:.1f} during it)"
        ax.annotate(label, (position, c1["mb_per_s"]), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(by_variant)))
    ax.set_xticklabels(list(by_variant))
    ax.set_ylabel("MB/s (decimal)")
    ax.set_ylim(0, max(e["c1"]["mb_per_s"] for e in by_variant.values()) * 1.25)
    ax.set_title(f"{size_mb:.0f} MB binary upload: MB/s, proxy peak RSS")
    ax.grid(True, axis="y", alpha=0.3)

"""Turning samples into the figures an operator reads: medians, tails, added cost, spread.

- Percentiles are over all measured requests of a variant (numpy's linear interpolation).
- Added latency is the variant's median minus the direct median. Its spread is the min and max,
  across rounds, of the same difference taken within each round: rounds are paired (all
  variants ran within seconds of each other), so machine drift between rounds cancels.
- Round medians (min/max) show how much the machine itself moved during the run.
- Throughput is requests (or MB) per second of each block's wall time; the figure is the median
  across rounds, with min and max beside it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench._report import format_table
from bench.proxy_overhead.measure import Outcome, Samples
from bench.proxy_overhead.plan import UPLOAD_BYTES
from bench.proxy_overhead.workloads import WORKLOADS

DIRECT = "direct"
# Percentile grid kept in the JSON for each latency distribution: enough to redraw a CDF.
CDF_PERCENTILES = [*range(0, 100), 99.5, 99.9, 100]


def _r(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(float(value), digits)


def _latency_stats(rounds: list[np.ndarray]) -> dict[str, Any]:
    all_us = np.concatenate(rounds) / 1e3
    round_medians = [float(np.median(r)) / 1e3 for r in rounds]
    p50, p90, p99 = np.percentile(all_us, [50, 90, 99])
    return {
        "n": int(all_us.size),
        "median_us": _r(p50),
        "p90_us": _r(p90),
        "p99_us": _r(p99),
        "mean_us": _r(all_us.mean()),
        "round_medians_us": [_r(m) for m in round_medians],
        "round_median_min_us": _r(min(round_medians)),
        "round_median_max_us": _r(max(round_medians)),
        "cdf_us": [_r(v, 2) for v in np.percentile(all_us, CDF_PERCENTILES)],
    }


def _vs_direct(mine: Samples, direct: Samples, stats: dict[str, Any], base: dict[str, Any]) -> None:
    """Add added latency, its per-round spread and the ratio to direct, in place."""
    paired = [
        (float(np.median(a)) - float(np.median(b))) / 1e3
        for a, b in zip(mine.c1_rounds, direct.c1_rounds, strict=False)
    ]
    stats["added_median_us"] = _r(stats["median_us"] - base["median_us"])
    stats["added_round_min_us"] = _r(min(paired))
    stats["added_round_max_us"] = _r(max(paired))
    stats["added_rounds_us"] = [_r(p) for p in paired]
    stats["ratio_to_direct"] = _r(stats["median_us"] / base["median_us"], 3)
    stats["added_p99_us"] = _r(stats["p99_us"] - base["p99_us"])


def _throughput(samples: Samples) -> dict[str, Any]:
    rates = [n / seconds for n, seconds in samples.cn_rounds if seconds > 0]
    latency_us = np.concatenate(samples.cn_latency) / 1e3
    p50, p99 = np.percentile(latency_us, [50, 99])
    return {
        "n": int(latency_us.size),
        "req_per_s": _r(np.median(rates)),
        "round_req_per_s": [_r(r) for r in rates],
        "round_min_req_per_s": _r(min(rates)),
        "round_max_req_per_s": _r(max(rates)),
        "median_us": _r(p50),
        "p99_us": _r(p99),
        "proxy_cpu_us_per_request": _r(samples.proxy_cpu_cn.per_request_us()),
    }


def _transfer(samples: Samples) -> dict[str, float | list[float | None] | None]:
    per_round = [UPLOAD_BYTES / (float(np.median(r)) / 1e9) / 1e6 for r in samples.c1_rounds]
    all_ns = np.concatenate(samples.c1_rounds)
    return {
        "mb_per_s": _r(UPLOAD_BYTES / (float(np.median(all_ns)) / 1e9) / 1e6),
        "round_mb_per_s": [_r(v) for v in per_round],
        "round_min_mb_per_s": _r(min(per_round)),
        "round_max_mb_per_s": _r(max(per_round)),
    }


def summarize(outcome: Outcome) -> dict[str, Any]:
    """workload -> variant -> {"c1": ..., "cN": ...}, each a dict of figures."""
    results: dict[str, Any] = {}
    for workload in WORKLOADS:
        by_variant = outcome.samples[workload.name]
        direct = by_variant[DIRECT]
        base = _latency_stats(direct.c1_rounds)
        figures: dict[str, Any] = {}
        for variant, samples in by_variant.items():
            if not samples.c1_rounds:
                continue
            c1 = _latency_stats(samples.c1_rounds)
            c1["proxy_cpu_us_per_request"] = _r(samples.proxy_cpu_c1.per_request_us())
            c1["backend_cpu_us_per_request"] = _r(samples.backend_cpu_c1.per_request_us())
            _vs_direct(samples, direct, c1, base)
            entry: dict[str, Any] = {"c1": c1, "truncated_blocks": samples.truncated_blocks}
            if workload.kind == "transfer":
                c1.update(_transfer(samples))
            elif samples.cn_rounds:
                entry["cN"] = _throughput(samples)
            figures[variant] = entry
        for entry in figures.values():
            if "cN" in entry and "cN" in figures[DIRECT]:
                ratio = entry["cN"]["req_per_s"] / figures[DIRECT]["cN"]["req_per_s"]
                entry["cN"]["ratio_to_direct"] = _r(ratio, 3)
            if workload.kind == "transfer":
                ratio = entry["c1"]["mb_per_s"] / figures[DIRECT]["c1"]["mb_per_s"]
                entry["c1"]["mb_per_s_ratio_to_direct"] = _r(ratio, 3)
        results[workload.name] = figures
    return results


def _span(low: float | None, high: float | None, digits: int = 0) -> str:
    return f"[{low:.{digits}f}..{high:.{digits}f}]" if low is not None and high is not None else ""


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def tables(results: dict[str, Any], concurrency: int) -> str:
    """The printed report: one table for the small requests, one for the upload."""
    headers = [
        "workload / variant",
        "median µs",
        "p90 µs",
        "p99 µs",
        "added µs",
        "added [min..max]",
        "x direct",
        "proxy CPU µs/req",
        f"c{concurrency} req/s",
        "req/s [min..max]",
        "x direct",
    ]
    rows: list[list[str]] = []
    for workload in WORKLOADS:
        if workload.kind != "latency":
            continue
        for variant, entry in results[workload.name].items():
            c1, cn = entry["c1"], entry.get("cN", {})
            rows.append(
                [
                    f"{workload.name} / {variant}",
                    _num(c1["median_us"]),
                    _num(c1["p90_us"]),
                    _num(c1["p99_us"]),
                    _num(c1["added_median_us"]),
                    _span(c1["added_round_min_us"], c1["added_round_max_us"]),
                    _num(c1["ratio_to_direct"], 2),
                    _num(c1["proxy_cpu_us_per_request"]),
                    _num(cn.get("req_per_s")),
                    _span(cn.get("round_min_req_per_s"), cn.get("round_max_req_per_s")),
                    _num(cn.get("ratio_to_direct"), 2),
                ]
            )
    out = [format_table(headers, rows, "Small requests: concurrency 1 latency, concurrent req/s")]
    headers = [
        "upload 16 MB / variant",
        "median ms",
        "p90 ms",
        "added ms",
        "added [min..max]",
        "MB/s",
        "MB/s [min..max]",
        "x direct",
        "proxy CPU ms/req",
    ]
    rows = []
    for workload in WORKLOADS:
        if workload.kind != "transfer":
            continue
        for variant, entry in results[workload.name].items():
            c1 = entry["c1"]
            cpu = c1["proxy_cpu_us_per_request"]
            rows.append(
                [
                    variant,
                    _num(c1["median_us"] / 1e3, 1),
                    _num(c1["p90_us"] / 1e3, 1),
                    _num(c1["added_median_us"] / 1e3, 1),
                    _span(c1["added_round_min_us"] / 1e3, c1["added_round_max_us"] / 1e3, 1),
                    _num(c1["mb_per_s"]),
                    _span(c1["round_min_mb_per_s"], c1["round_max_mb_per_s"]),
                    _num(c1["mb_per_s_ratio_to_direct"], 2),
                    _num(None if cpu is None else cpu / 1e3, 1),
                ]
            )
    out.append(format_table(headers, rows, "Binary tensor upload: concurrency 1"))
    return "\n\n".join(out)

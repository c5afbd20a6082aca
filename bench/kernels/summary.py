"""Turning the timings into the figures: medians, tails, spread, speed-ups, and the targets.

- Percentiles are over every timed call of a case (numpy's linear interpolation).
- Spread: the median of each round's block, then the min and max of those round medians. A
  narrow range means the figure is solid; a wide one means the machine moved during the run.
- Speed-up of numba over another implementation at one size: the ratio of the two medians, with
  the min and max of the same ratio taken round by round (blocks of one round ran within a
  second of each other, so drift of the machine between rounds cancels).
- Targets (from the issue) are checked on medians; a target whose figure was not measured (a
  size left out of the plan) shows as "n/a", neither pass nor fail.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench._report import format_table
from bench.kernels.measure import Case

DECIDE_IMPLS = ("numba", "numpy_ref", "python_loop")
PATHS_IMPLS = ("numba", "numpy_ref")
IMPL_TITLES = {
    "numba": "numba kernel",
    "numpy_ref": "NumPy reference",
    "python_loop": "Python loop over objects",
    "python_noop": "empty Python function",
    "numba_noop": "empty numba function",
}


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


def case_stats(case: Case, unit: float) -> dict[str, Any]:
    """Figures of one case in `unit` ns (1e3: µs, 1e6: ms)."""
    values = np.concatenate(case.rounds) / unit
    round_medians = [float(np.median(r)) / unit for r in case.rounds]
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {
        "n": int(values.size),
        "rounds": len(case.rounds),
        "calls_per_block": case.calls_per_block,
        "median": _r(p50),
        "p90": _r(p90),
        "p99": _r(p99),
        "mean": _r(values.mean()),
        "min": _r(values.min()),
        "round_medians": [_r(m) for m in round_medians],
        "round_median_min": _r(min(round_medians)),
        "round_median_max": _r(max(round_medians)),
        "first_call_ms": _r(case.first_call_ns / 1e6),
    }


def _speedup(numba: Case, other: Case) -> dict[str, Any]:
    ratio = float(np.median(np.concatenate(other.rounds))) / float(
        np.median(np.concatenate(numba.rounds))
    )
    paired = [
        float(np.median(o)) / float(np.median(n))
        for n, o in zip(numba.rounds, other.rounds, strict=False)
    ]
    return {
        "ratio": _r(ratio, 2),
        "round_min": _r(min(paired), 2),
        "round_max": _r(max(paired), 2),
    }


def summarize(cases: list[Case]) -> dict[str, Any]:
    """results[group][impl][size] (sizes as strings, for JSON), and speed-ups over numba."""
    units = {"decide": 1e3, "floor": 1e3, "paths": 1e6}
    out: dict[str, Any] = {
        "units": {"decide": "µs", "floor": "µs", "paths": "ms"},
        "decide": {},
        "paths": {},
        "floor": {},
        "speedup_over_numba": {"decide": {}, "paths": {}},
    }
    by_key = {(c.group, c.impl, c.size): c for c in cases if c.rounds}
    for (group, impl, size), case in by_key.items():
        out[group].setdefault(impl, {})[str(size)] = case_stats(case, units[group])
    for group in ("decide", "paths"):
        for (g, impl, size), case in by_key.items():
            numba = by_key.get((group, "numba", size))
            if g != group or impl == "numba" or numba is None:
                continue
            out["speedup_over_numba"][group].setdefault(impl, {})[str(size)] = _speedup(numba, case)
    return out


def lookup(results: dict[str, Any], *keys: str) -> Any:
    node: Any = results
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def targets(results: dict[str, Any], cold: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The issue's targets, each with its measured figure and pass (True/False/None)."""
    rows: list[tuple[str, Any, str, float, str]] = [
        # (what, measured, comparison, bound, unit)
        (
            "decide, 1,000 rows, numba median from Python",
            lookup(results, "decide", "numba", "1000", "median"),
            "<=",
            10.0,
            "µs",
        ),
        (
            "decide, 10,000 rows, numba median from Python",
            lookup(results, "decide", "numba", "10000", "median"),
            "<=",
            60.0,
            "µs",
        ),
        (
            "decide, 10,000 rows, numba speed-up over NumPy reference",
            lookup(results, "speedup_over_numba", "decide", "numpy_ref", "10000", "ratio"),
            ">=",
            10.0,
            "x",
        ),
        (
            "decide, 10,000 rows, numba speed-up over Python loop",
            lookup(results, "speedup_over_numba", "decide", "python_loop", "10000", "ratio"),
            ">=",
            100.0,
            "x",
        ),
        (
            "paths, 10,000 nodes, numba median",
            lookup(results, "paths", "numba", "10000", "median"),
            "<",
            20.0,
            "ms",
        ),
        (
            "daemon start, warm cache: time the kernels add",
            lookup(cold or {}, "warm_cache", "added_s"),
            "<",
            1.0,
            "s",
        ),
    ]
    out = []
    for what, measured, op, bound, unit in rows:
        if measured is None:
            passed = None
        elif op == "<=":
            passed = measured <= bound
        elif op == "<":
            passed = measured < bound
        else:
            passed = measured >= bound
        out.append(
            {
                "target": what,
                "measured": measured,
                "op": op,
                "bound": bound,
                "unit": unit,
                "pass": passed,
            }
        )
    return out


def fmt(value: float | None) -> str:
    """Three significant figures or so, whatever the magnitude."""
    if value is None:
        return "-"
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _timing_table(results: dict[str, Any], group: str, impls: tuple[str, ...], title: str) -> str:
    unit = results["units"][group]
    headers = [
        "size / implementation",
        f"median {unit}",
        f"p90 {unit}",
        f"round medians [min..max] {unit}",
        "x numba",
        "x numba per round [min..max]",
        "calls",
    ]
    rows = []
    sizes = sorted({int(s) for impl in results[group].values() for s in impl})
    for size in sizes:
        for impl in impls:
            stats = lookup(results, group, impl, str(size))
            if stats is None:
                continue
            speed = lookup(results, "speedup_over_numba", group, impl, str(size))
            rows.append(
                [
                    f"{size:,} / {impl}",
                    fmt(stats["median"]),
                    fmt(stats["p90"]),
                    f"[{fmt(stats['round_median_min'])}..{fmt(stats['round_median_max'])}]",
                    "1" if impl == "numba" else (fmt(speed["ratio"]) if speed else "-"),
                    (f"[{fmt(speed['round_min'])}..{fmt(speed['round_max'])}]" if speed else ""),
                    f"{stats['n']:,}",
                ]
            )
    return format_table(headers, rows, title)


def _floor_table(results: dict[str, Any]) -> str:
    headers = ["call with the 18 arguments of decide", "median µs", "p90 µs", "calls"]
    rows = []
    for impl, by_size in results["floor"].items():
        for stats in by_size.values():
            rows.append(
                [
                    IMPL_TITLES.get(impl, impl),
                    fmt(stats["median"]),
                    fmt(stats["p90"]),
                    f"{stats['n']:,}",
                ]
            )
    return format_table(
        headers, rows, "Call floor: the same arguments, a function that does nothing"
    )


def _cold_table(cold: dict[str, Any]) -> str:
    headers = [
        "process",
        "median s",
        "[min..max] s",
        "added vs baseline s",
        "kernel import s",
        "first decide s",
        "first paths s",
    ]
    rows = []
    for kind, entry in cold.items():
        rows.append(
            [
                kind,
                fmt(entry["median_s"]),
                f"[{fmt(entry['min_s'])}..{fmt(entry['max_s'])}]",
                "-" if kind == "baseline" else fmt(entry["added_s"]),
                fmt(entry.get("inside_import_kernels_s")),
                fmt(entry.get("inside_first_decide_s")),
                fmt(entry.get("inside_first_paths_s")),
            ]
        )
    return format_table(
        headers, rows, "Cold start: a fresh process importing and calling both kernels once"
    )


def _targets_table(rows: list[dict[str, Any]]) -> str:
    headers = ["target", "measured", "bound", "result"]
    body = []
    for t in rows:
        measured = "n/a" if t["measured"] is None else f"{fmt(t['measured'])} {t['unit']}"
        result = {True: "PASS", False: "FAIL", None: "n/a"}[t["pass"]]
        body.append([t["target"], measured, f"{t['op']} {fmt(t['bound'])} {t['unit']}", result])
    return format_table(headers, body, "Targets (issue 5), on medians")


def tables(
    results: dict[str, Any], cold: dict[str, Any] | None, goals: list[dict[str, Any]]
) -> str:
    parts = [
        _timing_table(
            results,
            "decide",
            DECIDE_IMPLS,
            "Decision: one request over all rows, from the Python call to the chosen row",
        ),
        _floor_table(results),
        _timing_table(
            results,
            "paths",
            PATHS_IMPLS,
            "Path recomputation: lowest-latency paths from one node to every node (~10 links each)",
        ),
    ]
    if cold:
        parts.append(_cold_table(cold))
    parts.append(_targets_table(goals))
    return "\n\n".join(parts)

"""The kernels benchmark's README regions, from its JSON document (`kernels.json`).

- `kernels` (README.md): the median decision time per table size for numba, the NumPy
  reference and the Python loop (with numba's speed-up over each), the path recomputation per
  graph size, what the kernels add to a cold start, and issue 5's targets in one line.
- `kernels-detail` (bench/README.md): the tables the run prints.
"""

from __future__ import annotations

from typing import Any

from bench._markdown import markdown_table, targets_line, text_block
from bench.kernels import summary


def _time(value: float | None, unit: str) -> str:
    """A median in its unit, moved to the next unit up past 1,000 (1,234 µs -> 1.23 ms)."""
    if value is None:
        return "-"
    if value >= 1_000 and unit == "µs":
        return f"{summary.fmt(value / 1_000)} ms"
    return f"{summary.fmt(value)} {unit}"


def _timing_table(results: dict[str, Any], group: str, impls: tuple[str, ...], size: str) -> str:
    unit = results["units"][group]
    sizes = sorted({int(s) for by_size in results[group].values() for s in by_size})
    headers = [size, *(summary.IMPL_TITLES[impl] for impl in impls)]
    rows = []
    for n in sizes:
        row = [f"{n:,}"]
        for impl in impls:
            median = summary.lookup(results, group, impl, str(n), "median")
            cell = _time(median, unit)
            speedup = summary.lookup(results, "speedup_over_numba", group, impl, str(n), "ratio")
            if speedup is not None:
                cell += f" ({summary.fmt(speedup)}x)"
            row.append(cell)
        rows.append(row)
    return markdown_table(headers, rows)


def _processes(n: int) -> str:
    return f"{n} process" if n == 1 else f"{n} processes"


def _cold_start(cold: dict[str, Any] | None) -> str:
    if not cold:
        return "Cold start: not measured in this run."
    return (
        f"Cold start: compiling both kernels adds {summary.fmt(cold['no_cache']['added_s'])} s "
        f"to a fresh process; loading them from a warm cache (`kernels.cache_dir`) adds "
        f"{summary.fmt(cold['warm_cache']['added_s'])} s (over a process that only imports "
        f"numpy and numba; {_processes(cold['warm_cache']['n'])} of each kind, medians)."
    )


def _floor(results: dict[str, Any]) -> str:
    noop = next(iter(results.get("floor", {}).get("numba_noop", {}).values()), None)
    if noop is None:
        return ""
    return (
        f"An empty numba function taking decide's 18 arguments costs {_time(noop['median'], 'µs')} "
        "a call: at small tables, most of a decision is the call itself."
    )


def _targets(goals: list[dict[str, Any]]) -> str:
    return targets_line(
        "Issue 5",
        [
            (
                f"{g['target']} {g['op']} {summary.fmt(g['bound'])} {g['unit']}",
                g["pass"],
                f"{summary.fmt(g['measured'])} {g['unit']}",
            )
            for g in goals
        ],
    )


def markdown_tables(document: dict[str, Any]) -> dict[str, str]:
    """Region id -> markdown; see the module docstring."""
    results = document["results"]
    cold = results.get("cold_start")
    goals = document.get("targets", [])
    front = [
        "Decision: one request scored over every node x backend row, median from the Python "
        "call to the chosen row (numba's speed-up over each in parentheses):",
        _timing_table(results, "decide", summary.DECIDE_IMPLS, "rows"),
        "Paths from one node to every node (about ten links each), median:",
        _timing_table(results, "paths", summary.PATHS_IMPLS, "nodes"),
        _floor(results),
        _cold_start(cold),
        _targets(goals),
    ]
    detail = text_block(summary.tables(results, cold, goals))
    notes = document.get("notes") or []
    if notes:
        detail += "\n\n" + "\n".join(f"- {note}" for note in notes)
    return {"kernels": "\n\n".join(part for part in front if part), "kernels-detail": detail}

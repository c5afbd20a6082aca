"""Before timing: do the three implementations answer alike on the benchmark's own inputs?

Timing code that answers differently would compare nothing, so each table is checked first on a
sample of its requests, every implementation starting from the same rng state:
- The plain-Python loop (this benchmark's code) must match the numba kernel exactly on every
  row's reasons, on the feasible set and on the fallback, and must choose a feasible row when
  the kernel does. Anything else is a bug in the loop: `CheckFailed`, and the run stops.
  Whether it chose the very same row is only counted (same generator, same order of float
  operations: it should).
- The NumPy reference against numba (both the kernel authors'): outputs and choice must be
  identical, as the contract says. A difference is reported as a note, not fatal: the benchmark
  still measures, and says so.
- Paths: numba and the reference on a few sources, every output array identical (same note rule).
The numba kernel's answers also describe the workload (feasible rows, near set, outcomes).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.kernels import pyloop
from bench.kernels.workloads import MARGIN_FRAC, Graph, Table
from hubhop_native import reasons as rs


class CheckFailed(AssertionError):
    pass


def _outputs(rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.zeros(rows, np.uint32),
        np.zeros(rows, np.float64),
        np.zeros(rows, np.float64),
    )


def check_decide(
    table: Table,
    rows_objects: list[pyloop.Row] | None,
    numba_decide: Any,
    ref_decide: Any,
    n_requests: int,
    n_python: int,
    seed: int,
) -> tuple[dict[str, Any], list[str]]:
    """(workload and agreement figures, notes) for one table."""
    notes: list[str] = []
    size = table.rows
    arrays = table.arrays()
    latency_list = table.node_latency_ms.tolist()
    feasible_counts, near_sizes = [], []
    outcomes = {"chosen": 0, "fallback": 0, "none": 0}
    reason_rows = {name: 0 for name in rs.REASON_NAMES.values()}
    ref_mismatch = 0
    py_checked = py_same_choice = 0
    for k, request in enumerate(table.requests[:n_requests]):
        state = seed + 7919 * k + 1
        nb_out = _outputs(size)
        nb = numba_decide(*arrays, *request, np.array([state], np.uint64), *nb_out)
        ref_out = _outputs(size)
        ref = ref_decide(*arrays, *request, np.array([state], np.uint64), *ref_out)
        reasons, expected, cost = nb_out
        if (
            tuple(nb) != tuple(ref)
            or not np.array_equal(reasons, ref_out[0])
            or not np.array_equal(expected, ref_out[1], equal_nan=True)
            or not np.array_equal(cost, ref_out[2], equal_nan=True)
        ):
            ref_mismatch += 1
        feasible = reasons == 0
        feasible_counts.append(int(feasible.sum()))
        for bit, name in rs.REASON_NAMES.items():
            reason_rows[name] += int(((reasons & bit) != 0).sum())
        if nb[0] >= 0:
            outcomes["chosen"] += 1
            best = cost[feasible].min()
            bound = max(best + MARGIN_FRAC * best, best)
            near_sizes.append(int((feasible & (cost <= bound)).sum()))
        elif nb[1] >= 0:
            outcomes["fallback"] += 1
        else:
            outcomes["none"] += 1

        if rows_objects is None or k >= n_python:
            continue
        py_out: tuple[list[Any], list[Any], list[Any]] = ([0] * size, [0.0] * size, [0.0] * size)
        py = pyloop.decide(rows_objects, latency_list, *request, [state], *py_out)
        py_reasons = np.asarray(py_out[0], dtype=np.uint32)
        where = f"python loop vs numba, {size:,} rows, request {k} {request}"
        if not np.array_equal(py_reasons, reasons):
            bad = int(np.flatnonzero(py_reasons != reasons)[0])
            raise CheckFailed(
                f"{where}: reasons differ at row {bad}: {py_reasons[bad]} vs {reasons[bad]}"
            )
        if (nb[0] >= 0) != (py[0] >= 0) or (nb[0] < 0 and py[1] != nb[1]):
            raise CheckFailed(f"{where}: outcome {py} vs {tuple(nb)}")
        if py[0] >= 0 and not feasible[py[0]]:
            raise CheckFailed(f"{where}: chose infeasible row {py[0]}")
        py_checked += 1
        py_same_choice += int(py[0] == nb[0])
    if ref_mismatch:
        notes.append(
            f"decide, {size:,} rows: the NumPy reference differed from numba on {ref_mismatch} "
            f"of {n_requests} checked requests (the contract wants them identical)"
        )
    figures = {
        "rows": size,
        "nodes": table.nodes,
        "checked_requests": n_requests,
        "feasible_rows_median": float(np.median(feasible_counts)),
        "feasible_rows_p90": float(np.percentile(feasible_counts, 90)),
        "near_set_median": float(np.median(near_sizes)) if near_sizes else None,
        "outcomes": outcomes,
        "rows_with_reason_per_request": {
            name: round(count / n_requests, 1) for name, count in reason_rows.items()
        },
        "numpy_ref_mismatches": ref_mismatch,
        "python_loop_checked": py_checked,
        "python_loop_same_choice": py_same_choice,
    }
    return figures, notes


def check_paths(
    graph: Graph, numba_paths: Any, ref_paths: Any, n_sources: int
) -> tuple[dict[str, Any], list[str]]:
    n = graph.nodes
    mismatch = 0
    reached = estimated = unreachable = 0
    sources = graph.sources[:n_sources]
    for source in sources:
        outs = []
        for fn in (numba_paths, ref_paths):
            out = (
                np.zeros(n, np.float64),
                np.zeros(n, np.int32),
                np.zeros(n, np.int32),
                np.zeros(n, np.uint8),
            )
            fn(
                graph.indptr,
                graph.indices,
                graph.rtt_ms,
                source,
                graph.relay_cost_ms,
                graph.coords,
                graph.heights,
                graph.has_coord,
                *out,
            )
            outs.append(out)
        if not all(
            np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
            for a, b in zip(outs[0], outs[1], strict=True)
        ):
            mismatch += 1
        latency, _, _, est = outs[0]
        finite = np.isfinite(latency)
        reached += int((finite & (est == 0)).sum())
        estimated += int((est == 1).sum())
        unreachable += int((~finite).sum())
    notes = []
    if mismatch:
        notes.append(
            f"paths, {n:,} nodes: the reference differed from numba on {mismatch} of "
            f"{len(sources)} checked sources (the contract wants them identical)"
        )
    count = max(1, len(sources))
    degree = np.diff(graph.indptr)
    figures = {
        "nodes": n,
        "links_directed": graph.links,
        "links_per_node_mean": round(float(degree.mean()), 2),
        "nodes_without_links": int((degree == 0).sum()),
        "checked_sources": len(sources),
        "reached_by_links_mean": reached / count,
        "estimated_by_coordinates_mean": estimated / count,
        "unreachable_mean": unreachable / count,
        "reference_mismatches": mismatch,
    }
    return figures, notes

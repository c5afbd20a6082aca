"""kernels: how fast the numba kernels decide and recompute paths, next to what they replace.

The question (issue 5): "decision time from the Python call to the chosen row, for 100, 1,000,
10,000 and 100,000 rows; path recomputation for 100, 1,000 and 10,000 nodes with about ten
links each; for numba, the NumPy reference and a plain-Python loop over objects; cold-start time
with and without the cache."

What runs, all in this process except the cold starts:
- `decide` (hubhop_native.scoring) against its NumPy reference (scoring_ref) and a plain-Python
  loop over row objects (`pyloop.py`, this benchmark's), on seeded random candidate tables and
  requests (`workloads.py`), built exactly as spec/kernels.md says.
- `shortest_paths` (hubhop_native.paths) against its reference (paths_ref), on seeded random
  link maps of about ten links per node.
- Two empty functions with decide's arguments (`floor.py`): the cost of the call itself.
- Fresh processes importing and calling both kernels once, with an empty and a warm numba cache,
  against a process that only imports numpy and numba (`coldstart.py`).

Rules of the measurement (details in `measure.py` and `summary.py`):
- The implementations are checked against each other on the same inputs before any timing
  (`checks.py`).
- Each call is timed alone from Python (perf_counter_ns around the call); warm-up first; cases
  interleaved in rounds with a rotated order; medians, p90 and the spread of round medians.
- Every phase is bounded in calls and in wall-clock time.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench._report import add_run_arguments, load_average, machine_info, write_json
from bench.kernels import checks, coldstart, floor, measure, plot, pyloop, summary, workloads
from bench.kernels.markdown import markdown_tables as markdown_tables  # the README regions
from bench.kernels.plan import FULL, QUICK, Plan
from hubhop.core.tiers import TIER_BOUNDS_MS

NAME = "kernels"
SUMMARY = "numba decide / shortest_paths vs NumPy reference and a Python loop; cold start"

# The size at which the call floor is measured: the floor does not depend on the array sizes
# (numba checks types, not lengths), so one size is enough.
FLOOR_ROWS = 1_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(
        parser, NAME, "a smoke run (about 10 s) instead of the full one (about 1.5 min)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=FULL.seed,
        help=f"seed of the random tables, requests and link maps (default {FULL.seed})",
    )
    parser.add_argument(
        "--no-cold-start",
        action="store_true",
        help="skip the cold-start subprocesses (the warm-cache target then shows n/a)",
    )


def _say(line: str) -> None:
    print(line, flush=True)


def _decide_args(table: workloads.Table, seed: int) -> tuple[list[tuple[Any, ...]], Any]:
    """Argument tuples for an array implementation: one per request, sharing the outputs."""
    rows = table.rows
    state = np.array([seed], dtype=np.uint64)
    outs = (np.zeros(rows, np.uint32), np.zeros(rows, np.float64), np.zeros(rows, np.float64))
    arrays = table.arrays()
    return [(*arrays, *request, state, *outs) for request in table.requests], state


def _python_args(
    table: workloads.Table, rows: list[pyloop.Row], seed: int
) -> list[tuple[Any, ...]]:
    state = [seed]
    n = table.rows
    outs = ([0] * n, [0.0] * n, [0.0] * n)
    latency = table.node_latency_ms.tolist()
    return [(rows, latency, *request, state, *outs) for request in table.requests]


def _paths_args(graph: workloads.Graph) -> list[tuple[Any, ...]]:
    n = graph.nodes
    outs = (
        np.zeros(n, np.float64),
        np.zeros(n, np.int32),
        np.zeros(n, np.int32),
        np.zeros(n, np.uint8),
    )
    return [
        (
            graph.indptr,
            graph.indices,
            graph.rtt_ms,
            source,
            graph.relay_cost_ms,
            graph.coords,
            graph.heights,
            graph.has_coord,
            *outs,
        )
        for source in graph.sources
    ]


def _import_kernels() -> tuple[Any, Any, Any, Any]:
    from hubhop_native import paths, paths_ref, scoring, scoring_ref

    return scoring.decide, scoring_ref.decide, paths.shortest_paths, paths_ref.shortest_paths


def _build(
    plan: Plan, kernels: tuple[Any, Any, Any, Any]
) -> tuple[list[measure.Case], list[measure.Case], dict[str, Any], list[str]]:
    """Inputs, the agreement checks, and the cases to time: (decide+floor, paths, facts, notes)."""
    nb_decide, ref_decide, nb_paths, ref_paths = kernels
    decide_cases: list[measure.Case] = []
    paths_cases: list[measure.Case] = []
    facts: dict[str, Any] = {"decide": {}, "paths": {}}
    notes: list[str] = []
    for rows in plan.decide_rows:
        started = time.monotonic()
        table = workloads.candidate_table(rows, plan.requests, plan.seed)
        objects = (
            pyloop.rows_from_arrays(*table.arrays()[:5]) if rows in plan.python_loop_rows else None
        )
        # First decide call compiles (or loads the cache) before the checks use it.
        n_python = plan.check_requests if rows <= 10_000 else max(4, plan.check_requests // 8)
        figures, more = checks.check_decide(
            table, objects, nb_decide, ref_decide, plan.check_requests, n_python, plan.seed
        )
        facts["decide"][str(rows)] = figures
        notes += more
        seed = plan.seed + rows
        args, _ = _decide_args(table, seed)
        decide_cases.append(measure.Case("decide", "numba", rows, nb_decide, args))
        args, _ = _decide_args(table, seed)
        decide_cases.append(measure.Case("decide", "numpy_ref", rows, ref_decide, args))
        if objects is not None:
            decide_cases.append(
                measure.Case(
                    "decide", "python_loop", rows, pyloop.decide, _python_args(table, objects, seed)
                )
            )
        if rows == FLOOR_ROWS:
            args, _ = _decide_args(table, seed)
            decide_cases.append(measure.Case("floor", "python_noop", rows, floor.python_noop, args))
            decide_cases.append(measure.Case("floor", "numba_noop", rows, floor.numba_noop, args))
        _say(
            f"  table {rows:,} rows ({table.nodes:,} nodes): built and checked in "
            f"{time.monotonic() - started:.1f} s; feasible rows per request, median "
            f"{figures['feasible_rows_median']:.0f}; outcomes {figures['outcomes']}"
        )
    for nodes in plan.path_nodes:
        started = time.monotonic()
        graph = workloads.link_map(nodes, plan.sources, plan.seed)
        figures, more = checks.check_paths(graph, nb_paths, ref_paths, min(2, plan.sources))
        facts["paths"][str(nodes)] = figures
        notes += more
        paths_cases.append(measure.Case("paths", "numba", nodes, nb_paths, _paths_args(graph)))
        paths_cases.append(measure.Case("paths", "numpy_ref", nodes, ref_paths, _paths_args(graph)))
        _say(
            f"  link map {nodes:,} nodes, {graph.links:,} directed links: built and checked in "
            f"{time.monotonic() - started:.1f} s"
        )
    return decide_cases, paths_cases, facts, notes


def run(ns: argparse.Namespace) -> int:
    plan = dataclasses.replace(QUICK if ns.quick else FULL, seed=ns.seed)
    out_dir: Path = ns.out
    started = time.monotonic()
    machine = machine_info()
    notes: list[str] = []
    if os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"):
        notes.append("NUMBA_DISABLE_JIT is set: the 'numba' figures are interpreted Python")
    try:
        kernels = _import_kernels()
    except ImportError as exc:
        print(f"{NAME}: the kernels are not importable: {exc}", file=sys.stderr)
        return 1
    sources = _kernel_sources()

    plan_name = "quick" if ns.quick else "full"
    print(f"building inputs and checking that the implementations agree ({plan_name} plan)")
    try:
        decide_cases, paths_cases, facts, more = _build(plan, kernels)
    except checks.CheckFailed as exc:
        print(f"{NAME}: check failed before timing: {exc}", file=sys.stderr)
        return 1
    notes += more
    # Everything built so far lives to the end: keep it out of the collector's way.
    gc.collect()
    gc.freeze()

    timer_ns = measure.timer_overhead_ns()
    print(f"warming up {len(decide_cases) + len(paths_cases)} cases", flush=True)
    for case in decide_cases + paths_cases:
        measure.warm_up(case, plan)
    print("measuring decisions", flush=True)
    decide_run = measure.run_rounds(decide_cases, plan, _say, "decide")
    print("measuring path recomputation", flush=True)
    paths_run = measure.run_rounds(paths_cases, plan, _say, "paths")

    cold: dict[str, Any] | None = None
    cold_raw: dict[str, Any] = {}
    if ns.no_cold_start:
        notes.append("cold start skipped: --no-cold-start")
    else:
        print("measuring cold starts (fresh processes)", flush=True)
        try:
            cold_raw = coldstart.measure(plan.cold_runs, _say)
        except (coldstart.ColdStartError, OSError) as exc:
            print(f"{NAME}: {exc}", file=sys.stderr)
            return 1
        cold = coldstart.summarize(cold_raw)

    if _kernel_sources() != sources:
        notes.append(
            "the kernel sources changed during the run: figures may mix versions; run it again"
        )
    results = summary.summarize(decide_cases + paths_cases)
    goals = summary.targets(results, cold)
    for phase, phase_run in (("decide", decide_run), ("paths", paths_run)):
        if phase_run.stopped_by_budget:
            notes.append(
                f"{phase}: the {plan.budget_s:.0f} s budget ran out after "
                f"{phase_run.rounds_done} of {plan.rounds} rounds"
            )
    document = {
        "benchmark": NAME,
        "question": SUMMARY,
        "quick": bool(ns.quick),
        "machine": machine,
        "parameters": {
            "plan": plan_name,
            **plan.as_dict(),
            "workload": {
                "models": workloads.N_MODELS,
                "chips": list(workloads.CHIPS),
                "tiers_ms": {k: str(v) for k, v in TIER_BOUNDS_MS.items()},
                "price_weight_ms": workloads.PRICE_WEIGHT_MS,
                "green_weight_ms": workloads.GREEN_WEIGHT_MS,
                "margin_frac": workloads.MARGIN_FRAC,
            },
            "timer_overhead_ns": timer_ns,
            "kernel_sources_sha256": sources,
        },
        "inputs": facts,
        "run": {
            "decide_rounds_done": decide_run.rounds_done,
            "paths_rounds_done": paths_run.rounds_done,
            "decide_s": round(decide_run.seconds, 1),
            "paths_s": round(paths_run.seconds, 1),
            "total_s": round(time.monotonic() - started, 1),
            "load_average_at_end": load_average(),
        },
        "results": {**results, "cold_start": cold, "cold_start_runs": cold_raw},
        "targets": goals,
        "notes": notes,
    }
    json_path = out_dir / f"{NAME}.json"
    write_json(json_path, document)
    title = (
        f"{NAME}: {machine['cpu_model']}, {machine['cores']} cores, Python {machine['python']}, "
        f"numba {machine['packages']['numba']}, {machine['date']}, "
        f"commit {(machine['git_commit'] or 'none')[:10]}"
    )
    png_path = out_dir / f"{NAME}.png"
    skipped_plot = plot.plot(results, cold, goals, title, png_path)

    print()
    print(title)
    print(f"(timer floor: {timer_ns:.0f} ns per perf_counter_ns pair, included in every figure)")
    print()
    print(summary.tables(results, cold, goals))
    print()
    for note in notes:
        print(f"note: {note}")
    print(f"wrote {json_path}")
    if skipped_plot:
        print(f"plot skipped: {skipped_plot}")
    else:
        print(f"wrote {png_path}")
    print(f"total {time.monotonic() - started:.1f} s")
    return 0


def _kernel_sources() -> dict[str, str]:
    """sha256 (first 16 hex digits) of every kernel module: which code the figures are for,
    even when the kernels are not committed yet (the git commit alone would not say)."""
    import hubhop_native

    package = Path(hubhop_native.__file__).parent
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        for path in sorted(package.glob("*.py"))
    }

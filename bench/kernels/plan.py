"""How much the kernels benchmark measures: the full run and the `--quick` one.

Every count has its reason beside it. Blocks are sized by time, not by a fixed count, because
one call spans five orders of magnitude (a few µs for numba at 100 rows, a tenth of a second for
the Python loop at 100,000): each block runs about `block_s` of calls, at least `min_calls` and
at most `max_calls`, from a per-call time measured in the warm-up. Each phase also stops at a
wall-clock budget, and the JSON says when one did.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Plan:
    # Candidate table sizes (rows = node x backend) for one routing decision.
    decide_rows: tuple[int, ...]
    # Sizes at which the plain-Python loop runs (it takes ~1 µs a row: 100,000 rows is a tenth
    # of a second per call, too slow for the quick plan).
    python_loop_rows: tuple[int, ...]
    # Graph sizes (nodes, about ten links each) for one path recomputation.
    path_nodes: tuple[int, ...]
    # Rounds: each runs one block of every (size, implementation), in an order rotated by one
    # each round, so noise from a neighbour on the shared box lands on all of them alike.
    rounds: int
    # Target wall time of one block, and its bounds in calls (see the module docstring).
    block_s: float
    min_calls: int
    max_calls: int
    # Warm-up per (size, implementation): at least `warmup_calls` calls or `warmup_s` seconds,
    # whichever ends first (after the first call, which compiles or loads the JIT cache).
    warmup_calls: int
    warmup_s: float
    # Wall-clock budget of each measured phase (decide, paths); later rounds are skipped.
    budget_s: float
    # Fresh subprocesses per cold-start variant (baseline, no cache, warm cache).
    cold_runs: int
    # Distinct random requests per table size, cycled through by every implementation alike.
    requests: int = 256
    # Sources per graph, cycled (a path recomputation starts from the daemon's own node).
    sources: int = 16
    # Requests checked against the plain-Python loop and the NumPy reference before timing.
    check_requests: int = 64
    # The default of `--seed`: any fixed value, so that every run times the same inputs.
    seed: int = 20240601

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# About 1.5-2 minutes on the 2-core box: ~35 s of decisions, ~20 s of paths, ~20 s of cold
# starts (each empty-cache start compiles both kernels, ~2-3 s), a few seconds of set-up; the
# budgets keep even a loaded run within 3 minutes.
FULL = Plan(
    decide_rows=(100, 1_000, 10_000, 100_000),
    python_loop_rows=(100, 1_000, 10_000, 100_000),
    path_nodes=(100, 1_000, 10_000),
    rounds=25,
    block_s=0.1,
    min_calls=2,
    max_calls=3_000,
    warmup_calls=300,
    warmup_s=0.5,
    budget_s=60.0,
    cold_runs=5,
)

# A smoke run: every code path, figures good to a few tens of percent, in about 10 s (30 s on
# a loaded box).
QUICK = Plan(
    decide_rows=(100, 1_000, 10_000, 100_000),
    python_loop_rows=(100, 1_000, 10_000),
    path_nodes=(100, 1_000, 10_000),
    rounds=4,
    block_s=0.02,
    min_calls=1,
    max_calls=400,
    warmup_calls=50,
    warmup_s=0.1,
    budget_s=10.0,
    cold_runs=1,
    requests=64,
    sources=4,
    check_requests=16,
)

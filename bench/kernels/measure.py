"""Timing calls from Python: warm-up, then interleaved rounds of blocks.

Rules:
- Each call is timed alone, with `time.perf_counter_ns` immediately around the Python call, so a
  figure is what a caller waits: argument passing and numba's type dispatch included. The
  arguments are prepared beforehand (one tuple per request), outputs are preallocated and reused,
  as the daemon's bridge does.
- Warm-up first: the first call (which compiles, or loads the JIT cache) is timed on its own and
  reported apart; then calls until `warmup_calls` or `warmup_s`, whose median sizes the blocks.
- Rounds: every round runs one block of every case (size x implementation), in an order rotated
  by one each round, so a noisy moment on the shared machine lands on all cases alike.
- The garbage collector is paused inside a block and run between blocks.
- Each phase stops starting new rounds when its wall-clock budget would be exceeded.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.kernels.plan import Plan


@dataclass
class Case:
    """One implementation at one size, and everything measured for it."""

    group: str  # "decide", "paths" or "floor"
    impl: str
    size: int
    fn: Callable[..., Any]
    args: list[tuple[Any, ...]]
    calls_per_block: int = 0
    first_call_ns: int = 0
    warmup_median_ns: float = 0.0
    rounds: list[np.ndarray] = field(default_factory=list)  # ns per call, one array per round
    cursor: int = 0  # next argument tuple, so blocks continue through the requests

    @property
    def key(self) -> str:
        return f"{self.group}/{self.impl}/{self.size}"


def timer_overhead_ns(samples: int = 20_000) -> float:
    """Median of two back-to-back perf_counter_ns reads: the floor under every figure."""
    pc = time.perf_counter_ns
    out = np.empty(samples, dtype=np.int64)
    for i in range(samples):
        t0 = pc()
        out[i] = pc() - t0
    return float(np.median(out))


def _block(case: Case, calls: int) -> np.ndarray:
    pc = time.perf_counter_ns
    fn = case.fn
    args = case.args
    n_args = len(args)
    cursor = case.cursor
    out = np.empty(calls, dtype=np.int64)
    gc.disable()
    try:
        for i in range(calls):
            a = args[cursor % n_args]
            cursor += 1
            t0 = pc()
            fn(*a)
            t1 = pc()
            out[i] = t1 - t0
    finally:
        gc.enable()
    case.cursor = cursor
    return out


def warm_up(case: Case, plan: Plan) -> None:
    pc = time.perf_counter_ns
    t0 = pc()
    case.fn(*case.args[0])
    case.first_call_ns = pc() - t0
    case.cursor = 1
    samples: list[np.ndarray] = []
    deadline = time.monotonic() + plan.warmup_s
    done = 0
    while done < plan.warmup_calls and time.monotonic() < deadline:
        chunk = _block(case, min(10, plan.warmup_calls - done))
        samples.append(chunk)
        done += chunk.size
    if not samples:  # a call slower than the whole warm-up budget: one more, for its time
        samples.append(_block(case, 1))
    per_call = float(np.median(np.concatenate(samples)))
    case.warmup_median_ns = per_call
    wanted = int(plan.block_s * 1e9 / max(per_call, 1.0))
    case.calls_per_block = max(plan.min_calls, min(plan.max_calls, wanted))
    gc.collect()


@dataclass
class PhaseRun:
    rounds_done: int
    stopped_by_budget: bool
    seconds: float


def run_rounds(cases: list[Case], plan: Plan, say: Callable[[str], None], name: str) -> PhaseRun:
    started = time.monotonic()
    longest_round = 0.0
    rounds_done = 0
    stopped = False
    for round_index in range(plan.rounds):
        elapsed = time.monotonic() - started
        if round_index and elapsed + longest_round > plan.budget_s:
            stopped = True
            break
        round_started = time.monotonic()
        shift = round_index % len(cases)
        for case in cases[shift:] + cases[:shift]:
            case.rounds.append(_block(case, case.calls_per_block))
            gc.collect()
        rounds_done += 1
        longest_round = max(longest_round, time.monotonic() - round_started)
        say(
            f"  {name}: round {rounds_done}/{plan.rounds} "
            f"({time.monotonic() - round_started:.1f} s)"
        )
    return PhaseRun(rounds_done, stopped, time.monotonic() - started)

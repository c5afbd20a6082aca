"""Plain-NumPy reference of `scoring.decide`: the same signature, rules and outputs.

The oracle the kernel is tested against, and the fallback where numba is missing. Reasons,
expected latency and cost are computed vectorised over all rows, in the same order of float
operations as the kernel, so both give the same bits; the selection then draws with the
pure-Python twin of the kernel's generator (`rng.uniform_index_py`). The rules are stated once,
in the header of `scoring.py`.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from hubhop_native.columns import (
    ROW_BUSY,
    ROW_GREEN,
    ROW_LOCAL_INFLIGHT,
    ROW_PRICE,
    ROW_QUEUE_BATCH,
    ROW_QUEUE_EMERGENCY,
    ROW_QUEUE_STANDARD,
    ROW_RESERVE,
    ROW_SERVICE_MS,
    ROW_SLOTS,
)
from hubhop_native.reasons import (
    CHIP_MISMATCH,
    DEAD,
    LANE_BATCH,
    LANE_EMERGENCY,
    LANE_STANDARD,
    NO_CHIP,
    NO_HEADROOM,
    NO_MODEL,
    OVER_BUDGET,
    OVER_TIER,
    UNREACHABLE,
)
from hubhop_native.rng import uniform_index_py

_BITS_PER_WORD = 64


def decide(
    row_node: npt.NDArray[np.int32],
    row_alive: npt.NDArray[np.uint8],
    row_chip: npt.NDArray[np.int32],
    row_models: npt.NDArray[np.uint64],
    row_num: npt.NDArray[np.float64],
    node_latency_ms: npt.NDArray[np.float64],
    model_id: int,
    chip_id: int,
    lane: int,
    tier_ms: float,
    budget: float,
    price_weight_ms: float,
    green_weight_ms: float,
    margin_frac: float,
    rng_state: npt.NDArray[np.uint64],
    out_reasons: npt.NDArray[np.uint32],
    out_expected_ms: npt.NDArray[np.float64],
    out_cost: npt.NDArray[np.float64],
) -> tuple[int, int]:
    """Score every row for one request; (chosen row or -1, fallback row or -1)."""
    n_rows = int(row_node.shape[0])
    if n_rows == 0:
        return -1, -1
    model_id, chip_id, lane = int(model_id), int(chip_id), int(lane)

    node = row_node.astype(np.int64)
    known = (node >= 0) & (node < node_latency_ms.shape[0])
    latency = np.full(n_rows, math.nan)
    latency[known] = node_latency_ms[node[known]]
    reachable = np.isfinite(latency)

    price = row_num[ROW_PRICE]
    slots = row_num[ROW_SLOTS]
    reserve = row_num[ROW_RESERVE]
    in_use = row_num[ROW_BUSY] + row_num[ROW_LOCAL_INFLIGHT]
    emergency = lane == LANE_EMERGENCY

    if 0 <= model_id < row_models.shape[1] * _BITS_PER_WORD:
        word = row_models[:, model_id // _BITS_PER_WORD]
        served = (word >> np.uint64(model_id % _BITS_PER_WORD)) & np.uint64(1) != 0
    else:
        served = np.zeros(n_rows, dtype=bool)

    reasons = np.zeros(n_rows, np.uint32)
    reasons[row_alive == 0] |= DEAD
    reasons[~served] |= NO_MODEL
    if chip_id != NO_CHIP:
        reasons[row_chip != chip_id] |= CHIP_MISMATCH
    reasons[~reachable] |= UNREACHABLE
    with np.errstate(invalid="ignore"):  # nan latencies compare False, as in the kernel
        reasons[latency > tier_ms] |= OVER_TIER
        reasons[price > budget] |= OVER_BUDGET
        if not emergency:
            reasons[in_use >= slots - reserve] |= NO_HEADROOM

    usable = slots if emergency else slots - reserve
    ahead = in_use + row_num[ROW_QUEUE_EMERGENCY]
    if lane != LANE_EMERGENCY:
        ahead = ahead + row_num[ROW_QUEUE_STANDARD]
    if lane not in (LANE_EMERGENCY, LANE_STANDARD):
        ahead = ahead + row_num[ROW_QUEUE_BATCH]
    service = row_num[ROW_SERVICE_MS]
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        excess = ahead + 1.0 - usable
        excess = np.where(excess < 0.0, 0.0, excess)
        per_round = np.where(usable > 1.0, usable, 1.0)
        expected = 2.0 * latency + excess / per_round * service + service
        expected = np.where(reachable, expected, math.inf)

        feasible = reasons == 0
        cost = expected + price_weight_ms * price
        if lane == LANE_BATCH:
            cost = cost + green_weight_ms * (1.0 - row_num[ROW_GREEN])
        cost = np.where(feasible, cost, math.inf)

    out_reasons[:] = reasons
    out_expected_ms[:] = expected
    out_cost[:] = cost

    candidates = feasible & ~np.isnan(cost)
    if not candidates.any():
        # Fallback: the nearest row that fails only the tier (argmin: first of equal minima).
        only_far = np.flatnonzero((reasons == OVER_TIER) & (expected < math.inf))
        if only_far.size == 0:
            return -1, -1
        return -1, int(only_far[np.argmin(expected[only_far])])

    best = float(cost[candidates].min())
    bound = best + margin_frac * best
    if not bound >= best:  # negative best or margin, or inf * 0: the best row stays near
        bound = best
    near = np.flatnonzero(candidates & (cost <= bound))
    if near.size == 1:
        return int(near[0]), -1

    first = uniform_index_py(rng_state, near.size)
    second = uniform_index_py(rng_state, near.size - 1)
    if second >= first:
        second += 1
    row_first, row_second = int(near[first]), int(near[second])
    cost_first, cost_second = cost[row_first], cost[row_second]
    if cost_first < cost_second or (cost_first == cost_second and row_first < row_second):
        return row_first, -1
    return row_second, -1

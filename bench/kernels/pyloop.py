"""The plain-Python baseline: one routing decision as a for-loop over a list of row objects.

What a first version of the daemon would write without NumPy or numba: each candidate is a small
object (a slotted dataclass), node latencies are a list of floats, and one loop applies the
rules of spec/kernels.md (reasons, expected latency, cost, near set, power of two choices,
fallback), writing per-row reasons, expected ms and cost into preallocated lists, as the kernel
writes its output arrays. It draws with the kernels' own generator (`rng.uniform_index_py`), so
on the same state it should pick the same row; the benchmark checks it on a sample before
timing: same reasons on every row, same feasible set, same fallback, and a chosen row that is
feasible.

It is written plainly, the way such code is usually written (attribute access, no tricks), but
with no needless work either: the request's constants are computed once, outside the loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hubhop_native import columns as col
from hubhop_native import reasons as rs
from hubhop_native.rng import uniform_index_py


@dataclass(slots=True)
class Row:
    node: int
    alive: bool
    chip: int
    models: int  # bitset: bit m set when model m is served
    price: float
    green: float
    slots: float
    reserve: float
    busy: float
    queue_emergency: float
    queue_standard: float
    queue_batch: float
    service_ms: float
    local_inflight: float


def rows_from_arrays(
    row_node: np.ndarray,
    row_alive: np.ndarray,
    row_chip: np.ndarray,
    row_models: np.ndarray,
    row_num: np.ndarray,
) -> list[Row]:
    """The same table as objects (built once, outside the timing)."""
    out = []
    words = row_models.shape[1]
    num = [row_num[f].tolist() for f in range(col.ROW_FIELDS)]
    models = row_models.tolist()
    for r, (node, alive, chip) in enumerate(
        zip(row_node.tolist(), row_alive.tolist(), row_chip.tolist(), strict=True)
    ):
        bits = 0
        for w in range(words):
            bits |= int(models[r][w]) << (64 * w)
        out.append(
            Row(
                node=node,
                alive=bool(alive),
                chip=chip,
                models=bits,
                price=num[col.ROW_PRICE][r],
                green=num[col.ROW_GREEN][r],
                slots=num[col.ROW_SLOTS][r],
                reserve=num[col.ROW_RESERVE][r],
                busy=num[col.ROW_BUSY][r],
                queue_emergency=num[col.ROW_QUEUE_EMERGENCY][r],
                queue_standard=num[col.ROW_QUEUE_STANDARD][r],
                queue_batch=num[col.ROW_QUEUE_BATCH][r],
                service_ms=num[col.ROW_SERVICE_MS][r],
                local_inflight=num[col.ROW_LOCAL_INFLIGHT][r],
            )
        )
    return out


def decide(
    rows: list[Row],
    node_latency_ms: list[float],
    model_id: int,
    chip_id: int,
    lane: int,
    tier_ms: float,
    budget: float,
    price_weight_ms: float,
    green_weight_ms: float,
    margin_frac: float,
    rng_state: list[int],
    out_reasons: list[int],
    out_expected_ms: list[float],
    out_cost: list[float],
) -> tuple[int, int]:
    """(chosen row or -1, fallback row or -1), by the rules of spec/kernels.md."""
    emergency = lane == rs.LANE_EMERGENCY
    wait_standard = not emergency
    wait_batch = lane == rs.LANE_BATCH
    model_bit = 1 << model_id if model_id >= 0 else 0
    best_cost = math.inf
    best_row = -1
    fallback_ms = math.inf
    fallback_row = -1
    for r, row in enumerate(rows):
        bits = 0
        if not row.alive:
            bits |= rs.DEAD
        if not row.models & model_bit:
            bits |= rs.NO_MODEL
        if chip_id != rs.NO_CHIP and row.chip != chip_id:
            bits |= rs.CHIP_MISMATCH
        latency = node_latency_ms[row.node]
        reachable = math.isfinite(latency)
        if not reachable:
            bits |= rs.UNREACHABLE
        if latency > tier_ms:
            bits |= rs.OVER_TIER
        if row.price > budget:
            bits |= rs.OVER_BUDGET
        in_use = row.busy + row.local_inflight
        if not emergency and in_use >= row.slots - row.reserve:
            bits |= rs.NO_HEADROOM
        if reachable:
            usable = row.slots if emergency else row.slots - row.reserve
            ahead = in_use + row.queue_emergency
            if wait_standard:
                ahead += row.queue_standard
            if wait_batch:
                ahead += row.queue_batch
            excess = max(0.0, ahead + 1.0 - usable)
            expected = 2.0 * latency + excess / max(usable, 1.0) * row.service_ms + row.service_ms
        else:
            expected = math.inf
        out_expected_ms[r] = expected
        out_reasons[r] = bits
        if bits == 0:
            cost = expected + price_weight_ms * row.price
            if wait_batch:
                cost += green_weight_ms * (1.0 - row.green)
            if cost < best_cost or (best_row < 0 and cost == best_cost):
                best_cost = cost
                best_row = r
        else:
            cost = math.inf
            if bits == rs.OVER_TIER and expected < fallback_ms:
                fallback_ms = expected
                fallback_row = r
        out_cost[r] = cost
    if best_row < 0:
        return -1, fallback_row

    bound = best_cost + margin_frac * best_cost
    if not bound >= best_cost:  # a negative margin, or nan: the best row is always near
        bound = best_cost
    near = [r for r in range(len(rows)) if out_reasons[r] == 0 and out_cost[r] <= bound]
    if len(near) == 1:
        return near[0], -1
    i = uniform_index_py(rng_state, len(near))
    j = uniform_index_py(rng_state, len(near) - 1)
    if j >= i:
        j += 1
    a, b = near[i], near[j]
    if out_cost[a] < out_cost[b] or (out_cost[a] == out_cost[b] and a < b):
        return a, -1
    return b, -1

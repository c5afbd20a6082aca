"""Build candidate tables for the kernel tests from plain dicts, one per row, so tests read clearly.

    table = build_table([
        {"latency_ms": 3.4},                      # a row on its own node, defaults for the rest
        {"latency_ms": 0.4, "price": 2.0, "chip": 1},
    ])
    decision = run(scoring.decide, table, Request(tier_ms=1.0))

A row dict may name its node (`"node": 2`, an index into `node_latency_ms`); without one, every
row sits on its own node whose latency is the row's `latency_ms`. Unnamed fields take the
defaults below: an alive, idle backend with 4 slots that serves model 0 on chip 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from hubhop_native import columns as col
from hubhop_native import reasons as rs

ROW_DEFAULTS: dict[str, Any] = {
    "alive": True,
    "chip": 0,
    "models": (0,),
    "price": 0.0,
    "green": 0.0,
    "slots": 4.0,
    "reserve": 0.0,
    "busy": 0.0,
    "queue_emergency": 0.0,
    "queue_standard": 0.0,
    "queue_batch": 0.0,
    "service_ms": 10.0,
    "local_inflight": 0.0,
    "latency_ms": 0.5,
}
NUMERIC_FIELDS = {name: index for index, name in enumerate(col.FIELD_NAMES)}


@dataclass(frozen=True)
class Table:
    row_node: npt.NDArray[np.int32]
    row_alive: npt.NDArray[np.uint8]
    row_chip: npt.NDArray[np.int32]
    row_models: npt.NDArray[np.uint64]
    row_num: npt.NDArray[np.float64]
    node_latency_ms: npt.NDArray[np.float64]

    @property
    def rows(self) -> int:
        return int(self.row_node.shape[0])


def build_table(
    rows: Sequence[Mapping[str, Any]],
    node_latency_ms: Sequence[float] | None = None,
    words: int | None = None,
) -> Table:
    unknown = {key for row in rows for key in row} - set(ROW_DEFAULTS) - {"node"}
    if unknown:
        raise ValueError(f"unknown row fields: {sorted(unknown)}")
    full = [{**ROW_DEFAULTS, **row} for row in rows]
    n = len(full)
    if node_latency_ms is None:
        if any("node" in row for row in rows):
            raise ValueError("rows that name a node need node_latency_ms")
        latencies = [float(row["latency_ms"]) for row in full]
        nodes = list(range(n))
    else:
        latencies = [float(x) for x in node_latency_ms]
        nodes = [int(row.get("node", 0)) for row in full]
    top_model = max((m for row in full for m in row["models"]), default=0)
    width = words if words is not None else col.model_words(top_model + 1)
    row_models = np.zeros((n, width), np.uint64)
    row_num = np.zeros((col.ROW_FIELDS, n), np.float64)
    for r, row in enumerate(full):
        for model in row["models"]:
            col.set_model_bit(row_models, r, model)
        for name, index in NUMERIC_FIELDS.items():
            row_num[index, r] = float(row[name])
    return Table(
        row_node=np.array(nodes, np.int32),
        row_alive=np.array([1 if row["alive"] else 0 for row in full], np.uint8),
        row_chip=np.array([int(row["chip"]) for row in full], np.int32),
        row_models=row_models,
        row_num=row_num,
        node_latency_ms=np.array(latencies, np.float64),
    )


@dataclass(frozen=True)
class Request:
    model_id: int = 0
    chip_id: int = rs.NO_CHIP
    lane: int = rs.LANE_STANDARD
    tier_ms: float = math.inf
    budget: float = math.inf
    price_weight_ms: float = 0.0
    green_weight_ms: float = 0.0
    margin_frac: float = 0.0


@dataclass(frozen=True)
class Decision:
    chosen: int
    fallback: int
    reasons: npt.NDArray[np.uint32]
    expected_ms: npt.NDArray[np.float64]
    cost: npt.NDArray[np.float64]
    rng_after: int

    def why(self, row: int) -> list[str]:
        """What an operator reads for a rejected row."""
        return rs.describe(int(self.reasons[row]))


Decide = Callable[..., tuple[int, int]]


def run(
    decide: Decide, table: Table, request: Request, rng_state: npt.NDArray[np.uint64] | int = 1
) -> Decision:
    """One decision; `rng_state` is advanced in place when an array is given."""
    state = (
        rng_state if isinstance(rng_state, np.ndarray) else np.array([rng_state], dtype=np.uint64)
    )
    n = table.rows
    out_reasons = np.full(n, 0xFFFFFFFF, np.uint32)  # garbage in: the kernel must write every row
    out_expected = np.full(n, -1.0, np.float64)
    out_cost = np.full(n, -1.0, np.float64)
    chosen, fallback = decide(
        table.row_node,
        table.row_alive,
        table.row_chip,
        table.row_models,
        table.row_num,
        table.node_latency_ms,
        int(request.model_id),
        int(request.chip_id),
        int(request.lane),
        float(request.tier_ms),
        float(request.budget),
        float(request.price_weight_ms),
        float(request.green_weight_ms),
        float(request.margin_frac),
        state,
        out_reasons,
        out_expected,
        out_cost,
    )
    return Decision(
        chosen=int(chosen),
        fallback=int(fallback),
        reasons=out_reasons,
        expected_ms=out_expected,
        cost=out_cost,
        rng_after=int(state[0]),
    )


def choices(decide: Decide, table: Table, request: Request, seed: int, count: int) -> list[int]:
    """The rows chosen by `count` decisions in a row from one rng state."""
    state = np.array([seed], dtype=np.uint64)
    return [run(decide, table, request, state).chosen for _ in range(count)]

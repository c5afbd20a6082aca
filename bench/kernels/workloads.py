"""Seeded random inputs for the kernels: candidate tables with requests, and link maps.

Every array is built exactly as spec/kernels.md says (dtypes, C-contiguous, `row_num` shaped
[ROW_FIELDS, R]), so the kernels are timed on what the daemon's bridge hands them.

Candidate tables (rows = node x backend):
- 2 to 4 backends per node (3 on average); a dead node (3 %) makes all its rows dead.
- Chips from a realistic mix; each backend serves 1 to 6 of 40 models, popular models more
  often (Zipf-like weights), so a request typically finds a few dozen to a few thousand rows.
- Price per request from the chip's class with a log-normal spread; green-power share 0..1;
  slots 1..64 (log-uniform, so small CPU boxes and large GPU pools both occur); emergency
  reserve 0..2; busy slots and per-lane queues from a random load level; service time
  log-uniform 20..2000 ms; a few requests of this entry node in flight.
- One-way node latencies 0.2..12 ms in the bands of the tiers (city, province, region,
  national), the entry node itself at 0, about 1 % unreachable (inf) and one nan.
Requests: lane, tier, chip (60 % any chip), model and budget (half unlimited) drawn per request.

Link maps: N nodes on a 2-D plane about 2,000 km across; each node links to 4 of its nearest
nodes and 2 random far ones, in both directions (about ten links a node); RTT from distance
(5 µs/km one way, route factor 1.4, 0.1 ms per end), plus jitter, clipped to 0.2..20 ms. About
0.5 % of links carry a failed probe (nan), 1 % of nodes have no links at all (only reachable by
estimate), and 80 % of nodes have a Vivaldi coordinate (2-D plus height).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from hubhop.core.tiers import TIER_BOUNDS_MS
from hubhop_native import columns as col
from hubhop_native import reasons

N_MODELS = 40
# Chip names and how common they are among backends. The bridge maps names to small ints; the
# benchmark uses the index in this tuple.
CHIPS = ("nvidia-h100", "nvidia-a100", "nvidia-l40s", "ascend-910b", "ascend-310p", "cpu")
CHIP_WEIGHTS = (0.15, 0.15, 0.1, 0.2, 0.1, 0.3)
# Price per request by chip class (currency units): accelerators cost more than CPUs.
CHIP_PRICE = (4.0, 2.5, 1.5, 3.0, 1.0, 0.3)
# Tier bounds (one-way ms, DESIGN.md) and how often requests ask for each.
TIER_WEIGHTS = (0.15, 0.35, 0.2, 0.2, 0.1)  # in the order of hubhop.core.tiers.TIERS
LANE_WEIGHTS = (0.1, 0.6, 0.3)  # emergency, standard, batch
# Node latency bands (one-way ms) and their shares: inside the city, the province, the region,
# the national hubs.
LATENCY_BANDS = ((0.2, 1.0, 0.2), (1.0, 5.0, 0.4), (5.0, 7.0, 0.2), (7.0, 12.0, 0.2))
# What a request's scoring weighs: ms of latency one currency unit is worth, ms one unit of
# brown (non-green) power is worth for batch work, and the near-set margin for two choices.
PRICE_WEIGHT_MS = 20.0
GREEN_WEIGHT_MS = 200.0
MARGIN_FRAC = 0.1


def _model_weights() -> npt.NDArray[np.float64]:
    w = 1.0 / np.arange(1, N_MODELS + 1) ** 0.8
    return w / w.sum()


@dataclass
class Table:
    """One candidate table in the contract's arrays, and requests over it."""

    row_node: npt.NDArray[np.int32]
    row_alive: npt.NDArray[np.uint8]
    row_chip: npt.NDArray[np.int32]
    row_models: npt.NDArray[np.uint64]
    row_num: npt.NDArray[np.float64]
    node_latency_ms: npt.NDArray[np.float64]
    # (model_id, chip_id, lane, tier_ms, budget, price_weight_ms, green_weight_ms, margin_frac)
    requests: list[tuple[int, int, int, float, float, float, float, float]]

    @property
    def rows(self) -> int:
        return int(self.row_node.shape[0])

    @property
    def nodes(self) -> int:
        return int(self.node_latency_ms.shape[0])

    def arrays(self) -> tuple[Any, ...]:
        return (
            self.row_node,
            self.row_alive,
            self.row_chip,
            self.row_models,
            self.row_num,
            self.node_latency_ms,
        )


def candidate_table(rows: int, n_requests: int, seed: int) -> Table:
    rng = np.random.default_rng([seed, rows])
    per_node = rng.integers(2, 5, size=rows // 2 + 2)  # 2..4 backends, enough nodes to fill
    row_node_all = np.repeat(np.arange(per_node.size, dtype=np.int32), per_node)
    row_node = np.ascontiguousarray(row_node_all[:rows], dtype=np.int32)
    n_nodes = int(row_node[-1]) + 1 if rows else 0

    node_alive = (rng.random(n_nodes) >= 0.03).astype(np.uint8)
    if n_nodes:
        node_alive[0] = 1  # the entry node itself
    row_alive = np.ascontiguousarray(node_alive[row_node], dtype=np.uint8)
    row_chip = rng.choice(len(CHIPS), size=rows, p=CHIP_WEIGHTS).astype(np.int32)

    # 1..6 distinct models per row, drawn by weight without replacement (Gumbel top-k).
    weights = _model_weights()
    keys = np.log(weights)[None, :] + rng.gumbel(size=(rows, N_MODELS))
    ranked = np.argsort(-keys, axis=1)
    served = rng.integers(1, 7, size=rows)
    row_models = np.zeros((rows, col.model_words(N_MODELS)), dtype=np.uint64)
    for k in range(6):
        pick = served > k
        m = ranked[pick, k]
        bits = np.left_shift(np.uint64(1), (m % 64).astype(np.uint64))
        np.bitwise_or.at(row_models, (np.flatnonzero(pick), m // 64), bits)

    num = np.zeros((col.ROW_FIELDS, rows), dtype=np.float64)
    num[col.ROW_PRICE] = np.asarray(CHIP_PRICE)[row_chip] * rng.lognormal(0.0, 0.3, rows)
    num[col.ROW_GREEN] = rng.beta(2.0, 3.0, rows)
    slots = np.floor(np.exp(rng.uniform(0.0, math.log(64.999), rows)))
    num[col.ROW_SLOTS] = slots
    num[col.ROW_RESERVE] = rng.integers(0, 3, rows)
    load = rng.beta(2.0, 2.0, rows) * 1.2  # load level: some backends are past full
    num[col.ROW_BUSY] = np.minimum(slots, rng.binomial(slots.astype(np.int64), np.minimum(load, 1)))
    overflow = np.maximum(load - 0.8, 0.0) * slots
    num[col.ROW_QUEUE_EMERGENCY] = rng.poisson(0.05 * overflow)
    num[col.ROW_QUEUE_STANDARD] = rng.poisson(overflow)
    num[col.ROW_QUEUE_BATCH] = rng.poisson(2.0 * overflow)
    num[col.ROW_SERVICE_MS] = np.exp(rng.uniform(math.log(20.0), math.log(2000.0), rows))
    num[col.ROW_LOCAL_INFLIGHT] = rng.choice(3, size=rows, p=(0.8, 0.15, 0.05))
    row_num = np.ascontiguousarray(num)

    bands = rng.choice(len(LATENCY_BANDS), size=n_nodes, p=[b[2] for b in LATENCY_BANDS])
    low = np.asarray([b[0] for b in LATENCY_BANDS])[bands]
    high = np.asarray([b[1] for b in LATENCY_BANDS])[bands]
    latency = rng.uniform(low, high)
    latency[rng.random(n_nodes) < 0.01] = math.inf
    if n_nodes > 2:
        latency[n_nodes // 2] = math.nan
    if n_nodes:
        latency[0] = 0.0  # the entry node serves itself
    node_latency_ms = np.ascontiguousarray(latency, dtype=np.float64)

    requests = []
    lanes = rng.choice(3, size=n_requests, p=LANE_WEIGHTS)
    tiers = rng.choice(list(TIER_BOUNDS_MS.values()), size=n_requests, p=TIER_WEIGHTS)
    models = rng.choice(N_MODELS, size=n_requests, p=weights)
    chips = rng.choice(len(CHIPS), size=n_requests, p=CHIP_WEIGHTS)
    any_chip = rng.random(n_requests) < 0.6
    budgets = rng.uniform(0.5, 5.0, n_requests)
    no_budget = rng.random(n_requests) < 0.5
    for i in range(n_requests):
        requests.append(
            (
                int(models[i]),
                reasons.NO_CHIP if any_chip[i] else int(chips[i]),
                int(lanes[i]),
                float(tiers[i]),
                math.inf if no_budget[i] else float(budgets[i]),
                PRICE_WEIGHT_MS,
                GREEN_WEIGHT_MS,
                MARGIN_FRAC,
            )
        )
    return Table(row_node, row_alive, row_chip, row_models, row_num, node_latency_ms, requests)


@dataclass
class Graph:
    """One link map in the contract's CSR arrays, with coordinates, and sources to start from."""

    indptr: npt.NDArray[np.int32]
    indices: npt.NDArray[np.int32]
    rtt_ms: npt.NDArray[np.float64]
    coords: npt.NDArray[np.float64]
    heights: npt.NDArray[np.float64]
    has_coord: npt.NDArray[np.uint8]
    sources: list[int]
    relay_cost_ms: float = 0.05  # what forwarding through one daemon costs, one way

    @property
    def nodes(self) -> int:
        return int(self.indptr.shape[0]) - 1

    @property
    def links(self) -> int:
        return int(self.indices.shape[0])


def link_map(n: int, n_sources: int, seed: int) -> Graph:
    from hubhop_native.csr import links_to_csr

    rng = np.random.default_rng([seed, n, 7])
    pos = rng.uniform(0.0, 2000.0, size=(n, 2))  # km
    isolated = rng.random(n) < 0.01
    isolated[:n_sources] = False  # sources are nodes with links

    # Near links: 4 of the 12 nodes nearest in a coarse grid ordering (sort by cell, then by x),
    # cheap to build at any size and local enough to give multi-hop shortest paths.
    cell = np.floor(pos / 2000.0 * max(1, int(math.sqrt(n / 8)))).astype(np.int64)
    order = np.lexsort((pos[:, 0], cell[:, 0], cell[:, 1]))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    src_list, dst_list = [], []
    offsets = rng.integers(1, 7, size=(n, 4)) * rng.choice((-1, 1), size=(n, 4))
    near = order[np.clip(rank[:, None] + offsets, 0, n - 1)]
    far = rng.integers(0, n, size=(n, 2))
    for picks in (near, far):
        for k in range(picks.shape[1]):
            src_list.append(np.arange(n))
            dst_list.append(picks[:, k])
    src = np.concatenate(src_list)
    dst = np.concatenate(dst_list)
    keep = (src != dst) & ~isolated[src] & ~isolated[dst]
    src, dst = src[keep], dst[keep]
    # Undirected and without duplicates: one (low, high) pair per link, then both directions.
    pairs = np.unique(np.stack([np.minimum(src, dst), np.maximum(src, dst)], axis=1), axis=0)
    a, b = pairs[:, 0], pairs[:, 1]
    km = np.hypot(*(pos[a] - pos[b]).T)
    rtt = 2.0 * (km * 1.4 * 0.005 + 0.1) * rng.uniform(1.0, 1.15, size=km.size)
    rtt = np.clip(rtt, 0.2, 20.0)
    rtt[rng.random(rtt.size) < 0.005] = math.nan  # failed probes
    indptr, indices, rtt_csr = links_to_csr(
        n,
        np.concatenate([a, b]).astype(np.int32),
        np.concatenate([b, a]).astype(np.int32),
        np.concatenate([rtt, rtt]),
    )
    # Vivaldi coordinates: position in one-way-ms units plus a small height (access latency).
    coords = np.ascontiguousarray(pos * 1.4 * 0.005 * 2.0 * rng.uniform(0.9, 1.1, (n, 1)))
    heights = np.ascontiguousarray(rng.uniform(0.05, 0.5, n))
    has_coord = (rng.random(n) < 0.8).astype(np.uint8)
    has_coord[:n_sources] = 1
    sources = [int(s) for s in range(min(n_sources, n))]
    return Graph(indptr, indices, rtt_csr, coords, heights, has_coord, sources)

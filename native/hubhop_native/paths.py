"""Lowest-latency paths from one node to every node: Dijkstra over the measured link map.

The contract is the kernel contract of issue 5, section paths.py; `paths_ref.py` is the reference
with the same signature and bit-identical outputs (the oracle in tests, the fallback without
numba). The rules, each with its reason:

Inputs
- The link map is CSR: the links of node u are indices[indptr[u]:indptr[u + 1]], with measured
  round-trip times rtt_ms (ms) at the same positions (`csr.links_to_csr` builds it). N is the
  length of out_latency_ms; every per-node array must have N entries (indptr N + 1) and
  indices/rtt_ms one length, else ValueError: a caller bug, and raising beats reading past an
  array in compiled code. indptr values are clipped to [0, E] for the same reason.
- A link is ignored when its RTT is nan, +inf or negative (a failed or nonsense probe is no
  evidence of a path) or its target lies outside [0, N).
- relay_cost_ms that is nan or negative counts as 0: Dijkstra is only correct with non-negative
  weights, and a relay can never make a path faster. +inf is allowed and means "direct links only".

Latency
- One-way latency of a link = rtt * 0.5: the tiers are one-way figures and the daemon estimates
  one-way as half the measured round trip (the 0.5 is that, and is exact in binary).
- A path's latency = sum of its links' one-way latencies + relay_cost_ms for every intermediate
  node (a path of h links has h - 1 relays): each daemon that forwards a request costs time.
  The relaxation of link u -> v computes, in this order, cand = (lat[u] + relay) + rtt * 0.5, or
  cand = lat[u] + rtt * 0.5 when u is the source (the source relays nothing). The reference
  evaluates the same expression in the same order, so the two agree bit for bit (no fastmath).

Order and ties (the reference reproduces this exactly)
- The heap is ordered by the pair (latency, node index): equal latencies pop lower index first.
  A node is pushed only when its latency strictly drops, so no pair is pushed twice and the pop
  order is a total order, independent of how either heap arranges its array.
- A relaxation replaces the current best only when strictly lower (cand < lat[v]). So of paths
  with bit-identical latency the first one found is kept: the predecessor settled first, i.e. the
  one with the lower latency, then the lower node index; among duplicate links of one node, the
  first in CSR order.
- Lazy deletion: stale heap entries are skipped when popped (the node is already settled). Every
  push follows a strict improvement over an edge of a node settled once, so the heap never holds
  more than E + 1 entries; it is allocated as E + N, the bound the contract names.

Outputs
- source: latency 0, pred -1, first_hop = source, estimated 0.
- Nodes reached over measured links: latency as above, pred = previous node on the path,
  first_hop = first node after the source (the neighbour a request is handed to), estimated 0.
  A measured path always wins over a coordinate estimate, even a smaller one: measurements are
  evidence, coordinates a guess.
- Nodes not reached: if has_coord[source] and has_coord[n] are non-zero, the Vivaldi estimate
  rtt = ||coords[source] - coords[n]|| + heights[source] + heights[n] (Euclidean norm summed over
  the dimensions in order 0..D-1, then sqrt; the sum evaluated left to right), latency = rtt * 0.5,
  pred = source, first_hop = n, estimated = 1: better a guess than no route to a node whose links
  nobody has measured yet. An estimate that is nan, infinite or negative (broken coordinates) is
  no estimate. Otherwise latency = inf, pred = -1, first_hop = -1, estimated = 0.
- N = 0 or a source outside [0, N): every node unreachable as above, no exception (a daemon whose
  own index is not in the map yet must still be able to ask).
"""

from __future__ import annotations

import math
from typing import TypeVar, cast

import numba
import numpy as np
import numpy.typing as npt

_F = TypeVar("_F")


def _njit(fn: _F) -> _F:
    """numba.njit(cache=True), no fastmath, keeping the function's type (numba has no hints)."""
    return cast(_F, numba.njit(cache=True)(fn))


@_njit
def _heap_push(
    keys: npt.NDArray[np.float64],
    nodes: npt.NDArray[np.int32],
    size: int,
    key: float,
    node: int,
) -> int:
    """Push (key, node) into the binary min-heap of `size` entries; return the new size."""
    i = size
    while i > 0:
        parent = (i - 1) >> 1
        pk = keys[parent]
        if pk < key or (pk == key and nodes[parent] < node):
            break
        keys[i] = pk
        nodes[i] = nodes[parent]
        i = parent
    keys[i] = key
    nodes[i] = node
    return size + 1


@_njit
def _heap_pop(keys: npt.NDArray[np.float64], nodes: npt.NDArray[np.int32], size: int) -> int:
    """Remove the root of a heap of `size` >= 1 entries (read it first); return the new size."""
    size -= 1
    if size == 0:
        return 0
    key = keys[size]
    node = nodes[size]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        right = child + 1
        if right < size:
            rk = keys[right]
            ck = keys[child]
            if rk < ck or (rk == ck and nodes[right] < nodes[child]):
                child = right
        ck = keys[child]
        if key < ck or (key == ck and node < nodes[child]):
            break
        keys[i] = ck
        nodes[i] = nodes[child]
        i = child
    keys[i] = key
    nodes[i] = node
    return size


@_njit
def shortest_paths(
    indptr: npt.NDArray[np.int32],
    indices: npt.NDArray[np.int32],
    rtt_ms: npt.NDArray[np.float64],
    source: int,
    relay_cost_ms: float,
    coords: npt.NDArray[np.float64],
    heights: npt.NDArray[np.float64],
    has_coord: npt.NDArray[np.uint8],
    out_latency_ms: npt.NDArray[np.float64],
    out_pred: npt.NDArray[np.int32],
    out_first_hop: npt.NDArray[np.int32],
    out_estimated: npt.NDArray[np.uint8],
) -> None:
    """Fill the four outputs with the lowest-latency path from `source` to every node."""
    n = out_latency_ms.shape[0]
    if n == 0:
        return
    if (
        out_pred.shape[0] != n
        or out_first_hop.shape[0] != n
        or out_estimated.shape[0] != n
        or indptr.shape[0] != n + 1
        or coords.shape[0] != n
        or heights.shape[0] != n
        or has_coord.shape[0] != n
    ):
        raise ValueError("shortest_paths: every per-node array needs N entries (indptr N + 1)")
    n_links = indices.shape[0]
    if rtt_ms.shape[0] != n_links:
        raise ValueError("shortest_paths: indices and rtt_ms differ in length")

    for i in range(n):
        out_latency_ms[i] = math.inf
        out_pred[i] = -1
        out_first_hop[i] = -1
        out_estimated[i] = 0
    if source < 0 or source >= n:
        return

    relay = relay_cost_ms
    if not relay >= 0.0:
        relay = 0.0

    cap = n_links + n  # at most one push per link plus the source's: see the header
    keys = np.empty(cap, dtype=np.float64)
    heap_nodes = np.empty(cap, dtype=np.int32)
    settled = np.zeros(n, dtype=np.uint8)

    out_latency_ms[source] = 0.0
    out_first_hop[source] = source
    size = _heap_push(keys, heap_nodes, 0, 0.0, source)
    while size > 0:
        d = keys[0]
        u = heap_nodes[0]
        size = _heap_pop(keys, heap_nodes, size)
        if settled[u]:
            continue
        settled[u] = 1
        base = d if u == source else d + relay
        start = min(max(indptr[u], 0), n_links)
        end = min(max(indptr[u + 1], start), n_links)
        for k in range(start, end):
            r = rtt_ms[k]
            if not (r >= 0.0 and r < math.inf):
                continue
            v = indices[k]
            if v < 0 or v >= n or settled[v]:
                continue
            cand = base + r * 0.5
            if cand < out_latency_ms[v]:
                out_latency_ms[v] = cand
                out_pred[v] = u
                out_first_hop[v] = v if u == source else out_first_hop[u]
                size = _heap_push(keys, heap_nodes, size, cand, v)

    if has_coord[source] == 0:
        return
    dims = coords.shape[1]
    for v in range(n):
        if settled[v] or has_coord[v] == 0:
            continue
        acc = 0.0
        for j in range(dims):
            diff = coords[source, j] - coords[v, j]
            acc += diff * diff
        est = math.sqrt(acc) + heights[source] + heights[v]
        if est >= 0.0 and est < math.inf:
            out_latency_ms[v] = est * 0.5
            out_pred[v] = source
            out_first_hop[v] = v
            out_estimated[v] = 1


@_njit
def path_to(out_pred: npt.NDArray[np.int32], target: int) -> npt.NDArray[np.int32]:
    """The node sequence source..target read back from `out_pred` of `shortest_paths`.

    A measured path gives every node on it; an estimated node gives [source, target] (its pred is
    the source); the source itself and an unreachable node both give [target], so tell them apart
    by out_latency_ms (0 vs inf). An out-of-range target or a pred chain longer than N (a cycle:
    not a `shortest_paths` output) gives an empty array.
    """
    n = out_pred.shape[0]
    if target < 0 or target >= n:
        return np.empty(0, dtype=np.int32)
    length = 1
    v = target
    while out_pred[v] != -1:
        v = out_pred[v]
        length += 1
        if length > n or v < 0 or v >= n:
            return np.empty(0, dtype=np.int32)
    path = np.empty(length, dtype=np.int32)
    v = target
    for i in range(length - 1, -1, -1):
        path[i] = v
        v = out_pred[v]
    return path

"""Plain-Python reference of `paths.shortest_paths` and `paths.path_to`: same signatures, same
outputs bit for bit.

It is the oracle the kernel is tested against and the fallback where numba is absent. Every rule
(inputs ignored, latency sums and their evaluation order, the (latency, node index) heap order,
the strict-improvement tie rule, the coordinate estimates) is stated once, in the header comment
of paths.py; this module follows it with `heapq` over (latency, node) tuples, whose pop order is
the same total order as the kernel's array heap. Arithmetic is done on Python floats, which are
the same IEEE doubles as the kernel's, in the same order.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
import numpy.typing as npt


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
    n = int(out_latency_ms.shape[0])
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
    n_links = int(indices.shape[0])
    if rtt_ms.shape[0] != n_links:
        raise ValueError("shortest_paths: indices and rtt_ms differ in length")

    latency = [math.inf] * n
    pred = [-1] * n
    first_hop = [-1] * n
    estimated = [0] * n
    source = int(source)
    if 0 <= source < n:
        relay = float(relay_cost_ms)
        if not relay >= 0.0:
            relay = 0.0
        ptr: list[int] = indptr.tolist()
        dst: list[int] = indices.tolist()
        rtt: list[float] = rtt_ms.tolist()
        settled = [False] * n

        latency[source] = 0.0
        first_hop[source] = source
        heap: list[tuple[float, int]] = [(0.0, source)]
        while heap:
            d, u = heapq.heappop(heap)
            if settled[u]:
                continue
            settled[u] = True
            base = d if u == source else d + relay
            start = min(max(ptr[u], 0), n_links)
            end = min(max(ptr[u + 1], start), n_links)
            for k in range(start, end):
                r = rtt[k]
                if not (r >= 0.0 and r < math.inf):
                    continue
                v = dst[k]
                if v < 0 or v >= n or settled[v]:
                    continue
                cand = base + r * 0.5
                if cand < latency[v]:
                    latency[v] = cand
                    pred[v] = u
                    first_hop[v] = v if u == source else first_hop[u]
                    heapq.heappush(heap, (cand, v))

        if has_coord[source] != 0:
            xy: list[list[float]] = coords.tolist()
            hs: list[float] = heights.tolist()
            known: list[int] = has_coord.tolist()
            src_xy = xy[source]
            for v in range(n):
                if settled[v] or known[v] == 0:
                    continue
                acc = 0.0
                for a, b in zip(src_xy, xy[v], strict=True):
                    diff = a - b
                    acc += diff * diff
                est = math.sqrt(acc) + hs[source] + hs[v]
                if est >= 0.0 and est < math.inf:
                    latency[v] = est * 0.5
                    pred[v] = source
                    first_hop[v] = v
                    estimated[v] = 1

    out_latency_ms[:] = latency
    out_pred[:] = pred
    out_first_hop[:] = first_hop
    out_estimated[:] = estimated


def path_to(out_pred: npt.NDArray[np.int32], target: int) -> npt.NDArray[np.int32]:
    """The node sequence source..target read back from `out_pred`; see `paths.path_to`."""
    n = int(out_pred.shape[0])
    if target < 0 or target >= n:
        return np.empty(0, dtype=np.int32)
    walk = [int(target)]
    v = int(target)
    while int(out_pred[v]) != -1:
        v = int(out_pred[v])
        walk.append(v)
        if len(walk) > n or v < 0 or v >= n:
            return np.empty(0, dtype=np.int32)
    walk.reverse()
    return np.array(walk, dtype=np.int32)

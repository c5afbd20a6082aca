"""The link map from this node's point of view: measured links in, path latencies out.

Rules:
- Links are directed measured round-trip times between node ids (a node's record carries its
  RTT to each neighbour it probes, so each direction is reported by its own end).
- Paths are recomputed only when the map changed (a link, a coordinate, a node), lazily, at the
  next decision that needs them; never per request otherwise. Each recomputation writes new
  arrays (`Paths`), never the previous ones, so a decision keeps the paths it was made on.
- Each relay hop costs `relay_cost_ms` (the relaying daemon's own processing).
- Where no measured path reaches a node, its network-coordinate estimate stands in, and the
  path is marked as an estimate so the decision can say so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hubhop.core.capacity import COORDINATE_DIMENSIONS
from hubhop.scoring import kernels
from hubhop.scoring.vocabulary import Vocabulary
from hubhop_native import csr

# A relaying daemon reads the request head and opens (or reuses) an upstream connection: about
# 0.1 ms on the hardware this runs on, small against the 1 ms city tier but never free.
DEFAULT_RELAY_COST_MS = 0.1


@dataclass(frozen=True, eq=False)  # arrays: compared by identity
class Paths:
    """What one recomputation found. Never changed afterwards (the next recomputation makes new
    arrays), so a decision can keep the paths it was made on and explain itself later."""

    nodes: Vocabulary
    source: int
    latency_ms: np.ndarray  # one-way, per node id; inf where unknown
    pred: np.ndarray  # the node before each one on its path
    estimated: np.ndarray  # 1 where the latency is a coordinate estimate

    def path_to(self, node_id: int) -> tuple[str, ...]:
        """Node names from the source to `node_id` along its path (empty if unreachable)."""
        if node_id >= self.pred.shape[0] or not math.isfinite(self.latency_ms[node_id]):
            return ()
        hops = [node_id]
        while hops[-1] != self.source and len(hops) <= self.pred.shape[0]:
            hops.append(int(self.pred[hops[-1]]))
        return tuple(self.nodes.name_of(h) for h in reversed(hops))


class PathMap:
    def __init__(
        self, nodes: Vocabulary, self_node: str, relay_cost_ms: float = DEFAULT_RELAY_COST_MS
    ) -> None:
        self.nodes = nodes
        self.source = nodes.id_of(self_node)
        self.relay_cost_ms = relay_cost_ms
        self._links: dict[tuple[int, int], float] = {}
        self._coords: dict[int, tuple[np.ndarray, float]] = {}
        self._dirty = True
        self.latency_ms = np.zeros(0, np.float64)
        self.pred = np.zeros(0, np.int32)
        self.first_hop = np.zeros(0, np.int32)
        self.estimated = np.zeros(0, np.uint8)
        self.current = self._paths()

    def _paths(self) -> Paths:
        return Paths(self.nodes, self.source, self.latency_ms, self.pred, self.estimated)

    def set_link(self, a: str, b: str, rtt_ms: float) -> None:
        key = (self.nodes.id_of(a), self.nodes.id_of(b))
        if self._links.get(key) != rtt_ms:
            self._links[key] = rtt_ms
            self._dirty = True

    def remove_link(self, a: str, b: str) -> None:
        key = (self.nodes.id_of(a), self.nodes.id_of(b))
        if self._links.pop(key, None) is not None:
            self._dirty = True

    def remove_links_from(self, node: str) -> None:
        ident = self.nodes.lookup(node)
        if ident is None:
            return
        kept = {k: v for k, v in self._links.items() if k[0] != ident}
        if len(kept) != len(self._links):
            self._links = kept
            self._dirty = True

    def set_coordinate(self, node: str, vector: tuple[float, ...], height: float) -> None:
        if len(vector) != COORDINATE_DIMENSIONS or not all(map(math.isfinite, vector)):
            raise ValueError(f"a coordinate has {COORDINATE_DIMENSIONS} finite components")
        self._coords[self.nodes.id_of(node)] = (np.asarray(vector, np.float64), float(height))
        self._dirty = True

    def remove_node(self, node: str) -> None:
        ident = self.nodes.lookup(node)
        if ident is None:
            return
        before = len(self._links)
        self._links = {k: v for k, v in self._links.items() if ident not in k}
        if self._coords.pop(ident, None) is not None or len(self._links) != before:
            self._dirty = True

    def recompute(self) -> np.ndarray:
        """One-way path latency from this node to every node id (inf where unknown)."""
        n = len(self.nodes)
        if not self._dirty and self.latency_ms.shape[0] == n:
            return self.latency_ms
        pairs = list(self._links.items())
        src = np.array([a for (a, _), _ in pairs], np.int32)
        dst = np.array([b for (_, b), _ in pairs], np.int32)
        rtt = np.array([v for _, v in pairs], np.float64)
        indptr, indices, rtt_sorted = csr.links_to_csr(n, src, dst, rtt)
        coords = np.zeros((n, COORDINATE_DIMENSIONS), np.float64)
        heights = np.zeros(n, np.float64)
        has_coord = np.zeros(n, np.uint8)
        for ident, (vector, height) in self._coords.items():
            coords[ident], heights[ident], has_coord[ident] = vector, height, 1
        self.latency_ms = np.empty(n, np.float64)
        self.pred = np.empty(n, np.int32)
        self.first_hop = np.empty(n, np.int32)
        self.estimated = np.empty(n, np.uint8)
        kernels.shortest_paths(
            indptr, indices, rtt_sorted, self.source, self.relay_cost_ms,
            coords, heights, has_coord,
            self.latency_ms, self.pred, self.first_hop, self.estimated,
        )  # fmt: skip
        self._dirty = False
        self.current = self._paths()
        return self.latency_ms

    def path_to(self, node_id: int) -> tuple[str, ...]:
        """Node names from this node to `node_id` along the chosen path (empty if unreachable)."""
        return self.current.path_to(node_id)

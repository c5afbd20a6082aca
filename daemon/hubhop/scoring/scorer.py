"""One routing decision: the kernels over the candidate table, turned into an explainable answer.

Rules:
- Before scoring, queued table changes are folded in and paths recomputed if the map changed;
  the per-request work is then one kernel call plus building the answer.
- A model or chip nobody has ever announced matches no row (NO_MODEL / CHIP_MISMATCH), rather
  than being an error: the answer explains it like any other rejection.
- The answer names the chosen row with its expected latency split into network (both ways),
  queue and service, the path (direct or relayed), a few alternates, and the nearest rejected
  rows with their reasons. When nothing fits the tier, the best row outside it is reported as
  the fallback so the caller can spill over or refuse, as the request allows.
- When no row is feasible only because every backend that fits is busy up to its emergency
  reserve (NO_HEADROOM, and no other reason), the best of those by the kernel's own cost rule
  (expected latency with its queue wait, price and green weights) is named `queued`: the node
  that would take the request into its queue. The kernels keep their contract (headroom is a
  reason); whether to queue there or look elsewhere is the caller's rule.
- Randomness for the power-of-two choice lives in `rng_state`, seeded by the caller, so a run
  can be replayed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hubhop.core.tiers import lane_index
from hubhop.scoring import kernels
from hubhop.scoring.candidates import CandidateTable
from hubhop.scoring.path_map import PathMap
from hubhop.scoring.vocabulary import Vocabulary
from hubhop_native import columns as col
from hubhop_native import reasons as rsn

OVER_TIER = rsn.REASON_NAMES[rsn.OVER_TIER]
UNREACHABLE = rsn.REASON_NAMES[rsn.UNREACHABLE]
# An id no model or chip can have: requests for unknown names match nothing.
UNKNOWN_ID = 2**31 - 1
# Rows within 10% of the best cost count as equally good: wide enough that stale load figures do
# not herd every entry node onto one backend, narrow enough not to trade real latency for spread.
DEFAULT_MARGIN_FRAC = 0.10
# How many alternates and rejected rows an answer lists: enough to explain, bounded for tables
# of thousands of rows.
ALTERNATES = 3
REJECTED_SHOWN = 10


def _id_or_unknown(vocabulary: Vocabulary, name: str) -> int:
    found = vocabulary.lookup(name)
    return UNKNOWN_ID if found is None else found


@dataclass(frozen=True)
class Request:
    model: str
    lane: str = "standard"
    tier_ms: float = math.inf  # one-way bound; math.inf for the `any` tier
    chip: str | None = None
    budget: float = math.inf
    # Each unit of price costs this many ms of expected latency in the ranking (0: price only
    # bounds, never steers), and for the batch lane, fully non-green power this many ms.
    price_weight_ms: float = 0.0
    green_weight_ms: float = 0.0


@dataclass(frozen=True)
class Candidate:
    node: str
    backend: str
    network_ms: float  # both ways: twice the one-way path latency
    queue_ms: float
    service_ms: float
    expected_ms: float
    path: tuple[str, ...]  # this node .. serving node; more than two names means relayed
    estimated: bool  # network figure from coordinates, not from measured links
    reasons: tuple[str, ...] = ()

    @property
    def one_way_ms(self) -> float:
        return self.network_ms / 2


@dataclass(frozen=True)
class Decision:
    chosen: Candidate | None
    fallback: Candidate | None
    alternates: tuple[Candidate, ...]
    rejected: tuple[Candidate, ...]
    queued: Candidate | None = None  # nothing chosen: the best row short only of headroom

    def explain(self, tier_ms: float) -> list[str]:
        """One line per rejected row, e.g. 'shiyan-2/npu-0: 3.4 ms > tier 1 ms'."""
        lines = []
        for c in self.rejected:
            why = [
                f"{c.one_way_ms:.1f} ms > tier {tier_ms:g} ms" if r == OVER_TIER else r
                for r in c.reasons
                if not (r == OVER_TIER and UNREACHABLE in c.reasons)  # says it already
            ]
            lines.append(f"{c.node}/{c.backend}: {'; '.join(why)}")
        return lines


class Scorer:
    def __init__(self, self_node: str, seed: int = 1) -> None:
        self.nodes = Vocabulary()
        self.table = CandidateTable(self.nodes, Vocabulary(), Vocabulary())
        self.paths = PathMap(self.nodes, self_node)
        self.rng_state = np.array([seed or 1], np.uint64)
        self._reasons = np.zeros(0, np.uint32)
        self._expected = np.zeros(0, np.float64)
        self._cost = np.zeros(0, np.float64)

    def _prepare(self) -> np.ndarray:
        self.table.materialize()
        latency = self.paths.recompute()
        rows = len(self.table)
        if self._reasons.shape[0] != rows:
            self._reasons = np.zeros(rows, np.uint32)
            self._expected = np.zeros(rows, np.float64)
            self._cost = np.zeros(rows, np.float64)
        return latency

    def decide(self, request: Request, margin_frac: float = DEFAULT_MARGIN_FRAC) -> Decision:
        latency = self._prepare()
        t = self.table
        model_id = _id_or_unknown(t.models, request.model)
        chip_id = rsn.NO_CHIP if request.chip is None else _id_or_unknown(t.chips, request.chip)
        # Scalars go in as exactly int and float: another type would compile a second kernel.
        chosen, fallback = kernels.decide(
            t.row_node, t.row_alive, t.row_chip, t.row_models, t.row_num, latency,
            int(model_id), int(chip_id), lane_index(request.lane),
            float(request.tier_ms), float(request.budget), float(request.price_weight_ms),
            float(request.green_weight_ms), float(margin_frac),
            self.rng_state, self._reasons, self._expected, self._cost,
        )  # fmt: skip
        return Decision(
            chosen=self._candidate(chosen, latency) if chosen >= 0 else None,
            fallback=self._candidate(fallback, latency) if fallback >= 0 else None,
            alternates=self._alternates(chosen, latency),
            rejected=self._rejected(latency),
            queued=self._queued(request, latency) if chosen < 0 else None,
        )

    def _queued(self, request: Request, latency: np.ndarray) -> Candidate | None:
        """The best row whose only reason is NO_HEADROOM, costed as the kernel costs rows."""
        rows = np.flatnonzero(self._reasons == rsn.NO_HEADROOM)
        if rows.size == 0:
            return None
        num = self.table.row_num
        cost = self._expected[rows] + request.price_weight_ms * num[col.ROW_PRICE, rows]
        if request.lane == "batch":
            cost = cost + request.green_weight_ms * (1.0 - num[col.ROW_GREEN, rows])
        finite = np.isfinite(cost)
        if not finite.any():
            return None
        best = int(rows[finite][np.argmin(cost[finite])])
        return self._candidate(best, latency)

    def _candidate(self, row: int, latency: np.ndarray) -> Candidate:
        node_id = int(self.table.row_node[row])
        one_way = float(latency[node_id])
        service = float(self.table.row_num[col.ROW_SERVICE_MS, row])
        expected = float(self._expected[row])
        network = 2 * one_way
        queue = max(0.0, expected - network - service) if math.isfinite(expected) else math.inf
        return Candidate(
            node=self.table.keys[row][0],
            backend=self.table.keys[row][1],
            network_ms=network,
            queue_ms=queue,
            service_ms=service,
            expected_ms=expected,
            path=self.paths.path_to(node_id),
            estimated=bool(self.paths.estimated[node_id]) if math.isfinite(one_way) else False,
            reasons=tuple(rsn.describe(int(self._reasons[row]))),
        )

    def _alternates(self, chosen: int, latency: np.ndarray) -> tuple[Candidate, ...]:
        feasible = np.flatnonzero(self._reasons == 0)
        feasible = feasible[feasible != chosen]
        if feasible.size > ALTERNATES:
            nearest = np.argpartition(self._cost[feasible], ALTERNATES)[:ALTERNATES]
            feasible = feasible[nearest]
        ordered = feasible[np.argsort(self._cost[feasible], kind="stable")]
        return tuple(self._candidate(int(r), latency) for r in ordered)

    def _rejected(self, latency: np.ndarray) -> tuple[Candidate, ...]:
        rejected = np.flatnonzero(self._reasons != 0)
        if rejected.size == 0:
            return ()
        distance = latency[self.table.row_node[rejected]]
        distance = np.where(np.isnan(distance), np.inf, distance)
        order = np.argsort(distance, kind="stable")[:REJECTED_SHOWN]
        return tuple(self._candidate(int(rejected[i]), latency) for i in order)

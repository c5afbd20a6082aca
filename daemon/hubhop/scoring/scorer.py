"""One routing decision: the kernels over the candidate table, turned into an explainable answer.

Rules:
- Before scoring, queued table changes are folded in and paths recomputed if the map changed;
  the per-request work is then one kernel call plus building the chosen candidate. The rest of
  the answer (fallback, queued, alternates, rejections) is built from the kernel's outputs only
  when asked for: a request that is served never needs it. So a decision keeps its outputs,
  arrays of its own (20 bytes a row): whoever holds a decision holds them, and the router lets
  go of its decisions once a try's answer head is in, before the answer streams.
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
from functools import cached_property

import numpy as np

from hubhop.core.tiers import lane_index
from hubhop.scoring import kernels
from hubhop.scoring.candidates import CandidateTable
from hubhop.scoring.path_map import PathMap, Paths
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


class _Seen:
    """What one kernel call read and wrote: enough to build any row's candidate later.

    The outputs are the call's own arrays; the table and path arrays are the ones it read, which
    a rebuild or a recomputation replaces rather than overwrites, so rows keep their meaning.
    (Figures a record rewrites in place since, service time, price and green share, show
    through: an explanation asked for later may read them newer than the kernel did.)
    """

    __slots__ = ("cost", "expected", "keys", "paths", "reasons", "row_node", "row_num")

    def __init__(
        self,
        table: CandidateTable,
        paths: Paths,
        reasons: np.ndarray,
        expected: np.ndarray,
        cost: np.ndarray,
    ) -> None:
        self.keys = table.keys
        self.row_node = table.row_node
        self.row_num = table.row_num
        self.paths = paths
        self.reasons = reasons
        self.expected = expected
        self.cost = cost

    def candidate(self, row: int) -> Candidate:
        node_id = int(self.row_node[row])
        one_way = float(self.paths.latency_ms[node_id])
        service = float(self.row_num[col.ROW_SERVICE_MS, row])
        expected = float(self.expected[row])
        network = 2 * one_way
        queue = max(0.0, expected - network - service) if math.isfinite(expected) else math.inf
        bits = int(self.reasons[row])
        node, backend = self.keys[row]
        return Candidate(
            node=node,
            backend=backend,
            network_ms=network,
            queue_ms=queue,
            service_ms=service,
            expected_ms=expected,
            path=self.paths.path_to(node_id),
            estimated=bool(self.paths.estimated[node_id]) if math.isfinite(one_way) else False,
            reasons=tuple(rsn.describe(bits)) if bits else (),
        )

    def alternates(self, chosen: int) -> tuple[Candidate, ...]:
        feasible = np.flatnonzero(self.reasons == 0)
        feasible = feasible[feasible != chosen]
        if feasible.size > ALTERNATES:
            nearest = np.argpartition(self.cost[feasible], ALTERNATES)[:ALTERNATES]
            feasible = feasible[nearest]
        ordered = feasible[np.argsort(self.cost[feasible], kind="stable")]
        return tuple(self.candidate(int(r)) for r in ordered)

    def rejected(self) -> tuple[Candidate, ...]:
        rejected = np.flatnonzero(self.reasons != 0)
        if rejected.size == 0:
            return ()
        distance = self.paths.latency_ms[self.row_node[rejected]]
        distance = np.where(np.isnan(distance), np.inf, distance)
        order = np.argsort(distance, kind="stable")[:REJECTED_SHOWN]
        return tuple(self.candidate(int(rejected[i])) for i in order)

    def queued(self, request: Request) -> Candidate | None:
        """The best row whose only reason is NO_HEADROOM, costed as the kernel costs rows."""
        rows = np.flatnonzero(self.reasons == rsn.NO_HEADROOM)
        if rows.size == 0:
            return None
        num = self.row_num
        cost = self.expected[rows] + request.price_weight_ms * num[col.ROW_PRICE, rows]
        if request.lane == "batch":
            cost = cost + request.green_weight_ms * (1.0 - num[col.ROW_GREEN, rows])
        finite = np.isfinite(cost)
        if not finite.any():
            return None
        return self.candidate(int(rows[finite][np.argmin(cost[finite])]))


class Decision:
    """The answer to one request: the chosen candidate at once; the fallback, the queued row,
    the alternates and the rejections when first asked (a served request never asks: only a
    refusal, the route endpoint or an explanation does), built from what the decision saw."""

    def __init__(self, seen: _Seen, request: Request, chosen: int, fallback: int) -> None:
        self._seen = seen
        self._request = request
        self._chosen_row = chosen
        self._fallback_row = fallback
        self.chosen = seen.candidate(chosen) if chosen >= 0 else None

    @cached_property
    def fallback(self) -> Candidate | None:
        """Nothing chosen: the best row outside the tier, only too far."""
        return self._seen.candidate(self._fallback_row) if self._fallback_row >= 0 else None

    @cached_property
    def queued(self) -> Candidate | None:
        """Nothing chosen: the best row short only of headroom."""
        return self._seen.queued(self._request) if self.chosen is None else None

    @cached_property
    def alternates(self) -> tuple[Candidate, ...]:
        return self._seen.alternates(self._chosen_row)

    @cached_property
    def rejected(self) -> tuple[Candidate, ...]:
        return self._seen.rejected()

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

    def decide(self, request: Request, margin_frac: float = DEFAULT_MARGIN_FRAC) -> Decision:
        t = self.table
        t.materialize()
        latency = self.paths.recompute()
        rows = len(t)
        # The kernel's outputs go into arrays of this decision's own (it writes every element),
        # which it keeps to explain itself when asked, whatever later decisions do.
        reasons = np.empty(rows, np.uint32)
        expected = np.empty(rows, np.float64)
        cost = np.empty(rows, np.float64)
        model_id = _id_or_unknown(t.models, request.model)
        chip_id = rsn.NO_CHIP if request.chip is None else _id_or_unknown(t.chips, request.chip)
        # Scalars go in as exactly int and float: another type would compile a second kernel.
        chosen, fallback = kernels.decide(
            t.row_node, t.row_alive, t.row_chip, t.row_models, t.row_num, latency,
            int(model_id), int(chip_id), lane_index(request.lane),
            float(request.tier_ms), float(request.budget), float(request.price_weight_ms),
            float(request.green_weight_ms), float(margin_frac),
            self.rng_state, reasons, expected, cost,
        )  # fmt: skip
        seen = _Seen(t, self.paths.current, reasons, expected, cost)
        return Decision(seen, request, chosen, fallback)

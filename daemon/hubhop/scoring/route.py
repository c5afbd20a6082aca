"""One request's route: the scorer within the asked tier, spilling over only as the request allows.

Rules:
- The ask's one-way bound is tried first. When nothing is feasible inside it, `spill` decides:
  `none` stops there (the caller answers 503 with the reasons), `next` tries the next looser
  named tier (city -> province -> region -> national -> any; a custom bound spills to the
  first named tier above it), `any` drops the bound. The answer says which tier it was served
  in and whether it spilled, so no client mistakes a spilled answer for an in-tier one.
- A node inside the bound whose backend is busy (no free slot outside the emergency reserve)
  still serves the bound: when no row inside it has a free slot, the best busy one is chosen
  and the request waits in that node's queue (`queued`), rather than spilling out of its tier
  or failing. The tier is the promise; queueing is what admission is for. A node whose queue
  is full answers 429, and the entry re-routes (hubhop.io.request_router).
- Candidates are (node, backend) rows of the scorer. A backend can only be reached through the
  protocols it speaks, so the scorer's "models" are protocol-qualified (`openai:chat-7b`,
  `kserve_v2:ct-triage`): `scoring_model` makes the name, the gossip feed and every decision
  use it, and the answer shows the plain model name again.
- Rows a re-route must avoid (they refused this request or could not be reached) are masked for
  this one decision and reported as `refused`; the table itself is not changed by it.
- Decisions are synchronous and never await: nothing else touches the scorer meanwhile.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hubhop.core.routing_hints import RouteAsk
from hubhop.core.tiers import TIER_BOUNDS_MS, tier_of
from hubhop.scoring.scorer import Candidate, Decision, Request, Scorer

RowKey = tuple[str, str]  # (node, backend)
REFUSED = "refused this request"


def scoring_model(protocol: str, model: str) -> str:
    """The scorer's name for `model` served over `protocol`."""
    return f"{protocol}:{model}"


# The named tiers' bounds, tightest first: where `next` spills to.
NAMED_BOUNDS_MS: tuple[float, ...] = tuple(sorted(TIER_BOUNDS_MS.values()))


def spill_bounds(bound_ms: float, spill: str) -> list[float]:
    """The one-way bounds to try in order: the ask's own, then what `spill` allows."""
    bounds = [bound_ms]
    if spill == "any" and math.isfinite(bound_ms):
        bounds.append(math.inf)
    elif spill == "next":
        looser = next((b for b in NAMED_BOUNDS_MS if b > bound_ms), None)
        if looser is not None:
            bounds.append(looser)
    return bounds


@dataclass(frozen=True)
class Route:
    ask: RouteAsk
    protocol: str
    decision: Decision  # of the last bound tried
    first: Decision  # of the ask's own bound: its rejections explain a spill
    bound_ms: float  # the bound the chosen candidate met
    spilled: bool
    refused: frozenset[RowKey]

    @property
    def chosen(self) -> Candidate | None:
        return self.decision.chosen or self.decision.queued

    @property
    def queued(self) -> bool:
        """The chosen node has no free slot: the request waits in its queue."""
        return self.decision.chosen is None and self.decision.queued is not None

    @property
    def tier(self) -> str:
        """The tier the route was served in (the tightest named tier holding its bound)."""
        return tier_of(self.bound_ms)


def decide_route(
    scorer: Scorer, ask: RouteAsk, protocol: str, refused: Iterable[RowKey] = ()
) -> Route:
    """The best candidate for `ask` within its tier, or beyond it as its spill allows."""
    refused_keys = frozenset(refused)
    masked = _mask(scorer, refused_keys) if refused_keys else []
    try:
        bounds = spill_bounds(ask.max_one_way_ms, ask.spill)
        first = decision = scorer.decide(_request(ask, protocol, bounds[0]))
        bound = bounds[0]
        for looser in bounds[1:]:
            if decision.chosen is not None or decision.queued is not None:
                break
            decision, bound = scorer.decide(_request(ask, protocol, looser)), looser
    finally:
        for row, alive in masked:
            scorer.table.row_alive[row] = alive
    return Route(
        ask=ask,
        protocol=protocol,
        decision=decision,
        first=first,
        bound_ms=bound,
        spilled=(decision.chosen or decision.queued) is not None and bound != ask.max_one_way_ms,
        refused=refused_keys,
    )


def _request(ask: RouteAsk, protocol: str, bound_ms: float) -> Request:
    return Request(
        model=scoring_model(protocol, ask.model),
        lane=ask.lane,
        tier_ms=bound_ms,
        chip=ask.chip,
        budget=ask.budget,
        price_weight_ms=ask.price_weight_ms,
        green_weight_ms=ask.green_weight_ms,
    )


def _mask(scorer: Scorer, refused: frozenset[RowKey]) -> list[tuple[int, int]]:
    """Mark the refused rows not alive; what they were, to put back."""
    scorer.table.materialize()
    masked = []
    for node, backend in refused:
        row = scorer.table.row_of(node, backend)
        if row is not None:
            masked.append((row, int(scorer.table.row_alive[row])))
            scorer.table.row_alive[row] = 0
    return masked


# --------------------------------------------------------------------------------------------
# As the API shows it


def candidate_json(c: Candidate, refused: frozenset[RowKey] = frozenset()) -> dict[str, Any]:
    reasons = [REFUSED] if (c.node, c.backend) in refused else list(c.reasons)
    return {
        "node": c.node,
        "backend": c.backend,
        "path": list(c.path),
        "relayed": len(c.path) > 2,
        "one_way_ms": _ms(c.one_way_ms),
        "estimated": c.estimated,
        "expected_ms": {
            "network": _ms(c.network_ms),
            "queue": _ms(c.queue_ms),
            "service": _ms(c.service_ms),
            "total": _ms(c.expected_ms),
        },
        **({"reasons": reasons} if reasons else {}),
    }


def route_json(route: Route) -> dict[str, Any]:
    """The decision as `POST /hubhop/v1/route` and a 503's body show it."""
    ask = route.ask
    chosen = route.chosen
    body: dict[str, Any] = {
        "model": ask.model,
        "protocol": route.protocol,
        "lane": ask.lane,
        "tier_asked": ask.tier,
        "bound_ms": _ms(ask.max_one_way_ms),
        "spill": ask.spill,
        "chosen": None if chosen is None else candidate_json(chosen),
        "tier": route.tier if chosen is not None else None,
        "spilled": route.spilled,
        "queued": route.queued,
        "alternates": [candidate_json(c) for c in route.decision.alternates],
        "rejected": [candidate_json(c, route.refused) for c in route.first.rejected],
    }
    if chosen is None:
        body["reason"] = no_route_reason(route)
    return body


def no_route_reason(route: Route) -> str:
    ask = route.ask
    if not route.first.rejected and route.first.fallback is None:
        return f"no node serves {ask.model!r} over {route.protocol}"
    where = f"within the {ask.tier} tier ({_bound_text(ask.max_one_way_ms)})"
    if ask.spill == "none":
        return f"nothing feasible {where}, and the request does not allow spilling over"
    return f"nothing feasible {where} nor in the tier it may spill to ({ask.spill})"


def _bound_text(bound_ms: float) -> str:
    return "no bound" if math.isinf(bound_ms) else f"{bound_ms:g} ms one way"


def _ms(value: float) -> float | None:
    return round(value, 4) if math.isfinite(value) else None

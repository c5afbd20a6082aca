"""Judging what daemons say about latency against the emulated truth.

Pure functions over the daemons' peers views (`GET /hubhop/v1/peers`, one per node) and the
topology's model; the benchmark and the multi-process tests judge with the same code.

Truth: the model's base round trip plus the median of its jitter in each direction (what a
median of many probes converges to). Tiers: the model's base one-way figure, as the tier tests
on the topology judge it. A daemon's tier is the one its conservative one-way estimate falls in.
An error is OPTIMISTIC when the daemon puts a pair in a tighter tier than the truth (a broken
promise) and PESSIMISTIC when in a looser one (only a detour).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hubhop.core.tiers import TIERS
from hubhop.core.vivaldi import Coordinate
from hubhop.wan.model import WanModel

Views = Mapping[str, Mapping[str, Any]]


def true_rtt_ms(model: WanModel, a: str, b: str) -> float:
    return model.rtt_ms(a, b) + 2.0 * model.jitter_median_ms


@dataclass(frozen=True)
class PairTier:
    node: str  # the daemon whose view this is
    peer: str
    said: str | None  # the tier of its estimate; None: it had none
    truth: str
    one_way_ms: float | None  # its conservative one-way estimate
    best_one_way_ms: float | None  # its best one-way estimate (half the median RTT)
    true_one_way_ms: float
    source: str  # measured | coordinates | none

    def as_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "peer": self.peer,
            "said": self.said,
            "truth": self.truth,
            "one_way_ms": self.one_way_ms,
            "true_one_way_ms": round(self.true_one_way_ms, 4),
            "source": self.source,
        }

    @property
    def verdict(self) -> str:
        if self.said is None:
            return "unknown"
        if self.said == self.truth:
            return "right"
        return "optimistic" if TIERS.index(self.said) < TIERS.index(self.truth) else "pessimistic"


def tier_pairs(views: Views, model: WanModel) -> list[PairTier]:
    """Every (node, peer) pair among the nodes with a view: the tier the node gives the peer."""
    out = []
    for node, view in sorted(views.items()):
        estimates = {p["name"]: p.get("estimate") for p in view.get("peers", ())}
        for peer in sorted(views):
            if peer == node:
                continue
            est = estimates.get(peer)
            out.append(
                PairTier(
                    node=node,
                    peer=peer,
                    said=est["tier"] if est else None,
                    truth=model.true_tier(node, peer),
                    one_way_ms=est["conservative_one_way_ms"] if est else None,
                    best_one_way_ms=est["one_way_ms"] if est else None,
                    true_one_way_ms=model.one_way_ms(node, peer),
                    source=est["source"] if est else "none",
                )
            )
    return out


def tier_summary(pairs: list[PairTier]) -> dict[str, Any]:
    counts = {v: 0 for v in ("right", "optimistic", "pessimistic", "unknown")}
    for pair in pairs:
        counts[pair.verdict] += 1
    total = len(pairs)
    wrong = [p for p in pairs if p.verdict != "right"]
    return {
        "pairs": total,
        **counts,
        "right_share": counts["right"] / total if total else None,
        "wrong": [p.as_dict() for p in wrong[:50]],
    }


@dataclass(frozen=True)
class LinkError:
    node: str
    peer: str
    measured_ms: float  # the node's windowed median RTT to the peer
    true_ms: float

    @property
    def abs_ms(self) -> float:
        return abs(self.measured_ms - self.true_ms)

    @property
    def rel(self) -> float:
        return self.abs_ms / self.true_ms

    def within(self, rel: float, abs_ms: float) -> bool:
        return self.rel <= rel or self.abs_ms <= abs_ms


def probed_links(views: Views, model: WanModel, floor_ms: float = 0.0) -> list[LinkError]:
    """Every fresh probed link between two nodes with views: its median against the truth.
    `floor_ms` (the host's own round trip with no WAN) is taken off each measurement."""
    out = []
    for node, view in sorted(views.items()):
        for peer in view.get("peers", ()):
            probe = peer.get("probe")
            if not probe or not probe.get("fresh") or peer["name"] not in views:
                continue
            truth = true_rtt_ms(model, node, peer["name"])
            out.append(LinkError(node, peer["name"], probe["p50_ms"] - floor_ms, truth))
    return out


def coordinate(view: Mapping[str, Any], placed_only: bool = True) -> Coordinate | None:
    """The node's own coordinate from its view; None before its first update (`placed_only`)."""
    c = (view.get("self") or {}).get("coordinate")
    if not c or (placed_only and not c.get("updates")):
        return None
    return Coordinate(tuple(c["vec"]), c["height"], c["error"], c.get("adjustment", 0.0))


def coordinate_errors(views: Views, model: WanModel) -> list[LinkError]:
    """Every unordered pair of nodes that both have a coordinate: the distance between their
    coordinates (Vivaldi's estimate) against the true RTT."""
    placed = {n: c for n, v in views.items() if (c := coordinate(v)) is not None}
    names = sorted(placed)
    return [
        LinkError(a, b, placed[a].distance_ms(placed[b]), true_rtt_ms(model, a, b))
        for i, a in enumerate(names)
        for b in names[i + 1 :]
    ]

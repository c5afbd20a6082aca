"""Latency tiers and lanes: the words a request uses to say how far and how urgent.

Tier bounds are ONE-WAY network latency from the entry node to the serving node, in ms. The
published targets of the network this is built for (1 ms inside a city, 5 ms across the
province, 7 ms to the key cities of the region, 10 ms to the national hubs) are one-way figures;
a daemon estimates one-way latency as half the measured round trip.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

TIER_BOUNDS_MS: dict[str, float] = {
    "city": 1.0,
    "province": 5.0,
    "region": 7.0,
    "national": 10.0,
    "any": math.inf,
}
TIERS: tuple[str, ...] = tuple(TIER_BOUNDS_MS)

# Lanes in priority order: emergency work jumps every queue, batch waits behind everything.
LANES: tuple[str, ...] = ("emergency", "standard", "batch")


def tier_bound_ms(tier: str) -> float:
    """The one-way bound of a named tier; KeyError for an unknown name."""
    return TIER_BOUNDS_MS[tier]


def lane_index(lane: str) -> int:
    """0 for emergency, 1 standard, 2 batch; ValueError for an unknown name."""
    return LANES.index(lane)


def _by_bound(bounds: Mapping[str, float]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted(bounds.items(), key=lambda item: item[1]))


# The named tiers tightest first, sorted once: every answer the router sends names its tier.
_BY_BOUND = _by_bound(TIER_BOUNDS_MS)


def tier_of(one_way_ms: float, bounds: Mapping[str, float] = TIER_BOUNDS_MS) -> str:
    """The tightest tier whose one-way bound is at least `one_way_ms` (a bound is inclusive).

    ValueError for NaN or a negative latency, or when no bound holds it (`bounds` without an
    unbounded tier).
    """
    if math.isnan(one_way_ms) or one_way_ms < 0.0:
        raise ValueError(f"one-way latency must be a number >= 0, got {one_way_ms!r}")
    ordered = _BY_BOUND if bounds is TIER_BOUNDS_MS else _by_bound(bounds)
    for tier, bound in ordered:
        if one_way_ms <= bound:
            return tier
    raise ValueError(f"no tier holds a one-way latency of {one_way_ms} ms")

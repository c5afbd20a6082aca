"""The latency model of an emulated WAN: how long a datagram takes from one site to another.

One-way base delay between two sites in different cities:

    propagation_ms_per_km x great-circle distance (haversine) x route_factor
    + per_hop_ms x (hops of the source site + hops of the destination site)

Two sites of the same city are `intra_city_ms` apart; a site is 0 ms from itself; an explicit
override of the topology replaces the computed figure for its pair. The base is symmetric. The
hop term is a per-site constant, which is exactly the "height" of a Vivaldi coordinate, so the
model stays close to geometric apart from jitter.

Per datagram (`sample_delay_ms`): lost with probability `loss`; else base + jitter, where jitter
is exponential (queueing delay on a busy link is close to exponential) with mean
`jitter_mean_ms`, cut at `jitter_max_ms`: never negative, never more than the cut. A pair in an
active partition loses everything.

Rules: pure (no clock, no I/O); randomness is the `rng` argument, drawn in a fixed order (one
draw for loss when loss > 0, one for jitter when jitter > 0), so a seed replays exactly. Tiers
come from `hubhop.core.tiers`: bounds are one-way, and so is everything here (ms, float).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from hubhop.core.tiers import TIER_BOUNDS_MS, tier_of
from hubhop.wan.topology import Site, Topology

# Mean Earth radius (IUGG), km: the haversine's sphere.
EARTH_RADIUS_KM = 6371.0088
# Tier tests need this much room between a pair's base latency and a tier bound; it equals the
# topology's default jitter cut, so a pair outside the margin never crosses a bound on jitter.
TIER_MARGIN_MS = 0.1


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance between two points given in degrees."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlam = math.radians(lon2 - lon1)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlam / 2) ** 2
    return 2.0 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True)
class NearBound:
    """A site pair whose base latency sits within a margin of a tier bound."""

    a: str
    b: str
    one_way_ms: float
    bound_ms: float


class WanModel:
    """Base latencies of every site pair (computed once), jitter, loss and partitions."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        params = topology.params
        self._loss = params.loss
        self._jitter_mean = params.jitter_mean_ms
        self._jitter_max = params.jitter_max_ms
        overrides = {frozenset((o.a, o.b)): o.one_way_ms for o in topology.overrides}
        self._base: dict[tuple[str, str], float] = {}
        for a in topology.sites:
            for b in topology.sites:
                explicit = overrides.get(frozenset((a.name, b.name)))
                if a.name == b.name:
                    one_way = 0.0
                elif explicit is not None:
                    one_way = explicit
                else:
                    one_way = _computed_one_way_ms(a, b, topology)
                self._base[(a.name, b.name)] = one_way
        self._partitions = {p.name: p.pairs for p in topology.partitions}
        self._active: set[str] = {p.name for p in topology.partitions if p.active}
        self._cut: frozenset[frozenset[str]] = frozenset()
        self._refresh_cut()

    @property
    def sites(self) -> tuple[str, ...]:
        return self.topology.site_names

    def site_of_host(self, host: str) -> str | None:
        return self.topology.site_of_host(host)

    def one_way_ms(self, src_site: str, dst_site: str) -> float:
        """The base one-way latency, without jitter; KeyError for an unknown site."""
        return self._base[(src_site, dst_site)]

    def rtt_ms(self, src_site: str, dst_site: str) -> float:
        """The base round trip: twice the one-way (the model is symmetric)."""
        return 2.0 * self.one_way_ms(src_site, dst_site)

    def true_tier(self, src_site: str, dst_site: str) -> str:
        """The tightest tier the pair's base one-way latency meets."""
        return tier_of(self.one_way_ms(src_site, dst_site))

    def sample_delay_ms(
        self, src_site: str, dst_site: str, rng: random.Random, *, lossy: bool = True
    ) -> float | None:
        """One datagram's one-way delay: None when it is lost (loss, when `lossy`, or
        partition)."""
        base = self.one_way_ms(src_site, dst_site)
        if src_site == dst_site:
            return 0.0
        if self.is_partitioned(src_site, dst_site):
            return None
        if lossy and self._loss > 0.0 and rng.random() < self._loss:
            return None
        return base + self.sample_jitter_ms(rng)

    def sample_jitter_ms(self, rng: random.Random) -> float:
        """One jitter draw: exponential with the configured mean, cut at the configured max."""
        if self._jitter_mean <= 0.0:
            return 0.0
        return min(rng.expovariate(1.0 / self._jitter_mean), self._jitter_max)

    @property
    def jitter_median_ms(self) -> float:
        """The median jitter (the exponential's median, ln 2 x mean, under the cut)."""
        return min(math.log(2.0) * self._jitter_mean, self._jitter_max)

    # Partitions ----------------------------------------------------------------------------

    @property
    def partitions(self) -> tuple[str, ...]:
        return tuple(self._partitions)

    @property
    def active_partitions(self) -> frozenset[str]:
        return frozenset(self._active)

    def set_partition(self, name: str, active: bool) -> None:
        """Switch a named partition on or off; KeyError for an unknown name."""
        if name not in self._partitions:
            raise KeyError(name)
        if active:
            self._active.add(name)
        else:
            self._active.discard(name)
        self._refresh_cut()

    def is_partitioned(self, src_site: str, dst_site: str) -> bool:
        return frozenset((src_site, dst_site)) in self._cut

    def _refresh_cut(self) -> None:
        self._cut = frozenset(pair for name in self._active for pair in self._partitions[name])

    # Reporting ------------------------------------------------------------------------------

    def pairs_near_tier_bounds(self, margin_ms: float = TIER_MARGIN_MS) -> list[NearBound]:
        """Every unordered site pair whose base latency is within `margin_ms` of a finite
        tier bound: the pairs a tier classification test cannot call with confidence."""
        names = self.sites
        near = []
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                one_way = self.one_way_ms(a, b)
                for bound in TIER_BOUNDS_MS.values():
                    if math.isfinite(bound) and abs(one_way - bound) < margin_ms:
                        near.append(NearBound(a, b, one_way, bound))
        return near


def _computed_one_way_ms(a: Site, b: Site, topology: Topology) -> float:
    params = topology.params
    if a.city == b.city:
        return params.intra_city_ms
    distance = great_circle_km(a.lat, a.lon, b.lat, b.lon)
    propagation = params.propagation_ms_per_km * distance * params.route_factor
    return propagation + params.per_hop_ms * (a.hops + b.hops)

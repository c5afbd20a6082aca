"""Which sites of a topology a lab runs as real daemons: a slice of the network that fits one
machine, with entry points, capacity near them, and capacity far away.

Rules:
- Deterministic from the topology: the core city and home region as `hubhop.lab.profiles`
  defines them; entry cities are the home region's cities that have both a hospital (an edge
  site) and a data centre (a city site), the core city first, then in file order; each gives
  its first edge site as an entry point and all its data centres.
- Further capacity is the nearest to the first entry point by the model's one-way latency:
  `province` more home-region data centres (in cities without an entry point), `key_cities`
  data centres outside the home region and `hubs` hub clusters.
- The seed (the first site) is the core city's first data centre: the node every other one
  joins through, and the one most likely to stay up.
- Pure: takes the parsed topology and its model.
"""

from __future__ import annotations

from dataclasses import dataclass

from hubhop.lab.profiles import core_city
from hubhop.wan.model import WanModel


class SliceError(ValueError):
    """The topology cannot give the slice asked for (too few cities with hospitals, say)."""


@dataclass(frozen=True)
class NetworkSlice:
    entries: tuple[str, ...]  # hospital edge sites: where the load comes in
    datacentres: tuple[str, ...]  # the entry cities' data centres, the core city's first
    province: tuple[str, ...]  # more home-region data centres, nearest first
    key_cities: tuple[str, ...]  # data centres outside the home region, nearest first
    hubs: tuple[str, ...]  # hub clusters, nearest first

    @property
    def sites(self) -> tuple[str, ...]:
        """Every site, the seed first."""
        return (*self.datacentres, *self.entries, *self.province, *self.key_cities, *self.hubs)


def choose_slice(
    model: WanModel, cities: int, key_cities: int, hubs: int, province: int = 0
) -> NetworkSlice:
    """The slice with hospitals in `cities` cities of the home region, and the nearest
    `province` other home-region data centres, `key_cities` outside data centres and `hubs`
    hub clusters; SliceError when the topology has fewer than asked."""
    topology = model.topology
    core = core_city(topology)
    region = next(s.region for s in topology.sites if s.city == core)
    home = [s for s in topology.sites if s.region == region and s.role != "hub"]
    with_dc = {s.city for s in home if s.role == "city"}
    entry_by_city: dict[str, str] = {}
    for site in sorted(home, key=lambda s: s.city != core):  # stable: the core city first
        if site.role == "edge" and site.city in with_dc:
            entry_by_city.setdefault(site.city, site.name)
    if len(entry_by_city) < cities:
        raise SliceError(
            f"{topology.source}: {len(entry_by_city)} {region} cities have a hospital and a "
            f"data centre ({', '.join(entry_by_city) or 'none'}); {cities} asked"
        )
    chosen = list(entry_by_city)[:cities]
    entries = tuple(entry_by_city[c] for c in chosen)
    datacentres = tuple(
        s.name
        for c in chosen
        for s in topology.sites
        if s.city == c and s.role == "city" and s.region == region
    )

    def nearest(candidates: list[str], count: int, what: str) -> tuple[str, ...]:
        if len(candidates) < count:
            raise SliceError(f"{topology.source}: {len(candidates)} {what}; {count} asked")
        return tuple(sorted(candidates, key=lambda s: model.one_way_ms(entries[0], s))[:count])

    more_home = [
        s.name
        for s in home
        if s.role == "city" and s.city not in chosen and s.name not in datacentres
    ]
    outside = [s.name for s in topology.sites if s.role == "city" and s.region != region]
    hub_sites = [s.name for s in topology.sites if s.role == "hub"]
    return NetworkSlice(
        entries=entries,
        datacentres=datacentres,
        province=nearest(more_home, province, f"other {region} data centres"),
        key_cities=nearest(outside, key_cities, f"data centres outside {region}"),
        hubs=nearest(hub_sites, hubs, "hub clusters"),
    )

"""The simulator part of the latency benchmark: the same accuracy figures at 1,000 nodes.

Run as a child process (`python -m bench.latency.simulate --sizes 1000 --seed 1 --duration 120
--out FILE.json`) so the main benchmark can give it low priority and a time bound; or call
`simulate(n, seed, duration_s)`. It drives hubhop's own sans-IO `LatencyMonitor` (default
settings) on a virtual clock over the WAN model of a synthetic topology:

- Topology: N sites (and the joiner's, an edge in Wuhan) at the places of topologies/places.csv,
  each a few km from its place and in its city (sites of one place are intra-city pairs).
  Hub-cluster places hold hub sites; the other places mostly edge sites, some city sites.
  Router hops per role and the latency model ([hops], [model]) are read from the shipped
  topologies/hubei.toml, so the truth is the one the real-daemon benchmark judges against.
- Nodes: one LatencyMonitor per site, every other node a member, 2-3 hub sites as its hubs.
  At each monitor's deadline `due(now)` names the members to probe; a reply arrives after one
  `sample_delay_ms` there plus one back and carries the target's coordinate at that moment.
  As in the daemon, SWIM's direct acks are RTT samples too (no coordinate): every node pings
  one member each 0.5 s, round-robin over a shuffled member list.
- Records: every node checks each second whether to republish, with the daemon's network rule
  (RepublishPolicy: at least 30 s after the last publish, a coordinate that appeared or moved by
  0.5 ms); a published coordinate reaches every node at once (gossip's ~1 s spread is ignored)
  and, as records carry no Vivaldi adjustment, arrives with the adjustment 0, as the daemon
  builds it. Link changes, which also republish in the daemon, are not modelled: records here
  are if anything staler than the daemon's.
- After `duration_s` of simulated warm-up the figures are taken: Vivaldi's relative error over
  pairs of nodes (the paper's metric), each node's tier for peers against the model's, the
  fresh probed links' medians against the truth, probes sent per node and second. Then one new
  node joins (knowing every member and every published coordinate at once, as a push-pull join
  gives it) and its median relative error to all others is taken every 0.5 s until it is under
  20 % (or 60 s pass). Only the joiner runs then: the others answer its probes with their
  coordinates as they stood after the warm-up. Its coordinate depends only on its own samples
  and those coordinates, which by then move by a small fraction of the 20 % being judged (at
  1,000 nodes the cluster's median error went from 2.7 to 2.6 % between 60 and 65 s); running
  all 1,000 monitors through a join that never got there would cost 60 s at the warm-up's
  rate, about 3 minutes.
- Cost: each near round plans over every member (`LatencyMonitor._plan_near_round` estimates
  the distance to all of them), so a simulated second costs about N^2 estimates: at 1,000
  nodes on a 2-core box 1 s of wall time per simulated second until the first records with
  coordinates (~30 s; before them an unknown member is answered at once), then 3 s. The command
  line therefore caps the warm-up at WARMUP_BUDGET / N^2 simulated seconds (65 s at 1,000
  nodes: about 2.5 minutes of wall time in all; no cap at 200) and reports both the asked and
  the simulated duration. That is a warm cluster a minute after a cold start, not a settled
  one; `vivaldi.trace` shows how far it got. At 1,000 nodes (seed 1) the median error was
  10 % at 30 s, 4.9 % at 40 s, 3.3 % at 50 s, 2.7 % at 60 s and 2.6 % at 65 s.

Truth (bench/latency/accuracy.py, shared with the real-daemon benchmark): the model's round trip
plus twice the median jitter; tiers from the model's base one-way latency.

Rules: deterministic for a seed (one event heap ordered by time and insertion; every random
draw from generators seeded from it); no sockets, no real clock inside the simulation (the wall
time is only reported).
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import re
import statistics
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._report import quantile
from bench.latency.accuracy import LinkError, PairTier, tier_summary, true_rtt_ms
from hubhop.core import swim_messages as wire
from hubhop.core.gossip_settings import GossipSettings
from hubhop.core.latency_monitor import LatencyMonitor, ProbeSettings, to_wire
from hubhop.core.republish import RepublishPolicy
from hubhop.core.vivaldi import Coordinate, relative_error
from hubhop.lab.cluster import SHIPPED_TOPOLOGY
from hubhop.wan.model import WanModel
from hubhop.wan.topology import (
    DEFAULT_HOPS,
    DEFAULT_PLACES,
    Place,
    Site,
    Topology,
    load_topology,
    parse_places,
)

# How many sites a place gets, relative to the others. The network this is built for is
# Hubei's: Wuhan (the provincial core, most hospitals and 5G edges) weighs most, the other
# Hubei cities next, the Yangtze key cities and each hub cluster least.
WUHAN_WEIGHT = 8.0
HUBEI_WEIGHT = 2.0
OTHER_WEIGHT = 1.0
# Share of city (data-centre) sites among the non-hub sites; the rest are edges. Hubei has 27
# municipal data centres against many more hospitals and edge boxes.
CITY_SHARE = 0.2
# A site lies up to this far from its place's centre: a city's sites spread over ~10 km; it
# moves cross-city latencies by at most 0.07 ms one way and leaves intra-city pairs as the model
# says (same city, intra_city_ms).
OFFSET_KM = 10.0
KM_PER_DEGREE = 111.2
# Hubs each node probes every near round, like a config's [latency] hubs: a few national hubs.
HUBS_PER_NODE = (2, 3)

# What a daemon's SWIM loop does (its direct acks are RTT samples without coordinates).
SWIM_INTERVAL_S = GossipSettings().probe_interval_s
# The daemon asks its republish policy once a second (io/gossip_service.py, REPUBLISH_CHECK_S).
REPUBLISH_CHECK_S = 1.0
# The daemon refreshes its linked set (`links(now)`) whenever it builds its record, every
# second. Here every 10 s: each call snapshots every tracked peer (~200 at 1,000 nodes), a
# second of wall time per simulated second across the cluster, and the linked set is the
# nearest measured members, which the nearest set (re-planned every near round) mostly holds.
LINKS_EVERY_S = 10.0

# Pairs sampled for the Vivaldi and tier figures: 20,000 pin a median to about +-1 % of the
# pairs either side, and take seconds to evaluate. All pairs when there are fewer.
VIVALDI_PAIRS = 20_000
TIER_PAIRS = 20_000
# The joiner: a new edge (a hospital, a 5G box) in Wuhan, where most sites are. Where it joins
# matters: the cluster's coordinates centre near Hubei, so a node at the origin (where every
# node starts) is already within 20 % of most others from central Hubei (Jingmen, Xiangyang:
# 10-16 %) but 50 % off from Wuhan and 70 % from the far hubs. The error before its first
# sample is reported beside the figures.
JOIN_PLACE = "Wuhan"
# The join: the joiner's error is taken every half second, for at most a minute.
JOIN_STEP_S = 0.5
JOIN_LIMIT_S = 60.0
JOIN_TARGET = 0.20
# The command line's bound on simulated warm-up, in (nodes^2 x seconds): 1,000 nodes for 65 s,
# about 2.5 minutes of wall time on an idle 2-core box (module header), under the benchmark's
# 4-minute bound for this child with room for a box shared with the real daemons. 65 s rather
# than 60: every node's first record with a coordinate goes out at ~30 s and the next one no
# sooner than 30 s later (RepublishPolicy), so at 60 s coordinate estimates would still use the
# records of a half-converged cluster; by 65 s the second round is out. 200 nodes (the quick
# run) may run 1,625 s; 10,000 nodes would get 0.65 s: such a run is not affordable here.
WARMUP_BUDGET = 1000 * 1000 * 65.0
# The Vivaldi error during the warm-up, on a small sample of pairs every 10 s: the curve that
# says how far from settled the final figure is, at a few ms of wall time a point.
TRACE_PAIRS = 2_000
TRACE_EVERY_S = 10.0
# Time of a step that would otherwise not advance (a deadline at or before now): a microsecond,
# far below any probe spacing.
_MIN_STEP_S = 1e-6

_TIMER, _REPLY, _SWIM, _ACK, _CHECK, _LINKS = range(6)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _offset(place: Place, rng: random.Random) -> tuple[float, float]:
    """A point uniformly within OFFSET_KM of the place."""
    r = OFFSET_KM * math.sqrt(rng.random())
    angle = 2.0 * math.pi * rng.random()
    lat = place.lat + r * math.sin(angle) / KM_PER_DEGREE
    lon = place.lon + r * math.cos(angle) / (KM_PER_DEGREE * math.cos(math.radians(place.lat)))
    return lat, lon


def _role(place: Place, rng: random.Random) -> str:
    """Hub places hold hub clusters; elsewhere mostly edges, a CITY_SHARE of data centres."""
    if place.kind == "hub":
        return "hub"
    return "city" if rng.random() < CITY_SHARE else "edge"


def synthetic_topology(
    sites: int,
    rng: random.Random,
    shipped: Path = SHIPPED_TOPOLOGY,
    joiner_place: str | None = None,
) -> Topology:
    """`sites` sites at the shipped topology's places, with its model and hops per role; and,
    when `joiner_place` is given, one more edge site there (last)."""
    base = load_topology(shipped)
    document = tomllib.loads(shipped.read_text(encoding="utf-8"))
    hops = {**DEFAULT_HOPS, **document.get("hops", {})}
    places_name = document["topology"].get("places", DEFAULT_PLACES)
    places_path = shipped.parent / places_name
    rows = [p for ps in parse_places(places_path.read_text(), places_name).values() for p in ps]

    def weight(p: Place) -> float:
        if p.name == "Wuhan":
            return WUHAN_WEIGHT
        return HUBEI_WEIGHT if p.group == "Hubei" and p.kind != "hub" else OTHER_WEIGHT

    weights = [weight(p) for p in rows]
    chosen = [(place, _role(place, rng)) for place in rng.choices(rows, weights, k=sites)]
    if joiner_place is not None:
        chosen.append((next(p for p in rows if p.name == joiner_place), "edge"))
    out = []
    for i, (place, role) in enumerate(chosen):
        lat, lon = _offset(place, rng)
        host = f"127.60.{(i + 1) // 250}.{(i + 1) % 250 + 1}"  # unused: nothing binds here
        out.append(
            Site(
                name=f"{_slug(place.name)}-{role}-{i}",
                role=role,
                city=place.name,
                region=place.group,
                lat=lat,
                lon=lon,
                host=host,
                hops=hops[role],
            )
        )
    return Topology(
        name=f"synthetic-{len(out)}", source=str(shipped), sites=tuple(out), params=base.params
    )


@dataclass
class _Node:
    name: str
    monitor: LatencyMonitor
    swim_order: list[int]
    swim_next: int = 0
    published: Coordinate | None = None
    published_at: float = 0.0  # the daemon publishes at start (without a coordinate)


class Cluster:
    """LatencyMonitors on one event heap, over a WAN model; nodes are started by index."""

    def __init__(self, topology: Topology, seed: int) -> None:
        self.model = WanModel(topology)
        self.names = topology.site_names
        self._index = {name: i for i, name in enumerate(self.names)}
        self.rng = random.Random(f"net:{seed}")
        self._node_rng = random.Random(f"nodes:{seed}")
        self.hub_sites = [s.name for s in topology.sites if s.role == "hub"]
        self.now = 0.0
        self.nodes: dict[int, _Node] = {}
        self.policy = RepublishPolicy()
        self.publishes = 0
        self._heap: list[tuple[float, int, int, int, int, float]] = []
        self._seq = 0
        self._wire: dict[int, tuple[Coordinate, wire.WireCoordinate]] = {}

    # ---- building ------------------------------------------------------------------------------

    def start(self, indices: Sequence[int]) -> None:
        """Start these nodes now: each knows every started node (and they it) as a member."""
        new = list(indices)
        for i in new:
            rng = random.Random(self._node_rng.getrandbits(64))
            name = self.names[i]
            candidates = [h for h in self.hub_sites if h != name]
            hubs = rng.sample(candidates, min(len(candidates), rng.choice(HUBS_PER_NODE)))
            monitor = LatencyMonitor(name, hubs, rng, self.now, ProbeSettings())
            self.nodes[i] = _Node(name, monitor, [], published_at=self.now)
        everyone = sorted(self.nodes)
        fresh = set(new)
        for i in new:
            node = self.nodes[i]
            for j in everyone:
                node.monitor.member_up(self.names[j])
                if j not in fresh:
                    self.nodes[j].monitor.member_up(node.name)
                    self.nodes[j].swim_order.append(i)  # SWIM puts a newcomer in its list
            node.swim_order = [j for j in everyone if j != i]
            self._node_rng.shuffle(node.swim_order)
            for j in everyone:  # what a push-pull join hands over: every record
                published = self.nodes[j].published
                if published is not None:
                    node.monitor.set_coordinate(self.names[j], published)
        for i in new:
            rng = self._node_rng
            self._push(self.nodes[i].monitor.next_deadline(), _TIMER, i)
            self._push(self.now + rng.random() * SWIM_INTERVAL_S, _SWIM, i)
            self._push(self.now + rng.random() * REPUBLISH_CHECK_S, _CHECK, i)
            self._push(self.now + rng.random() * LINKS_EVERY_S, _LINKS, i)

    def _push(self, at: float, kind: int, i: int, j: int = -1, rtt_ms: float = 0.0) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, kind, i, j, rtt_ms))

    def freeze(self) -> None:
        """Stop every started node where it stands: its pending timers and replies are dropped;
        its coordinate still answers the probes of nodes started later (the join, module
        header)."""
        self._heap.clear()

    # ---- running -------------------------------------------------------------------------------

    def run_until(self, end: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= end:
            at, _seq, kind, i, j, rtt_ms = heapq.heappop(heap)
            self.now = at
            node = self.nodes[i]
            if kind == _REPLY:
                node.monitor.on_sample(self.names[j], rtt_ms, self._wire_of(j), at)
            elif kind == _TIMER:
                for target in node.monitor.due(at):
                    self._send(i, self._index[target], _REPLY)
                self._push(max(node.monitor.next_deadline(), at + _MIN_STEP_S), _TIMER, i)
            elif kind == _ACK:
                node.monitor.on_sample(self.names[j], rtt_ms, None, at)
            elif kind == _SWIM:
                if node.swim_order:
                    peer = node.swim_order[node.swim_next % len(node.swim_order)]
                    node.swim_next += 1
                    self._send(i, peer, _ACK)
                self._push(at + SWIM_INTERVAL_S, _SWIM, i)
            elif kind == _CHECK:
                self._maybe_publish(i)
                self._push(at + REPUBLISH_CHECK_S, _CHECK, i)
            elif kind == _LINKS:
                node.monitor.links(at)
                self._push(at + LINKS_EVERY_S, _LINKS, i)
        self.now = end

    def _send(self, i: int, j: int, kind: int) -> None:
        """A datagram from i to j and its answer; lost when either leg is (the monitor's
        timeout then counts the loss)."""
        a, b = self.names[i], self.names[j]
        there = self.model.sample_delay_ms(a, b, self.rng)
        if there is None:
            return
        back = self.model.sample_delay_ms(b, a, self.rng)
        if back is None:
            return
        rtt_ms = there + back
        self._push(self.now + rtt_ms / 1000.0, kind, i, j, rtt_ms)

    def _wire_of(self, j: int) -> wire.WireCoordinate:
        """What j's replies carry: its coordinate now (converted once per coordinate)."""
        coordinate = self.nodes[j].monitor.coordinate
        cached = self._wire.get(j)
        if cached is None or cached[0] is not coordinate:
            cached = (coordinate, to_wire(coordinate))
            self._wire[j] = cached
        return cached[1]

    def _maybe_publish(self, i: int) -> None:
        """The daemon's network rule (module header); a publish reaches every node at once."""
        node = self.nodes[i]
        if node.monitor.vivaldi.updates == 0:
            return  # the daemon's record carries no coordinate before the first update
        if self.now - node.published_at < self.policy.network_min_interval_s:
            return
        c = node.monitor.coordinate
        last = node.published
        if last is not None:
            moved = math.dist(last.vec, c.vec) + abs(c.height - last.height)
            if moved < self.policy.coordinate_move_ms:
                return
        record = Coordinate(c.vec, c.height, c.error, 0.0)  # records carry no adjustment
        node.published, node.published_at = record, self.now
        self.publishes += 1
        for j, other in self.nodes.items():
            if j != i:
                other.monitor.set_coordinate(node.name, record)

    # ---- figures -------------------------------------------------------------------------------

    def index_of(self, name: str) -> int:
        return self._index[name]

    def true_rtt_ms(self, i: int, j: int) -> float:
        return true_rtt_ms(self.model, self.names[i], self.names[j])


def _spread(values: Sequence[float], digits: int = 4) -> dict[str, Any]:
    def r(x: float | None) -> float | None:
        return None if x is None else round(x, digits)

    return {
        "n": len(values),
        "median": r(quantile(values, 0.5)),
        "p90": r(quantile(values, 0.9)),
        "p95": r(quantile(values, 0.95)),
    }


def _pairs(n: int, want: int, rng: random.Random) -> list[tuple[int, int]]:
    """Up to `want` distinct unordered pairs (a < b) of 0..n-1: all of them when there are
    no more than that."""
    total = n * (n - 1) // 2
    if total <= want:
        return [(a, b) for a in range(n) for b in range(a + 1, n)]
    seen: set[tuple[int, int]] = set()
    while len(seen) < want:
        a, b = rng.randrange(n), rng.randrange(n)
        if a != b:
            seen.add((min(a, b), max(a, b)))
    return sorted(seen)


def _coordinate_error(cluster: Cluster, i: int, j: int) -> float:
    """Vivaldi's relative error for one pair: distance of the coordinates against the truth."""
    ci, cj = cluster.nodes[i].monitor.coordinate, cluster.nodes[j].monitor.coordinate
    return relative_error(ci.distance_ms(cj), cluster.true_rtt_ms(i, j))


def vivaldi_figures(cluster: Cluster, indices: Sequence[int], rng: random.Random) -> dict[str, Any]:
    """Relative error of coordinate distances against the truth over sampled pairs; also as a
    third party sees it (records carry no adjustment), and split intra-city / across cities."""
    errors: list[float] = []
    as_records: list[float] = []
    intra: list[float] = []
    inter: list[float] = []
    topology = cluster.model.topology
    for a, b in _pairs(len(indices), VIVALDI_PAIRS, rng):
        i, j = indices[a], indices[b]
        error = _coordinate_error(cluster, i, j)
        errors.append(error)
        ci, cj = cluster.nodes[i].monitor.coordinate, cluster.nodes[j].monitor.coordinate
        bare = Coordinate(cj.vec, cj.height, cj.error, 0.0)
        as_records.append(relative_error(ci.distance_ms(bare), cluster.true_rtt_ms(i, j)))
        same = topology.site(cluster.names[i]).city == topology.site(cluster.names[j]).city
        (intra if same else inter).append(error)
    return {
        **_spread(errors),
        "as_records": _spread(as_records),
        "intra_city": _spread(intra),
        "inter_city": _spread(inter),
    }


def _pair_tier(cluster: Cluster, i: int, j: int) -> PairTier:
    node, peer = cluster.names[i], cluster.names[j]
    estimate = cluster.nodes[i].monitor.estimate(peer, cluster.now)
    return PairTier(
        node=node,
        peer=peer,
        said=None if estimate is None else estimate.tier,
        truth=cluster.model.true_tier(node, peer),
        one_way_ms=None if estimate is None else round(estimate.conservative_one_way_ms, 4),
        best_one_way_ms=None if estimate is None else round(estimate.one_way_ms, 4),
        true_one_way_ms=cluster.model.one_way_ms(node, peer),
        source="none" if estimate is None else estimate.source,
    )


def _tier_counts(pairs: list[PairTier], examples: int) -> dict[str, Any]:
    """tier_summary's counts, with fewer examples, and how far optimistic errors fell short:
    the true one-way latency minus the conservative estimate that passed a tighter tier."""
    summary = tier_summary(pairs)
    summary["wrong"] = summary["wrong"][:examples]
    if summary["right_share"] is not None:
        summary["right_share"] = round(summary["right_share"], 4)
    optimistic = [p for p in pairs if p.verdict == "optimistic"]
    short = [p.true_one_way_ms - (p.one_way_ms or 0.0) for p in optimistic]
    summary["optimistic_short_ms"] = {
        "median": _round(quantile(short, 0.5)),
        "max": _round(max(short, default=None)),
    }
    summary["optimistic_examples"] = [p.as_dict() for p in optimistic[:examples]]
    return summary


def tier_figures(cluster: Cluster, indices: Sequence[int], rng: random.Random) -> dict[str, Any]:
    """Each node's tier for sampled peers against the model's, by the estimate's source; and
    the same for every fresh measured link (few of the sampled pairs are measured ones)."""
    n = len(indices)
    chosen: set[tuple[int, int]] = set()
    want = min(TIER_PAIRS, n * (n - 1))
    while len(chosen) < want:
        a, b = rng.randrange(n), rng.randrange(n)
        if a != b:
            chosen.add((indices[a], indices[b]))
    pairs = [_pair_tier(cluster, i, j) for i, j in sorted(chosen)]
    out = _tier_counts(pairs, examples=10)
    out["by_source"] = {
        source: _tier_counts([p for p in pairs if p.source == source], examples=5)
        for source in ("measured", "coordinates", "none")
    }
    measured, counts = [], []
    for i in indices:
        for snap in cluster.nodes[i].monitor.rtt.snapshots(cluster.now):
            if snap.fresh:
                measured.append(_pair_tier(cluster, i, cluster.index_of(snap.peer)))
                counts.append(snap.samples)
    every = _tier_counts(measured, examples=10)
    # A link measured once is judged with rttvar = RTT/2 (rtt_estimator.py): up to twice as far.
    every["by_samples"] = {
        label: _tier_counts([p for p, k in zip(measured, counts, strict=True) if lo <= k <= hi], 0)
        for label, lo, hi in (("1", 1, 1), ("2-4", 2, 4), ("5+", 5, math.inf))
    }
    out["every_measured_link"] = every
    return out


def probe_figures(cluster: Cluster, indices: Sequence[int]) -> dict[str, Any]:
    """Every fresh measured link: its windowed median against the truth."""
    links: list[LinkError] = []
    samples: list[float] = []
    for i in indices:
        for snap in cluster.nodes[i].monitor.rtt.snapshots(cluster.now):
            if snap.fresh:
                j = cluster.index_of(snap.peer)
                links.append(
                    LinkError(cluster.names[i], snap.peer, snap.p50_ms, cluster.true_rtt_ms(i, j))
                )
                samples.append(float(snap.samples))
    abs_ms = [link.abs_ms for link in links]
    rel = [link.rel for link in links]
    return {
        "links": len(links),
        "links_per_node": round(len(links) / max(1, len(indices)), 2),
        "samples_median": quantile(samples, 0.5),
        "abs_ms": {
            "median": _round(quantile(abs_ms, 0.5)),
            "p95": _round(quantile(abs_ms, 0.95)),
        },
        "rel": {"median": _round(quantile(rel, 0.5)), "p95": _round(quantile(rel, 0.95))},
    }


def _round(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(x, digits)


def join_figures(cluster: Cluster, joiner: int, others: Sequence[int]) -> dict[str, Any]:
    """Start `joiner`; every JOIN_STEP_S its median relative error to every other node, until
    it is under JOIN_TARGET or JOIN_LIMIT_S pass."""
    start = cluster.now
    cluster.freeze()
    cluster.start([joiner])
    monitor = cluster.nodes[joiner].monitor
    truths = [cluster.true_rtt_ms(joiner, j) for j in others]

    def median_error() -> float:
        mine = monitor.coordinate
        return statistics.median(
            relative_error(mine.distance_ms(cluster.nodes[j].monitor.coordinate), truth)
            for j, truth in zip(others, truths, strict=True)
        )

    at_start = median_error()
    trace: list[tuple[float, int, float]] = []
    reached: tuple[float, int] | None = None
    steps = round(JOIN_LIMIT_S / JOIN_STEP_S)
    for step in range(1, steps + 1):
        cluster.run_until(start + step * JOIN_STEP_S)
        median = median_error()
        elapsed = step * JOIN_STEP_S
        trace.append((elapsed, monitor.vivaldi.updates, round(median, 4)))
        if median < JOIN_TARGET:
            reached = (elapsed, monitor.vivaldi.updates)
            break
    return {
        "node": cluster.names[joiner],
        "target": JOIN_TARGET,
        "error_at_start": round(at_start, 4),  # at the origin, before any sample
        "seconds": None if reached is None else reached[0],
        "samples": None if reached is None else reached[1],
        "trace": trace,
    }


def simulate(n: int, seed: int, duration_s: float) -> dict[str, Any]:
    """N nodes warmed up for `duration_s` simulated seconds, then measured (module header)."""
    started = time.perf_counter()
    rng = random.Random(f"simulate:{seed}")
    topology = synthetic_topology(n, rng, joiner_place=JOIN_PLACE)
    cluster = Cluster(topology, seed)
    nodes = list(range(n))
    cluster.start(nodes)
    traced = _pairs(n, TRACE_PAIRS, random.Random(f"trace:{seed}"))
    trace: list[tuple[float, float | None, float | None]] = []
    for k in range(1, math.ceil(duration_s / TRACE_EVERY_S) + 1):
        cluster.run_until(min(duration_s, k * TRACE_EVERY_S))
        errors = [_coordinate_error(cluster, i, j) for i, j in traced]
        trace.append((cluster.now, _round(quantile(errors, 0.5)), _round(quantile(errors, 0.9))))
    warm_wall = time.perf_counter() - started
    sent = sum(cluster.nodes[i].monitor.counters["probes_sent"] for i in nodes)
    out: dict[str, Any] = {
        "n": n,
        "seed": seed,
        "duration_s": duration_s,
        "sites": {
            role: sum(1 for s in topology.sites[:n] if s.role == role)
            for role in ("edge", "city", "hub")
        },
        "cities": len({s.city for s in topology.sites[:n]}),
        "vivaldi": {**vivaldi_figures(cluster, nodes, rng), "trace": trace},
        "tiers": tier_figures(cluster, nodes, rng),
        "probes": probe_figures(cluster, nodes),
        "probe_rate": round(sent / n / duration_s, 3),
        "publishes_per_node": round(cluster.publishes / n, 2),
        "warmup_wall_s": round(warm_wall, 1),
    }
    out["join"] = join_figures(cluster, n, nodes)
    out["wall_s"] = round(time.perf_counter() - started, 1)
    return out


def capped_duration(n: int, asked_s: float) -> float:
    """The simulated warm-up the command line affords for `n` nodes (WARMUP_BUDGET)."""
    return min(asked_s, WARMUP_BUDGET / max(1, n) ** 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--duration", type=float, default=120.0, help="simulated warm-up, s")
    parser.add_argument("--out", type=Path, required=True)
    ns = parser.parse_args()
    document: dict[str, Any] = {
        "method": __doc__.split("\n\n", 1)[1].strip() if __doc__ else "",
        "results": {},
    }
    for n in (int(x) for x in ns.sizes.split(",")):
        duration = capped_duration(n, ns.duration)
        result = {"duration_asked_s": ns.duration, **simulate(n, ns.seed, duration)}
        document["results"][str(n)] = result
        v, t, j = result["vivaldi"], result["tiers"], result["join"]
        print(
            f"simulator N={n}: Vivaldi median {v['median']} p90 {v['p90']}, tiers right "
            f"{t['right_share']} ({t['optimistic']} optimistic), join under 20 % after "
            f"{j['seconds']} s, {duration:g} s simulated ({result['wall_s']} s real)",
            flush=True,
        )
        ns.out.write_text(json.dumps(document, indent=2) + "\n")  # partial results survive


if __name__ == "__main__":
    main()

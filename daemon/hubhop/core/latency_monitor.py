"""How far every member is: whom to probe, what the probes said, and what coordinates estimate.

Rules:
- Targets. Every `near_interval_s` the monitor probes its hubs (named in config), its
  `nearest_k` nearest members by current estimate and the members its record links to; every
  `random_interval_s` one more member drawn at random from the rest, so every member is measured
  now and then and a node that moved closer is found. A member with a probe in flight is not
  probed again.
- The nearest set and the linked set are sticky: a member displaces one already in the set only
  when it is nearer by the switch margin. Measurement noise must not reshuffle them: every
  change of the links is a new record version that every node relays.
- A round's probes are spread evenly over the round, never sent in a burst: replies that
  arrive together queue in the receiving process one behind the other, and that wait would be
  read as latency (measured: a burst of 10 on a busy host read 0.4 ms links as 2.5 ms).
- A probe unanswered after `timeout_s` is a loss sample, never an error.
- Samples. Every RTT sample (a probe's reply, a direct SWIM ack) feeds the member's estimator
  (rtt_estimator.py). A reply that carries the member's coordinate also feeds our Vivaldi
  coordinate (vivaldi.py); an invalid coordinate is counted and ignored.
- Coordinates of members we do not probe come from their capacity records (`set_coordinate`).
- Estimates. For a member measured recently (fresh) the measurement wins; otherwise the distance
  between coordinates; otherwise nothing is claimed. The estimate carries its source, its
  sample count, an uncertainty and the tier its CONSERVATIVE one-way figure falls in (what a
  router may promise). One-way is half the round trip (DESIGN.md, "tier").
- Links published in our record: fresh measured RTTs of the linked set, nearest first, at most
  `max_links`.

Pure: `now` and `rng` are arguments.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from hubhop.core import swim_messages as wire
from hubhop.core.rtt_estimator import EstimatorSettings, RttSnapshot, RttTable
from hubhop.core.tiers import tier_of
from hubhop.core.vivaldi import Coordinate, VivaldiClient, VivaldiSettings, coordinate_fault


@dataclass(frozen=True)
class ProbeSettings:
    # The near set (hubs, nearest peers) is what requests are routed to: every 3 s gives the
    # estimator 20 samples a minute, plenty for a stable median, and keeps probe traffic under
    # 2 KB/s per node (measured by bench/latency: a probe and its reply are ~220 bytes on the
    # wire; at 2 s the busiest of 34 nodes sent ~2.8 KB/s).
    near_interval_s: float = 3.0
    # Hubs named in config are probed on every near round at most this often: every node of a
    # province probes them, so a hub answers N / hub_interval_s probes a second (at 6 s and 34
    # nodes ~6/s, under 2 KB/s with its own probes; at 3 s it was 2.1 KB/s). Hubs are national-
    # tier candidates 5-10 ms away, where ten samples a minute keep the median well inside the
    # tier margins. A hub that is also among the nearest is probed every near round anyway.
    hub_interval_s: float = 6.0
    # Nearest peers probed often: a city's few data centers and the province's closest, the
    # candidates of the tight tiers.
    nearest_k: int = 8
    # One random other peer a second: in a 24-node cluster each is measured every ~20 s, and at
    # 1,000 nodes Vivaldi (fed by every reply) covers the rest.
    random_interval_s: float = 1.0
    # A reply later than this is a loss: the farthest hub is ~20 ms away round trip; 2 s is far
    # beyond any queueing on the way.
    timeout_s: float = 2.0
    # Links our record carries (capacity.MAX_LINKS is the ceiling): the nearest 8 cover the
    # city and province neighbours a relay would use, keep the record small, and are mostly the
    # nearest set probed every near round anyway, so linking them adds few probes.
    max_links: int = 8
    # A member displaces one of the nearest (or linked) set only when 20% and 0.2 ms nearer: the
    # estimator's own jitter on a busy host is about that, and the republish policy treats link
    # moves below 10% / 0.2 ms as noise too.
    switch_fraction: float = 0.2
    switch_min_ms: float = 0.2

    def __post_init__(self) -> None:
        for name in ("near_interval_s", "random_interval_s", "timeout_s", "hub_interval_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be finite and > 0, got {value!r}")
        if self.nearest_k < 0 or self.max_links < 0:
            raise ValueError("nearest_k and max_links must not be negative")
        if not (self.switch_fraction >= 0 and self.switch_min_ms >= 0):
            raise ValueError("switch_fraction and switch_min_ms must not be negative")


@dataclass(frozen=True)
class Estimate:
    """How far a member is, as far as this node can tell (ms; one-way is half the RTT)."""

    peer: str
    rtt_ms: float
    one_way_ms: float
    conservative_one_way_ms: float
    tier: str  # the tier the conservative one-way figure falls in
    source: str  # "measured" or "coordinates"
    samples: int  # RTT samples behind a measured estimate (0 for coordinates)
    uncertainty: float  # relative: rttvar / rtt when measured, Vivaldi's error for coordinates


# One-way ms added to a coordinate estimate's conservative figure: above the largest shortfall
# the 1,000-node simulation showed (0.31 ms) for pairs near the city tier's bound.
COORDINATE_MARGIN_MS = 0.35


# Well-measured links needed before their spread stands in for a new link's: a median of 3.
POOL_MIN_LINKS = 3


def to_coordinate(w: wire.WireCoordinate) -> Coordinate:
    return Coordinate(tuple(w.vec), w.height, w.error, w.adjustment)


def to_wire(c: Coordinate) -> wire.WireCoordinate:
    return wire.WireCoordinate(tuple(c.vec), c.height, c.error, c.adjustment)


class LatencyMonitor:
    def __init__(
        self,
        name: str,
        hubs: Iterable[str],
        rng: random.Random,
        now: float,
        settings: ProbeSettings | None = None,
        estimator: EstimatorSettings | None = None,
        vivaldi: VivaldiSettings | None = None,
    ) -> None:
        self.name = name
        self.hubs = frozenset(hubs) - {name}
        self.settings = settings or ProbeSettings()
        self.rtt = RttTable(estimator)
        self.vivaldi = VivaldiClient(vivaldi or VivaldiSettings(), rng)
        self.counters: Counter[str] = Counter()
        self._rng = rng
        self._members: set[str] = set()
        self._coordinates: dict[str, Coordinate] = {}
        self._pending: dict[str, float] = {}  # member -> when its probe left
        self._nearest: list[str] = []  # the sticky nearest set, nearest first
        self._linked: list[str] = []  # the sticky set our record links to, nearest first
        self._paced: list[tuple[float, str]] = []  # this near round's probes: (when, member)
        self._pooled: float | None = None  # see _pooled_spread_ms
        self._pooled_at: float | None = None
        # Hubs join a near round only every hub_interval_s (see ProbeSettings).
        self._next_hubs = now
        # Start both rounds at random phases, so nodes started together spread their probes.
        self._next_near = now + rng.random() * self.settings.near_interval_s
        self._next_random = now + rng.random() * self.settings.random_interval_s

    # ---- membership ----------------------------------------------------------------------------

    def member_up(self, name: str) -> None:
        if name != self.name:
            self._members.add(name)

    def member_down(self, name: str) -> None:
        """A member died, left or was reaped: stop probing it and forget what it measured."""
        self._members.discard(name)
        self._pending.pop(name, None)
        self._coordinates.pop(name, None)
        self.rtt.forget(name)
        self.vivaldi.forget(name)

    def set_hubs(self, hubs: Iterable[str]) -> None:
        """Probe these members every near round from now on (a reloaded config)."""
        self.hubs = frozenset(hubs) - {self.name}

    def set_coordinate(self, name: str, coordinate: Coordinate) -> None:
        """A member's coordinate as its record says; ignored (and counted) when invalid."""
        if name == self.name:
            return
        if coordinate_fault(coordinate, self.vivaldi.settings) is not None:
            self.counters["bad_record_coordinates"] += 1
            return
        self._coordinates[name] = coordinate

    # ---- probing -------------------------------------------------------------------------------

    def next_deadline(self) -> float:
        deadlines = [self._next_near, self._next_random]
        if self._paced:
            deadlines.append(self._paced[0][0])
        if self._pending:
            deadlines.append(min(self._pending.values()) + self.settings.timeout_s)
        return min(deadlines)

    def due(self, now: float) -> list[str]:
        """Members to probe now (each then counts as in flight until its reply or timeout)."""
        for name, sent in list(self._pending.items()):
            if now >= sent + self.settings.timeout_s:  # the same sum next_deadline() gives
                del self._pending[name]
                self.rtt.add_loss(name, now)
                self.counters["probes_lost"] += 1
        if now >= self._next_near:
            self._next_near = now + self.settings.near_interval_s
            self._plan_near_round(now)
        targets: list[str] = []
        while self._paced and self._paced[0][0] <= now:
            name = self._paced.pop(0)[1]
            if name in self._members and name not in targets:
                targets.append(name)
        if now >= self._next_random:
            self._next_random = now + self.settings.random_interval_s
            near = {name for _, name in self._paced}
            rest = sorted(self._members - near - set(targets))
            # Members with too few samples for a spread come first, so a new member (or a
            # new node's whole cluster) is measured well within minutes, not one at random.
            few = [n for n in rest if self.rtt.sample_count(n) < self.rtt.settings.recent]
            if few or rest:
                targets.append(self._rng.choice(few or rest))
        out = [n for n in targets if n not in self._pending]
        for name in out:
            self._pending[name] = now
        self.counters["probes_sent"] += len(out)
        return out

    def _plan_near_round(self, now: float) -> None:
        """This round's near targets (hubs, the nearest, the linked), evenly spaced over it."""
        hubs: list[str] = []
        if now >= self._next_hubs:
            self._next_hubs = now + self.settings.hub_interval_s
            hubs = sorted(self.hubs & self._members)
        self._nearest = self._sticky(self._nearest, self._distances(now), self.settings.nearest_k)
        linked = [n for n in self._linked if n in self._members]
        targets = list(dict.fromkeys([*hubs, *self._nearest, *linked]))  # each member once
        spacing = self.settings.near_interval_s / max(1, len(targets))
        self._paced = [(now + i * spacing, name) for i, name in enumerate(targets)]

    def _distances(self, now: float) -> dict[str, float]:
        out = {}
        for name in self._members:
            estimate = self.estimate(name, now)
            if estimate is not None:
                out[name] = estimate.rtt_ms
        return out

    def _sticky(self, current: list[str], distances: dict[str, float], k: int) -> list[str]:
        """Up to k members nearest by `distances`, keeping those of `current` still known unless
        a newcomer is nearer than the farthest kept by the switch margin; nearest first."""
        kept = [n for n in current if n in distances][:k]
        for name in sorted(distances, key=lambda n: (distances[n], n)):
            if name in kept:
                continue
            if len(kept) < k:
                kept.append(name)
                continue
            farthest = max(kept, key=lambda n: (distances[n], n))
            far = distances[farthest]
            margin = max(self.settings.switch_min_ms, self.settings.switch_fraction * far)
            if distances[name] >= far - margin:
                break  # candidates only get farther from here
            kept.remove(farthest)
            kept.append(name)
        return sorted(kept, key=lambda n: (distances[n], n))

    def on_sample(
        self, name: str, rtt_ms: float, coordinate: wire.WireCoordinate | None, now: float
    ) -> None:
        """One measured round trip to `name` (and its coordinate, when the reply had one)."""
        if name == self.name or name not in self._members:
            self.counters["samples_ignored"] += 1
            return
        self._pending.pop(name, None)
        self.rtt.add_sample(name, rtt_ms, now)
        self.counters["samples"] += 1
        if coordinate is None:
            return
        peer = to_coordinate(coordinate)
        try:
            self.vivaldi.update(name, peer, rtt_ms)
        except ValueError:
            self.counters["bad_probe_coordinates"] += 1
            return
        self._coordinates[name] = peer

    # ---- estimates -----------------------------------------------------------------------------

    @property
    def coordinate(self) -> Coordinate:
        return self.vivaldi.coordinate

    def estimate(self, peer: str, now: float) -> Estimate | None:
        """From us to `peer`: measured when fresh, else from coordinates, else None."""
        if peer == self.name:
            return Estimate(peer, 0.0, 0.0, 0.0, tier_of(0.0), "measured", 0, 0.0)
        snap = self.rtt.snapshot(peer, now)
        theirs = self._coordinates.get(peer)
        if snap is not None and snap.fresh:
            rtt = snap.p50_ms
            conservative = snap.conservative_one_way_ms
            if snap.samples < self.rtt.settings.recent:
                conservative = self._few_samples_bound(snap, theirs, now)
            return Estimate(
                peer,
                rtt,
                snap.one_way_ms,
                conservative,
                tier_of(conservative),
                "measured",
                snap.samples,
                snap.rttvar_ms / rtt if rtt > 0 else 0.0,
            )
        if theirs is None:
            return None
        return _from_coordinates(peer, self.vivaldi.coordinate, theirs)

    def _few_samples_bound(self, snap: RttSnapshot, theirs: Coordinate | None, now: float) -> float:
        """The conservative one-way figure of a link with fewer samples than a spread needs.

        Its own margin is TCP's cautious rttvar (up to half the RTT). Two better-informed
        bounds may be tighter: the pooled spread (the median robust spread of this node's
        well-measured links: the jitter of the same network, seen from the same host), and the
        coordinates' bound, fitted from many nodes' samples. The tightest holds, never below
        what was measured."""
        bounds = [snap.conservative_one_way_ms]
        pooled = self._pooled_spread_ms(now)
        if pooled is not None:
            center = max(snap.p50_ms, snap.recent_p50_ms)
            bounds.append((center + snap.margin_k * pooled) / 2.0)
        if theirs is not None:
            coordinate = _from_coordinates(snap.peer, self.vivaldi.coordinate, theirs)
            bounds.append(coordinate.conservative_one_way_ms)
        return max(snap.one_way_ms, min(bounds))

    def _pooled_spread_ms(self, now: float) -> float | None:
        """Median robust spread of the fresh links with a full recent window; None with fewer
        than POOL_MIN_LINKS of them. Recomputed at most once a second (it reads every link)."""
        if self._pooled_at is not None and now - self._pooled_at < 1.0:
            return self._pooled
        spreads = sorted(
            snap.spread_ms
            for snap in self.rtt.snapshots(now)
            if snap.fresh and snap.samples >= self.rtt.settings.recent
        )
        self._pooled = spreads[len(spreads) // 2] if len(spreads) >= POOL_MIN_LINKS else None
        self._pooled_at = now
        return self._pooled

    def estimate_between(self, a: str, b: str, now: float) -> Estimate | None:
        """Between two members (either may be us): coordinates when neither is us."""
        if a == self.name:
            return self.estimate(b, now)
        if b == self.name:
            return self.estimate(a, now)
        ca, cb = self._coordinates.get(a), self._coordinates.get(b)
        if ca is None or cb is None:
            return None
        return _from_coordinates(b, ca, cb)

    def links(self, now: float) -> tuple[tuple[str, float], ...]:
        """Fresh measured RTTs of the linked set for our record: nearest first, at most
        max_links."""
        fresh = {s.peer: s.p50_ms for s in self.rtt.snapshots(now) if s.fresh}
        self._linked = self._sticky(self._linked, fresh, self.settings.max_links)
        return tuple((peer, round(fresh[peer], 4)) for peer in self._linked)


def _from_coordinates(peer: str, a: Coordinate, b: Coordinate) -> Estimate:
    rtt = a.distance_ms(b)
    # Vivaldi's error is a relative error estimate of each side; the pair's is about their mean.
    uncertainty = (a.error + b.error) / 2.0
    # That error is a typical one: single pairs stray further (at 1,000 simulated nodes the
    # p90 pair was 4x the median), most at short distances, where a few tenths of a ms is a
    # large share. So the bound is twice the relative error plus COORDINATE_MARGIN_MS: with
    # less, neighbouring cities (1.0-1.2 ms apart) were put in the 1 ms city tier.
    conservative = rtt * (1.0 + 2.0 * uncertainty) / 2.0 + COORDINATE_MARGIN_MS
    return Estimate(
        peer,
        rtt,
        rtt / 2.0,
        conservative,
        tier_of(conservative),
        "coordinates",
        0,
        uncertainty,
    )

"""Vivaldi network coordinates with heights: estimate the RTT between nodes nobody probed.

The algorithm is Dabek et al., "Vivaldi: a decentralized network coordinate system" (SIGCOMM
2004), with the refinements Serf and Consul use: height vectors, an adaptive timestep, a per-peer
latency filter, an adjustment term and gravity. All figures are milliseconds of ROUND TRIP, the
unit the capacity record carries.

Rules:
- A coordinate is a vector (8 dimensions), a height (>= height_min_ms, the access-link share of
  every path through the node), an error (the node's own relative-error estimate, at most
  error_max) and an adjustment (below). The estimated RTT between a and b is
      raw = |a.vec - b.vec| + a.height + b.height
      est = raw + a.adjustment + b.adjustment   (or raw, when that sum is not positive)
- One observation (peer coordinate, measured RTT):
  1. latency filter: the RTT used is the median of the last `latency_filter_size` RTTs to that
     peer, so one delayed probe does not throw the coordinate around;
  2. adaptive timestep: w = e_us / (e_us + e_peer) (a confident peer pulls hard, an unsure one
     barely); our error becomes an EWMA with gain ce * w of the sample's relative error
     |est - rtt| / rtt, capped at error_max; the coordinate moves by cc * w * (rtt - est) along
     the unit vector from the peer to us (a random direction when the two vectors coincide, as
     every node's do at start), and the height by the same force scaled by the heights' share of
     the distance, never below height_min_ms;
  3. adjustment: the last `adjustment_window` residuals rtt - raw are averaged (missing samples
     count as zero, so the term grows in gently) and halved, each end of a pair carrying half;
     it absorbs what the Euclidean part cannot express;
  4. gravity: a pull toward the origin of (distance / gravity_rho_ms)^2, so the whole system
     cannot drift away together over time.
- Peer input is untrusted. A peer coordinate with the wrong dimension, a non-finite number, a
  negative height or error, or a component beyond max_rtt_ms, and an RTT that is not finite,
  negative or beyond max_rtt_ms, are REJECTED with ValueError (naming the fault) before anything
  changes: our coordinate and our filters stay as they were. A result that still came out
  non-finite, or beyond the range peers accept (only absurd inputs near max_rtt_ms get there), is
  discarded (counted in `discarded`): our coordinate is always one our peers would accept.
- An RTT of 0 (or below a microsecond) is taken as a microsecond, which keeps the relative error
  finite.

Pure: randomness is the `rng: random.Random` given to the client; nothing reads a clock.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections import deque
from dataclasses import dataclass

from hubhop.core.capacity import COORDINATE_DIMENSIONS

# RTTs below this are taken as this (ms): a microsecond is under anything a real probe measures,
# even on loopback, and keeps |est - rtt| / rtt finite.
_MIN_RTT_MS = 1e-3
# Vectors closer than this (ms) count as coinciding: no direction between them can be trusted.
_COINCIDENT_MS = 1e-6
# Errors are kept at least this: two peers that both claim perfect confidence then still pull on
# each other evenly instead of both having weight 0 and freezing.
_MIN_ERROR = 1e-6


@dataclass(frozen=True)
class VivaldiSettings:
    # Serf/Consul's choice, after Ledlie et al. (NSDI 2007): a few dimensions plus a height fit
    # real latencies; 8 leaves room for a geography that is not flat and is what the capacity
    # record and the path map carry.
    dimensions: int = COORDINATE_DIMENSIONS
    # A new node's error, and the cap on every error: a node that knows nothing says so, so a
    # confident peer moves it (weight near 1) while it barely moves the confident peer.
    error_max: float = 1.5
    # Gain on the error EWMA; the paper tunes ce = 0.25 for a fast yet stable confidence.
    ce: float = 0.25
    # Timestep scale; the paper's cc = 0.25 converges fast without oscillating.
    cc: float = 0.25
    # Residuals averaged for the adjustment term: 20 (Serf's) spans several rounds over a node's
    # neighbours, so the term is a property of the node, not of its last peer.
    adjustment_window: int = 20
    # 10 microseconds (Serf's minimum): heights must stay positive for the height update to work,
    # and this is a twentieth of a percent of the city tier's 2 ms round trip.
    height_min_ms: float = 0.01
    # Median of the last 3 RTTs per peer: the smallest window whose median drops a single spike.
    latency_filter_size: int = 3
    # Serf's 150 ms. Our whole network spans about 20 ms of round trip, where the pull is under
    # 0.02 ms per update, far below the accuracy asked of coordinates, yet it still stops the
    # system drifting as a whole over hours.
    gravity_rho_ms: float = 150.0
    # 10 s (Serf's bound): no probe answered later than that is a latency measurement, and no
    # honest coordinate component is that far from the origin under gravity.
    max_rtt_ms: float = 10_000.0
    # Peers whose latency filters we keep (least recently updated dropped first): above the
    # network this is built for by an order of magnitude, and a bound on memory for the simulator.
    max_peers: int = 1024

    def __post_init__(self) -> None:
        faults = []
        for name in ("dimensions", "latency_filter_size", "max_peers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                faults.append(f"{name} must be an integer of at least 1, got {value!r}")
        window = self.adjustment_window
        if isinstance(window, bool) or not isinstance(window, int) or window < 0:
            faults.append(f"adjustment_window must be an integer >= 0, got {window!r}")
        for name in ("ce", "cc"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 < value <= 1.0):
                faults.append(f"{name} must be in (0, 1], got {value!r}")
        for name in ("error_max", "height_min_ms", "gravity_rho_ms", "max_rtt_ms"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                faults.append(f"{name} must be finite and > 0, got {value!r}")
        if faults:
            raise ValueError("; ".join(faults))


@dataclass(frozen=True)
class Coordinate:
    vec: tuple[float, ...]  # ms of round trip
    height: float  # ms, >= 0
    error: float  # relative, 0..error_max
    adjustment: float  # ms, may be negative

    def distance_ms(self, other: Coordinate) -> float:
        """Estimated RTT between the two (module header); ValueError on a dimension mismatch."""
        if len(self.vec) != len(other.vec):
            raise ValueError(f"dimension mismatch: {len(self.vec)} and {len(other.vec)}")
        raw = _raw_distance(self, other)
        adjusted = raw + self.adjustment + other.adjustment
        return adjusted if adjusted > 0.0 else raw


def origin(settings: VivaldiSettings) -> Coordinate:
    """Where every node starts: at the origin, lowest height, knowing nothing."""
    return Coordinate(
        vec=(0.0,) * settings.dimensions,
        height=settings.height_min_ms,
        error=settings.error_max,
        adjustment=0.0,
    )


def coordinate_fault(coord: Coordinate, settings: VivaldiSettings) -> str | None:
    """Why a (peer's) coordinate is unusable, or None when it is fine."""
    if len(coord.vec) != settings.dimensions:
        return f"coordinate has {len(coord.vec)} dimensions, expected {settings.dimensions}"
    limit = settings.max_rtt_ms
    for i, x in enumerate(coord.vec):
        if not math.isfinite(x):
            return f"vec[{i}] is not finite ({x!r})"
        if abs(x) > limit:
            return f"vec[{i}] = {x} ms is beyond {limit} ms"
    if not math.isfinite(coord.height) or coord.height < 0.0 or coord.height > limit:
        return f"height must be in [0, {limit}] ms, got {coord.height!r}"
    if not math.isfinite(coord.error) or coord.error < 0.0:
        return f"error must be finite and >= 0, got {coord.error!r}"
    if not math.isfinite(coord.adjustment) or abs(coord.adjustment) > limit:
        return f"adjustment must be within +-{limit} ms, got {coord.adjustment!r}"
    return None


class VivaldiClient:
    """This node's coordinate, updated from RTT observations of peers."""

    def __init__(self, settings: VivaldiSettings, rng: random.Random) -> None:
        self.settings = settings
        self._rng = rng
        self._coordinate = origin(settings)
        self._origin = origin(settings)
        self._filters: dict[str, deque[float]] = {}  # least recently updated first
        self._residuals: deque[float] = deque(maxlen=max(1, settings.adjustment_window))
        self.updates = 0  # observations applied
        self.discarded = 0  # observations whose result was unusable (see the header), thrown away

    @property
    def coordinate(self) -> Coordinate:
        """Our current coordinate."""
        return self._coordinate

    def update(self, peer: str, peer_coord: Coordinate, rtt_ms: float) -> Coordinate:
        """Apply one observation and return our new coordinate.

        ValueError (naming the fault) for an invalid peer coordinate or RTT; nothing changes then.
        """
        fault = coordinate_fault(peer_coord, self.settings)
        if fault is not None:
            raise ValueError(f"peer {peer!r}: {fault}")
        if not (math.isfinite(rtt_ms) and 0.0 <= rtt_ms <= self.settings.max_rtt_ms):
            raise ValueError(
                f"peer {peer!r}: rtt must be in [0, {self.settings.max_rtt_ms}] ms, got {rtt_ms!r}"
            )
        rtt = max(self._filtered_rtt(peer, rtt_ms), _MIN_RTT_MS)
        moved = self._vivaldi_step(self._coordinate, peer_coord, rtt)
        residuals = deque(self._residuals, maxlen=self._residuals.maxlen)
        residuals.append(rtt - _raw_distance(moved, peer_coord))
        moved = self._adjusted(moved, residuals)
        moved = self._with_gravity(moved)
        if coordinate_fault(moved, self.settings) is not None:
            self.discarded += 1
            return self._coordinate
        self._coordinate = moved
        self._residuals = residuals
        self.updates += 1
        return moved

    def forget(self, peer: str) -> None:
        """Drop the latency filter of `peer` (it left); unknown peers are ignored."""
        self._filters.pop(peer, None)

    def estimate_rtt_ms(self, peer_coord: Coordinate) -> float:
        """Estimated RTT from us to a peer at `peer_coord`; ValueError for an invalid coordinate."""
        fault = coordinate_fault(peer_coord, self.settings)
        if fault is not None:
            raise ValueError(fault)
        return self._coordinate.distance_ms(peer_coord)

    # The steps of one observation -------------------------------------------------------------

    def _filtered_rtt(self, peer: str, rtt_ms: float) -> float:
        samples = self._filters.pop(peer, None)
        if samples is None:
            samples = deque(maxlen=self.settings.latency_filter_size)
            while len(self._filters) >= self.settings.max_peers:
                del self._filters[next(iter(self._filters))]
        samples.append(rtt_ms)
        self._filters[peer] = samples  # re-inserted: now the most recently updated
        ordered = sorted(samples)
        return ordered[len(ordered) // 2]

    def _vivaldi_step(self, ours: Coordinate, theirs: Coordinate, rtt: float) -> Coordinate:
        s = self.settings
        estimate = ours.distance_ms(theirs)
        wrongness = abs(estimate - rtt) / rtt
        our_error = max(ours.error, _MIN_ERROR)
        weight = our_error / (our_error + max(theirs.error, _MIN_ERROR))
        error = s.ce * weight * wrongness + our_error * (1.0 - s.ce * weight)
        force = s.cc * weight * (rtt - estimate)
        vec, height = self._apply_force(ours, theirs, force)
        return Coordinate(
            vec=vec, height=height, error=min(error, s.error_max), adjustment=ours.adjustment
        )

    def _adjusted(self, coord: Coordinate, residuals: deque[float]) -> Coordinate:
        window = self.settings.adjustment_window
        if window == 0:
            return coord
        # Divided by the whole window even before it fills: the term grows in gently.
        return dataclasses.replace(coord, adjustment=sum(residuals) / (2.0 * window))

    def _with_gravity(self, coord: Coordinate) -> Coordinate:
        pull = -((coord.distance_ms(self._origin) / self.settings.gravity_rho_ms) ** 2)
        vec, height = self._apply_force(coord, self._origin, pull)
        return dataclasses.replace(coord, vec=vec, height=height)

    def _apply_force(
        self, ours: Coordinate, theirs: Coordinate, force: float
    ) -> tuple[tuple[float, ...], float]:
        """Move `ours` by `force` ms away from `theirs` (toward it when negative)."""
        diff = [a - b for a, b in zip(ours.vec, theirs.vec, strict=True)]
        length = math.hypot(*diff)
        if length > _COINCIDENT_MS:
            unit = [d / length for d in diff]
            # The heights' share of the path moves in proportion to their share of the distance.
            height = ours.height + (ours.height + theirs.height) * force / length
        else:
            unit = self._random_unit_vector()
            height = ours.height
        vec = tuple(a + u * force for a, u in zip(ours.vec, unit, strict=True))
        return vec, max(height, self.settings.height_min_ms)

    def _random_unit_vector(self) -> list[float]:
        raw = [self._rng.random() - 0.5 for _ in range(self.settings.dimensions)]
        length = math.hypot(*raw)
        if length <= _COINCIDENT_MS:  # every draw near 0.5: practically never; pick an axis
            return [1.0] + [0.0] * (self.settings.dimensions - 1)
        return [x / length for x in raw]


def _raw_distance(a: Coordinate, b: Coordinate) -> float:
    return math.dist(a.vec, b.vec) + a.height + b.height


def relative_error(estimated: float, true: float) -> float:
    """|estimated - true| / true, the Vivaldi paper's metric; ValueError unless true > 0."""
    if not (math.isfinite(true) and true > 0.0):
        raise ValueError(f"true latency must be finite and > 0, got {true!r}")
    return abs(estimated - true) / true

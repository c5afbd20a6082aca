"""Per-peer round-trip estimator: what direct probes say about how far each peer is.

Rules:
- Every successful probe gives one RTT sample (ms, round trip); every probe that got no answer
  gives one loss. Samples that are not finite or are negative are ignored (they can only come
  from a clock step or a bug, and must not poison the estimate); zero is kept (two daemons on one
  host can measure it).
- Smoothing is TCP's (RFC 6298, also QUIC's RFC 9002): the first sample R sets srtt = R and
  rttvar = R/2; each later one updates rttvar = (1 - beta) rttvar + beta |srtt - R|, then
  srtt = (1 - alpha) srtt + alpha R.
- The last `window` samples give the minimum, the median (p50) and p99 (linear interpolation
  between the two nearest ranks). The minimum is over that window, not for ever, so a route that
  got longer stops showing the old, shorter figure once the window has moved past it.
- The last `loss_window` probe outcomes (answered or lost) give the loss rate.
- A peer is FRESH while its last sample is at most `stale_after_s` old; a stale peer's figures
  are history, and a caller prefers network coordinates over them.
- Tiers compare one-way latency (`hubhop.core.tiers`), estimated as half the round trip. The
  BEST one-way estimate is p50 / 2: the median ignores a lone delayed probe (a scheduler hiccup,
  a retransmitted frame) that would drag srtt up for several samples, and a router that uses the
  best estimate to rank candidates should not reshuffle them on one outlier. The CONSERVATIVE
  one-way estimate, which a router compares with a tier bound, is
      (max(p50, recent p50) + margin_k * spread) / 2
  where the recent p50 is the median of the last `recent` samples (a route that got longer shows
  within a few samples, where the window's median needs half a window) and the spread is the
  window's robust standard deviation, 1.4826 x the median absolute deviation from p50. Both are
  robust: a link that is jittery all the time gets a wide margin, but a few probes delayed by a
  busy host (TCP's srtt and rttvar jump on each: measured here, rttvar above 2 ms on 0.4 ms
  links) do not push a steady link out of its tier. Until `recent` samples have arrived there
  is no spread to speak of, and the margin is rttvar (half the first sample, at first), so a
  peer measured once is treated as up to twice as far as that one sample says.
- srtt and rttvar (RFC 6298) are still kept and shown: they are what TCP would see.

Pure: `now` (monotonic seconds) is an argument, nothing reads a clock.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class EstimatorSettings:
    # RFC 6298's gain for srtt: each sample moves the average an eighth of the way, so it follows
    # a lasting change within about 8 samples while one odd sample moves it by only 1/8 of its
    # error. TCP and QUIC use the same figure, which makes our srtt comparable with theirs.
    alpha: float = 1.0 / 8.0
    # RFC 6298's gain for rttvar: a quarter, so the variance reacts faster than the mean (a link
    # that turns jittery widens its margin within a few samples).
    beta: float = 1.0 / 4.0
    # Samples kept for min/p50/p99. At one probe a second to a near peer that is about a minute
    # of history: long enough for a stable median, short enough that a route change leaves the
    # window within a minute. With 64 samples p99 is interpolated between the two largest, which
    # is what a window this size can honestly say about the tail.
    window: int = 64
    # Probe outcomes kept for the loss rate: 64 gives a resolution of about 1.6 %, fine enough to
    # tell a clean link (0) from a lossy one (a few %), over the same minute as the window.
    loss_window: int = 64
    # The margin in robust standard deviations: 2 puts about 97.7 % of normal jitter below the
    # conservative figure. RFC 6298 uses 4 mean deviations for its retransmission timer, where a
    # spurious timeout is costly; for a tier check that would demote steady links for jitter
    # they rarely show.
    margin_k: float = 2.0
    # Samples behind the recent median: 8 is a route change's worth (at a probe every 2 s, the
    # last 16 s), and a median of 8 ignores up to 3 delayed probes.
    recent: int = 8
    # Three times the slowest probe interval we plan (a peer in the rotating random sample is
    # probed about every 10 s): one or two lost probes do not make a peer stale, and a peer we
    # stopped probing falls back to coordinates within half a minute.
    stale_after_s: float = 30.0

    def __post_init__(self) -> None:
        faults = []
        for name in ("alpha", "beta"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 < value <= 1.0):
                faults.append(f"{name} must be in (0, 1], got {value!r}")
        for name in ("window", "loss_window", "recent"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                faults.append(f"{name} must be an integer of at least 1, got {value!r}")
        if not (math.isfinite(self.margin_k) and self.margin_k >= 0.0):
            faults.append(f"margin_k must be finite and >= 0, got {self.margin_k!r}")
        if not (math.isfinite(self.stale_after_s) and self.stale_after_s > 0.0):
            faults.append(f"stale_after_s must be finite and > 0, got {self.stale_after_s!r}")
        if faults:
            raise ValueError("; ".join(faults))


@dataclass(frozen=True)
class RttSnapshot:
    """One peer's estimate at one moment. All latencies in ms of round trip unless named one-way."""

    peer: str
    samples: int  # RTT samples received since we started tracking the peer
    min_ms: float  # smallest sample in the window
    srtt_ms: float
    rttvar_ms: float
    p50_ms: float
    p99_ms: float
    loss_rate: float  # 0..1 over the loss window
    last_sample_age_s: float
    fresh: bool
    margin_k: float  # the settings' margin, carried so the conservative estimate is self-contained
    recent_p50_ms: float  # median of the last `recent` samples
    spread_ms: float  # robust standard deviation of the window; rttvar until `recent` samples

    @property
    def one_way_ms(self) -> float:
        """Best one-way estimate: half the windowed median RTT (see the module header)."""
        return self.p50_ms / 2.0

    @property
    def conservative_one_way_ms(self) -> float:
        """One-way estimate to compare with a tier bound: the best one plus a variance margin."""
        center = max(self.p50_ms, self.recent_p50_ms)
        return (center + self.margin_k * self.spread_ms) / 2.0


# The median absolute deviation times this estimates the standard deviation of normal jitter.
MAD_TO_SIGMA = 1.4826


def _usable_rtt(rtt_ms: float) -> bool:
    return math.isfinite(rtt_ms) and rtt_ms >= 0.0


def _percentile(ordered: list[float], q: float) -> float:
    """The q-quantile (0..1) of a sorted, non-empty list, interpolating between ranks."""
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class PeerRtt:
    """One peer's estimator."""

    def __init__(self, peer: str, settings: EstimatorSettings) -> None:
        self.peer = peer
        self._settings = settings
        self._window: deque[float] = deque(maxlen=settings.window)
        self._outcomes: deque[bool] = deque(maxlen=settings.loss_window)  # True = lost
        self._samples = 0
        self._srtt = 0.0
        self._rttvar = 0.0
        self._last_sample_at: float | None = None
        self._last_heard_at: float | None = None  # last sample or loss: for the table's eviction

    @property
    def samples(self) -> int:
        return self._samples

    @property
    def last_sample_at(self) -> float | None:
        """When the last RTT sample arrived (monotonic seconds), None before the first."""
        return self._last_sample_at

    @property
    def last_activity_at(self) -> float | None:
        """When the last sample or loss was recorded, None before either."""
        return self._last_heard_at

    def add_sample(self, rtt_ms: float, now: float) -> None:
        """Record an answered probe. Non-finite or negative RTTs (or times) are ignored."""
        if not (_usable_rtt(rtt_ms) and math.isfinite(now)):
            return
        if self._samples == 0:
            self._srtt = rtt_ms
            self._rttvar = rtt_ms / 2.0
        else:
            s = self._settings
            self._rttvar = (1.0 - s.beta) * self._rttvar + s.beta * abs(self._srtt - rtt_ms)
            self._srtt = (1.0 - s.alpha) * self._srtt + s.alpha * rtt_ms
        self._samples += 1
        self._window.append(rtt_ms)
        self._outcomes.append(False)
        self._last_sample_at = now
        self._last_heard_at = now

    def add_loss(self, now: float) -> None:
        """Record a probe that got no answer: a loss sample, not an error."""
        if not math.isfinite(now):
            return
        self._outcomes.append(True)
        self._last_heard_at = now

    def snapshot(self, now: float) -> RttSnapshot | None:
        """The estimate as of `now`; None before the first RTT sample."""
        if self._last_sample_at is None:
            return None
        ordered = sorted(self._window)
        # A clock that never goes backwards is the caller's promise; clamp rather than report a
        # negative age if it did.
        age = max(0.0, now - self._last_sample_at)
        lost = sum(self._outcomes)
        p50 = _percentile(ordered, 0.50)
        recent_n = self._settings.recent
        recent = sorted(list(self._window)[-recent_n:])
        if len(ordered) >= recent_n:
            spread = MAD_TO_SIGMA * _percentile(sorted(abs(x - p50) for x in ordered), 0.50)
        else:
            spread = self._rttvar
        return RttSnapshot(
            peer=self.peer,
            samples=self._samples,
            min_ms=ordered[0],
            srtt_ms=self._srtt,
            rttvar_ms=self._rttvar,
            p50_ms=p50,
            p99_ms=_percentile(ordered, 0.99),
            loss_rate=lost / len(self._outcomes),
            last_sample_age_s=age,
            fresh=age <= self._settings.stale_after_s,
            margin_k=self._settings.margin_k,
            recent_p50_ms=_percentile(recent, 0.50),
            spread_ms=spread,
        )


class RttTable:
    """The estimators of every peer we probe, bounded: past `max_peers` the stalest is evicted.

    "Stalest" is the peer whose last RTT sample is oldest; a peer that only ever lost probes
    counts as staler than any peer that answered, and among those the one heard from longest ago
    goes first. The peer being added is never the one evicted.
    """

    # Far above the network this is built for (about 80 data centers and hubs) and above any
    # probe target set (hubs, K nearest, a rotating sample), so nothing live is evicted in
    # practice; at a few KB per peer (two 64-entry windows) it caps the table at a few MB even
    # if a 10,000-node simulation feeds every SWIM ping in.
    DEFAULT_MAX_PEERS = 1024

    def __init__(
        self, settings: EstimatorSettings | None = None, max_peers: int = DEFAULT_MAX_PEERS
    ) -> None:
        if max_peers < 1:
            raise ValueError(f"max_peers must be at least 1, got {max_peers!r}")
        self.settings = settings if settings is not None else EstimatorSettings()
        self.max_peers = max_peers
        self._peers: dict[str, PeerRtt] = {}
        self.evicted = 0  # peers dropped to stay within max_peers

    def __len__(self) -> int:
        return len(self._peers)

    def __contains__(self, peer: object) -> bool:
        return peer in self._peers

    def add_sample(self, peer: str, rtt_ms: float, now: float) -> None:
        """Record an answered probe to `peer`; unusable RTTs are ignored and create no entry."""
        if not (_usable_rtt(rtt_ms) and math.isfinite(now)):
            return
        self._entry(peer).add_sample(rtt_ms, now)

    def add_loss(self, peer: str, now: float) -> None:
        """Record a probe to `peer` that got no answer."""
        if not math.isfinite(now):
            return
        self._entry(peer).add_loss(now)

    def sample_count(self, peer: str) -> int:
        """RTT samples received from `peer` (0 when unknown): cheap, no snapshot."""
        entry = self._peers.get(peer)
        return 0 if entry is None else entry.samples

    def snapshot(self, peer: str, now: float) -> RttSnapshot | None:
        """`peer`'s estimate, None when unknown or never answered."""
        entry = self._peers.get(peer)
        return None if entry is None else entry.snapshot(now)

    def snapshots(self, now: float) -> list[RttSnapshot]:
        """Every answered peer's estimate, sorted by peer name."""
        found = (self._peers[p].snapshot(now) for p in sorted(self._peers))
        return [s for s in found if s is not None]

    def forget(self, peer: str) -> None:
        """Drop `peer` (it left the cluster); unknown peers are ignored."""
        self._peers.pop(peer, None)

    def peers(self) -> list[str]:
        """Every tracked peer, answered or not, sorted by name."""
        return sorted(self._peers)

    def _entry(self, peer: str) -> PeerRtt:
        entry = self._peers.get(peer)
        if entry is None:
            if len(self._peers) >= self.max_peers:
                self._evict_stalest()
            entry = self._peers[peer] = PeerRtt(peer, self.settings)
        return entry

    def _evict_stalest(self) -> None:
        def staleness(name: str) -> tuple[float, float]:
            entry = self._peers[name]
            sampled = entry.last_sample_at
            heard = entry.last_activity_at
            return (
                -math.inf if sampled is None else sampled,
                -math.inf if heard is None else heard,
            )

        stalest = min(self._peers, key=staleness)
        del self._peers[stalest]
        self.evicted += 1

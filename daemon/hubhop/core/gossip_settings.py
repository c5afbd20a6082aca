"""SWIM's tunables (GossipSettings): every default beside its reason, checked on creation.

The protocol (swim.py) reads them; the daemon builds them from the defaults plus the `[gossip]`
keys an operator set (hubhop.io.gossip_service.with_overrides).
"""

from __future__ import annotations

from dataclasses import dataclass

from hubhop.core.secure_channel import MAX_DATAGRAM_BYTES


@dataclass(frozen=True)
class GossipSettings:
    # Tuned to beat Serf's LAN profile (1 s probe interval, 0.5 s timeout, 0.2 s gossip) on
    # detection and dissemination time while staying cheap: one probe per node per 0.5 s.
    probe_interval_s: float = 0.5
    # A LAN or a province-wide network answers a ping in a few ms; 200 ms leaves room for a busy
    # peer and for the indirect round within the same interval.
    probe_timeout_s: float = 0.2
    # Helpers asked to ping a silent target (memberlist's default): three independent paths make
    # a false suspicion from one bad link unlikely.
    indirect_checks: int = 3
    # Suspicion lasts at least mult * log10(n) probe intervals (memberlist LAN uses 4 with a 1 s
    # interval): 2.5 with 0.5 s is 1.25 s at 10 nodes, 2.3 s at 64, 3.75 s at 1,000. A suspect
    # hears of it within a probe or a gossip tick and its refutation spreads in a few ticks, so
    # this leaves a stalled but alive node (a GC pause, a CPU-starved box) over a second to
    # answer, while a dead one is declared dead by everybody in about 3-4 s at 64 nodes.
    suspicion_mult: float = 2.5
    # Without confirmations a suspicion lasts up to 6x the minimum (memberlist's default), giving
    # a slow but alive node time to refute; confirmations shrink it toward the minimum.
    suspicion_max_timeout_mult: float = 6.0
    # Each broadcast is sent mult * ceil(log10(n + 1)) times (memberlist LAN): 4 gives a
    # negligible chance of any node missing it in clusters up to 10,000.
    retransmit_mult: int = 4
    # Gossip ticks twice as often as Serf's (0.2 s): news spreads in ~log(n) ticks, and a tick
    # with an empty queue sends nothing.
    gossip_interval_s: float = 0.1
    # Members gossiped to per tick (memberlist LAN): spreads in log_3(n) rounds.
    gossip_fanout: int = 3
    # Full-state anti-entropy period (memberlist LAN: 30 s); scaled up above 32 members so the
    # cluster-wide stream load stays flat.
    push_pull_interval_s: float = 15.0
    # How long a dead or left member stays listed (and refutable) before it is forgotten.
    reap_after_s: float = 30.0
    # Lifeguard's cap on stretching our own timeouts (memberlist's default).
    awareness_max_multiplier: int = 8
    # Keep gossiping to members declared dead this long, so a wrongly declared one can refute.
    gossip_to_dead_s: float = 10.0
    # Sealed size a datagram may have (secure_channel.py: fits a 1500-byte MTU with headers).
    max_datagram_bytes: int = MAX_DATAGRAM_BYTES
    # Membership news (~40 bytes a message) goes out 3x the base limit: at 1x about 1% of nodes
    # miss a given join or death at 8 members (e^-limit, see broadcasts.py) and wait for
    # push-pull, tens of seconds; at 3x a miss is ~e^-12 per node, for a few extra bytes per event.
    membership_retransmit_scale: int = 3
    # Record announcements (~20 bytes) go out 2x: the records themselves (hundreds of bytes)
    # stay at 1x, and a node that missed one pulls it (record_wants.py); missing both is about
    # e^-3L. In the simulator (200 updates, 8 and 64 nodes) the slowest node then had every
    # update within 0.6 s, where at 1x some waited 5-26 s for push-pull; 3x was no better.
    record_announce_scale: int = 2
    # Wait this long after an announcement before asking for a record we lack: the record
    # usually rides in the same datagram or arrives within a gossip tick or two (0.1 s each).
    record_want_delay_s: float = 0.25
    # Ask again after this long without the record (an ask and its answer take one round trip,
    # a few ms here; 0.5 s leaves room for a busy peer), at most this many times.
    record_want_retry_s: float = 0.5
    record_want_attempts: int = 3

    def __post_init__(self) -> None:
        positive = (
            self.probe_interval_s,
            self.probe_timeout_s,
            self.suspicion_mult,
            self.suspicion_max_timeout_mult,
            self.gossip_interval_s,
            self.push_pull_interval_s,
            self.record_want_delay_s,
            self.record_want_retry_s,
        )
        if any(not v > 0 for v in positive):
            raise ValueError("gossip intervals, timeouts and multipliers must be positive")
        if self.probe_timeout_s > self.probe_interval_s:
            raise ValueError("probe_timeout_s must not exceed probe_interval_s")
        if self.indirect_checks < 0 or self.gossip_fanout < 1 or self.retransmit_mult < 1:
            raise ValueError("indirect_checks >= 0, gossip_fanout >= 1, retransmit_mult >= 1")
        scales = (
            self.membership_retransmit_scale,
            self.record_announce_scale,
            self.record_want_attempts,
        )
        if any(v < 1 for v in scales):
            raise ValueError(
                "membership_retransmit_scale, record_announce_scale and record_want_attempts "
                "must be at least 1"
            )
        if self.awareness_max_multiplier < 1:
            raise ValueError("awareness_max_multiplier must be at least 1")
        if self.reap_after_s < 0 or self.gossip_to_dead_s < 0:
            raise ValueError("reap_after_s and gossip_to_dead_s must not be negative")
        if not 200 <= self.max_datagram_bytes <= 65_000:
            raise ValueError("max_datagram_bytes must be within 200..65000")

"""When a node republishes its own capacity record: on a meaningful change, or when it is due.

Every publish bumps the record's version and spreads it through the whole cluster, so a node
must not publish on every request it serves. The daemon samples its load on a timer, builds the
record it would publish now, and asks `RepublishPolicy.should_publish(last, current, last_time,
now)`. It says yes when:

1. nothing was published yet;
2. something a peer CHOOSES by changed (always, at once): identity or labels, addresses, the set
   of backends, and per backend its protocols, models, chip, slots, emergency reserve, price or
   green share. These come from config and change rarely (a reload); a peer routing on the old
   values would send requests the node cannot take;
3. the LOAD changed meaningfully on any backend:
   - busy moved by at least max(1, busy_fraction x slots): a tenth of the slots is where the
     router's free-capacity estimate turns noticeably wrong, and less than one slot is noise;
   - the emergency queue moved by at least 1: emergency work is rare and each request matters
     (it is what the reserved headroom is for);
   - the standard or batch queue moved by at least max(1, queue_fraction x max(slots, published
     queue)): a tenth of the slots is a tenth of a service round of extra wait, and once a
     queue is longer than the slot count a tenth of the queue itself;
   - the service-time estimate moved by at least service_fraction of the published one, or
     became known (0 means unknown);
4. the network position moved notably: the coordinate appeared, vanished, or moved by at least
   coordinate_move_ms (Euclidean distance plus height change); a link appeared or vanished, or
   its RTT moved by at least max(link_min_ms, link_fraction x published RTT);
5. max_interval_s passed since the last publish and the load differs at all (drifting below
   every threshold). An unchanged record is never republished: liveness is SWIM's job, and a
   refresh of every record every few seconds would be most of an idle cluster's traffic (it
   was: 8.7 kB/s per node at 64 nodes, against Serf's 0.4). Network figures below the rule 4
   thresholds are not drift but noise (probe jitter, Vivaldi wandering): they never republish.

Load changes (3) wait at least min_interval_s after the last publish, so even a caller that asks
on every request publishes a bounded number of versions per second; network changes (4) wait
network_min_interval_s, because probes on a busy host jitter by more than any threshold and a
republish storm would only add to the load that caused it; identity changes (2) never wait.

Pure: `now` is an argument (monotonic seconds), nothing reads a clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hubhop.core.capacity import BackendState, CapacityRecord


@dataclass(frozen=True)
class RepublishPolicy:
    # A record whose load drifted below every threshold (busy creeping up one slot at a time on
    # a large backend) is republished after 10 s, so peers are never staler than that; at most
    # one small record per node per 10 s, and none while nothing changes.
    max_interval_s: float = 10.0
    # Gossip spreads one version through a cluster in a few 0.1 s ticks; versions much closer
    # than a quarter second would overtake each other in flight and only cost bandwidth.
    min_interval_s: float = 0.25
    # Where a node sits in the network changes on the scale of routes, not requests, and the
    # peers it probes get its coordinate fresh in every probe reply; the record only serves
    # third parties. 30 s (the estimator's freshness horizon) bounds what a node's own jittery
    # measurements can cost: on a loaded host with 64 daemons, coordinates and links crossed the
    # rule 4 thresholds every few seconds, and each version is relayed by every node.
    network_min_interval_s: float = 30.0
    # A tenth of the slots (at least one slot): see rule 3 in the header.
    busy_fraction: float = 0.10
    # A tenth of the slots or of the queue itself (at least one request): see rule 3.
    queue_fraction: float = 0.10
    # Service time feeds the queueing estimate linearly; a 20% error is about what the
    # estimate's own sampling noise is, so smaller moves are not news.
    service_fraction: float = 0.20
    # A quarter of the city tier's 2 ms round trip: coordinate moves below that are Vivaldi's
    # own jitter on a LAN and cannot change which tier a node falls in.
    coordinate_move_ms: float = 0.5
    # Link RTT moves smaller than 0.2 ms (a tenth of the city tier's round trip) or than 10% of
    # the link are measurement jitter.
    link_min_ms: float = 0.2
    link_fraction: float = 0.10

    def should_publish(
        self,
        last: CapacityRecord | None,
        current: CapacityRecord,
        last_time: float | None,
        now: float,
    ) -> bool:
        """True when `current` should be published now (see the module header for the rules)."""
        if last is None or last_time is None:
            return True
        if self.identity_changed(last, current):
            return True
        elapsed = now - last_time
        if elapsed < self.min_interval_s:
            return False
        if self.load_changed(last, current):
            return True
        if elapsed >= self.max_interval_s and current.backends != last.backends:
            return True  # load drift (identity differences returned above)
        return elapsed >= self.network_min_interval_s and self.network_changed(last, current)

    # The rules, public so the daemon can log why it published ---------------------------------

    def identity_changed(self, last: CapacityRecord, current: CapacityRecord) -> bool:
        """Rule 2: a field peers choose by, other than load, differs."""
        if (
            last.node,
            last.role,
            last.region,
            last.city,
            last.http_addr,
            last.gossip_addr,
        ) != (
            current.node,
            current.role,
            current.region,
            current.city,
            current.http_addr,
            current.gossip_addr,
        ):
            return True
        if [b.name for b in last.backends] != [b.name for b in current.backends]:
            return True
        return any(
            _static(old) != _static(new)
            for old, new in zip(last.backends, current.backends, strict=True)
        )

    def load_changed(self, last: CapacityRecord, current: CapacityRecord) -> bool:
        """Rule 3, over backends present in both records."""
        olds = {b.name: b for b in last.backends}
        for new in current.backends:
            old = olds.get(new.name)
            if old is not None and self._backend_load_changed(old, new):
                return True
        return False

    def network_changed(self, last: CapacityRecord, current: CapacityRecord) -> bool:
        """Rule 4: coordinate or links moved notably."""
        if (last.coordinate is None) != (current.coordinate is None):
            return True
        if last.coordinate is not None and current.coordinate is not None:
            moved = math.dist(last.coordinate, current.coordinate) + abs(
                current.height - last.height
            )
            if moved >= self.coordinate_move_ms:
                return True
        old_links = dict(last.links)
        new_links = dict(current.links)
        if old_links.keys() != new_links.keys():
            return True
        for peer, rtt in new_links.items():
            before = old_links[peer]
            if abs(rtt - before) >= max(self.link_min_ms, self.link_fraction * before):
                return True
        return False

    def _backend_load_changed(self, old: BackendState, new: BackendState) -> bool:
        slots = new.slots
        if abs(new.busy - old.busy) >= max(1.0, self.busy_fraction * slots):
            return True
        if abs(new.queue[0] - old.queue[0]) >= 1.0:
            return True
        for lane in (1, 2):
            step = max(1.0, self.queue_fraction * max(slots, old.queue[lane]))
            if abs(new.queue[lane] - old.queue[lane]) >= step:
                return True
        if (old.service_ms == 0.0) != (new.service_ms == 0.0):
            return True
        step = self.service_fraction * old.service_ms
        return step > 0 and abs(new.service_ms - old.service_ms) >= step


def _static(b: BackendState) -> tuple[object, ...]:
    """What peers choose a backend by, apart from its load."""
    return (
        b.protocols,
        b.models,
        b.chip,
        b.slots,
        b.emergency_reserve,
        b.price,
        b.green_share,
    )

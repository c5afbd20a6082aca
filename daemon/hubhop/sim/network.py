"""An in-process network of GossipNodes on a virtual clock.

Rules:
- One event heap orders everything by (time, insertion order): node timers, datagram
  deliveries, push-pull requests and replies. Running it is deterministic for a given seed.
- A datagram is lost with the link's loss probability when sent, and delivered after the link's
  delay plus uniform jitter, if the two ends can still talk then (partitions and blocked pairs
  are checked at delivery). A datagram to a dead node is lost.
- A push-pull stream is a request delivered after `stream_delay_s`, answered at once by the
  receiver, the reply delivered `stream_delay_s` later. A stream to an unreachable or dead node
  gets no reply (the adapter would count a failed connection).
- Every node's timer is re-armed after each input; a timer entry superseded by a later get_timer
  is skipped when it comes up.
- `kill` stops a node (its pending deliveries are lost); `restart` builds a new GossipNode of
  the same name at the same address with a higher channel epoch, a fresh store, and joins.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hubhop.core.keyring import Keyring
from hubhop.core.members import MemberState
from hubhop.core.secure_channel import SecureChannel
from hubhop.core.swim import (
    GossipEvent,
    GossipNode,
    GossipSettings,
    MemberDead,
    MemberLeft,
    MemberSuspect,
)
from hubhop.sim.records import DictRecordStore

Address = tuple[str, int]
PORT = 7946

_TIMER, _DATAGRAM, _STREAM_REQUEST, _STREAM_REPLY = 0, 1, 2, 3
# Epochs of restarted nodes: far apart, so that record versions (which start at the epoch) of a
# new life are above anything its previous life published.
EPOCH_STEP = 1 << 40


@dataclass(frozen=True)
class Link:
    delay_s: float
    jitter_s: float
    loss: float


@dataclass
class SimNode:
    name: str
    addr: Address
    node: GossipNode
    store: DictRecordStore
    epoch: int
    generation: int
    up: bool = True
    timer_at: float | None = None
    events: list[tuple[float, GossipEvent]] = field(default_factory=list)


@dataclass(frozen=True)
class Dissemination:
    """How fast one piece of news reached the other live nodes."""

    population: int
    reached: int
    t50: float | None
    t99: float | None
    t100: float | None
    gossip_interval_s: float

    def rounds(self, t: float | None) -> float | None:
        return None if t is None else t / self.gossip_interval_s


def sim_address(index: int) -> Address:
    return (f"10.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}", PORT)


class Simulator:
    def __init__(
        self,
        settings: GossipSettings | None = None,
        *,
        seed: int = 0,
        delay_s: float = 0.002,
        jitter_s: float = 0.001,
        loss: float = 0.0,
        stream_delay_s: float = 0.005,
        keys: Sequence[bytes] | None = None,
        record_events: bool = True,
    ) -> None:
        self.settings = settings or GossipSettings()
        self.rng = random.Random(seed)
        self.seed = seed
        self.now = 0.0
        self.default_link = Link(delay_s, jitter_s, loss)
        self.stream_delay_s = stream_delay_s
        self.keys: tuple[bytes, ...] = tuple(keys) if keys else (self.rng.randbytes(32),)
        self.record_events = record_events
        self.nodes: dict[str, SimNode] = {}
        self._by_addr: dict[Address, SimNode] = {}
        self._heap: list[tuple[float, int, int, Any, Any, Any]] = []
        self._counter = 0
        self._links: dict[tuple[str, str], Link] = {}
        self._blocked: set[frozenset[str]] = set()
        self._group: dict[str, int] = {}
        self.tap: Callable[[float, Address, Address, bytes], None] | None = None
        self.delivered = 0
        self.lost = 0
        self.stuck_timers = 0
        # per-event trackers: subject -> observer -> first time seen
        self.suspected_at: dict[str, dict[str, float]] = {}
        self.dead_at: dict[str, dict[str, float]] = {}
        self.left_at: dict[str, dict[str, float]] = {}
        self._tracked: dict[str, tuple[int, float]] = {}  # record name -> (version, start)
        self.arrivals: dict[str, dict[str, float]] = {}  # record name -> observer -> time

    # ---- building ------------------------------------------------------------------------------

    def add_node(
        self,
        name: str | None = None,
        seeds: Sequence[Address] = (),
        keys: Sequence[bytes] | None = None,
    ) -> SimNode:
        index = len(self._by_addr) + 1
        name = name or f"n{index}"
        return self._start(name, sim_address(index), 1, 0, seeds, keys)

    def add_nodes(self, n: int, join: bool = True, stagger_s: float = 0.0) -> list[SimNode]:
        """`n` nodes that join through the first node of the simulator (or the first new one)."""
        out: list[SimNode] = []
        seed = next(iter(self.nodes.values()), None)
        for i in range(n):
            seeds = [seed.addr] if (join and seed is not None) else []
            out.append(self.add_node(seeds=seeds))
            if seed is None:
                seed = out[0]
            if stagger_s and i + 1 < n:
                self.run_for(stagger_s)
        return out

    def _start(
        self,
        name: str,
        addr: Address,
        epoch: int,
        generation: int,
        seeds: Sequence[Address],
        keys: Sequence[bytes] | None,
    ) -> SimNode:
        node_rng = random.Random(self.rng.getrandbits(64))
        channel = SecureChannel(Keyring(list(keys or self.keys)), name, epoch, node_rng)
        holder: list[SimNode] = []

        def on_store(record: str, version: int) -> None:
            tracked = self._tracked.get(record)
            if tracked is not None and version >= tracked[0] and holder:
                self.arrivals[record].setdefault(holder[0].name, self.now)

        store = DictRecordStore(on_store)
        node = GossipNode(name, addr, self.settings, channel, store, node_rng, self.now)
        sn = SimNode(name, addr, node, store, epoch, generation)
        holder.append(sn)
        self.nodes[name] = sn
        self._by_addr[addr] = sn
        if seeds:
            node.join(list(seeds), self.now)
        self._flush(sn)
        return sn

    def kill(self, name: str) -> None:
        sn = self.nodes[name]
        sn.up = False
        sn.timer_at = None

    def restart(self, name: str, seeds: Sequence[Address] | None = None) -> SimNode:
        """A new life of `name`: same address, higher epoch, empty state; joins `seeds`."""
        old = self.nodes[name]
        old.up = False
        if seeds is None:
            seeds = [sn.addr for sn in self.live() if sn.name != name][:1]
        keys = old.node.channel.keyring.keys
        return self._start(name, old.addr, old.epoch + EPOCH_STEP, old.generation + 1, seeds, keys)

    def live(self) -> list[SimNode]:
        return [sn for sn in self.nodes.values() if sn.up]

    # ---- the network ---------------------------------------------------------------------------

    def set_link(
        self,
        a: str,
        b: str,
        delay_s: float | None = None,
        jitter_s: float | None = None,
        loss: float | None = None,
    ) -> None:
        """Set the link a<->b (both directions)."""
        d = self.default_link
        link = Link(
            d.delay_s if delay_s is None else delay_s,
            d.jitter_s if jitter_s is None else jitter_s,
            d.loss if loss is None else loss,
        )
        self._links[(a, b)] = link
        self._links[(b, a)] = link

    def block(self, a: str, b: str) -> None:
        """Nothing passes between a and b (both directions)."""
        self._blocked.add(frozenset((a, b)))

    def unblock(self, a: str, b: str) -> None:
        self._blocked.discard(frozenset((a, b)))

    def partition(self, *groups: Iterable[str]) -> None:
        """Each group talks only within itself; nodes in no group form one more group."""
        self._group = {}
        for i, group in enumerate(groups, start=1):
            for name in group:
                self._group[name] = i

    def heal(self) -> None:
        self._group = {}
        self._blocked = set()

    def can_talk(self, a: str, b: str) -> bool:
        if self._group.get(a, 0) != self._group.get(b, 0):
            return False
        return not (self._blocked and frozenset((a, b)) in self._blocked)

    def _push(self, t: float, kind: int, a: Any, b: Any, c: Any) -> None:
        self._counter += 1
        heapq.heappush(self._heap, (t, self._counter, kind, a, b, c))

    def _flush(self, sn: SimNode) -> None:
        node = sn.node
        now = self.now
        for data, dst in node.datagrams_to_send(now):
            self.send_datagram(data, sn.addr, dst)
        for dst, request in node.streams_to_open(now):
            self._push(
                now + self.stream_delay_s, _STREAM_REQUEST, dst, request, (sn.name, sn.generation)
            )
        while (event := node.next_event()) is not None:
            self._on_event(sn, event)
        t = node.get_timer()
        if t is None or not sn.up:
            sn.timer_at = None
            return
        if t < now:
            t = now
        if t != sn.timer_at:
            sn.timer_at = t
            self._push(t, _TIMER, sn.name, sn.generation, None)

    def send_datagram(self, data: bytes, src: Address, dst: Address) -> None:
        """Put a datagram on the wire (also for tests injecting captured ones)."""
        if self.tap is not None:
            self.tap(self.now, src, dst, data)
        a = self._by_addr.get(src)
        b = self._by_addr.get(dst)
        if a is None or b is None:
            self.lost += 1
            return
        link = self._links.get((a.name, b.name), self.default_link) if self._links else None
        if link is None:
            link = self.default_link
        if link.loss and self.rng.random() < link.loss:
            self.lost += 1
            return
        delay = link.delay_s + (self.rng.random() * link.jitter_s if link.jitter_s else 0.0)
        self._push(self.now + delay, _DATAGRAM, dst, data, src)

    def _on_event(self, sn: SimNode, event: GossipEvent) -> None:
        if self.record_events:
            sn.events.append((self.now, event))
        if isinstance(event, MemberSuspect):
            self.suspected_at.setdefault(event.name, {}).setdefault(sn.name, self.now)
        elif isinstance(event, MemberDead):
            self.dead_at.setdefault(event.name, {}).setdefault(sn.name, self.now)
        elif isinstance(event, MemberLeft):
            self.left_at.setdefault(event.name, {}).setdefault(sn.name, self.now)

    # ---- running -------------------------------------------------------------------------------

    def run_until(self, until: float) -> None:
        """Run every event due up to `until`, then set the clock to it."""
        heap = self._heap
        nodes = self.nodes
        by_addr = self._by_addr
        while heap and heap[0][0] <= until:
            t, _, kind, a, b, c = heapq.heappop(heap)
            self.now = t
            if kind == _TIMER:
                sn = nodes[a]
                if not sn.up or sn.generation != b or sn.timer_at != t:
                    continue
                sn.timer_at = None
                sn.node.handle_timer(t)
                self._flush(sn)
                if sn.timer_at is not None and sn.timer_at <= t:
                    # handle_timer left a deadline it did not clear: a bug; do not spin on it
                    self.stuck_timers += 1
                    sn.timer_at = t + 1e-3
                    self._push(t + 1e-3, _TIMER, sn.name, sn.generation, None)
            elif kind == _DATAGRAM:
                dst = by_addr.get(a)
                src = by_addr.get(c)
                if (
                    dst is None
                    or src is None
                    or not dst.up
                    or not self.can_talk(src.name, dst.name)
                ):
                    self.lost += 1
                    continue
                self.delivered += 1
                dst.node.receive_datagram(b, c, t)
                self._flush(dst)
            elif kind == _STREAM_REQUEST:
                dst = by_addr.get(a)
                src_name, src_gen = c
                if dst is None or not dst.up or not self.can_talk(src_name, dst.name):
                    continue
                reply = dst.node.receive_stream_request(b, t)
                self._flush(dst)
                self._push(
                    t + self.stream_delay_s, _STREAM_REPLY, (src_name, src_gen), reply, dst.addr
                )
            else:
                src_name, src_gen = a
                sn = nodes[src_name]
                peer = by_addr.get(c)
                if not sn.up or sn.generation != src_gen or peer is None:
                    continue
                if not self.can_talk(sn.name, peer.name):
                    continue
                sn.node.receive_stream_reply(b, c, t)
                self._flush(sn)
        self.now = max(self.now, until)

    def run_for(self, dt: float) -> None:
        self.run_until(self.now + dt)

    def run_until_true(
        self, predicate: Callable[[], bool], timeout_s: float, check_every_s: float = 0.1
    ) -> float | None:
        """Run until `predicate()` holds (checked every `check_every_s`); the time it took, or
        None when it still does not hold after `timeout_s`."""
        start = self.now
        deadline = start + timeout_s
        while True:
            if predicate():
                return self.now - start
            if self.now >= deadline:
                return None
            self.run_until(min(self.now + check_every_s, deadline))

    def touch(self, name: str) -> None:
        """Collect what a node wants to do after a direct call on it (update_record, leave...)."""
        self._flush(self.nodes[name])

    # ---- observing -----------------------------------------------------------------------------

    def converged(self, names: Iterable[str] | None = None) -> bool:
        """Every live node sees every live node alive, and knows nothing else as alive."""
        live = self.live() if names is None else [self.nodes[n] for n in names]
        want = len(live)
        for sn in live:
            node = sn.node
            if node.count(MemberState.ALIVE) != want:
                return False
            for other in live:
                view = node.member(other.name)
                if view is None or view.state is not MemberState.ALIVE:
                    return False
        return True

    def all_see(
        self, subject: str, states: Iterable[MemberState], among: Iterable[str] | None = None
    ) -> bool:
        """Every live node other than `subject` (or those in `among`) sees it in `states`
        (None, reaped, counts as not seeing)."""
        wanted = set(states)
        observers = self.live() if among is None else [self.nodes[n] for n in among]
        for sn in observers:
            if sn.name == subject:
                continue
            view = sn.node.member(subject)
            if view is None or view.state not in wanted:
                return False
        return True

    def track_record(self, name: str, version: int) -> None:
        """Start timing how `name`'s record at `version` spreads (call right after publishing)."""
        self._tracked[name] = (version, self.now)
        self.arrivals[name] = {}
        for sn in self.live():
            held = sn.store.get(name)
            if held is not None and held[0] >= version and sn.name != name:
                self.arrivals[name][sn.name] = self.now

    def dissemination(self, name: str) -> Dissemination:
        _version, start = self._tracked[name]
        population = [sn.name for sn in self.live() if sn.name != name]
        arrivals = self.arrivals.get(name, {})
        times = sorted(arrivals[n] - start for n in population if n in arrivals)
        total = len(population)

        def at(fraction: float) -> float | None:
            need = max(1, math.ceil(fraction * total - 1e-9))
            return times[need - 1] if len(times) >= need else None

        return Dissemination(
            total, len(times), at(0.5), at(0.99), at(1.0), self.settings.gossip_interval_s
        )

    def counters(self) -> dict[str, int]:
        """Every node's counters summed."""
        total: dict[str, int] = {}
        for sn in self.nodes.values():
            for key, value in sn.node.counters.items():
                total[key] = total.get(key, 0) + value
        return total

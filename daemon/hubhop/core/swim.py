"""SWIM membership with Lifeguard, sans-IO: bytes, `now` and `rng` in; bytes, timers, events out.

Rules:
- Failure detection: one member is probed per probe interval, in a shuffled round-robin. A ping
  carries a seq; without an ack within the probe timeout, `indirect_checks` other members are
  asked to ping the target (ping-req) and relay its ack, or send a nack when they get none
  (Lifeguard). No ack by the end of the interval: the target is suspected (SUSPECT broadcast).
- A suspicion becomes DEAD when its timer (suspicion.py, shrinking with independent
  confirmations) fires. A member that hears itself suspected or declared dead refutes: it raises
  its incarnation and broadcasts ALIVE. Which news wins is decided by members.py.
- Local health (awareness.py) stretches our own probe timeout and interval when we are the slow
  one.
- Dissemination: state changes and records ride the broadcast queue (broadcasts.py), piggybacked
  on every datagram sent and pushed on gossip ticks to `gossip_fanout` random members (members
  dead for less than `gossip_to_dead_s` included: a wrongly declared member must hear it to
  refute). Every datagram stays under `max_datagram_bytes` after sealing.
- Anti-entropy and join: push-pull over a stream. The request carries all member states, the
  requester's record digest and its own record (the only record it knows the other side cannot
  have newer); the reply carries the replier's states and digest and the records newer than the
  requester's digest; the requester then sends, as a one-way second stream, the records the
  replier lacks. Remote states merge with the same incarnation rules (a remote "dead" only makes
  us suspect, as in memberlist). Every push-pull interval one random live member is chosen, and
  one random failed (not left) member too, so that partitions heal (Serf's reconnect).
- Rejoin: a node that joined through seeds and sees no other live or suspect member at a
  push-pull tick asks its seeds again (Serf's retry_join), so nodes started in any order find
  each other, and a node that forgot everyone (a partition longer than the reap time) returns.
- Membership news (alive, suspect, dead, left) is small and rare, so it is sent
  `membership_retransmit_scale` times the base limit: nobody should wait for push-pull to hear
  of a join or a death.
- Fresh news (a membership change, a record newly stored) brings the next gossip tick forward,
  to no sooner than a quarter interval after the last: each hop of an epidemic then costs a link
  delay rather than half a gossip interval, and a flood of news still ticks at most 4x as often.
- Records: `update_record` raises our own version; a received record newer than held (the store
  decides) is stored, re-gossiped and announced with RecordChanged. Beside each record gossip
  carries its RECORD_VERSION announcement at `record_announce_scale` times the base limit; a node
  that hears of a version it lacks asks the announcer with RECORD_WANT (record_wants.py).
  Records too big for a datagram travel only by push-pull. Versions start at the channel epoch
  (it grows across restarts); should someone still hold our record at a version above ours, we
  jump past it.
- Keyring commands (key_commands.py): `start_key_command` applies one here and sends it to every
  member not held dead or left; members answer KEY_COMMAND with KEY_COMMAND_ACK; the report is
  ready when KeyCommandDone comes out.
- Dead and left members are reaped after `reap_after_s`. Leaving: LEFT broadcast, no more probing.
- Every receive path opens the secure channel first (a Dropped datagram is counted and
  ignored), then decodes strictly (swim_messages.py). Nothing a peer sends raises.
"""

from __future__ import annotations

import math
import random
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from hubhop.core import swim_messages as wire
from hubhop.core.awareness import Awareness
from hubhop.core.broadcasts import BroadcastQueue, retransmit_limit
from hubhop.core.gossip_events import (
    GossipEvent,
    KeyCommandDone,
    MemberAlive,
    MemberDead,
    MemberJoined,
    MemberLeft,
    MemberReaped,
    MemberSuspect,
    RecordChanged,
    RttSample,
)
from hubhop.core.gossip_settings import GossipSettings
from hubhop.core.key_commands import DEFAULT_TIMEOUT_S, KeyCommandReport, KeyCommands
from hubhop.core.members import (
    Address,
    Member,
    MemberState,
    MemberView,
    alive_overrides,
    dead_overrides,
    suspect_overrides,
)
from hubhop.core.record_wants import RecordWants
from hubhop.core.secure_channel import MAX_STREAM_BYTES, Dropped, SecureChannel
from hubhop.core.suspicion import Suspicion, suspicion_min_timeout

__all__ = [
    "GossipEvent",
    "GossipNode",
    "GossipSettings",
    "KeyCommandDone",
    "MemberAlive",
    "MemberDead",
    "MemberJoined",
    "MemberLeft",
    "MemberReaped",
    "MemberState",
    "MemberSuspect",
    "MemberView",
    "RecordChanged",
    "RecordStore",
    "RttSample",
]


class RecordStore(Protocol):
    """Where gossiped records live (Part C's CapacityTable implements it)."""

    def offer(self, name: str, version: int, payload: bytes) -> bool: ...  # True: newer, stored
    def get(self, name: str) -> tuple[int, bytes] | None: ...
    def digest(self) -> dict[str, int]: ...  # name -> version held
    def forget(self, name: str) -> None: ...  # member reaped


# Events waiting for the caller to poll; beyond this the oldest are dropped (and counted).
MAX_PENDING_EVENTS = 65_536
# Indirect pings we relay at once for others; beyond this new requests are refused (counted).
MAX_RELAYS = 1024
# Datagram room kept free beside a record broadcast for the ping or ack it rides on.
_RECORD_ROOM_BYTES = 64
# Growth of the sealed overhead after our measurement: seq grows to 9 bytes, bin8 -> bin16.
_SEAL_GROWTH_BYTES = 9
# A joiner's first periodic push-pull comes this soon after its join reply (seconds, random
# within): long enough for a burst of joins to settle, short enough to converge in seconds.
_AFTER_JOIN_PUSH_PULL_S = (1.0, 3.0)
# A probe reply echoing a clock reading older than this (or from the future) is refused: a real
# round trip across a country takes tens of ms, and a reply that late is a loss anyway.
_MAX_PROBE_AGE_S = 10.0
# Probe departures remembered: a node sends ~10 probes a second, each answered or lost within
# seconds; 256 is far more than are ever in flight, and a lost probe's entry ages out this way.
MAX_DEPARTURES = 256
# Push-pull stays this far below MAX_STREAM_BYTES (states are estimated, not measured).
_STREAM_BUDGET_BYTES = MAX_STREAM_BYTES * 3 // 4
_STATE_ESTIMATE_BYTES = 200  # generous: name 128 + host + framing


@dataclass(slots=True)
class _Probe:
    target: str
    seq: int
    ack_deadline: float
    sent_at: float
    indirect_sent: bool = False
    acked: bool = False
    expected_nacks: int = 0
    nacks: int = 0


@dataclass(slots=True)
class _Relay:
    origin: Address
    origin_seq: int
    deadline: float
    nack: bool


def _push_pull_scale(interval: float, n: int) -> float:
    """memberlist's pushPullScale: above 32 members, stretch with log2(n) to keep load flat."""
    if n <= 32:
        return interval
    return interval * (math.ceil(math.log2(n) - math.log2(32)) + 1)


class GossipNode:
    def __init__(
        self,
        name: str,
        addr: tuple[str, int],
        settings: GossipSettings,
        channel: SecureChannel,
        records: RecordStore,
        rng: random.Random,
        now: float,
    ) -> None:
        self.name = name
        self.addr: Address = (addr[0], addr[1])
        self.settings = settings
        self.channel = channel
        self.records = records
        self.rng = rng
        self.counters: Counter[str] = Counter()
        self._awareness = Awareness(settings.awareness_max_multiplier)
        self._me = Member(name, self.addr, MemberState.ALIVE, 0, now)
        self._members: dict[str, Member] = {name: self._me}
        self._order: list[str] = [name]  # probe order; also the pool for random picks
        self._order_index = 0
        self._seq = 0
        self._probe: _Probe | None = None
        self._relays: dict[int, _Relay] = {}
        self._suspicions: dict[str, Suspicion] = {}
        self._gone: dict[str, float] = {}  # dead or left member -> since
        self._queue = BroadcastQueue()
        self._wants = RecordWants(
            settings.record_want_delay_s,
            settings.record_want_retry_s,
            settings.record_want_attempts,
        )
        self._outbox: list[tuple[bytes, Address]] = []
        self._streams: list[tuple[Address, bytes]] = []
        self._events: deque[GossipEvent] = deque()
        self._left = False
        # Our network coordinate, set by whoever runs Vivaldi; sent in every probe reply.
        self.coordinate: wire.WireCoordinate | None = None
        # How long this host takes from reading a datagram to handing the answer to the socket
        # (set by the transport, which measures it): a probe reply counts it as held, so the
        # prober does not read our processing as network latency.
        self.reply_lag_s = 0.0
        # Our latency probes' stamps -> when their datagram actually left (datagrams_left): a
        # cold CPU takes a few hundred microseconds between stamping and sending.
        self._departures: dict[float, float] = {}
        self._joining: set[Address] = set()  # seeds whose join reply we wait for
        self._seeds: tuple[Address, ...] = ()  # asked again while no one else is alive
        # Record versions start at the channel epoch, which grows across restarts: a restarted
        # node's first record is newer than anything its previous life published.
        self._record_version = channel.epoch
        self._record_payload: bytes | None = None
        # Keyring commands from the operator, to and from other members (key_commands.py). The
        # wall clock (Unix seconds) is `now + wall_offset_s`; the transport sets the offset.
        self.key_commands = KeyCommands(name, channel.keyring)
        self.wall_offset_s = 0.0
        # Sealing overhead, measured with a real seal (it uses one seq number: harmless).
        overhead = len(channel.seal(b"")) + _SEAL_GROWTH_BYTES
        self._body_budget = settings.max_datagram_bytes - overhead - wire.COMPOUND_HEADER_BYTES
        # Timers start at random phases so nodes started together do not tick in lockstep.
        self._next_probe = now + rng.random() * settings.probe_interval_s
        self._next_gossip = now + rng.random() * settings.gossip_interval_s
        self._last_gossip = -math.inf
        self._next_push_pull = now + rng.random() * settings.push_pull_interval_s

    # ---- public API ----------------------------------------------------------------------------

    @property
    def incarnation(self) -> int:
        return self._me.incarnation

    @property
    def health_score(self) -> int:
        """Lifeguard's local health score: 0 healthy, up to awareness_max_multiplier - 1."""
        return self._awareness.score

    @property
    def probe_timeout_s(self) -> float:
        """The probe timeout in force now (stretched by the health score)."""
        return self._awareness.scale(self.settings.probe_timeout_s)

    @property
    def probe_interval_s(self) -> float:
        """The probe interval in force now (stretched by the health score)."""
        return self._awareness.scale(self.settings.probe_interval_s)

    @property
    def left(self) -> bool:
        return self._left

    def join(self, seeds: Sequence[tuple[str, int]], now: float) -> None:
        """Push-pull with every seed: learn the cluster, and let it learn us."""
        self._seeds = tuple((seed[0], seed[1]) for seed in seeds if (seed[0], seed[1]) != self.addr)
        self._send_joins()

    def _send_joins(self) -> None:
        for addr in self._seeds:
            request = self._seal_stream(self._push_pull_request(join=True))
            if request is not None:
                self._streams.append((addr, request))
                self._joining.add(addr)
                self.counters["joins_sent"] += 1

    def leave(self, now: float) -> None:
        """Say goodbye (LEFT broadcast) and stop probing; keep answering and gossiping."""
        if self._left:
            return
        self._left = True
        self._probe = None
        self._me.state = MemberState.LEFT
        self._me.state_change = now
        self._broadcast_member(self.name, wire.encode_left(self.name, self._me.incarnation))
        self._next_gossip = min(self._next_gossip, now)

    def send_probe(self, name: str, now: float) -> bool:
        """Send a latency probe to member `name`; its reply becomes an RttSample event.
        False when `name` is not a live member."""
        member = self._members.get(name)
        if member is None or member is self._me or member.dead_or_left:
            return False
        self.counters["latency_probe_bytes"] += self._send(member.addr, [wire.encode_probe(now)])
        self.counters["latency_probes"] += 1
        self._departures[now] = now  # until the transport says when it left
        while len(self._departures) > MAX_DEPARTURES:  # the oldest (lost) ones go first
            del self._departures[next(iter(self._departures))]
        return True

    def datagrams_left(self, made_at: float, at: float) -> None:
        """What we made at `made_at` (the `now` of a timer or send_probe call) left the host
        at `at`, by the transport's clock: a SWIM ping or latency probe made then counts its
        round trip from `at`."""
        if at < made_at:
            return
        probe = self._probe
        if probe is not None and probe.sent_at == made_at:
            probe.sent_at = at
        if made_at in self._departures:
            self._departures[made_at] = at

    def update_record(self, payload: bytes, now: float) -> int:
        """Publish our own record at the next version; returns that version."""
        self._record_version += 1
        self._record_payload = bytes(payload)
        self._publish_record()
        return self._record_version

    def start_key_command(
        self, op: str, key: bytes | None, now: float, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> bytes:
        """Apply a keyring command (install, use, remove a key, or list) here and send it to
        every member not held dead or left; KeyCommandDone(id) comes when all answered or the
        timeout passed. Returns the command id; ValueError for a bad command."""
        targets = [(m.name, m.addr) for m in self._members.values() if not m.dead_or_left]
        gone = [m.name for m in self._members.values() if m.dead_or_left]
        command_id = self.rng.randbytes(wire.KEY_COMMAND_ID_BYTES)
        wall = now + self.wall_offset_s
        sends = self.key_commands.start(
            command_id, op, key, targets, now, wall, timeout_s, not_asked=gone
        )
        for addr, message in sends:
            self._send(addr, [message])
        if not sends:
            self._emit(KeyCommandDone(command_id))
        return command_id

    def key_command_report(self, command_id: bytes) -> KeyCommandReport | None:
        """The report of a finished key command (None while it runs, or once long gone)."""
        return self.key_commands.report(command_id)

    def receive_datagram(
        self, data: bytes, addr: tuple[str, int], now: float, arrived: float | None = None
    ) -> None:
        """One datagram from `addr`. `arrived`: when it reached this host (the kernel's receive
        stamp, on the clock of `now`), if the transport knows; latency samples count from it,
        so time spent waiting for this process to wake is not read as network latency."""
        try:
            sender, body = self.channel.open(data)
        except Dropped as drop:
            self.counters["datagrams_dropped"] += 1
            self.counters[f"dropped_{drop.reason}"] += 1
            return
        self.counters["datagrams_in"] += 1
        source: Address = (addr[0], addr[1])
        try:
            # A stamp more than a second off is a clock step, not a wait: fall back to now.
            arrival = now if arrived is None or abs(now - arrived) > 1.0 else arrived
            for message in wire.decode_datagram(body, self.counters):
                self._dispatch(message, sender, source, now, arrival)
        except Exception:  # a bug must not take the node down: count it, tests assert zero
            self.counters["internal_error"] += 1

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, tuple[str, int]]]:
        out, self._outbox = self._outbox, []
        return out

    def streams_to_open(self, now: float) -> list[tuple[tuple[str, int], bytes]]:
        out, self._streams = self._streams, []
        return out

    def receive_stream_request(self, data: bytes, now: float) -> bytes:
        try:
            sender, body = self.channel.open(data)
        except Dropped as drop:
            self.counters["streams_dropped"] += 1
            self.counters[f"dropped_{drop.reason}"] += 1
            return b""
        try:
            message = wire.decode_stream(body)
        except wire.MessageError:
            self.counters["stream_malformed"] += 1
            return b""
        try:
            if isinstance(message, wire.PushPullRequest):
                self.counters["push_pull_in"] += 1
                self._merge(message.states, sender, now)
                self._offer_all(message.records)
                self._check_own_version(message.digest)
                records = self._records_newer_than(message.digest, len(self._members))
                reply = wire.encode_push_pull_reply(self._states(), self._digest(), records)
                return self._seal_stream(reply) or b""
            if isinstance(message, wire.PushPullRecords):
                self.counters["push_pull_records_in"] += 1
                self._offer_all(message.records)
                return b""
        except Exception:
            self.counters["internal_error"] += 1
            return b""
        self.counters["stream_unexpected"] += 1
        return b""

    def receive_stream_reply(self, data: bytes, addr: tuple[str, int], now: float) -> None:
        if not data:
            return  # the empty reply to a one-way stream, or a peer that dropped our request
        try:
            sender, body = self.channel.open(data)
        except Dropped as drop:
            self.counters["streams_dropped"] += 1
            self.counters[f"dropped_{drop.reason}"] += 1
            return
        try:
            message = wire.decode_stream(body)
        except wire.MessageError:
            self.counters["stream_malformed"] += 1
            return
        if not isinstance(message, wire.PushPullReply):
            self.counters["stream_unexpected"] += 1
            return
        try:
            self.counters["push_pull_replies"] += 1
            peer: Address = (addr[0], addr[1])
            if peer in self._joining:
                # News that raced with our join (members who joined the seed just after us,
                # gossip sent while the cluster was tiny) is caught by a second push-pull soon.
                self._joining.discard(peer)
                self._next_push_pull = min(
                    self._next_push_pull, now + self.rng.uniform(*_AFTER_JOIN_PUSH_PULL_S)
                )
            self._merge(message.states, sender, now)
            self._offer_all(message.records)
            self._check_own_version(message.digest)
            missing = self._records_newer_than(message.digest, 0)
            if missing:
                sealed = self._seal_stream(wire.encode_push_pull_records(missing))
                if sealed is not None:
                    self._streams.append(((addr[0], addr[1]), sealed))
        except Exception:
            self.counters["internal_error"] += 1

    def get_timer(self) -> float | None:
        deadlines: list[float] = []
        if not self._left:
            deadlines += (self._next_probe, self._next_push_pull)
        probe = self._probe
        if probe is not None and not probe.acked and not probe.indirect_sent:
            deadlines.append(probe.ack_deadline)
        if self._relays:
            deadlines.append(min(r.deadline for r in self._relays.values()))
        if self._suspicions:
            deadlines.append(min(s.deadline for s in self._suspicions.values()))
        if self._queue:
            deadlines.append(self._next_gossip)
        if self._gone:
            deadlines.append(min(self._gone.values()) + self.settings.reap_after_s)
        want = self._wants.next_deadline()
        if want is not None:
            deadlines.append(want)
        key_command = self.key_commands.next_deadline()
        if key_command is not None:
            deadlines.append(key_command)
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> None:
        try:
            self._handle_timer(now)
        except Exception:
            self.counters["internal_error"] += 1

    def next_event(self) -> GossipEvent | None:
        return self._events.popleft() if self._events else None

    def members(self) -> list[MemberView]:
        return [MemberView(m.name, m.addr, m.state, m.incarnation) for m in self._members.values()]

    def member(self, name: str) -> MemberView | None:
        """One member as this node sees it (None when unknown or reaped)."""
        m = self._members.get(name)
        return None if m is None else MemberView(m.name, m.addr, m.state, m.incarnation)

    def count(self, state: MemberState) -> int:
        """How many members (self included) this node holds in `state`."""
        return sum(1 for m in self._members.values() if m.state is state)

    # ---- timers --------------------------------------------------------------------------------

    def _handle_timer(self, now: float) -> None:
        probe = self._probe
        if (
            probe is not None
            and not probe.acked
            and not probe.indirect_sent
            and now >= probe.ack_deadline
        ):
            self._send_indirect(probe)
        if self._relays:
            for seq in [s for s, r in self._relays.items() if now >= r.deadline]:
                relay = self._relays.pop(seq)
                if relay.nack:
                    self._send(relay.origin, [wire.encode_nack(relay.origin_seq)])
                    self.counters["nacks_sent"] += 1
        if not self._left and now >= self._next_probe:
            self._finish_probe(now)
            self._start_probe(now)
        if self._suspicions:
            for name in [n for n, s in self._suspicions.items() if now >= s.deadline]:
                del self._suspicions[name]
                member = self._members.get(name)
                if member is not None and member.state is MemberState.SUSPECT:
                    self.counters["suspicions_fired"] += 1
                    self._on_dead(name, member.incarnation, self.name, now, left=False)
        if now >= self._next_gossip:
            self._next_gossip = now + self.settings.gossip_interval_s
            if self._queue:
                self._last_gossip = now
                self._gossip(now)
        if not self._left and now >= self._next_push_pull:
            self._next_push_pull = now + _push_pull_scale(
                self.settings.push_pull_interval_s, len(self._members)
            )
            self._push_pull_tick()
        if self._wants:
            self._ask_for_records(now)
        resend, finished = self.key_commands.handle_timer(now)
        for addr, message in resend:
            self._send(addr, [message])
        for command_id in finished:
            self._emit(KeyCommandDone(command_id))
        if self._gone:
            after = self.settings.reap_after_s  # the same sum as get_timer: no float gap
            for name in [n for n, t in self._gone.items() if t + after <= now]:
                self._reap(name)

    def _start_probe(self, now: float) -> None:
        self._next_probe = now + self._awareness.scale(self.settings.probe_interval_s)
        target = self._next_probe_target()
        if target is None:
            return
        self._seq += 1
        messages = [wire.encode_ping(self._seq, target.name)]
        if target.state is MemberState.SUSPECT:
            # tell the suspect at once, so it can refute (memberlist does the same)
            messages.append(wire.encode_suspect(target.name, target.incarnation, self.name))
        self._send(target.addr, messages)
        self.counters["probes"] += 1
        self._probe = _Probe(
            target.name, self._seq, now + self._awareness.scale(self.settings.probe_timeout_s), now
        )

    def _next_probe_target(self) -> Member | None:
        for _ in range(len(self._order) + 1):
            if self._order_index >= len(self._order):
                self._order = list(self._members)
                self.rng.shuffle(self._order)
                self._order_index = 0
            name = self._order[self._order_index]
            self._order_index += 1
            member = self._members.get(name)
            if member is not None and member is not self._me and not member.dead_or_left:
                return member
        return None

    def _send_indirect(self, probe: _Probe) -> None:
        probe.indirect_sent = True
        target = self._members.get(probe.target)
        if target is None:
            return
        helpers = self._random_members(
            self.settings.indirect_checks,
            lambda m: m.state is MemberState.ALIVE and m.name != probe.target,
        )
        for helper in helpers:
            self._send(
                helper.addr,
                [wire.encode_indirect_ping(probe.seq, target.name, target.addr, True)],
            )
        probe.expected_nacks = len(helpers)
        self.counters["indirect_probes"] += 1

    def _finish_probe(self, now: float) -> None:
        probe, self._probe = self._probe, None
        if probe is None or probe.acked:
            return
        # Lifeguard: with helpers, each missing nack says the problem may be ours; without,
        # any failed probe does.
        if probe.expected_nacks > 0:
            self._awareness.apply_delta(max(0, probe.expected_nacks - probe.nacks))
        else:
            self._awareness.apply_delta(1)
        self.counters["probes_failed"] += 1
        target = self._members.get(probe.target)
        if target is not None and not target.dead_or_left:
            self._on_suspect(target.name, target.incarnation, self.name, now)

    def _gossip(self, now: float) -> None:
        horizon = now - self.settings.gossip_to_dead_s

        def wanted(m: Member) -> bool:
            return not m.dead_or_left or m.state_change >= horizon

        for member in self._random_members(self.settings.gossip_fanout, wanted):
            if not self._queue:
                break
            self._send(member.addr, [])
            self.counters["gossip_sent"] += 1

    def _push_pull_tick(self) -> None:
        alone = all(m is self._me or m.dead_or_left for m in self._members.values())
        if self._seeds and alone:
            self.counters["rejoins"] += 1
            self._send_joins()  # alone: the seeds may have come up since
        targets = self._random_members(1, lambda m: m.state is MemberState.ALIVE)
        targets += self._random_members(1, lambda m: m.state is MemberState.DEAD)
        for target in targets:
            request = self._seal_stream(self._push_pull_request(join=False))
            if request is not None:
                self._streams.append((target.addr, request))
                self.counters["push_pull_out"] += 1

    def _reap(self, name: str) -> None:
        del self._gone[name]
        if self._members.pop(name, None) is None:
            return
        self._suspicions.pop(name, None)
        self._queue.discard(("m", name))
        self._queue.discard(("r", name))
        self._queue.discard(("v", name))
        self._wants.forget(name)
        try:
            self.records.forget(name)
        except Exception:
            self.counters["internal_error"] += 1
        self.channel.forget(name)
        self._emit(MemberReaped(name))
        self.counters["reaped"] += 1

    def _random_members(self, k: int, accept: Callable[[Member], bool]) -> list[Member]:
        """Up to k distinct random members other than us that `accept` admits."""
        if k <= 0:
            return []
        pool = self._order
        chosen: dict[str, Member] = {}
        if len(pool) <= 4 * k + 16:
            candidates = [
                m
                for name in set(pool)
                if (m := self._members.get(name)) is not None and m is not self._me and accept(m)
            ]
            candidates.sort(key=lambda m: m.name)  # set order is not deterministic across runs
            return self.rng.sample(candidates, min(k, len(candidates)))
        for _ in range(3 * k + 8):
            name = pool[self.rng.randrange(len(pool))]
            member = self._members.get(name)
            if (
                member is not None
                and member is not self._me
                and name not in chosen
                and accept(member)
            ):
                chosen[name] = member
                if len(chosen) >= k:
                    break
        return list(chosen.values())

    # ---- sending -------------------------------------------------------------------------------

    def _send(self, addr: Address, messages: list[bytes]) -> int:
        """Queue one datagram of `messages`, with gossip piggybacked in the room left.

        Returns the bytes the datagram costs beyond the piggybacked gossip (which would have
        gone out anyway): its own messages, framing and the channel's seal."""
        room = self._body_budget - sum(len(m) for m in messages)
        piggyback: list[bytes] = []
        if self._queue:
            limit = retransmit_limit(self.settings.retransmit_mult, len(self._members))
            piggyback = self._queue.take(room, limit)
        if not messages and not piggyback:
            return 0
        datagram = self.channel.seal(wire.compound(messages + piggyback))
        self._outbox.append((datagram, addr))
        self.counters["datagrams_out"] += 1
        return len(datagram) - sum(len(m) for m in piggyback)

    def _seal_stream(self, body: bytes) -> bytes | None:
        try:
            return self.channel.seal(body)
        except ValueError:
            self.counters["stream_too_big"] += 1
            return None

    def _push_pull_request(self, join: bool) -> bytes:
        own: list[wire.Record] = []
        if self._record_payload is not None:
            own.append(wire.Record(self.name, self._record_version, self._record_payload))
        return wire.encode_push_pull_request(join, self._states(), self._digest(), own)

    def _states(self) -> list[wire.StateEntry]:
        return [
            wire.StateEntry(m.name, m.addr, m.incarnation, m.state) for m in self._members.values()
        ]

    def _digest(self) -> dict[str, int]:
        try:
            return dict(self.records.digest())
        except Exception:
            self.counters["internal_error"] += 1
            return {}

    def _records_newer_than(self, digest: dict[str, int], n_states: int) -> list[wire.Record]:
        budget = _STREAM_BUDGET_BYTES - n_states * _STATE_ESTIMATE_BYTES
        out: list[wire.Record] = []
        for name, version in self._digest().items():
            if digest.get(name, -1) >= version:
                continue
            held = self.records.get(name)
            if held is None:
                continue
            size = len(held[1]) + len(name) + 16
            if size > budget:
                self.counters["push_pull_records_deferred"] += 1
                continue
            budget -= size
            out.append(wire.Record(name, held[0], held[1]))
        return out

    # ---- receiving -----------------------------------------------------------------------------

    def _dispatch(
        self,
        message: wire.DatagramMessage,
        sender: str,
        src: Address,
        now: float,
        arrived: float,
    ) -> None:
        if isinstance(message, wire.Ping):
            if message.target != self.name:
                self.counters["ping_wrong_target"] += 1
                return
            self._send(
                src, [wire.encode_ack(message.seq, max(0.0, now - arrived) + self.reply_lag_s)]
            )
        elif isinstance(message, wire.Ack):
            self._on_ack(message.seq, arrived, message.held)
        elif isinstance(message, wire.Nack):
            probe = self._probe
            if probe is not None and probe.seq == message.seq:
                probe.nacks += 1
        elif isinstance(message, wire.IndirectPing):
            self._on_indirect_ping(message, src, now)
        elif isinstance(message, wire.Alive):
            self._on_alive(message.name, message.incarnation, message.addr, now, rebroadcast=True)
        elif isinstance(message, wire.Suspect):
            self._on_suspect(message.name, message.incarnation, message.accuser, now)
        elif isinstance(message, wire.Dead):
            self._on_dead(message.name, message.incarnation, message.accuser, now, left=False)
        elif isinstance(message, wire.Left):
            self._on_dead(message.name, message.incarnation, message.name, now, left=True)
        elif isinstance(message, wire.Record):
            self._on_record(message)
        elif isinstance(message, wire.RecordVersion):
            self._on_record_version(message, src, now)
        elif isinstance(message, wire.RecordWant):
            self._on_record_want(message, src)
        elif isinstance(message, wire.Probe):
            held = max(0.0, now - arrived) + self.reply_lag_s
            reply = wire.encode_probe_reply(message.stamp, self.coordinate, held)
            self.counters["latency_probe_bytes"] += self._send(src, [reply])
            self.counters["probes_answered"] += 1
        elif isinstance(message, wire.ProbeReply):
            age = arrived - self._departures.pop(message.stamp, message.stamp)
            if not 0.0 <= age <= _MAX_PROBE_AGE_S or not 0.0 <= message.held <= age:
                self.counters["probe_replies_refused"] += 1
                return
            rtt_s = age - message.held
            self._emit(RttSample(sender, rtt_s * 1000.0, message.coordinate))
        elif isinstance(message, wire.KeyCommand):
            ack = self.key_commands.on_command(message, now + self.wall_offset_s)
            self._send(src, [ack])
        elif isinstance(message, wire.KeyCommandAck):
            done = self.key_commands.on_ack(message, sender)
            if done is not None:
                self._emit(KeyCommandDone(done))

    def _on_ack(self, seq: int, arrived: float, held: float) -> None:
        probe = self._probe
        if probe is not None and probe.seq == seq:
            if not probe.acked:
                probe.acked = True
                self._awareness.apply_delta(-1)
                self.counters["acks"] += 1
                rtt_s = arrived - probe.sent_at - held
                # Only the target itself can have answered a direct ping: a latency sample.
                if not probe.indirect_sent and held >= 0.0 and rtt_s >= 0.0:
                    self._emit(RttSample(probe.target, rtt_s * 1000.0, None))
            return
        relay = self._relays.pop(seq, None)
        if relay is not None:
            self._send(relay.origin, [wire.encode_ack(relay.origin_seq)])
            self.counters["acks_relayed"] += 1
            return
        self.counters["acks_late"] += 1

    def _on_indirect_ping(self, message: wire.IndirectPing, src: Address, now: float) -> None:
        if len(self._relays) >= MAX_RELAYS:
            self.counters["relays_refused"] += 1
            return
        self._seq += 1
        self._relays[self._seq] = _Relay(
            src, message.seq, now + self.settings.probe_timeout_s, message.nack
        )
        self._send(message.target_addr, [wire.encode_ping(self._seq, message.target)])
        self.counters["pings_relayed"] += 1

    def _merge(self, states: Sequence[wire.StateEntry], sender: str, now: float) -> None:
        for s in states:
            if s.state is MemberState.ALIVE:
                # third-party states are not re-gossiped: the peer we pulled them from and
                # its own gossip already spread them; news about the peer itself is fresh.
                self._on_alive(s.name, s.incarnation, s.addr, now, rebroadcast=s.name == sender)
            elif s.state is MemberState.LEFT:
                self._on_dead(s.name, s.incarnation, s.name, now, left=True)
            else:
                # a remote "dead" only makes us suspect: it may be stale (memberlist)
                self._on_suspect(s.name, s.incarnation, self.name, now)

    def _on_alive(
        self, name: str, incarnation: int, addr: Address, now: float, rebroadcast: bool
    ) -> None:
        if name == self.name:
            if not self._left and incarnation > self._me.incarnation:
                self._refute(incarnation)
            return
        member = self._members.get(name)
        if member is None:
            member = Member(name, addr, MemberState.ALIVE, incarnation, now)
            self._members[name] = member
            # a newcomer is probed within this round, at a random place
            self._order.insert(self.rng.randint(self._order_index, len(self._order)), name)
            self._emit(MemberJoined(name, addr))
        else:
            if not alive_overrides(member, incarnation):
                return
            was = member.state
            member.incarnation = incarnation
            member.addr = addr
            if was is not MemberState.ALIVE:
                member.state = MemberState.ALIVE
                member.state_change = now
                self._suspicions.pop(name, None)
                self._gone.pop(name, None)
                self._emit(MemberAlive(name))
        if rebroadcast:
            self._broadcast_member(name, wire.encode_alive(name, incarnation, addr))

    def _accused(self, name: str, incarnation: int) -> Member | None:
        """The member suspect or dead news is about; None when it is unknown, the news is stale,
        or it is about us (then we refute)."""
        member = self._members.get(name)
        if member is None or incarnation < member.incarnation:
            return None
        if member is self._me:
            if not self._left:
                self._refute(incarnation)
            return None
        return member

    def _on_suspect(self, name: str, incarnation: int, accuser: str, now: float) -> None:
        member = self._accused(name, incarnation)
        if member is None:
            return
        suspicion = self._suspicions.get(name)
        if suspicion is not None and member.state is MemberState.SUSPECT:
            if suspicion.confirm(accuser):
                self.counters["suspicion_confirmations"] += 1
                self._broadcast_member(name, wire.encode_suspect(name, incarnation, accuser))
            return
        if not suspect_overrides(member, incarnation):
            return
        member.state = MemberState.SUSPECT
        member.incarnation = incarnation
        member.state_change = now
        self._broadcast_member(name, wire.encode_suspect(name, incarnation, accuser))
        n = len(self._members)
        k = self.settings.indirect_checks if n - 2 >= self.settings.indirect_checks else 0
        low = suspicion_min_timeout(self.settings.suspicion_mult, n, self.settings.probe_interval_s)
        high = self.settings.suspicion_max_timeout_mult * low
        self._suspicions[name] = Suspicion(accuser, k, low, high, now)
        self._emit(MemberSuspect(name))

    def _on_dead(self, name: str, incarnation: int, accuser: str, now: float, left: bool) -> None:
        member = self._accused(name, incarnation)
        if member is None:
            return
        if not dead_overrides(member, incarnation):
            return
        member.state = MemberState.LEFT if left else MemberState.DEAD
        member.incarnation = incarnation
        member.state_change = now
        self._suspicions.pop(name, None)
        self._gone[name] = now
        if left:
            self._broadcast_member(name, wire.encode_left(name, incarnation))
            self._emit(MemberLeft(name))
        else:
            self._broadcast_member(name, wire.encode_dead(name, incarnation, accuser))
            self._emit(MemberDead(name))

    def _refute(self, accused: int) -> None:
        self._me.incarnation = max(self._me.incarnation + 1, accused + 1)
        self._awareness.apply_delta(1)
        self._broadcast_member(
            self.name, wire.encode_alive(self.name, self._me.incarnation, self.addr)
        )
        self.counters["refutes"] += 1

    def _on_record(self, record: wire.Record) -> None:
        if record.name == self.name:
            self._check_own_version({self.name: record.version})
            return
        if self._offer(record):
            self._gossip_record(record)

    def _gossip_record(self, record: wire.Record) -> bool:
        """Queue a record and its announcement; False when it is too big for a datagram."""
        encoded = self._record_message(record.name, record.version, record.payload)
        if encoded is None:
            return False
        self._queue.queue(("r", record.name), encoded)
        self._queue.queue(
            ("v", record.name),
            wire.encode_record_version(record.name, record.version),
            self.settings.record_announce_scale,
        )
        self._hurry_gossip()
        return True

    def _on_record_version(self, message: wire.RecordVersion, src: Address, now: float) -> None:
        if message.name == self.name:
            self._check_own_version({self.name: message.version})
            return
        if self._held_version(message.name) >= message.version:
            return
        if not self._wants.announced(message.name, message.version, src, now):
            self.counters["record_wants_full"] += 1

    def _on_record_want(self, message: wire.RecordWant, src: Address) -> None:
        held = self._held(message.name)  # our own record is stored there too
        if held is None or held[0] < message.version:
            self.counters["record_wants_unmet"] += 1
            return
        encoded = self._record_message(message.name, held[0], held[1])
        if encoded is None:
            self.counters["record_wants_too_big"] += 1
            return
        self._send(src, [encoded])
        self.counters["record_wants_answered"] += 1

    def _record_message(self, name: str, version: int, payload: bytes) -> bytes | None:
        """A RECORD message, or None when it is too big to ride in a datagram beside a ping."""
        encoded = wire.encode_record(name, version, payload)
        return encoded if len(encoded) <= self._body_budget - _RECORD_ROOM_BYTES else None

    def _held(self, name: str) -> tuple[int, bytes] | None:
        try:
            return self.records.get(name)
        except Exception:
            self.counters["internal_error"] += 1
            return None

    def _held_version(self, name: str) -> int:
        held = self._held(name)
        return -1 if held is None else held[0]

    def _ask_for_records(self, now: float) -> None:
        for name, version, source in self._wants.due(now):
            self._send(source, [wire.encode_record_want(name, version)])
            self.counters["record_wants_sent"] += 1

    def _broadcast_member(self, name: str, message: bytes) -> None:
        self._queue.queue(("m", name), message, self.settings.membership_retransmit_scale)
        self._hurry_gossip()

    def _hurry_gossip(self) -> None:
        """Fresh news: tick soon, but no sooner than a quarter interval after the last tick."""
        soonest = self._last_gossip + self.settings.gossip_interval_s / 4
        self._next_gossip = min(self._next_gossip, soonest)

    def _offer(self, record: wire.Record) -> bool:
        try:
            stored = self.records.offer(record.name, record.version, record.payload)
        except Exception:
            self.counters["internal_error"] += 1
            return False
        if stored:
            self._wants.satisfied(record.name, record.version)
            self.counters["records_stored"] += 1
            self._emit(RecordChanged(record.name, record.version))
        return bool(stored)

    def _offer_all(self, records: Sequence[wire.Record]) -> None:
        for record in records:
            if record.name == self.name:
                self._check_own_version({self.name: record.version})
            else:
                self._offer(record)

    def _check_own_version(self, digest: dict[str, int]) -> None:
        """Someone holds our record at a version >= ours (we restarted): jump past it."""
        held = digest.get(self.name)
        if held is None or held <= self._record_version:
            return
        self._record_version = held + 1
        self.counters["record_version_jumps"] += 1
        if self._record_payload is not None:
            self._publish_record()

    def _publish_record(self) -> None:
        assert self._record_payload is not None
        record = wire.Record(self.name, self._record_version, self._record_payload)
        self._offer(record)
        if not self._gossip_record(record):
            self._queue.discard(("r", self.name))  # too big: push-pull only
            self._queue.discard(("v", self.name))
            self.counters["records_push_pull_only"] += 1

    def _emit(self, event: GossipEvent) -> None:
        if len(self._events) >= MAX_PENDING_EVENTS:
            self._events.popleft()
            self.counters["events_dropped"] += 1
        self._events.append(event)

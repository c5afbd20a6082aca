"""Record announcements and pulls: a node that missed a record's push asks for it, and gets it.

Driven by hand (one GossipNode, sealed datagrams, a fake clock) for the exact exchange, and
through the simulator for what a user sees: every record change reaches every node quickly,
with no straggler waiting tens of seconds for push-pull.
"""

from __future__ import annotations

import random

from hubhop.core import swim_messages as wire
from hubhop.core.broadcasts import BroadcastQueue
from hubhop.core.members import MemberState
from hubhop.core.record_wants import RecordWants
from hubhop.core.secure_channel import SecureChannel
from hubhop.core.swim import GossipNode, GossipSettings
from hubhop.sim import Simulator
from tests.gossip.test_swim_node import addr_of, make_node

SETTINGS = GossipSettings()


def deliver(node: GossipNode, peer: SecureChannel, messages: list[bytes], now: float) -> None:
    node.receive_datagram(peer.seal(wire.compound(messages)), addr_of(peer.sender), now)


def sent(
    node: GossipNode, peers: dict[str, SecureChannel], now: float
) -> list[tuple[str, wire.DatagramMessage]]:
    """Every message `node` sends by `now`, as (destination peer, message)."""
    by_addr = {addr_of(p): p for p in peers}
    out = []
    for data, addr in node.datagrams_to_send(now):
        _sender, body = peers["p1"].open(data)
        for message in wire.decode_datagram(body, node.counters):
            out.append((by_addr[(addr[0], addr[1])], message))
    return out


def run_timers(node: GossipNode, until: float) -> None:
    now = 0.0
    while (timer := node.get_timer()) is not None and timer <= until:
        now = max(now, timer)
        node.handle_timer(now)


def wants(messages: list[tuple[str, wire.DatagramMessage]]) -> list[tuple[str, wire.RecordWant]]:
    return [(to, m) for to, m in messages if isinstance(m, wire.RecordWant)]


def test_a_missed_record_is_asked_of_its_announcer_after_a_grace_period() -> None:
    node, peers = make_node()
    node.datagrams_to_send(0.0)
    deliver(node, peers["p3"], [wire.encode_record_version("p2", 5)], 1.0)
    run_timers(node, 1.0 + SETTINGS.record_want_delay_s - 0.01)
    assert wants(sent(node, peers, 1.2)) == []  # the record may still be on its way
    run_timers(node, 1.0 + SETTINGS.record_want_delay_s)
    assert wants(sent(node, peers, 1.3)) == [("p3", wire.RecordWant("p2", 5))]

    deliver(node, peers["p3"], [wire.encode_record("p2", 5, b"capacity")], 1.3)
    assert node.records.get("p2") == (5, b"capacity")
    run_timers(node, 10.0)
    assert wants(sent(node, peers, 10.0)) == []  # satisfied: never asked again


def test_a_record_riding_with_its_announcement_is_never_asked_for() -> None:
    node, peers = make_node()
    deliver(
        node,
        peers["p3"],
        [wire.encode_record_version("p2", 5), wire.encode_record("p2", 5, b"capacity")],
        1.0,
    )
    run_timers(node, 10.0)
    assert wants(sent(node, peers, 10.0)) == []
    assert node.counters["record_wants_sent"] == 0


def test_an_unanswered_want_is_retried_then_left_to_push_pull() -> None:
    node, peers = make_node()
    deliver(node, peers["p3"], [wire.encode_record_version("p2", 5)], 1.0)
    run_timers(node, 2.0)
    deliver(node, peers["p4"], [wire.encode_record_version("p2", 6)], 2.0)  # newer, elsewhere
    run_timers(node, 30.0)
    asked = wants(sent(node, peers, 30.0))
    assert len(asked) == SETTINGS.record_want_attempts
    assert asked[0] == ("p3", wire.RecordWant("p2", 5))
    assert asked[-1] == ("p4", wire.RecordWant("p2", 6))  # the latest announcer, latest version


def test_a_want_is_answered_with_the_record_held_but_never_with_an_older_one() -> None:
    node, peers = make_node()
    deliver(node, peers["p3"], [wire.encode_record("p2", 5, b"capacity")], 1.0)
    node.update_record(b"mine", 1.0)
    own_version = node.records.get("me")
    assert own_version is not None
    node.datagrams_to_send(1.0)
    deliver(node, peers["p4"], [wire.encode_record_want("p2", 5)], 1.1)
    deliver(node, peers["p4"], [wire.encode_record_want("me", own_version[0])], 1.1)
    deliver(node, peers["p4"], [wire.encode_record_want("p2", 6)], 1.1)  # newer than we hold
    records = [(to, m) for to, m in sent(node, peers, 1.1) if isinstance(m, wire.Record)]
    assert ("p4", wire.Record("p2", 5, b"capacity")) in records
    assert ("p4", wire.Record("me", own_version[0], b"mine")) in records
    assert not any(m.version == 6 for _to, m in records)
    assert node.counters["record_wants_unmet"] == 1


def test_announcements_of_what_we_hold_or_our_own_record_open_no_want() -> None:
    node, peers = make_node()
    deliver(node, peers["p3"], [wire.encode_record("p2", 5, b"capacity")], 1.0)
    deliver(node, peers["p3"], [wire.encode_record_version("p2", 4)], 1.0)
    deliver(node, peers["p3"], [wire.encode_record_version("p2", 5)], 1.0)
    run_timers(node, 10.0)
    assert wants(sent(node, peers, 10.0)) == []


def test_open_wants_are_bounded() -> None:
    wants_ = RecordWants(delay_s=0.2, retry_s=0.5, attempts=3)
    source = ("10.0.0.1", 7946)
    accepted = sum(wants_.announced(f"n{i}", 1, source, 0.0) for i in range(5000))
    assert accepted == len(wants_) == 4096
    assert wants_.announced("n1", 2, source, 0.0)  # an open want can still be raised


def test_small_news_is_sent_scale_times_the_limit() -> None:
    queue = BroadcastQueue()
    queue.queue("record", b"r" * 300)
    queue.queue("announce", b"v" * 20, scale=3)
    counts = {b"r" * 300: 0, b"v" * 20: 0}
    for _ in range(20):
        for data in queue.take(1000, limit=4):
            counts[data] += 1
    assert counts == {b"r" * 300: 4, b"v" * 20: 12}


def test_every_record_change_reaches_every_node_within_a_second() -> None:
    # 150 changes in an 8-node cluster, one at a time. With records pushed only by gossip,
    # about one change in twenty left a node waiting 5-15 s for push-pull (simulated).
    sim = Simulator(seed=3, record_events=False)
    sim.add_nodes(8, stagger_s=0.01)
    assert sim.run_until_true(sim.converged, 10.0) is not None
    rng = random.Random(3)
    slowest = []
    for _ in range(150):
        origin = sim.nodes[f"n{rng.randint(1, 8)}"]
        version = origin.node.update_record(rng.randbytes(300), sim.now)
        sim.touch(origin.name)
        sim.track_record(origin.name, version)
        sim.run_until_true(lambda o=origin.name: len(sim.arrivals[o]) >= 7, 30.0, 0.05)
        slowest.append(sim.dissemination(origin.name).t100)
        sim.run_for(0.3)
    assert None not in slowest
    assert max(t for t in slowest if t is not None) < 1.0
    assert sim.counters()["record_wants_answered"] > 0  # the pull did some of the work
    assert all(sn.node.count(MemberState.ALIVE) == 8 for sn in sim.live())


def test_fresh_news_does_not_wait_for_a_gossip_tick() -> None:
    # Even while earlier news is still being gossiped, a change hops node to node at link speed
    # (2 ms links here), not at half a 0.1 s gossip interval per hop.
    sim = Simulator(seed=5, record_events=False)
    sim.add_nodes(32, stagger_s=0.01)
    assert sim.run_until_true(sim.converged, 10.0) is not None
    sim.run_for(5.0)
    sim.nodes["n3"].node.update_record(b"y" * 300, sim.now)
    sim.touch("n3")
    sim.run_for(0.15)  # n3's record and its announcement are still in every queue
    origin = sim.nodes["n9"]
    version = origin.node.update_record(b"x" * 300, sim.now)
    sim.touch(origin.name)
    sim.track_record(origin.name, version)
    sim.run_for(2.0)
    spread = sim.dissemination(origin.name)
    assert spread.t50 is not None and spread.t50 < SETTINGS.gossip_interval_s / 2

"""Latency probes on the gossip socket: a probe is echoed with the replier's coordinate, the echo
becomes an RTT sample, and SWIM's own direct pings count as samples too. Hand-driven, fake clock."""

from __future__ import annotations

import statistics

import pytest

from hubhop.core import swim_messages as wire
from hubhop.core.swim import RttSample
from hubhop.sim import Simulator
from tests.gossip.test_record_pull import deliver, sent
from tests.gossip.test_swim_node import addr_of, make_node

COORD = wire.WireCoordinate((1.5,) * 8, 0.25, 0.375, 0.0)  # exact in float32, as sent


def samples(node: object) -> list[RttSample]:
    out = []
    while (event := node.next_event()) is not None:  # type: ignore[attr-defined]
        if isinstance(event, RttSample):
            out.append(event)
    return out


def test_a_probe_is_echoed_with_our_coordinate() -> None:
    node, peers = make_node()
    node.coordinate = COORD
    node.datagrams_to_send(0.0)
    deliver(node, peers["p2"], [wire.encode_probe(41.25)], 2.0)
    replies = [(to, m) for to, m in sent(node, peers, 2.0) if isinstance(m, wire.ProbeReply)]
    assert replies == [("p2", wire.ProbeReply(41.25, COORD))]


def test_a_probe_reply_becomes_a_sample_of_the_round_trip() -> None:
    node, peers = make_node()
    samples(node)
    assert node.send_probe("p3", 5.0)
    probes = [(to, m) for to, m in sent(node, peers, 5.0) if isinstance(m, wire.Probe)]
    assert probes == [("p3", wire.Probe(5.0))]
    deliver(node, peers["p3"], [wire.encode_probe_reply(5.0, COORD)], 5.0042)
    [sample] = samples(node)
    assert sample.name == "p3" and sample.coordinate == COORD
    assert abs(sample.rtt_ms - 4.2) < 1e-6


def test_replies_with_impossible_stamps_are_refused() -> None:
    node, peers = make_node()
    samples(node)
    deliver(node, peers["p3"], [wire.encode_probe_reply(9.0, None)], 5.0)  # from the future
    deliver(node, peers["p3"], [wire.encode_probe_reply(1.0, None)], 50.0)  # far too late
    assert samples(node) == []
    assert node.counters["probe_replies_refused"] == 2


def test_only_live_members_are_probed() -> None:
    node, _peers = make_node()
    assert not node.send_probe("me", 1.0)
    assert not node.send_probe("stranger", 1.0)


def test_direct_swim_pings_give_samples_without_coordinates() -> None:
    sim = Simulator(seed=2)
    sim.add_nodes(4, stagger_s=0.01)
    sim.run_for(5.0)
    got = [e for _t, e in sim.nodes["n1"].events if isinstance(e, RttSample)]
    assert len(got) >= 5  # a ping per 0.5 s, every one acked on a clean network
    assert all(e.coordinate is None for e in got)
    # the simulator's links take 2-3 ms each way
    assert all(4.0 <= e.rtt_ms <= 6.5 for e in got), [e.rtt_ms for e in got]


def test_the_repliers_hold_time_is_taken_off_the_round_trip() -> None:
    # The replier read the probe 0.3 ms after it reached its host (a sleeping CPU waking up),
    # and its transport measured 0.1 ms from reading to sending an answer: it says it held the
    # probe 0.4 ms, and the prober's sample is the network's share alone.
    replier, peers = make_node()
    replier.reply_lag_s = 0.0001
    replier.datagrams_to_send(0.0)
    deliver_at = peers["p2"].seal(wire.compound([wire.encode_probe(7.0)]))
    replier.receive_datagram(deliver_at, addr_of("p2"), 2.0003, arrived=2.0)
    [(_, reply)] = [(to, m) for to, m in sent(replier, peers, 2.0003)
                    if isinstance(m, wire.ProbeReply)]  # fmt: skip
    assert abs(reply.held - 0.0004) < 1e-9

    prober, peers = make_node()
    samples(prober)
    assert prober.send_probe("p3", 5.0)
    prober.datagrams_left(5.0, 5.0002)  # stamped at 5.0, handed to the socket 0.2 ms later
    reply_bytes = peers["p3"].seal(wire.compound([wire.encode_probe_reply(5.0, COORD, 0.0004)]))
    prober.receive_datagram(reply_bytes, addr_of("p3"), 5.0050, arrived=5.0046)
    [sample] = samples(prober)
    # arrived 5.0046 - left 5.0002 - held 0.0004 = 4.0 ms of network
    assert abs(sample.rtt_ms - 4.0) < 1e-6


def test_a_hold_longer_than_the_round_trip_is_refused() -> None:
    prober, peers = make_node()
    samples(prober)
    reply = peers["p3"].seal(wire.compound([wire.encode_probe_reply(5.0, None, 0.5)]))
    prober.receive_datagram(reply, addr_of("p3"), 5.004)
    assert samples(prober) == []
    assert prober.counters["probe_replies_refused"] == 1


def test_swim_acks_carry_the_hold_too() -> None:
    # The simulator's links take 2-3 ms each way. Once n2 says each answer cost it 1 ms of its
    # own time, n1's samples of n2 are 1 ms shorter.
    sim = Simulator(seed=2)
    sim.add_nodes(2, stagger_s=0.01)
    sim.run_for(10.0)
    sim.nodes["n2"].node.reply_lag_s = 0.001
    sim.run_for(10.0)
    before = [e.rtt_ms for t, e in sim.nodes["n1"].events if isinstance(e, RttSample) and t < 10]
    after = [e.rtt_ms for t, e in sim.nodes["n1"].events if isinstance(e, RttSample) and t > 10]
    assert len(before) >= 5 and len(after) >= 5
    assert all(3.0 <= rtt <= 5.0 for rtt in after), after
    assert statistics.mean(before) - statistics.mean(after) == pytest.approx(1.0, abs=0.3)

"""Unit tests of the SWIM building blocks: wire codec, broadcast queue, suspicion, awareness."""

from __future__ import annotations

from collections import Counter

import msgpack

from hubhop.core import swim_messages as wire
from hubhop.core.awareness import Awareness
from hubhop.core.broadcasts import BroadcastQueue, retransmit_limit
from hubhop.core.members import MemberState
from hubhop.core.suspicion import Suspicion, suspicion_min_timeout


def test_datagram_round_trip_and_skips() -> None:
    body = wire.compound(
        [
            wire.encode_ping(7, "b"),
            wire.encode_indirect_ping(8, "c", ("10.0.0.3", 7946), True),
            wire.encode_ack(7),
            wire.encode_nack(8),
            wire.encode_alive("a", 3, ("10.0.0.1", 1)),
            wire.encode_suspect("a", 3, "b"),
            wire.encode_dead("a", 3, "b"),
            wire.encode_left("a", 4),
            wire.encode_record("a", 9, b"payload"),
            wire.encode_record_version("a", 9),
            wire.encode_record_want("a", 9),
            wire.encode_probe(12.5),
            wire.encode_probe_reply(12.5, wire.WireCoordinate((1.0, -2.0), 0.125, 0.5, -0.015625)),
            wire.encode_probe_reply(12.5, None),
            msgpack.packb(
                [int(wire.MessageType.PROBE_REPLY), 1.0, [[float("nan")], 0.0, 0.0, 0.0]]
            ),
            msgpack.packb([99, "from the future"]),  # unknown type: skipped
            msgpack.packb([int(wire.MessageType.PING), -1, "b"]),  # bad seq: skipped
            msgpack.packb([int(wire.MessageType.ACK), True]),  # bool is not a seq
            msgpack.packb("not a message"),
        ]
    )
    drops: Counter[str] = Counter()
    messages = wire.decode_datagram(body, drops)
    assert messages == [
        wire.Ping(7, "b"),
        wire.IndirectPing(8, "c", ("10.0.0.3", 7946), True),
        wire.Ack(7),
        wire.Nack(8),
        wire.Alive("a", 3, ("10.0.0.1", 1)),
        wire.Suspect("a", 3, "b"),
        wire.Dead("a", 3, "b"),
        wire.Left("a", 4),
        wire.Record("a", 9, b"payload"),
        wire.RecordVersion("a", 9),
        wire.RecordWant("a", 9),
        wire.Probe(12.5),
        wire.ProbeReply(12.5, wire.WireCoordinate((1.0, -2.0), 0.125, 0.5, -0.015625)),
        wire.ProbeReply(12.5, None),
    ]
    assert drops == Counter(msg_unknown_type=1, msg_malformed=4)  # a NaN coordinate is malformed
    assert wire.decode_datagram(b"\xc1", drops) == []
    assert drops["msg_malformed"] == 5


def test_message_types_are_append_only() -> None:
    # These numbers are on the wire: changing one breaks mixed-version clusters.
    assert [(t.name, t.value) for t in wire.MessageType] == [
        ("PING", 1),
        ("INDIRECT_PING", 2),
        ("ACK", 3),
        ("NACK", 4),
        ("ALIVE", 5),
        ("SUSPECT", 6),
        ("DEAD", 7),
        ("LEFT", 8),
        ("RECORD", 9),
        ("PUSH_PULL_REQUEST", 10),
        ("PUSH_PULL_REPLY", 11),
        ("PUSH_PULL_RECORDS", 12),
        ("RECORD_VERSION", 13),
        ("RECORD_WANT", 14),
        ("PROBE", 15),
        ("PROBE_REPLY", 16),
        ("KEY_COMMAND", 17),
        ("KEY_COMMAND_ACK", 18),
    ]
    assert "APPEND-ONLY" in (wire.MessageType.__doc__ or "")


def test_stream_round_trip() -> None:
    states = [wire.StateEntry("a", ("h", 1), 2, MemberState.SUSPECT)]
    records = [wire.Record("a", 5, b"x")]
    body = wire.encode_push_pull_request(True, states, {"a": 5}, records)
    assert wire.decode_stream(body) == wire.PushPullRequest(
        True, tuple(states), {"a": 5}, tuple(records)
    )
    reply = wire.decode_stream(wire.encode_push_pull_reply(states, {}, []))
    assert reply == wire.PushPullReply(tuple(states), {}, ())
    assert wire.decode_stream(wire.encode_push_pull_records(records)) == wire.PushPullRecords(
        tuple(records)
    )


def test_compound_header_sizes() -> None:
    for n in (0, 15, 16, 300):
        body = wire.compound([wire.encode_ack(i) for i in range(n)])
        assert msgpack.unpackb(body) == [[3, i, 0.0] for i in range(n)]


def test_broadcast_queue_order_invalidation_and_limit() -> None:
    q = BroadcastQueue()
    q.queue("a", b"a1------")
    q.queue("b", b"b1------")
    q.queue("a", b"a2------")  # invalidates a1
    assert len(q) == 2
    assert q.take(100, limit=2) == [b"a2------", b"b1------"]  # newest first among equals
    q.queue("c", b"c1------")
    # fewer-transmitted first; budget for two
    assert q.take(16, limit=2) == [b"c1------", b"a2------"]
    # a2 and b1... a2 reached its limit and is gone; b1 has 1 transmit, c1 has 1
    assert "a" not in q
    assert sorted(q.take(100, limit=2)) == [b"b1------", b"c1------"]
    assert len(q) == 0
    assert retransmit_limit(4, 9) == 4
    assert retransmit_limit(4, 10) == 8
    assert retransmit_limit(4, 1000) == 16


def test_broadcast_queue_is_bounded() -> None:
    q = BroadcastQueue(max_queued=10)
    for i in range(50):
        q.queue(i, b"x" * 10)
    assert len(q) == 10


def test_suspicion_shrinks_with_confirmations() -> None:
    low = suspicion_min_timeout(3, 10, 0.5)
    assert low == 1.5
    assert suspicion_min_timeout(3, 1, 0.5) == 1.5  # floored for tiny clusters
    assert abs(suspicion_min_timeout(3, 1000, 0.5) - 4.5) < 1e-9
    s = Suspicion("a", k=3, min_timeout=low, max_timeout=6 * low, start=100.0)
    assert s.deadline == 109.0
    assert not s.confirm("a")  # the accuser does not confirm itself
    deadlines = []
    for who in ("b", "c", "d"):
        assert s.confirm(who)
        deadlines.append(s.deadline)
    assert not s.confirm("b")
    assert not s.confirm("e")  # beyond k: nothing more to gain
    assert deadlines[0] > deadlines[1] > deadlines[2] == 101.5
    no_k = Suspicion("a", k=0, min_timeout=low, max_timeout=6 * low, start=0.0)
    assert no_k.deadline == low


def test_awareness_scales_and_clamps() -> None:
    a = Awareness(8)
    assert a.scale(0.2) == 0.2
    a.apply_delta(3)
    assert a.score == 3 and abs(a.scale(0.2) - 0.8) < 1e-9
    a.apply_delta(100)
    assert a.score == 7
    a.apply_delta(-100)
    assert a.score == 0


def test_a_probe_reply_keeps_its_stamp_exact_and_its_coordinate_to_float32() -> None:
    coordinate = wire.WireCoordinate((12.3456789, -0.1), 0.2, 0.3, -0.01)
    stamp = 123456.789012345  # a monotonic clock hours after boot, to the microsecond
    body = wire.compound([wire.encode_probe_reply(stamp, coordinate, 0.000123)])
    [reply] = wire.decode_datagram(body, __import__("collections").Counter())
    assert isinstance(reply, wire.ProbeReply)
    assert reply.stamp == stamp
    assert reply.coordinate is not None
    for got, sent in zip(reply.coordinate.vec, coordinate.vec, strict=True):
        assert abs(got - sent) <= 1e-6 * abs(sent)
    assert abs(reply.held - 0.000123) < 1e-9


def test_acks_and_probe_replies_from_nodes_before_the_hold_field_still_decode() -> None:
    # A rolling upgrade: the previous version sent ACK [3, seq] and PROBE_REPLY [16, stamp,
    # coord]. They mean "held 0", not a malformed datagram that would fail a SWIM probe.
    old_ack = msgpack.packb([int(wire.MessageType.ACK), 7])
    old_reply = msgpack.packb([int(wire.MessageType.PROBE_REPLY), 12.5, None])
    got = wire.decode_datagram(wire.compound([old_ack, old_reply]), Counter())
    assert got == [wire.Ack(7, 0.0), wire.ProbeReply(12.5, None, 0.0)]

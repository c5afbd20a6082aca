"""One GossipNode driven by hand-sealed datagrams and streams: Lifeguard's confirmations, and
hostile input (property tests) that must never raise nor corrupt the member list."""

from __future__ import annotations

import random

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubhop.core import swim_messages as wire
from hubhop.core.keyring import Keyring
from hubhop.core.members import MemberState
from hubhop.core.secure_channel import SecureChannel
from hubhop.core.swim import GossipNode, GossipSettings, MemberDead
from hubhop.sim import DictRecordStore

KEY = bytes(range(16))
PEERS = ["p1", "p2", "p3", "p4", "p5"]


def addr_of(name: str) -> tuple[str, int]:
    return (f"10.0.0.{1 + (sum(name.encode()) % 200)}", 7946)


def make_node(seed: int = 0) -> tuple[GossipNode, dict[str, SecureChannel]]:
    rng = random.Random(seed)
    node = GossipNode(
        "me",
        ("10.0.0.250", 7946),
        GossipSettings(),
        SecureChannel(Keyring([KEY]), "me", 1, rng),
        DictRecordStore(),
        rng,
        0.0,
    )
    peers = {p: SecureChannel(Keyring([KEY]), p, 1, random.Random(p)) for p in [*PEERS, "x"]}
    states = [wire.StateEntry(n, addr_of(n), 0, MemberState.ALIVE) for n in [*PEERS, "x"]]
    request = wire.encode_push_pull_request(True, states, {}, [])
    reply = node.receive_stream_request(peers["p1"].seal(request), 0.0)
    assert reply
    assert {m.name for m in node.members()} == {"me", "x", *PEERS}
    return node, peers


def suspect(node: GossipNode, peers: dict[str, SecureChannel], by: str, now: float) -> None:
    body = wire.compound([wire.encode_suspect("x", 0, by)])
    node.receive_datagram(peers[by].seal(body), addr_of(by), now)


def time_of_death(confirmers: list[str]) -> float:
    node, peers = make_node()
    suspect(node, peers, "p1", 0.01)
    assert node.member("x").state is MemberState.SUSPECT  # type: ignore[union-attr]
    for i, who in enumerate(confirmers):
        suspect(node, peers, who, 0.02 + 0.01 * i)
    now = 0.05
    while now < 30.0:
        timer = node.get_timer()
        assert timer is not None
        now = max(now, timer)
        node.handle_timer(now)
        node.datagrams_to_send(now)  # nobody answers: the node's world is silent
        while (event := node.next_event()) is not None:
            if event == MemberDead("x"):
                return now
    raise AssertionError("x never declared dead")


def test_lifeguard_suspicion_fires_sooner_with_more_confirmations() -> None:
    n = 7  # me, p1..p5, x: min = 2.5 * log10(7) floored to 1 * 0.5 s = 1.25 s; max 7.5 s; k = 3
    lonely = time_of_death([])
    confirmed = time_of_death(["p2", "p3", "p4"])
    assert confirmed < lonely
    assert 1.25 <= confirmed < 1.35  # three confirmations: down to the minimum
    assert lonely >= 5.0  # at most the node's own failed probe confirmed it
    assert n == 1 + len(PEERS) + 1


def test_own_suspicion_is_refuted_with_higher_incarnation() -> None:
    node, peers = make_node()
    body = wire.compound([wire.encode_suspect("me", 0, "p2")])
    node.receive_datagram(peers["p2"].seal(body), addr_of("p2"), 0.1)
    assert node.incarnation == 1
    assert node.counters["refutes"] == 1
    body = wire.compound([wire.encode_dead("me", 5, "p3")])
    node.receive_datagram(peers["p3"].seal(body), addr_of("p3"), 0.2)
    assert node.incarnation == 6
    node.handle_timer(node.get_timer() or 0.3)
    assert node.datagrams_to_send(1.0)  # the ALIVE refutation goes out


def test_ping_is_acked_and_wrong_target_ignored() -> None:
    node, peers = make_node()
    node.receive_datagram(
        peers["p2"].seal(wire.compound([wire.encode_ping(41, "me")])), addr_of("p2"), 0.1
    )
    out = node.datagrams_to_send(0.1)
    assert len(out) == 1 and out[0][1] == addr_of("p2")
    sender, body = peers["p2"].open(out[0][0])
    assert sender == "me"
    assert wire.Ack(41) in wire.decode_datagram(body, __import__("collections").Counter())
    node.receive_datagram(
        peers["p2"].seal(wire.compound([wire.encode_ping(42, "other")])), addr_of("p2"), 0.1
    )
    assert node.datagrams_to_send(0.1) == []
    assert node.counters["ping_wrong_target"] == 1


# ---- hostile input ---------------------------------------------------------------------------

msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.binary(max_size=40),
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=30,
)
message_type = st.sampled_from([int(t) for t in wire.MessageType] + [0, 13, 999])
structured = st.lists(
    st.tuples(message_type, st.lists(msgpack_values, max_size=5)).map(lambda t: [t[0], *t[1]]),
    max_size=6,
)


def valid_bodies() -> list[bytes]:
    states = [wire.StateEntry("p9", ("h", 1), 3, MemberState.DEAD)]
    return [
        wire.compound(
            [
                wire.encode_ping(1, "me"),
                wire.encode_alive("p7", 2, ("10.1.1.1", 7)),
                wire.encode_suspect("p1", 0, "p2"),
                wire.encode_dead("p2", 0, "p3"),
                wire.encode_record("p3", 4, b"rec"),
                wire.encode_indirect_ping(3, "p4", addr_of("p4"), True),
                wire.encode_left("p5", 0),
            ]
        ),
        wire.encode_push_pull_request(False, states, {"p1": 2}, [wire.Record("p1", 3, b"r")]),
        wire.encode_push_pull_reply(states, {"me": 9}, [wire.Record("p2", 3, b"r")]),
        wire.encode_push_pull_records([wire.Record("p4", 1, b"r")]),
    ]


def mutate(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for pos, value in flips:
        if out:
            out[pos % len(out)] = value
    return bytes(out)


def check_well_formed(node: GossipNode) -> None:
    views = node.members()
    names = [v.name for v in views]
    assert len(names) == len(set(names))
    me = node.member("me")
    assert me is not None and me.state is MemberState.ALIVE
    for v in views:
        assert isinstance(v.name, str) and 1 <= len(v.name) <= 128
        host, port = v.addr
        assert isinstance(host, str) and isinstance(port, int) and 0 <= port <= 65535
        assert isinstance(v.state, MemberState)
        assert isinstance(v.incarnation, int) and v.incarnation >= 0
    assert node.counters["internal_error"] == 0


def feed_everywhere(node: GossipNode, data: bytes, now: float) -> None:
    node.receive_datagram(data, ("10.9.9.9", 1), now)
    reply = node.receive_stream_request(data, now)
    assert isinstance(reply, bytes)
    node.receive_stream_reply(data, ("10.9.9.9", 1), now)
    node.handle_timer(now)
    node.datagrams_to_send(now)
    node.streams_to_open(now)
    while node.next_event() is not None:
        pass


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=300), sealed_garbage=msgpack_values, structure=structured)
def test_random_bytes_and_bodies_never_raise(
    raw: bytes, sealed_garbage: object, structure: list[list[object]]
) -> None:
    node, peers = make_node()
    feed_everywhere(node, raw, 0.1)  # unauthenticated noise
    for i, body_obj in enumerate((sealed_garbage, structure)):
        try:
            body = msgpack.packb(body_obj)
        except (TypeError, ValueError, OverflowError):
            continue
        # authentic (sealed with the cluster key) but arbitrary bodies reach the decoder
        feed_everywhere(node, peers["p2"].seal(body), 0.2 + i)
        feed_everywhere(node, peers["p3"].seal(body), 0.2 + i)
    check_well_formed(node)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    which=st.integers(min_value=0, max_value=3),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4),
    seal_after=st.booleans(),
)
def test_mutated_valid_messages_never_raise(
    which: int, flips: list[tuple[int, int]], seal_after: bool
) -> None:
    node, peers = make_node()
    body = valid_bodies()[which]
    if seal_after:
        data = peers["p2"].seal(mutate(body, flips))  # authentic, damaged inside
    else:
        data = mutate(peers["p2"].seal(body), flips)  # damaged on the wire
    feed_everywhere(node, data, 0.5)
    feed_everywhere(node, peers["p4"].seal(body), 0.6)  # and the intact one
    check_well_formed(node)

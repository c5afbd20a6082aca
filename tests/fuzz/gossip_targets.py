"""Fuzz targets for what a gossip peer sends: sealed frames, their plaintext, SWIM messages,
capacity records, push-pull stream framing, and a whole GossipNode's receive paths.

Rules:
- Seeds come from the real encoders (every message type, a record built from an example config),
  and the real key seals them, so a mutated plaintext gets past authentication and reaches the
  decoders behind it; an outer frame is fuzzed as it comes off the wire.
- Refusals: `Dropped` (secure channel), `MessageError` (stream decode), `RecordError` (records);
  `decode_datagram` and the node's receive paths refuse nothing: they must not raise at all, and
  the node's "internal_error" counter must stay at zero.
- Stateful targets start over every RESET_EVERY inputs, so a run's memory measures the parsers,
  not a cluster that the fuzzer keeps adding members to.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from pathlib import Path

import msgpack

from hubhop.core import swim_messages as wire
from hubhop.core.capacity import RecordError, decode_record, encode_record, record_from_config
from hubhop.core.capacity_table import CapacityTable
from hubhop.core.config import parse_config
from hubhop.core.keyring import Keyring
from hubhop.core.members import MemberState
from hubhop.core.secure_channel import Dropped, SecureChannel
from hubhop.core.swim import GossipNode, GossipSettings
from hubhop.io.gossip_transport import FRAME_HEADER, FrameTooLarge, _read_frame
from tests.fuzz.target import Crash, Target

ROOT = Path(__file__).resolve().parents[2]
KEY = bytes(range(16))
PEERS = ("p1", "p2", "p3", "p4", "p5")
# Inputs a stateful target takes before it starts over: enough for a node to build up members,
# suspicions and records from the fuzzed traffic, few enough that its state stays small.
RESET_EVERY = 2000
# Seconds of the node's clock per input: timers (probes, suspicions, reaping) fire during a run.
TICK_S = 0.013


def addr_of(name: str) -> tuple[str, int]:
    return (f"10.0.0.{1 + sum(name.encode()) % 200}", 7946)


def example_records() -> list[bytes]:
    """The wire form of a record for each example config, with a coordinate and links."""
    out = []
    for i, path in enumerate(sorted((ROOT / "systemd").glob("*.toml"))):
        config = parse_config(path.read_text(), path.name)
        record = record_from_config(
            config,
            f"127.0.1.{i + 1}:7946",
            loads={b.name: (1.0, (0.0, 2.0, 5.0), 12.5) for b in config.backends},
            coordinate=(1.5, -2.0, 0.25, 0.0, 3.0, 0.0, -0.5, 1.0),
            coordinate_error=0.4,
            height=0.1,
            links=(("peer-a", 1.2), ("peer-b", 7.0)),
        )
        out.append(encode_record(record))
    return out


def datagram_messages() -> list[bytes]:
    """One encoded message of every datagram type."""
    coordinate = wire.WireCoordinate((1.0, 2.0, -3.5, 0.0, 0.0, 0.0, 0.0, 1.0), 0.1, 0.5, 0.0)
    record = example_records()[0]
    return [
        wire.encode_ping(7, "me"),
        wire.encode_indirect_ping(8, "p2", addr_of("p2"), True),
        wire.encode_ack(7, 0.0001),
        wire.encode_nack(8),
        wire.encode_alive("p6", 3, addr_of("p6")),
        wire.encode_suspect("p3", 0, "p1"),
        wire.encode_suspect("me", 0, "p1"),
        wire.encode_dead("p4", 0, "p1"),
        wire.encode_left("p5", 1),
        wire.encode_record("p1", 5, record),
        wire.encode_record_version("p2", 9),
        wire.encode_record_want("me", 1),
        wire.encode_probe(12.5),
        wire.encode_probe_reply(12.5, coordinate, 0.0002),
        wire.encode_probe_reply(12.5, None),
    ]


def datagram_seeds() -> list[bytes]:
    messages = datagram_messages()
    seeds = [wire.compound([m]) for m in messages]
    seeds.append(wire.compound(messages[:8]))
    seeds.append(wire.compound([messages[0], messages[4], messages[10], messages[12]]))
    return seeds


def stream_seeds() -> list[bytes]:
    states = [wire.StateEntry(p, addr_of(p), 1, MemberState.ALIVE) for p in PEERS]
    states.append(wire.StateEntry("p9", ("::1", 7946), 2, MemberState.SUSPECT))
    states.append(wire.StateEntry("p8", addr_of("p8"), 0, MemberState.DEAD))
    records = [wire.Record("p1", 6, r) for r in example_records()[:1]]
    digest = {"p1": 5, "p2": 3, "me": 1}
    return [
        wire.encode_push_pull_request(True, states, digest, records),
        wire.encode_push_pull_request(False, states[:2], {}, []),
        wire.encode_push_pull_reply(states, digest, records),
        wire.encode_push_pull_records(records),
    ]


def plaintext_seeds() -> list[bytes]:
    bodies = datagram_seeds()[-2:] + stream_seeds()[:2]
    return [msgpack.packb(["p1", 1000 + i, i, body]) for i, body in enumerate(bodies)]


def _channel(name: str, seed: int) -> SecureChannel:
    return SecureChannel(Keyring([KEY]), name, 1, random.Random(seed))


class _Node:
    """A node "me" that knows p1..p5, fed by p1; a fresh one every RESET_EVERY inputs."""

    def __init__(self) -> None:
        self.inputs = 0
        self._fresh()

    def _fresh(self) -> None:
        rng = random.Random(self.inputs)
        self.now = 0.0
        self.table = CapacityTable()
        self.node = GossipNode(
            "me", ("10.0.0.250", 7946), GossipSettings(), _channel("me", 1), self.table, rng, 0.0
        )
        self.peer = _channel("p1", 2)
        self.node.receive_stream_request(self.peer.seal(stream_seeds()[0]), 0.0)

    def step(self) -> None:
        """Advance the clock, fire due timers, and take what the node wants sent."""
        self.inputs += 1
        if self.inputs % RESET_EVERY == 0:
            self._fresh()
        self.now += TICK_S
        timer = self.node.get_timer()
        if timer is not None and timer <= self.now:
            self.node.handle_timer(self.now)
        self.node.datagrams_to_send(self.now)
        self.node.streams_to_open(self.now)
        while self.node.next_event() is not None:
            pass
        while self.table.next_event() is not None:
            pass

    def check(self, before: int) -> None:
        if self.node.counters["internal_error"] != before:
            raise Crash("GossipNode counted an internal_error on this input")


class _Opener:
    """Opens authentic frames whose senders the fuzzer invents; a fresh channel every RESET_EVERY
    inputs, or its replay state (bounded at 65,536 senders) would be most of a run's memory."""

    def __init__(self) -> None:
        self.inputs = 0
        self.channel = _channel("me", 4)

    def open(self, frame: bytes) -> None:
        self.inputs += 1
        if self.inputs % RESET_EVERY == 0:
            self.channel = _channel("me", 4)
        with contextlib.suppress(Dropped):
            self.channel.open(frame)


def targets() -> list[Target]:
    receiver = _channel("me", 3)
    opener = _Opener()
    aead = Keyring([KEY]).primary_aead
    nonce_rng = random.Random(5)
    node = _Node()
    loop = asyncio.new_event_loop()

    def secure_frame(data: bytes) -> None:
        with contextlib.suppress(Dropped):
            receiver.open(data)

    def secure_plaintext(data: bytes) -> None:
        nonce = nonce_rng.randbytes(12)
        opener.open(b"\x01" + nonce + aead.encrypt(nonce, data, b"\x01"))

    def swim_datagram(data: bytes) -> None:
        wire.decode_datagram(data, Counter())

    def swim_stream(data: bytes) -> None:
        with contextlib.suppress(wire.MessageError):
            wire.decode_stream(data)

    def capacity_record(data: bytes) -> None:
        with contextlib.suppress(RecordError):
            decode_record(data)

    def node_datagram(data: bytes) -> None:
        node.step()
        before = node.node.counters["internal_error"]
        node.node.receive_datagram(node.peer.seal(data), addr_of("p1"), node.now, node.now)
        node.check(before)

    def node_stream(data: bytes) -> None:
        node.step()
        before = node.node.counters["internal_error"]
        node.node.receive_stream_request(node.peer.seal(data), node.now)
        node.node.receive_stream_reply(node.peer.seal(data), addr_of("p1"), node.now)
        node.check(before)

    async def read(data: bytes) -> bytes | None:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        try:
            return await _read_frame(reader)
        except (asyncio.IncompleteReadError, FrameTooLarge):  # what the transport counts
            return None

    def stream_frame(data: bytes) -> None:
        node.step()
        before = node.node.counters["internal_error"]
        frame = loop.run_until_complete(read(data))
        if frame is not None:
            node.node.receive_stream_request(frame, node.now)
        node.check(before)

    datagrams, streams = datagram_seeds(), stream_seeds()
    seal = _channel("p1", 6)
    sealed = [seal.seal(body) for body in datagrams[-2:] + streams]
    frames = [FRAME_HEADER.pack(len(s)) + s for s in sealed[2:]]
    return [
        Target("secure_frame", "bytes", tuple(sealed), secure_frame),
        Target("secure_plaintext", "msgpack", tuple(plaintext_seeds()), secure_plaintext),
        Target("swim_datagram", "msgpack", tuple(datagrams), swim_datagram),
        Target("swim_stream", "msgpack", tuple(streams), swim_stream),
        Target("capacity_record", "msgpack", tuple(example_records()), capacity_record),
        Target("node_datagram", "msgpack", tuple(datagrams), node_datagram),
        Target("node_stream", "msgpack", tuple(streams), node_stream),
        Target("push_pull_frame", "bytes", tuple(frames), stream_frame, loop.close),
    ]

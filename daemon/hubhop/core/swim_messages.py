"""SWIM wire messages: msgpack arrays `[type, field, ...]`, validated strictly on the way in.

Rules:
- A datagram body is a msgpack array of messages (a ping with broadcasts piggybacked, say);
  each message is `[MessageType, fields...]`. A stream body is one message.
- Bodies arrive already authenticated (secure_channel.py), but a peer may run another version
  or be buggy: every field is type- and range-checked. An unknown message type is skipped and
  counted ("msg_unknown_type"), a malformed one skipped and counted ("msg_malformed"); the rest
  of the datagram still counts. Nothing here raises out of `decode_datagram`; `decode_stream` raises
  only MessageError.
- MessageType is APPEND-ONLY: never renumber or reuse a value; a new message gets a new number,
  and old nodes skip it as unknown.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import msgpack

from hubhop.core.keyring import KEY_SIZES
from hubhop.core.members import CODE_OF_STATE, STATE_OF_CODE, Address, MemberState

MAX_NAME_CHARS = 128  # the secure channel's sender limit: a member name is a sender name
MAX_HOST_CHARS = 255  # a DNS name at most
MAX_UINT63 = (1 << 63) - 1
MAX_RECORD_BYTES = 16 * 1024 * 1024  # a record must fit a 32 MiB push-pull message with others
MAX_STREAM_STATES = 1_000_000  # bound on members in one push-pull: far above any real cluster
# Dimensions a coordinate on the wire may have: Vivaldi uses 8; a few more leave room to change
# that without a new message, and the bound keeps a reply small.
MAX_COORDINATE_DIMENSIONS = 16
# Key commands: the operations, the command id's size (128 random bits never collide), and
# bounds on an answer so it always fits one datagram: a keyring's fingerprints (12 hex digits
# each; key_commands.MAX_KEYRING_KEYS is far below the bound) and an error text.
KEY_OPS = ("install", "use", "remove", "list")
KEY_COMMAND_ID_BYTES = 16
MAX_ACK_FINGERPRINTS = 32
MAX_FINGERPRINT_CHARS = 64
MAX_ACK_ERROR_CHARS = 300


class MessageType(IntEnum):
    """Message type numbers on the wire. APPEND-ONLY: never renumber or reuse a value."""

    PING = 1
    INDIRECT_PING = 2
    ACK = 3
    NACK = 4
    ALIVE = 5
    SUSPECT = 6
    DEAD = 7
    LEFT = 8
    RECORD = 9
    PUSH_PULL_REQUEST = 10
    PUSH_PULL_REPLY = 11
    PUSH_PULL_RECORDS = 12
    RECORD_VERSION = 13  # "I hold NAME's record at VERSION": the cheap announcement of a record
    RECORD_WANT = 14  # "send me NAME's record, at VERSION or newer": the pull that repairs
    PROBE = 15  # a latency probe: the sender's clock reading, echoed back
    PROBE_REPLY = 16  # the echo, the replier's coordinate (or nil) and how long it held the probe
    KEY_COMMAND = 17  # an operator's keyring change (or list) for the receiver: key_commands.py
    KEY_COMMAND_ACK = 18  # the receiver's answer to a KEY_COMMAND: ok or its error, its keyring


class MessageError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Ping:
    seq: int
    target: str  # the name the sender believes lives at this address


@dataclass(frozen=True, slots=True)
class IndirectPing:
    seq: int
    target: str
    target_addr: Address
    nack: bool  # send a NACK back when the target does not answer (Lifeguard)


@dataclass(frozen=True, slots=True)
class Ack:
    seq: int
    # Seconds the acker held the ping (read to answer); the pinger takes it off the round trip
    # it measures, as with ProbeReply.held. 0 on a relayed ack (not a latency sample).
    held: float = 0.0


@dataclass(frozen=True, slots=True)
class Nack:
    seq: int


@dataclass(frozen=True, slots=True)
class Alive:
    name: str
    incarnation: int
    addr: Address


@dataclass(frozen=True, slots=True)
class Suspect:
    name: str
    incarnation: int
    accuser: str


@dataclass(frozen=True, slots=True)
class Dead:
    name: str
    incarnation: int
    accuser: str


@dataclass(frozen=True, slots=True)
class Left:
    name: str
    incarnation: int


@dataclass(frozen=True, slots=True)
class Record:
    name: str
    version: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class RecordVersion:
    name: str
    version: int


@dataclass(frozen=True, slots=True)
class RecordWant:
    name: str
    version: int


@dataclass(frozen=True, slots=True)
class Probe:
    stamp: float  # the prober's monotonic clock, seconds; only the prober reads it


@dataclass(frozen=True, slots=True)
class WireCoordinate:
    vec: tuple[float, ...]  # ms of round trip
    height: float
    error: float
    adjustment: float


@dataclass(frozen=True, slots=True)
class ProbeReply:
    stamp: float
    coordinate: WireCoordinate | None
    # Seconds between the probe reaching the replier's host and the reply being made: the
    # replier's wake-up and processing, which the prober takes off the round trip (as TWAMP's
    # reflector does), so a probe measures the network, not the peer's scheduler.
    held: float = 0.0


@dataclass(frozen=True, slots=True)
class StateEntry:
    name: str
    addr: Address
    incarnation: int
    state: MemberState


@dataclass(frozen=True, slots=True)
class PushPullRequest:
    join: bool
    states: tuple[StateEntry, ...]
    digest: dict[str, int]
    records: tuple[Record, ...]


@dataclass(frozen=True, slots=True)
class PushPullReply:
    states: tuple[StateEntry, ...]
    digest: dict[str, int]
    records: tuple[Record, ...]


@dataclass(frozen=True, slots=True)
class PushPullRecords:
    records: tuple[Record, ...]


@dataclass(frozen=True, slots=True)
class KeyCommand:
    command_id: bytes  # KEY_COMMAND_ID_BYTES random bytes, chosen by the originator
    issued_at: float  # the originator's wall clock (Unix seconds) when it issued the command
    op: str  # one of KEY_OPS
    key: bytes | None  # the AES key (install, use, remove); None for list


@dataclass(frozen=True, slots=True)
class KeyCommandAck:
    command_id: bytes
    ok: bool
    error: str  # "" when ok
    fingerprints: tuple[str, ...]  # the answerer's keyring after the command, by fingerprint
    primary: str  # the fingerprint of the answerer's primary key


DatagramMessage = (
    Ping
    | IndirectPing
    | Ack
    | Nack
    | Alive
    | Suspect
    | Dead
    | Left
    | Record
    | RecordVersion
    | RecordWant
    | Probe
    | ProbeReply
    | KeyCommand
    | KeyCommandAck
)
StreamMessage = PushPullRequest | PushPullReply | PushPullRecords

_PACKER = msgpack.Packer(use_bin_type=True)
# For figures that do not need float64 (see encode_probe_reply).
_SINGLE_PACKER = msgpack.Packer(use_bin_type=True, use_single_float=True)


def _packb(obj: object) -> bytes:
    data: bytes = _PACKER.pack(obj)
    return data


# ---- encoding ----------------------------------------------------------------------------------


def _addr(addr: Address) -> list[Any]:
    return [addr[0], addr[1]]


def encode_ping(seq: int, target: str) -> bytes:
    return _packb([MessageType.PING, seq, target])


def encode_indirect_ping(seq: int, target: str, target_addr: Address, nack: bool) -> bytes:
    return _packb([MessageType.INDIRECT_PING, seq, target, _addr(target_addr), nack])


def encode_ack(seq: int, held: float = 0.0) -> bytes:
    return _packb([MessageType.ACK, seq, float(held)])


def encode_nack(seq: int) -> bytes:
    return _packb([MessageType.NACK, seq])


def encode_alive(name: str, incarnation: int, addr: Address) -> bytes:
    return _packb([MessageType.ALIVE, name, incarnation, _addr(addr)])


def encode_suspect(name: str, incarnation: int, accuser: str) -> bytes:
    return _packb([MessageType.SUSPECT, name, incarnation, accuser])


def encode_dead(name: str, incarnation: int, accuser: str) -> bytes:
    return _packb([MessageType.DEAD, name, incarnation, accuser])


def encode_left(name: str, incarnation: int) -> bytes:
    return _packb([MessageType.LEFT, name, incarnation])


def encode_record(name: str, version: int, payload: bytes) -> bytes:
    return _packb([MessageType.RECORD, name, version, payload])


def encode_record_version(name: str, version: int) -> bytes:
    return _packb([MessageType.RECORD_VERSION, name, version])


def encode_record_want(name: str, version: int) -> bytes:
    return _packb([MessageType.RECORD_WANT, name, version])


def encode_probe(stamp: float) -> bytes:
    return _packb([MessageType.PROBE, float(stamp)])


def encode_probe_reply(stamp: float, coordinate: WireCoordinate | None, held: float = 0.0) -> bytes:
    """The echo: the stamp exactly (a float64: the prober subtracts it from its clock), the
    coordinate and the hold time as float32. Every node answers several probes a second, and
    float32 halves the coordinate's bytes; its 24-bit mantissa keeps a 100 ms coordinate to
    0.01 us and a hold time to well under a microsecond."""
    coord = (
        None
        if coordinate is None
        else [
            [float(x) for x in coordinate.vec],
            float(coordinate.height),
            float(coordinate.error),
            float(coordinate.adjustment),
        ]
    )
    # A 4-element array: its fixarray header, then the elements packed one by one.
    return b"".join(
        (
            b"\x94",
            _packb(MessageType.PROBE_REPLY),
            _packb(float(stamp)),
            _SINGLE_PACKER.pack(coord),
            _SINGLE_PACKER.pack(float(held)),
        )
    )


def encode_key_command(command_id: bytes, issued_at: float, op: str, key: bytes | None) -> bytes:
    return _packb([MessageType.KEY_COMMAND, command_id, float(issued_at), op, key])


def encode_key_command_ack(
    command_id: bytes, ok: bool, error: str, fingerprints: list[str], primary: str
) -> bytes:
    error, fingerprints = error[:MAX_ACK_ERROR_CHARS], fingerprints[:MAX_ACK_FINGERPRINTS]
    return _packb([MessageType.KEY_COMMAND_ACK, command_id, ok, error, fingerprints, primary])


def compound(messages: list[bytes]) -> bytes:
    """A datagram body: a msgpack array header followed by already-encoded messages."""
    n = len(messages)
    if n < 16:
        header = bytes((0x90 | n,))
    elif n < 0x10000:
        header = b"\xdc" + n.to_bytes(2, "big")
    else:
        header = b"\xdd" + n.to_bytes(4, "big")
    return header + b"".join(messages)


COMPOUND_HEADER_BYTES = 3  # array16 header: datagrams never carry 65536 messages


def _states(states: list[StateEntry]) -> list[list[Any]]:
    return [[s.name, _addr(s.addr), s.incarnation, CODE_OF_STATE[s.state]] for s in states]


def _records(records: list[Record]) -> list[list[Any]]:
    return [[r.name, r.version, r.payload] for r in records]


def encode_push_pull_request(
    join: bool, states: list[StateEntry], digest: dict[str, int], records: list[Record]
) -> bytes:
    return _packb([MessageType.PUSH_PULL_REQUEST, join, _states(states), digest, _records(records)])


def encode_push_pull_reply(
    states: list[StateEntry], digest: dict[str, int], records: list[Record]
) -> bytes:
    return _packb([MessageType.PUSH_PULL_REPLY, _states(states), digest, _records(records)])


def encode_push_pull_records(records: list[Record]) -> bytes:
    return _packb([MessageType.PUSH_PULL_RECORDS, _records(records)])


# ---- decoding ----------------------------------------------------------------------------------


def _int(value: object, hi: int = MAX_UINT63) -> int:
    if type(value) is not int or not 0 <= value <= hi:
        raise MessageError("bad integer")
    return value


def _name(value: object) -> str:
    if type(value) is not str or not 1 <= len(value) <= MAX_NAME_CHARS:
        raise MessageError("bad name")
    return value


def _bool(value: object) -> bool:
    if type(value) is not bool:
        raise MessageError("bad bool")
    return value


def _address(value: object) -> Address:
    if type(value) is not list or len(value) != 2:
        raise MessageError("bad address")
    host, port = value
    if type(host) is not str or not 1 <= len(host) <= MAX_HOST_CHARS:
        raise MessageError("bad host")
    return host, _int(port, 65535)


def _float(value: object) -> float:
    if type(value) is not float or not math.isfinite(value):
        raise MessageError("bad float")
    return value


def _coordinate(value: object) -> WireCoordinate | None:
    if value is None:
        return None
    if type(value) is not list or len(value) != 4:
        raise MessageError("bad coordinate")
    vec, height, error, adjustment = value
    if type(vec) is not list or not 1 <= len(vec) <= MAX_COORDINATE_DIMENSIONS:
        raise MessageError("bad coordinate vector")
    return WireCoordinate(
        tuple(_float(x) for x in vec), _float(height), _float(error), _float(adjustment)
    )


def _payload(value: object) -> bytes:
    if type(value) is not bytes or len(value) > MAX_RECORD_BYTES:
        raise MessageError("bad payload")
    return value


def _command_id(value: object) -> bytes:
    if type(value) is not bytes or len(value) != KEY_COMMAND_ID_BYTES:
        raise MessageError("bad command id")
    return value


def _text(value: object, max_chars: int) -> str:
    if type(value) is not str or len(value) > max_chars:
        raise MessageError("bad text")
    return value


def _fields(message: list[Any], count: int) -> list[Any]:
    if len(message) != count + 1:
        raise MessageError("wrong field count")
    return message[1:]


def _decode_one(message: list[Any], kind: int) -> DatagramMessage:
    if kind == MessageType.PING:
        seq, target = _fields(message, 2)
        return Ping(_int(seq), _name(target))
    if kind == MessageType.INDIRECT_PING:
        seq, target, addr, nack = _fields(message, 4)
        return IndirectPing(_int(seq), _name(target), _address(addr), _bool(nack))
    if kind == MessageType.ACK:
        if len(message) == 2:  # from a node before `held` (counts as held 0)
            return Ack(_int(message[1]))
        seq, held = _fields(message, 2)
        return Ack(_int(seq), _float(held))
    if kind == MessageType.NACK:
        (seq,) = _fields(message, 1)
        return Nack(_int(seq))
    if kind == MessageType.ALIVE:
        name, inc, addr = _fields(message, 3)
        return Alive(_name(name), _int(inc), _address(addr))
    if kind == MessageType.SUSPECT:
        name, inc, accuser = _fields(message, 3)
        return Suspect(_name(name), _int(inc), _name(accuser))
    if kind == MessageType.DEAD:
        name, inc, accuser = _fields(message, 3)
        return Dead(_name(name), _int(inc), _name(accuser))
    if kind == MessageType.LEFT:
        name, inc = _fields(message, 2)
        return Left(_name(name), _int(inc))
    if kind == MessageType.RECORD:
        name, version, payload = _fields(message, 3)
        return Record(_name(name), _int(version), _payload(payload))
    if kind == MessageType.RECORD_VERSION:
        name, version = _fields(message, 2)
        return RecordVersion(_name(name), _int(version))
    if kind == MessageType.RECORD_WANT:
        name, version = _fields(message, 2)
        return RecordWant(_name(name), _int(version))
    if kind == MessageType.PROBE:
        (stamp,) = _fields(message, 1)
        return Probe(_float(stamp))
    if kind == MessageType.PROBE_REPLY:
        if len(message) == 3:  # from a node before `held` (counts as held 0)
            stamp, coordinate = message[1:]
            return ProbeReply(_float(stamp), _coordinate(coordinate))
        stamp, coordinate, held = _fields(message, 3)
        return ProbeReply(_float(stamp), _coordinate(coordinate), _float(held))
    if kind == MessageType.KEY_COMMAND:
        command_id, issued_at, op, key = _fields(message, 4)
        if op not in KEY_OPS or (key is None) != (op == "list"):
            raise MessageError("bad key command")
        if key is not None and (type(key) is not bytes or len(key) not in KEY_SIZES):
            raise MessageError("bad key")
        return KeyCommand(_command_id(command_id), _float(issued_at), op, key)
    if kind == MessageType.KEY_COMMAND_ACK:
        command_id, ok, error, fingerprints, primary = _fields(message, 5)
        if type(fingerprints) is not list or len(fingerprints) > MAX_ACK_FINGERPRINTS:
            raise MessageError("bad fingerprints")
        return KeyCommandAck(
            _command_id(command_id),
            _bool(ok),
            _text(error, MAX_ACK_ERROR_CHARS),
            tuple(_text(f, MAX_FINGERPRINT_CHARS) for f in fingerprints),
            _text(primary, MAX_FINGERPRINT_CHARS),
        )
    raise MessageError("not a datagram message")


_DATAGRAM_TYPES = frozenset(
    {
        MessageType.PING,
        MessageType.INDIRECT_PING,
        MessageType.ACK,
        MessageType.NACK,
        MessageType.ALIVE,
        MessageType.SUSPECT,
        MessageType.DEAD,
        MessageType.LEFT,
        MessageType.RECORD,
        MessageType.RECORD_VERSION,
        MessageType.RECORD_WANT,
        MessageType.PROBE,
        MessageType.PROBE_REPLY,
        MessageType.KEY_COMMAND,
        MessageType.KEY_COMMAND_ACK,
    }
)


def _unpack(body: bytes) -> object:
    try:
        return msgpack.unpackb(body, raw=False, use_list=True, strict_map_key=True)
    except Exception:  # msgpack raises many types on bad input; all mean "malformed"
        raise MessageError("not msgpack") from None


def decode_datagram(body: bytes, drops: Counter[str]) -> list[DatagramMessage]:
    """The valid messages of a datagram body; every skipped one counted in `drops`."""
    try:
        top = _unpack(body)
    except MessageError:
        drops["msg_malformed"] += 1
        return []
    if type(top) is not list:
        drops["msg_malformed"] += 1
        return []
    out: list[DatagramMessage] = []
    for message in top:
        if type(message) is not list or not message or type(message[0]) is not int:
            drops["msg_malformed"] += 1
            continue
        kind = message[0]
        if kind not in _DATAGRAM_TYPES:
            drops["msg_unknown_type"] += 1
            continue
        try:
            out.append(_decode_one(message, kind))
        except (MessageError, ValueError, TypeError):
            drops["msg_malformed"] += 1
    return out


def _decode_states(value: object) -> tuple[StateEntry, ...]:
    if type(value) is not list or len(value) > MAX_STREAM_STATES:
        raise MessageError("bad states")
    out = []
    for entry in value:
        if type(entry) is not list or len(entry) != 4:
            raise MessageError("bad state entry")
        name, addr, inc, code = entry
        state = STATE_OF_CODE.get(code) if type(code) is int else None
        if state is None:
            raise MessageError("bad state code")
        out.append(StateEntry(_name(name), _address(addr), _int(inc), state))
    return tuple(out)


def _decode_digest(value: object) -> dict[str, int]:
    if type(value) is not dict or len(value) > MAX_STREAM_STATES:
        raise MessageError("bad digest")
    return {_name(k): _int(v) for k, v in value.items()}


def _decode_records(value: object) -> tuple[Record, ...]:
    if type(value) is not list or len(value) > MAX_STREAM_STATES:
        raise MessageError("bad records")
    out = []
    for entry in value:
        if type(entry) is not list or len(entry) != 3:
            raise MessageError("bad record entry")
        name, version, payload = entry
        out.append(Record(_name(name), _int(version), _payload(payload)))
    return tuple(out)


def decode_stream(body: bytes) -> StreamMessage:
    """The one message of a push-pull stream body; MessageError when it is not valid."""
    message = _unpack(body)
    if type(message) is not list or not message or type(message[0]) is not int:
        raise MessageError("not a message")
    kind = message[0]
    try:
        if kind == MessageType.PUSH_PULL_REQUEST:
            join, states, digest, records = _fields(message, 4)
            return PushPullRequest(
                _bool(join),
                _decode_states(states),
                _decode_digest(digest),
                _decode_records(records),
            )
        if kind == MessageType.PUSH_PULL_REPLY:
            states, digest, records = _fields(message, 3)
            return PushPullReply(
                _decode_states(states), _decode_digest(digest), _decode_records(records)
            )
        if kind == MessageType.PUSH_PULL_RECORDS:
            (records,) = _fields(message, 1)
            return PushPullRecords(_decode_records(records))
    except (ValueError, TypeError) as exc:
        raise MessageError(str(exc)) from None
    raise MessageError("unknown stream message type")

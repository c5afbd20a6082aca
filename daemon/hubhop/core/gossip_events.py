"""What a GossipNode tells its owner: membership changes, record changes, latency samples, key
commands finished.

Events are values (frozen dataclasses); the node queues them and `next_event()` hands them out
in order.
"""

from __future__ import annotations

from dataclasses import dataclass

from hubhop.core import swim_messages as wire
from hubhop.core.members import Address


@dataclass(frozen=True, slots=True)
class MemberJoined:
    name: str
    addr: Address


@dataclass(frozen=True, slots=True)
class MemberAlive:
    name: str


@dataclass(frozen=True, slots=True)
class MemberSuspect:
    name: str


@dataclass(frozen=True, slots=True)
class MemberDead:
    name: str


@dataclass(frozen=True, slots=True)
class MemberLeft:
    name: str


@dataclass(frozen=True, slots=True)
class MemberReaped:
    name: str


@dataclass(frozen=True, slots=True)
class RecordChanged:
    name: str
    version: int


@dataclass(frozen=True, slots=True)
class RttSample:
    """A measured round trip to a member: a latency probe's reply (with the member's network
    coordinate, when it has one) or the ack of a direct SWIM ping (without)."""

    name: str
    rtt_ms: float
    coordinate: wire.WireCoordinate | None


@dataclass(frozen=True, slots=True)
class KeyCommandDone:
    """A key command this node started has every answer, or its timeout passed: its report is
    ready (`GossipNode.key_command_report`)."""

    command_id: bytes


GossipEvent = (
    MemberJoined
    | MemberAlive
    | MemberSuspect
    | MemberDead
    | MemberLeft
    | MemberReaped
    | RecordChanged
    | RttSample
    | KeyCommandDone
)

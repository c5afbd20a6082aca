"""Members as one node sees them, and the incarnation rules that decide which news wins.

Rules (SWIM / memberlist):
- Every member has an incarnation number only it may raise (to refute an accusation).
- alive(i) overrides any state held at incarnation j iff i > j (this is also how a dead member
  comes back: it refutes with a higher incarnation).
- suspect(i) overrides alive(j) iff i >= j; about a member already suspected it is only a
  confirmation; it never overrides dead or left.
- dead(i) and left(i) override alive/suspect(j) iff i >= j; a member already dead or left stays
  so until it is alive again with a higher incarnation. Left is "dead by its own word": the
  member said goodbye, it did not fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

Address = tuple[str, int]


class MemberState(StrEnum):
    ALIVE = "alive"
    SUSPECT = "suspect"
    DEAD = "dead"
    LEFT = "left"


class StateCode(IntEnum):
    """A member state on the wire (push-pull). Append-only: never renumber or reuse a value."""

    ALIVE = 0
    SUSPECT = 1
    DEAD = 2
    LEFT = 3


STATE_OF_CODE: dict[int, MemberState] = {
    StateCode.ALIVE: MemberState.ALIVE,
    StateCode.SUSPECT: MemberState.SUSPECT,
    StateCode.DEAD: MemberState.DEAD,
    StateCode.LEFT: MemberState.LEFT,
}
CODE_OF_STATE: dict[MemberState, int] = {state: code for code, state in STATE_OF_CODE.items()}


@dataclass(slots=True)
class Member:
    """What this node holds about one member (mutable, private to the node)."""

    name: str
    addr: Address
    state: MemberState
    incarnation: int
    state_change: float  # when `state` last changed (for reaping and gossip to the dead)

    @property
    def dead_or_left(self) -> bool:
        return self.state is MemberState.DEAD or self.state is MemberState.LEFT


@dataclass(frozen=True, slots=True)
class MemberView:
    """A read-only snapshot of one member, for callers."""

    name: str
    addr: Address
    state: MemberState
    incarnation: int


def alive_overrides(member: Member, incarnation: int) -> bool:
    return incarnation > member.incarnation


def suspect_overrides(member: Member, incarnation: int) -> bool:
    return member.state is MemberState.ALIVE and incarnation >= member.incarnation


def dead_overrides(member: Member, incarnation: int) -> bool:
    return not member.dead_or_left and incarnation >= member.incarnation

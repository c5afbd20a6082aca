"""Keyring commands across a cluster: an operator's install, use, remove or list, carried to every
member over gossip and answered by each, as Serf's `serf keys` does with an internal query.

The originator (the node the operator asked) sends a KEY_COMMAND datagram (command id, its
wall-clock time, op, key) to every member it does not hold dead or left, and resends to the silent
ones every RETRY_INTERVAL_S until each answered with a KEY_COMMAND_ACK or the command's timeout
passed. The report says per member ok, failed (with the member's own error) or no answer, and
each member's keyring by fingerprint. The originator applies the command to its own keyring
last, once the answers are in: until then it seals with, and accepts, what every member holds,
so that it hears a member that refused (a `use` of a key it lacks) or still seals with the key
being removed.

Rules:
- Sans-IO: `now` (monotonic, for retries and timeouts) and `wall` (Unix seconds, for freshness)
  are arguments; command ids come from the caller.
- Commands travel sealed like every gossip datagram (secure_channel.py): only a holder of an
  installed key can send one, and the channel refuses a replayed datagram. On top of that, so that
  a captured command cannot be replayed later to undo a rotation (after its sender's replay state
  was forgotten, say), a member accepts a command only while it is fresh (issued within
  COMMAND_FRESH_S of its own clock, either way) and at most once: it remembers every id it
  answered until the command is stale, and answers a repeat (a retransmission after a lost ack)
  with the answer it gave, without applying the command again.
- A member never removes its primary key, hence never its only key (keyring.py refuses both), nor
  uses a key it does not hold; it answers with the error instead. It holds at most
  MAX_KEYRING_KEYS keys. The originator refuses, before sending anything, to `use` a key it does
  not hold or to `remove` its own primary: either would cut it off from the members that obey.
- A change is saved (the `save` hook: the adapter writes the keyring state file) before the member
  answers; a change applied but not saved is answered as failed, saying so, since the member
  would lose it at its next restart.
- Everything is bounded: commands in flight, finished reports kept, ids remembered (when full, a
  fresh command is refused rather than an id forgotten early), answers by size (the wire).
- Nothing a peer sends raises: a bad command is answered with its error, a stray ack is counted.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from hubhop.core import swim_messages as wire
from hubhop.core.keyring import Keyring, fingerprint
from hubhop.core.members import Address

# A command is accepted within this many seconds of its issue time, by the member's own clock,
# either way. Cluster clocks are NTP-synced to well under a second; 30 s still admits a host
# that drifted badly, while a captured command is useless half a minute after it was sent.
COMMAND_FRESH_S = 30.0
# How long an originator waits for answers unless told otherwise: a live member answers within
# a round trip, and 5 s leaves room for the retransmissions a lossy WAN link needs.
DEFAULT_TIMEOUT_S = 5.0
# The longest wait an operator may ask for: retransmissions must reach members while the
# command is still fresh.
MAX_TIMEOUT_S = COMMAND_FRESH_S
# Silent members are sent the command again this often: ten tries within the default timeout
# make a member that misses them all on a 10%-loss link about as likely as a lottery win.
RETRY_INTERVAL_S = 0.5
# Keys a keyring may hold. A rotation needs two; eight leave room for a rotation begun before the
# previous one was finished, and bound the work of refusing a bad datagram (it tries every key).
MAX_KEYRING_KEYS = 8
# Commands in flight at once on one originator: an operator runs one at a time, a script a few.
MAX_PENDING_COMMANDS = 8
# Finished reports kept for the adapter to collect (it collects each at once).
MAX_FINISHED_REPORTS = 16
# Command ids a member remembers (each for COMMAND_FRESH_S): far more than operators issue.
MAX_REMEMBERED_COMMANDS = 4096

AnswerStatus = Literal["ok", "failed", "no_answer"]
# Saves the keyring after a change; returns None when saved, else why not.
KeyringSaver = Callable[[Keyring], str | None]


@dataclass(frozen=True, slots=True)
class MemberAnswer:
    name: str
    status: AnswerStatus
    error: str = ""
    fingerprints: tuple[str, ...] = ()  # the member's keyring after the command
    primary: str = ""  # its primary key's fingerprint


@dataclass(frozen=True, slots=True)
class KeyCommandReport:
    command_id: bytes
    op: str
    key: str  # the key's fingerprint ("" for list)
    answers: tuple[MemberAnswer, ...]  # the originator's own first, then by name
    not_asked: tuple[str, ...] = ()  # members held dead or left when the command was issued

    @property
    def ok(self) -> bool:
        """Every member asked answered ok."""
        return all(answer.status == "ok" for answer in self.answers)


@dataclass(slots=True)
class _Pending:
    op: str
    key: bytes | None
    message: bytes
    targets: dict[str, Address]
    deadline: float
    next_retry: float
    not_asked: tuple[str, ...]
    answers: dict[str, MemberAnswer] = field(default_factory=dict)


def check_command(op: str, key: bytes | None) -> None:
    """ValueError when `op` and `key` do not make a command (list takes no key, the others one)."""
    if op not in wire.KEY_OPS:
        raise ValueError(f"unknown key operation {op!r}; one of {', '.join(wire.KEY_OPS)}")
    if op == "list":
        if key is not None:
            raise ValueError("list takes no key")
        return
    if key is None:
        raise ValueError(f"{op} needs a key")
    Keyring([key])  # raises ValueError naming the accepted sizes


class KeyCommands:
    """One node's side of key commands: as originator, and as a member answering others."""

    def __init__(self, name: str, keyring: Keyring, save: KeyringSaver | None = None) -> None:
        self.name = name
        self.keyring = keyring
        self.save = save
        self.counters: Counter[str] = Counter()
        self._pending: dict[bytes, _Pending] = {}
        self._finished: OrderedDict[bytes, KeyCommandReport] = OrderedDict()
        # Ids answered -> (when the command goes stale, by the wall clock; the answer sent)
        self._answered: OrderedDict[bytes, tuple[float, bytes]] = OrderedDict()

    # ---- originator ----------------------------------------------------------------------------

    def start(
        self,
        command_id: bytes,
        op: str,
        key: bytes | None,
        targets: Sequence[tuple[str, Address]],
        now: float,
        wall: float,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        not_asked: Sequence[str] = (),
    ) -> list[tuple[Address, bytes]]:
        """Address a command to `targets` (it applies here when it finishes): the datagrams
        to send now.

        ValueError for a bad command, a bad timeout or too many commands in flight."""
        check_command(op, key)
        if len(command_id) != wire.KEY_COMMAND_ID_BYTES or command_id in self._pending:
            raise ValueError("a command needs a new 16-byte id")
        if not 0.0 < timeout_s <= MAX_TIMEOUT_S:
            raise ValueError(f"timeout must be in (0, {MAX_TIMEOUT_S:g}] s, not {timeout_s}")
        if len(self._pending) >= MAX_PENDING_COMMANDS:
            raise ValueError(f"{MAX_PENDING_COMMANDS} key commands are already in flight")
        if op == "use" and key not in self.keyring:
            # members would seal with a key this node cannot open: it would lose the cluster
            raise ValueError(
                f"key {fingerprint(key or b'')} is not installed here; install it first"
            )
        if op == "remove" and key == self.keyring.primary:
            # members would refuse everything this node seals: it would lose the cluster
            raise ValueError(
                f"key {fingerprint(key)} is this node's primary key; use another first"
            )
        message = wire.encode_key_command(command_id, wall, op, key)
        pending = _Pending(
            op,
            key,
            message,
            {name: addr for name, addr in targets if name != self.name},
            now + timeout_s,
            now + RETRY_INTERVAL_S,
            tuple(sorted(not_asked)),
        )
        self._pending[command_id] = pending
        self.counters["key_commands_started"] += 1
        if not pending.targets:
            self._finish(command_id)
        return [(addr, message) for addr in pending.targets.values()]

    def on_ack(self, ack: wire.KeyCommandAck, sender: str) -> bytes | None:
        """A member's answer; the command's id when it was the last one awaited."""
        pending = self._pending.get(ack.command_id)
        if pending is None or sender not in pending.targets or sender in pending.answers:
            self.counters["key_acks_ignored"] += 1  # late, repeated, or from someone not asked
            return None
        status: AnswerStatus = "ok" if ack.ok else "failed"
        pending.answers[sender] = MemberAnswer(
            sender, status, ack.error, ack.fingerprints, ack.primary
        )
        if all(name in pending.answers for name in pending.targets):
            self._finish(ack.command_id)
            return ack.command_id
        return None

    def next_deadline(self) -> float | None:
        if not self._pending:
            return None
        return min(min(p.deadline, p.next_retry) for p in self._pending.values())

    def handle_timer(self, now: float) -> tuple[list[tuple[Address, bytes]], list[bytes]]:
        """(datagrams to resend, ids of the commands that finished by timing out)."""
        resend: list[tuple[Address, bytes]] = []
        finished: list[bytes] = []
        for command_id, pending in list(self._pending.items()):
            if now >= pending.deadline:
                self._finish(command_id)
                finished.append(command_id)
                continue
            if now >= pending.next_retry:
                pending.next_retry = now + RETRY_INTERVAL_S
                for name, addr in pending.targets.items():
                    if name not in pending.answers:
                        resend.append((addr, pending.message))
                        self.counters["key_commands_resent"] += 1
        return resend, finished

    def report(self, command_id: bytes) -> KeyCommandReport | None:
        """The report of a finished command (kept until MAX_FINISHED_REPORTS newer ones)."""
        return self._finished.get(command_id)

    def _finish(self, command_id: bytes) -> None:
        pending = self._pending.pop(command_id)
        if self.name not in pending.answers:
            ok, error = self._apply(pending.op, pending.key)
            pending.answers[self.name] = self._answer(self.name, ok, error)
        answers = [pending.answers[self.name]]
        for name in sorted(pending.targets):
            answers.append(pending.answers.get(name, MemberAnswer(name, "no_answer")))
        key = "" if pending.key is None else fingerprint(pending.key)
        self._finished[command_id] = KeyCommandReport(
            command_id, pending.op, key, tuple(answers), pending.not_asked
        )
        while len(self._finished) > MAX_FINISHED_REPORTS:
            self._finished.popitem(last=False)

    # ---- member --------------------------------------------------------------------------------

    def on_command(self, command: wire.KeyCommand, wall: float) -> bytes:
        """Apply a member's command (once, while fresh): the KEY_COMMAND_ACK to send back."""
        if abs(wall - command.issued_at) > COMMAND_FRESH_S:
            self.counters["key_commands_stale"] += 1
            return self._ack(
                command.command_id,
                False,
                f"command refused: issued {wall - command.issued_at:+.0f} s from this node's "
                f"clock, beyond {COMMAND_FRESH_S:g} s (a replay, or clocks out of sync)",
            )
        answered = self._answered.get(command.command_id)
        if answered is not None:
            self.counters["key_commands_repeated"] += 1
            return answered[1]
        self._forget_stale(wall)
        if len(self._answered) >= MAX_REMEMBERED_COMMANDS:
            self.counters["key_commands_refused_busy"] += 1
            return self._ack(command.command_id, False, "too many recent key commands; retry")
        ok, error = self._apply(command.op, command.key)
        ack = self._ack(command.command_id, ok, error)
        self._answered[command.command_id] = (command.issued_at + COMMAND_FRESH_S, ack)
        self.counters["key_commands_applied" if ok else "key_commands_failed"] += 1
        return ack

    def _forget_stale(self, wall: float) -> None:
        while self._answered:
            command_id, (stale_at, _) = next(iter(self._answered.items()))
            if stale_at >= wall:
                break
            del self._answered[command_id]

    # ---- both ----------------------------------------------------------------------------------

    def _apply(self, op: str, key: bytes | None) -> tuple[bool, str]:
        """Carry out `op` on this node's keyring (and save a change): (ok, error)."""
        ring = self.keyring
        before = (ring.keys, ring.primary)
        try:
            if op == "install":
                assert key is not None
                if key not in ring and len(ring) >= MAX_KEYRING_KEYS:
                    return False, (
                        f"the keyring already holds {MAX_KEYRING_KEYS} keys; "
                        "remove a retired key first"
                    )
                ring.install(key)
            elif op == "use":
                assert key is not None
                ring.use(key)
            elif op == "remove":
                assert key is not None
                ring.remove(key)
        except ValueError as exc:
            return False, str(exc)
        if (ring.keys, ring.primary) == before or self.save is None:
            return True, ""
        try:
            failure = self.save(ring)
        except Exception as exc:  # the hook's bug must not take the node down
            failure = f"{type(exc).__name__}: {exc}"
        if failure is not None:
            self.counters["keyring_save_failed"] += 1
            return False, f"applied, but not saved (a restart would lose it): {failure}"
        return True, ""

    def _fingerprints(self) -> tuple[list[str], str]:
        ring = self.keyring
        return [fingerprint(key) for key in ring.keys], fingerprint(ring.primary)

    def _answer(self, name: str, ok: bool, error: str) -> MemberAnswer:
        fingerprints, primary = self._fingerprints()
        return MemberAnswer(name, "ok" if ok else "failed", error, tuple(fingerprints), primary)

    def _ack(self, command_id: bytes, ok: bool, error: str) -> bytes:
        fingerprints, primary = self._fingerprints()
        return wire.encode_key_command_ack(command_id, ok, error, fingerprints, primary)

"""Keyring rotation across a cluster by key commands (hubhop.core.key_commands), on a virtual
clock: through the simulator for the whole rotation, and one KeyCommands by hand for what a
member must refuse (a replay, a stale command, removing its primary)."""

from __future__ import annotations

from collections import Counter

import pytest

from hubhop.core import swim_messages as wire
from hubhop.core.key_commands import (
    COMMAND_FRESH_S,
    MAX_KEYRING_KEYS,
    RETRY_INTERVAL_S,
    KeyCommandReport,
    KeyCommands,
    MemberAnswer,
)
from hubhop.core.keyring import Keyring, fingerprint
from hubhop.core.members import MemberState
from hubhop.core.swim import KeyCommandDone, MemberDead, MemberSuspect
from hubhop.sim import Simulator

K1 = bytes(range(16))
K2 = bytes(range(100, 132))
K3 = bytes(range(50, 74))
ID = bytes(16)


def cluster(n: int, seed: int = 3) -> Simulator:
    sim = Simulator(seed=seed, keys=[K1])
    sim.add_nodes(n, stagger_s=0.01)
    assert sim.run_until_true(sim.converged, 10.0) is not None
    return sim


def command(sim: Simulator, origin: str, op: str, key: bytes | None) -> KeyCommandReport:
    """Run a key command from `origin` until its report is ready (at most its timeout)."""
    node = sim.nodes[origin].node
    command_id = node.start_key_command(op, key, sim.now)
    sim.touch(origin)

    def done() -> bool:
        return any(e == KeyCommandDone(command_id) for _, e in sim.nodes[origin].events)

    assert sim.run_until_true(done, 10.0, check_every_s=0.01) is not None
    report = node.key_command_report(command_id)
    assert report is not None
    return report


def statuses(report: KeyCommandReport) -> dict[str, str]:
    return {a.name: a.status for a in report.answers}


def test_a_rotation_reaches_every_member_without_a_suspicion_and_locks_out_the_old_key() -> None:
    sim = cluster(3)
    names = {"n1", "n2", "n3"}
    sim.run_for(2.0)
    start = sim.now

    installed = command(sim, "n1", "install", K2)
    assert statuses(installed) == dict.fromkeys(names, "ok")
    assert all(K2 in sn.node.channel.keyring for sn in sim.live())

    used = command(sim, "n2", "use", K2)  # any member may originate
    assert used.ok and {a.primary for a in used.answers} == {fingerprint(K2)}
    assert all(sn.node.channel.keyring.primary == K2 for sn in sim.live())

    removed = command(sim, "n3", "remove", K1)
    assert removed.ok
    assert all(sn.node.channel.keyring.keys == (K2,) for sn in sim.live())

    listed = command(sim, "n1", "list", None)
    assert listed.ok and listed.key == ""
    assert {a.fingerprints for a in listed.answers} == {(fingerprint(K2),)}

    # Gossip kept flowing: a record published now reaches everyone, and nobody was suspected.
    version = sim.nodes["n2"].node.update_record(b"after rotation", sim.now)
    sim.touch("n2")
    sim.run_for(2.0)
    for name in ("n1", "n3"):
        assert sim.nodes[name].store.get("n2") == (version, b"after rotation")
    for sn in sim.live():
        late = [e for t, e in sn.events if t >= start and isinstance(e, MemberSuspect | MemberDead)]
        assert late == [], sn.name
    assert sim.converged()

    # A node that holds only the retired key cannot join: its traffic is refused as bad_key.
    outsider = sim.add_node("old", seeds=[sim.nodes["n1"].addr], keys=[K1])
    sim.run_for(5.0)
    assert outsider.node.count(MemberState.ALIVE) == 1
    assert all(sn.node.member("old") is None for sn in sim.live() if sn.name != "old")
    assert sim.counters()["dropped_bad_key"] > 0


def test_a_member_that_does_not_answer_is_reported_after_retries() -> None:
    sim = cluster(3)
    sim.block("n1", "n3")
    report = command(sim, "n1", "install", K2)
    assert statuses(report) == {"n1": "ok", "n2": "ok", "n3": "no_answer"}
    assert not report.ok
    assert sim.nodes["n1"].node.key_commands.counters["key_commands_resent"] >= 5


def test_retries_carry_a_command_over_a_lossy_network() -> None:
    sim = cluster(4, seed=5)
    sim.default_link = type(sim.default_link)(0.002, 0.001, 0.3)
    report = command(sim, "n1", "install", K2)
    assert report.ok
    assert all(K2 in sn.node.channel.keyring for sn in sim.live())


def test_a_peer_cannot_remove_a_members_primary_key_nor_use_an_absent_one() -> None:
    sim = cluster(3)
    assert command(sim, "n1", "install", K2).ok
    sim.nodes["n1"].node.channel.keyring.use(K2)  # only n1 moved on, by hand
    report = command(sim, "n1", "remove", K1)
    # n2 and n3 answer (sealed with K1, which n1 still accepts until the answers are in).
    assert statuses(report) == {"n1": "ok", "n2": "failed", "n3": "failed"}
    failed = [a for a in report.answers if a.status == "failed"]
    assert all("primary" in a.error for a in failed)
    assert sim.nodes["n2"].node.channel.keyring.keys == (K1, K2)
    assert sim.nodes["n1"].node.channel.keyring.keys == (K2,)

    sim = cluster(3)
    sim.nodes["n2"].node.channel.keyring.install(K3)  # only n2 holds K3
    report = command(sim, "n2", "use", K3)
    assert statuses(report) == {"n1": "failed", "n2": "ok", "n3": "failed"}
    assert all("not installed" in a.error for a in report.answers if a.name != "n2")


def test_a_captured_command_replayed_later_is_refused() -> None:
    sim = cluster(3)
    captured: list[tuple[tuple[str, int], tuple[str, int], bytes]] = []
    n1, n2 = sim.nodes["n1"], sim.nodes["n2"]
    sim.tap = lambda now, src, dst, data: (
        captured.append((src, dst, data)) if src == n1.addr and dst == n2.addr else None
    )
    assert command(sim, "n1", "install", K2).ok
    assert command(sim, "n1", "use", K2).ok
    sim.tap = None
    assert captured
    ring = n2.node.channel.keyring
    ring.use(K1)  # n2's operator rolled back by hand; a replayed "use K2" must not undo that
    applied = n2.node.key_commands.counters["key_commands_applied"]
    for src, dst, data in captured:
        sim.send_datagram(data, src, dst)
    sim.run_for(1.0)
    assert ring.primary == K1
    assert n2.node.key_commands.counters["key_commands_applied"] == applied


class Member:
    """One KeyCommands answering commands, with a wall clock of its own."""

    def __init__(self, keys: list[bytes], save_result: str | None = None) -> None:
        self.ring = Keyring(keys)
        self.saved: list[tuple[bytes, ...]] = []
        self.save_result = save_result
        self.commands = KeyCommands("m", self.ring, self.save)

    def save(self, ring: Keyring) -> str | None:
        self.saved.append(ring.keys)
        return self.save_result

    def answer(
        self, op: str, key: bytes | None, issued: float, wall: float, cid: bytes = ID
    ) -> wire.KeyCommandAck:
        raw = self.commands.on_command(wire.KeyCommand(cid, issued, op, key), wall)
        (ack,) = wire.decode_datagram(wire.compound([raw]), Counter())
        assert isinstance(ack, wire.KeyCommandAck)
        return ack


def test_a_member_answers_a_repeat_from_memory_and_refuses_stale_commands() -> None:
    member = Member([K1, K2])
    first = member.answer("remove", K2, issued=1000.0, wall=1000.2)
    assert first.ok and member.ring.keys == (K1,)
    # A retransmission (the ack was lost) gets the same answer, not "key not installed".
    again = member.answer("remove", K2, issued=1000.0, wall=1001.0)
    assert again == first
    # The same command id later, or a command issued long ago or far ahead, is refused.
    member.ring.install(K2)
    for issued, wall, cid in (
        (1000.0, 1000.0 + COMMAND_FRESH_S + 1, ID),
        (1000.0, 1000.0 + COMMAND_FRESH_S + 1, bytes(range(16))),
        (1000.0 + COMMAND_FRESH_S + 1, 1000.0, bytes(range(16))),
    ):
        stale = member.answer("remove", K2, issued, wall, cid)
        assert not stale.ok and "refused" in stale.error
    assert K2 in member.ring
    assert member.commands.counters["key_commands_stale"] == 3


def test_changes_are_saved_and_a_failed_save_is_reported() -> None:
    member = Member([K1])
    assert member.answer("install", K2, 0.0, 0.0).ok
    assert member.answer("install", K2, 0.0, 0.0, bytes(range(16))).ok  # no change: no save
    assert member.saved == [(K1, K2)]
    broken = Member([K1], save_result="read-only file system")
    ack = broken.answer("install", K2, 0.0, 0.0)
    assert not ack.ok and "not saved" in ack.error and "read-only" in ack.error


def test_a_keyring_is_bounded() -> None:
    keys = [bytes([i]) * 16 for i in range(MAX_KEYRING_KEYS)]
    member = Member(keys)
    ack = member.answer("install", K2, 0.0, 0.0)
    assert not ack.ok and "remove a retired key" in ack.error
    assert len(member.ring) == MAX_KEYRING_KEYS
    assert len(ack.fingerprints) == MAX_KEYRING_KEYS  # the answer still fits the wire bounds


def test_an_originator_collects_answers_and_times_out() -> None:
    origin = KeyCommands("o", Keyring([K1]))
    targets = [("a", ("h", 1)), ("b", ("h", 2))]
    sends = origin.start(ID, "install", K2, targets, now=0.0, wall=0.0, timeout_s=2.0)
    assert [addr for addr, _ in sends] == [("h", 1), ("h", 2)]
    ack = wire.KeyCommandAck(ID, True, "", (fingerprint(K1), fingerprint(K2)), fingerprint(K1))
    assert origin.on_ack(ack, "a") is None
    assert origin.on_ack(ack, "stranger") is None  # not asked: ignored
    resend, finished = origin.handle_timer(RETRY_INTERVAL_S)
    assert [addr for addr, _ in resend] == [("h", 2)] and finished == []
    _, finished = origin.handle_timer(2.0)
    assert finished == [ID]
    report = origin.report(ID)
    assert report is not None and report.key == fingerprint(K2)
    assert report.answers[1] == MemberAnswer(
        "a", "ok", "", (fingerprint(K1), fingerprint(K2)), fingerprint(K1)
    )
    assert report.answers[2] == MemberAnswer("b", "no_answer")
    assert origin.on_ack(ack, "b") is None  # too late
    assert origin.counters["key_acks_ignored"] == 2


@pytest.mark.parametrize(
    ("op", "key", "message"),
    [
        ("rotate", K2, "unknown key operation"),
        ("install", None, "needs a key"),
        ("list", K2, "takes no key"),
        ("use", b"short", "16, 24 or 32 bytes"),
        ("use", K2, "not installed here"),
        ("remove", K1, "this node's primary key"),
    ],
)
def test_a_bad_command_is_refused_before_anything_is_sent(
    op: str, key: bytes | None, message: str
) -> None:
    origin = KeyCommands("o", Keyring([K1]))
    with pytest.raises(ValueError, match=message):
        origin.start(ID, op, key, [("a", ("h", 1))], 0.0, 0.0)
    assert origin.next_deadline() is None


@pytest.mark.parametrize(
    "message",
    [
        [wire.MessageType.KEY_COMMAND, ID, 0.0, "install", b"short"],
        [wire.MessageType.KEY_COMMAND, ID, 0.0, "list", K1],
        [wire.MessageType.KEY_COMMAND, ID, 0.0, "wipe", K1],
        [wire.MessageType.KEY_COMMAND, b"id", 0.0, "use", K1],
        [wire.MessageType.KEY_COMMAND_ACK, ID, True, "", "not a list", ""],
        [wire.MessageType.KEY_COMMAND_ACK, ID, True, "", ["ab"] * 33, ""],
    ],
)
def test_malformed_key_messages_are_skipped_and_counted(message: list[object]) -> None:
    import msgpack

    drops: Counter[str] = Counter()
    assert wire.decode_datagram(msgpack.packb([message]), drops) == []
    assert drops["msg_malformed"] == 1


def test_members_held_dead_are_named_not_asked() -> None:
    sim = cluster(4)
    sim.kill("n4")
    assert sim.run_until_true(lambda: sim.all_see("n4", [MemberState.DEAD]), 30.0) is not None
    report = command(sim, "n1", "install", K2)
    assert report.ok and report.not_asked == ("n4",)
    assert statuses(report) == dict.fromkeys(["n1", "n2", "n3"], "ok")

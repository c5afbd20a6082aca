"""SWIM with Lifeguard end to end, through the simulator: virtual time, deterministic seeds."""

from __future__ import annotations

import dataclasses

import pytest

from hubhop.core.members import MemberState
from hubhop.core.swim import GossipSettings, MemberDead, MemberLeft, MemberReaped
from hubhop.sim import Simulator
from hubhop.sim.network import sim_address

ALIVE = [MemberState.ALIVE]


def cluster(n: int, seed: int = 1, **settings: float) -> Simulator:
    sim = Simulator(GossipSettings(**settings), seed=seed)  # type: ignore[arg-type]
    sim.add_nodes(n, stagger_s=0.01)
    assert sim.run_until_true(sim.converged, 10.0) is not None
    return sim


@pytest.mark.parametrize("n", [5, 50])
def test_join_converges_all_alive(n: int) -> None:
    sim = Simulator(seed=n)
    sim.add_nodes(n, stagger_s=0.005)
    took = sim.run_until_true(sim.converged, 10.0)
    assert took is not None and took < 5.0
    for sn in sim.live():
        views = sn.node.members()
        assert len(views) == n
        assert {v.state for v in views} == {MemberState.ALIVE}
    assert sim.counters().get("internal_error", 0) == 0


def test_probing_steady_state_suspects_nobody() -> None:
    sim = cluster(8)
    sim.run_for(20.0)
    counters = sim.counters()
    # every node probes once per 0.5 s: ~8 * 40 probes, all acked
    assert counters["probes"] >= 8 * 35
    assert counters["acks"] >= counters["probes"] - 8
    assert not sim.suspected_at
    assert all(sn.node.health_score == 0 for sn in sim.live())


def test_indirect_probe_saves_a_node_behind_a_broken_link() -> None:
    sim = cluster(5)
    sim.block("n1", "n2")  # n1 <-> n2 broken; both still reach everybody else
    sim.run_for(20.0)
    counters = sim.counters()
    assert counters["indirect_probes"] > 0
    assert counters["pings_relayed"] > 0
    assert counters["acks_relayed"] > 0
    assert "n2" not in sim.suspected_at and "n1" not in sim.suspected_at
    assert sim.converged()


def test_suspected_node_refutes_with_higher_incarnation_on_heal() -> None:
    sim = cluster(5)
    sim.partition({"n3"})
    took = sim.run_until_true(lambda: "n3" in sim.suspected_at, 3.0, 0.01)
    assert took is not None
    sim.heal()
    assert sim.run_until_true(lambda: sim.all_see("n3", ALIVE), 5.0, 0.01) is not None
    n3 = sim.nodes["n3"].node
    assert n3.incarnation >= 1
    assert n3.counters["refutes"] >= 1
    for sn in sim.live():
        view = sn.node.member("n3")
        assert view is not None and view.incarnation == n3.incarnation
    assert "n3" not in sim.dead_at


def test_awareness_stretches_an_isolated_nodes_timeouts() -> None:
    sim = cluster(5)
    settings = sim.settings
    sim.partition({"n1"})
    sim.run_for(4.0)
    lonely = sim.nodes["n1"].node
    assert lonely.health_score >= 2
    assert lonely.probe_timeout_s >= 3 * settings.probe_timeout_s
    assert lonely.probe_interval_s > settings.probe_interval_s
    # the others failed their probes of n1 too, but their helpers' nacks vouched for them
    for name in ("n2", "n3", "n4", "n5"):
        node = sim.nodes[name].node
        assert node.health_score == 0
        assert node.probe_timeout_s == settings.probe_timeout_s


def test_failure_detection_within_bound() -> None:
    sim = cluster(10)
    sim.kill("n5")
    took = sim.run_until_true(lambda: sim.all_see("n5", [MemberState.DEAD]), 15.0)
    assert took is not None
    # min suspicion 1.5 s (n=10), shrunk there by confirmations; plus a probe round to notice
    assert took < 6.0, took
    assert all(sn.node.member("n5") is not None for sn in sim.live())


def test_leave_is_left_not_failed_and_reaped_later() -> None:
    sim = cluster(6, reap_after_s=5.0)
    sim.nodes["n4"].node.leave(sim.now)
    sim.touch("n4")
    assert sim.run_until_true(lambda: sim.all_see("n4", [MemberState.LEFT]), 3.0) is not None
    sim.kill("n4")  # the process exits after its goodbye
    sim.run_for(8.0)
    assert "n4" not in sim.dead_at and "n4" not in sim.suspected_at
    for sn in sim.live():
        kinds = [type(e) for _, e in sn.events if getattr(e, "name", None) == "n4"]
        assert MemberLeft in kinds and MemberReaped in kinds and MemberDead not in kinds
        assert sn.node.member("n4") is None
        assert len(sn.node.members()) == 5


def test_rejoin_after_kill_and_restart_has_higher_incarnation() -> None:
    sim = cluster(6)
    sim.kill("n4")
    assert sim.run_until_true(lambda: sim.all_see("n4", [MemberState.DEAD]), 15.0) is not None
    dead_inc = sim.nodes["n1"].node.member("n4").incarnation  # type: ignore[union-attr]
    sim.restart("n4")
    assert sim.run_until_true(sim.converged, 10.0) is not None
    n4 = sim.nodes["n4"].node
    assert n4.incarnation > dead_inc
    for sn in sim.live():
        view = sn.node.member("n4")
        assert view is not None and view.state is MemberState.ALIVE
        assert view.incarnation == n4.incarnation


def test_partition_and_heal_reconverge_and_resync_records() -> None:
    sim = cluster(10, push_pull_interval_s=5.0)
    left = [f"n{i}" for i in range(1, 6)]
    right = [f"n{i}" for i in range(6, 11)]
    for sn in sim.live():
        sn.node.update_record(b"v1 of " + sn.name.encode(), sim.now)
        sim.touch(sn.name)
    sim.run_for(3.0)
    sim.partition(left, right)
    assert (
        sim.run_until_true(
            lambda: all(sim.all_see(r, [MemberState.DEAD], among=left) for r in right), 20.0
        )
        is not None
    )
    version = sim.nodes["n2"].node.update_record(b"v2 written during the partition", sim.now)
    sim.touch("n2")
    sim.run_for(2.0)
    sim.heal()

    def healed() -> bool:
        if not sim.converged():
            return False
        return all((sn.store.get("n2") or (0, b""))[0] == version for sn in sim.live())

    assert sim.run_until_true(healed, 25.0, 0.5) is not None
    for sn in sim.live():
        assert len(sn.store) == 10


def test_replayed_datagram_is_dropped_without_state_change() -> None:
    sim = cluster(4)
    captured: list[tuple[tuple[str, int], tuple[str, int], bytes]] = []
    n1, n2 = sim.nodes["n1"], sim.nodes["n2"]

    def tap(now: float, src: tuple[str, int], dst: tuple[str, int], data: bytes) -> None:
        if src == n1.addr and dst == n2.addr and not captured:
            captured.append((src, dst, data))

    sim.tap = tap
    assert sim.run_until_true(lambda: bool(captured), 5.0, 0.01) is not None
    sim.tap = None
    sim.run_for(0.1)  # the original is delivered
    src, _, data = captured[0]
    before = n2.node.members()
    drops_before = n2.node.channel.drops["replay"]
    datagrams_in = n2.node.counters["datagrams_in"]
    n2.node.receive_datagram(data, src, sim.now)
    n2.node.receive_datagram(data, src, sim.now)
    assert n2.node.channel.drops["replay"] == drops_before + 2
    assert n2.node.counters["dropped_replay"] >= 2
    assert n2.node.counters["datagrams_in"] == datagrams_in
    assert n2.node.members() == before
    assert n2.node.datagrams_to_send(sim.now) == []


def test_key_rotation_across_a_live_cluster_loses_nobody() -> None:
    sim = cluster(10)
    new_key = bytes(range(32))
    old_key = sim.keys[0]
    names = [sn.name for sn in sim.live()]
    for step in ("install", "use", "remove"):
        for name in names:
            keyring = sim.nodes[name].node.channel.keyring
            if step == "install":
                keyring.install(new_key)
            elif step == "use":
                keyring.use(new_key)
            else:
                keyring.remove(old_key)
            sim.run_for(0.3)  # probing and gossip go on between every single change
        sim.run_for(2.0)
    sim.run_for(5.0)
    assert not sim.suspected_at
    assert sim.converged()
    for sn in sim.live():
        assert sn.node.channel.keyring.keys == (new_key,)
        assert sn.node.channel.drops["bad_key"] == 0


def test_record_propagation_small_by_gossip_large_by_push_pull() -> None:
    sim = cluster(12, push_pull_interval_s=3.0)
    small = sim.nodes["n3"].node.update_record(b"small record", sim.now)
    sim.touch("n3")
    sim.track_record("n3", small)
    took = sim.run_until_true(lambda: len(sim.arrivals["n3"]) == 11, 3.0, 0.01)
    assert took is not None and took < 1.0
    assert sim.dissemination("n3").t100 is not None

    big_payload = bytes(range(256)) * 20  # 5 KB: too big for any datagram
    node = sim.nodes["n5"].node
    big = node.update_record(big_payload, sim.now)
    sim.touch("n5")
    assert node.counters["records_push_pull_only"] == 1
    sim.track_record("n5", big)
    took = sim.run_until_true(lambda: len(sim.arrivals["n5"]) == 11, 40.0, 0.25)
    assert took is not None
    for sn in sim.live():
        assert sn.store.get("n5") == (big, big_payload)


def test_every_datagram_fits_the_limit() -> None:
    settings = GossipSettings()
    sim = Simulator(settings, seed=3)
    sizes: list[int] = []
    sim.tap = lambda now, src, dst, data: sizes.append(len(data))
    sim.add_nodes(40, stagger_s=0.001)
    for i, sn in enumerate(sim.live()):
        sn.node.update_record(bytes([i]) * (200 + 25 * i), sim.now)  # up to ~1.2 KB
        sim.touch(sn.name)
    sim.run_for(5.0)
    assert sizes and max(sizes) <= settings.max_datagram_bytes
    assert max(sizes) > settings.max_datagram_bytes * 0.8  # and the room is used


def test_settings_reject_nonsense() -> None:
    with pytest.raises(ValueError):
        GossipSettings(probe_interval_s=0)
    with pytest.raises(ValueError):
        GossipSettings(probe_timeout_s=2.0, probe_interval_s=1.0)
    assert dataclasses.asdict(GossipSettings())["probe_interval_s"] == 0.5


def test_a_node_started_before_its_seed_joins_once_the_seed_is_up() -> None:
    # Nodes started in any order (systemd on separate machines) must find each other: the
    # first join goes nowhere, and the node asks its seed again while it sees no one.
    sim = Simulator(seed=3)
    early = sim.add_node("early", seeds=[sim_address(2)])
    sim.run_for(5.0)
    assert [m.name for m in early.node.members() if m.name != "early"] == []
    sim.add_node("seed")
    took = sim.run_until_true(sim.converged, 2 * sim.settings.push_pull_interval_s + 5.0)
    assert took is not None, "the early node never joined its seed"
    assert sim.counters()["rejoins"] >= 1

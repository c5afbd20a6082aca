"""LatencyMonitor: whom it probes, how it turns samples into estimates, and, through the
simulator with links of known length, that every node ends up with the right distances and tiers."""

from __future__ import annotations

import itertools
import math
import random
import statistics

from hubhop.core import swim_messages as wire
from hubhop.core.latency_monitor import LatencyMonitor, ProbeSettings, to_wire
from hubhop.core.swim import RttSample
from hubhop.core.tiers import tier_of
from hubhop.core.vivaldi import Coordinate, relative_error
from hubhop.sim import Simulator

SETTINGS = ProbeSettings()


def monitor(members: list[str], hubs: tuple[str, ...] = ()) -> LatencyMonitor:
    m = LatencyMonitor("me", hubs, random.Random(1), 0.0)
    for name in members:
        m.member_up(name)
    return m


def one_round(m: LatencyMonitor, start: float) -> list[tuple[float, str]]:
    """Every probe the monitor sends in the near round starting at `start`, with its time,
    stepping the clock from one of its deadlines to the next as the daemon's loop does."""
    sent, now = [], start
    while now < start + SETTINGS.near_interval_s:
        sent += [(now, name) for name in m.due(now)]
        now = m.next_deadline()
    return sent


def test_hubs_and_the_nearest_are_probed_every_near_round_and_one_more_at_random() -> None:
    names = [f"p{i}" for i in range(20)]
    near_only = ProbeSettings(random_interval_s=1e6)
    m = LatencyMonitor("me", ("p19",), random.Random(1), 0.0, near_only)
    for i, name in enumerate(names):
        m.member_up(name)
        if i < 12:
            m.on_sample(name, 1.0 + i, None, 0.0)  # p0 nearest ... p11 farthest measured
    sent = [n for _, n in one_round(m, SETTINGS.near_interval_s)]
    assert sent == ["p19", *names[: SETTINGS.nearest_k]]  # hubs first, then nearest first

    random_only = ProbeSettings(near_interval_s=1e6, nearest_k=0)
    m = LatencyMonitor("me", (), random.Random(1), 0.0, random_only)
    for name in names:
        m.member_up(name)
    picked = []
    for second in range(1, 6):
        due = m.due(float(second))
        assert len(due) == 1  # one random member a second
        picked += due
        m.on_sample(due[0], 5.0, None, float(second))
    assert len(set(picked)) > 1


def test_a_rounds_probes_are_spread_over_the_round_not_sent_in_a_burst() -> None:
    names = [f"p{i}" for i in range(10)]
    m = LatencyMonitor("me", (), random.Random(1), 0.0, ProbeSettings(random_interval_s=1e6))
    for i, name in enumerate(names):
        m.member_up(name)
        m.on_sample(name, 1.0 + i, None, 0.0)
    start = m.next_deadline()
    times = [t for t, _ in one_round(m, start)]
    assert len(times) == SETTINGS.nearest_k
    gaps = [b - a for a, b in itertools.pairwise(times)]
    spacing = SETTINGS.near_interval_s / SETTINGS.nearest_k
    assert all(math.isclose(gap, spacing) for gap in gaps)


def test_an_unanswered_probe_is_a_loss_and_the_member_is_probed_again() -> None:
    m = monitor(["p1"], hubs=("p1",))
    t = SETTINGS.near_interval_s
    assert m.due(t) == ["p1"]
    m.on_sample("p1", 3.0, None, t)
    assert m.due(2 * t) == ["p1"]
    later = 2 * t + SETTINGS.timeout_s  # no reply by now: a loss, and probed again
    assert m.due(later) == ["p1"]
    snap = m.rtt.snapshot("p1", later)
    assert snap is not None and snap.loss_rate == 0.5
    assert m.counters["probes_lost"] == 1


def test_a_fresh_measurement_wins_over_coordinates_and_coordinates_stand_in_when_stale() -> None:
    m = monitor(["p1"])
    far = Coordinate((40.0,) + (0.0,) * 7, 0.1, 0.1, 0.0)
    m.set_coordinate("p1", far)
    assert m.estimate("p1", 0.0).source == "coordinates"  # type: ignore[union-attr]
    for i in range(10):
        m.on_sample("p1", 4.0, None, float(i))
    measured = m.estimate("p1", 10.0)
    assert measured is not None and measured.source == "measured"
    assert measured.rtt_ms == 4.0 and measured.one_way_ms == 2.0 and measured.tier == "province"
    stale = m.estimate("p1", 10.0 + m.rtt.settings.stale_after_s + 1)
    assert stale is not None and stale.source == "coordinates" and stale.rtt_ms > 30.0
    assert monitor([]).estimate("nobody", 0.0) is None


def test_garbage_coordinates_from_peers_change_nothing() -> None:
    m = monitor(["p1"])
    before = m.coordinate
    nan = wire.WireCoordinate((math.nan,) * 8, 0.1, 0.1, 0.0)
    short = wire.WireCoordinate((1.0,) * 3, 0.1, 0.1, 0.0)
    m.on_sample("p1", 5.0, nan, 1.0)
    m.on_sample("p1", 5.0, short, 1.0)
    m.set_coordinate("p1", Coordinate((1.0,) * 8, -1.0, 0.1, 0.0))
    assert m.coordinate == before
    assert m.counters["bad_probe_coordinates"] == 2 and m.counters["bad_record_coordinates"] == 1
    assert m.estimate("p1", 1.0).source == "measured"  # type: ignore[union-attr]  # RTT counted


def test_links_are_fresh_measurements_nearest_first_and_bounded() -> None:
    m = monitor([f"p{i}" for i in range(30)])
    for i in range(30):
        m.on_sample(f"p{i}", 30.0 - i, None, 0.0)
    links = m.links(1.0)
    assert len(links) == SETTINGS.max_links
    assert links[0] == ("p29", 1.0)
    assert [rtt for _p, rtt in links] == sorted(rtt for _p, rtt in links)
    assert m.links(1.0 + m.rtt.settings.stale_after_s + 1) == ()


def test_noise_does_not_reshuffle_the_links_a_clearly_nearer_member_does() -> None:
    # Every change of the linked set is a record version relayed by every node.
    m = monitor([f"p{i}" for i in range(12)])
    for i in range(8):
        m.on_sample(f"p{i}", 1.0 + i, None, 0.0)  # p0 1 ms ... p7 8 ms
    first = m.links(1.0)
    assert [p for p, _ in first] == [f"p{i}" for i in range(8)]
    m.on_sample("p8", 7.5, None, 1.0)  # a little nearer than p7: noise, not news
    assert m.links(2.0) == first
    m.on_sample("p9", 3.0, None, 2.0)  # clearly nearer than p7: it takes p7's place
    assert [p for p, _ in m.links(3.0)] == ["p0", "p1", "p2", "p9", "p3", "p4", "p5", "p6"]


def test_linked_members_are_probed_every_near_round() -> None:
    no_random = ProbeSettings(nearest_k=2, random_interval_s=1e6)
    m = LatencyMonitor("me", (), random.Random(1), 0.0, no_random)
    for i in range(12):
        m.member_up(f"p{i}")
    for i in range(12):
        m.on_sample(f"p{i}", 1.0 + i, None, 0.0)
    m.links(0.5)  # p0..p7 linked
    targets, now = [], SETTINGS.near_interval_s
    while now < 2 * SETTINGS.near_interval_s:
        for name in m.due(now):
            targets.append(name)
            m.on_sample(name, 1.0 + int(name[1:]), None, now)  # answered at once
        now = m.next_deadline()
    assert set(targets) >= {f"p{i}" for i in range(8)}
    assert len(targets) == len(set(targets))  # nearest and linked overlap: each probed once


def place(n: int, seed: int) -> dict[str, tuple[float, float]]:
    """Nodes on a plane 16 ms across (one-way), like a province with a few far sites."""
    rng = random.Random(seed)
    return {f"n{i + 1}": (rng.uniform(0, 16), rng.uniform(0, 16)) for i in range(n)}


def test_a_simulated_cluster_learns_true_distances_and_tiers() -> None:
    n = 12
    where = place(n, seed=7)
    sim = Simulator(seed=7, jitter_s=0.00002)
    sim.add_nodes(n, stagger_s=0.01)

    def one_way_ms(a: str, b: str) -> float:
        return max(0.2, math.dist(where[a], where[b]))

    for a in where:
        for b in where:
            if a < b:
                sim.set_link(a, b, delay_s=one_way_ms(a, b) / 1000.0)
    monitors = {name: LatencyMonitor(name, (), random.Random(name), 0.0) for name in where}
    for m in monitors.values():
        for other in where:
            m.member_up(other)
    seen = {name: 0 for name in where}
    while sim.now < 60.0:
        sim.run_for(0.05)
        for name, sn in sim.nodes.items():
            m = monitors[name]
            for _t, event in sn.events[seen[name] :]:
                if isinstance(event, RttSample):
                    m.on_sample(event.name, event.rtt_ms, event.coordinate, sim.now)
            seen[name] = len(sn.events)
            sn.node.coordinate = to_wire(m.coordinate)
            for target in m.due(sim.now):
                sn.node.send_probe(target, sim.now)
            sim.touch(name)

    errors, vivaldi_errors, wrong_tiers = [], [], 0
    for a, m in monitors.items():
        for b in where:
            if a == b:
                continue
            truth = one_way_ms(a, b)
            est = m.estimate(b, sim.now)
            assert est is not None and est.source == "measured"
            errors.append(relative_error(est.one_way_ms, truth))
            assert tier_of(est.conservative_one_way_ms) >= tier_of(truth) or (
                est.conservative_one_way_ms >= truth
            )
            wrong_tiers += est.tier != tier_of(truth)
            vivaldi_errors.append(
                relative_error(m.coordinate.distance_ms(monitors[b].coordinate), 2 * truth)
            )
    assert max(errors) < 0.03  # every probed link within 3% of truth
    assert statistics.median(vivaldi_errors) < 0.10
    assert wrong_tiers <= 0.02 * len(errors)


def test_a_newly_measured_link_borrows_the_spread_of_the_well_measured_ones() -> None:
    m = monitor([f"p{i}" for i in range(5)])
    for t in range(20):  # four steady links, 20 samples each
        for i in range(4):
            m.on_sample(f"p{i}", 2.0 + i + (0.02 if t % 2 else 0.0), None, float(t))
    m.on_sample("p4", 13.7, None, 20.0)  # the fifth, measured once: 6.85 ms one-way
    estimate = m.estimate("p4", 20.0)
    assert estimate is not None and estimate.source == "measured"
    # TCP's margin for one sample would be half the RTT (13.7 ms one-way: "any"); the pooled
    # spread of the steady links says this network jitters by hundredths of a ms.
    assert estimate.conservative_one_way_ms < 6.9
    assert estimate.tier == "region"
    lone = monitor(["p4"])  # nothing well measured to pool: the cautious margin stands
    lone.on_sample("p4", 13.7, None, 20.0)
    assert lone.estimate("p4", 20.0).tier == "any"  # type: ignore[union-attr]


def test_hubs_are_probed_every_hub_interval_the_nearest_every_round() -> None:
    settings = ProbeSettings(random_interval_s=1e6, nearest_k=1, max_links=0)
    m = LatencyMonitor("me", ("hub",), random.Random(1), 0.0, settings)
    for name in ("hub", "near"):
        m.member_up(name)
    m.on_sample("near", 1.0, None, 0.0)
    m.on_sample("hub", 20.0, None, 0.0)
    sent: list[tuple[float, str]] = []
    now = m.next_deadline()
    while now < 12.0:
        for name in m.due(now):
            sent.append((now, name))
            m.on_sample(name, 1.0 if name == "near" else 20.0, None, now)
        now = m.next_deadline()
    hub_rounds = [t for t, n in sent if n == "hub"]
    near_rounds = [t for t, n in sent if n == "near"]
    assert len(near_rounds) == 4  # every 3 s
    assert len(hub_rounds) == 2  # every 6 s

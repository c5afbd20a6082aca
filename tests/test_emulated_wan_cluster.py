"""Real daemons on the emulated WAN: what their probes measure, and the tiers they put peers in.

Two checks, both with real processes bound to their own loopback addresses:
- one emulated link between two daemons: the probes' median round trip matches the configured
  one within 5% or 0.05 ms;
- 24 daemons on the shipped topology (hosts moved to 127.0.47.x): every daemon has an estimate
  for every other; none puts a peer in a tighter tier than the truth (a broken promise); the
  medians of the probed links match what the emulation delivered.

"Delivered" is the model's latency plus what the emulation itself adds on this host: each
daemon's delay line reports how late its datagrams left (`self.wan.lateness_ms`), tenths of a
millisecond when 24 Python daemons share two cores. The benchmark (bench/latency) reports the
same figures against both the model and the delivered truth.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bench.latency import accuracy
from bench.latency.cluster import WanCluster, localise_topology

from hubhop.core.tiers import TIERS, tier_of
from tests.procs import wait_until

# The shipped topology's sites, 24 of its 34: Wuhan's four, eight Hubei cities, six key cities
# of the region and six hub clusters, so every tier has pairs in it.
SITES = [
    "wuhan-dc-1", "wuhan-dc-2", "wuhan-hospital", "wuhan-5g-mec",
    "huangshi", "shiyan", "yichang", "xiangyang", "ezhou", "jingzhou", "enshi", "suizhou",
    "shanghai", "nanjing", "hangzhou", "changsha", "chongqing", "chengdu",
    "hub-zhangjiakou", "hub-wuhu", "hub-shaoguan", "hub-tianfu", "hub-guian", "hub-zhongwei",
]  # fmt: skip
HUBS = ["hub-zhangjiakou", "hub-wuhu"]
# Start-up of 24 daemons on 2 cores takes ~20 s; probes then need a few near rounds (2 s) and
# a few random ones to measure every pair. The wait ends as soon as every pair is measured.
MEASURED_S = 150.0


def two_site_topology(tmp_path: Path, one_way_ms: float) -> Path:
    path = tmp_path / "link.toml"
    path.write_text(
        '[topology]\nname = "link"\n'
        "[model]\njitter_mean_ms = 0.0\n"  # no jitter: the configured figure is the truth
        '[[sites]]\nname = "link-a"\nrole = "city"\nlat = 30.0\nlon = 114.0\ncity = "A"\n'
        'host = "127.0.47.201"\n'
        '[[sites]]\nname = "link-b"\nrole = "city"\nlat = 31.0\nlon = 115.0\ncity = "B"\n'
        'host = "127.0.47.202"\n'
        f'[[overrides]]\nsites = ["link-a", "link-b"]\none_way_ms = {one_way_ms}\n'
    )
    return path


def delivered_rtt_ms(cluster: WanCluster, views: accuracy.Views, a: str, b: str) -> float:
    late = [(views[n]["self"]["wan"] or {}).get("lateness_ms") or 0.0 for n in (a, b)]
    return accuracy.true_rtt_ms(cluster.model, a, b) + sum(late)


@pytest.fixture
def link(tmp_path: Path) -> Iterator[WanCluster]:
    cluster = WanCluster(tmp_path, two_site_topology(tmp_path, 5.0), ["link-a", "link-b"])
    try:
        cluster.start_all()
        yield cluster
    finally:
        cluster.stop_all()


@pytest.mark.slow
def test_an_emulated_link_between_two_daemons_measures_its_configured_round_trip(
    link: WanCluster,
) -> None:
    def samples() -> int:
        peers = link.peers("link-a")["peers"]
        return min((p.get("probe") or {}).get("samples", 0) for p in peers) if peers else 0

    wait_until(lambda: samples() >= 20, 90.0, "20 probe samples from link-a to link-b")
    view = link.peers("link-a")
    [peer] = view["peers"]
    assert view["self"]["wan"]["site"] == "link-a" and view["self"]["wan"]["precise"]
    configured = 10.0  # 5 ms each way
    assert peer["probe"]["p50_ms"] == pytest.approx(configured, abs=max(0.05 * configured, 0.05))
    assert peer["estimate"]["source"] == "measured"


@pytest.fixture
def hubei(tmp_path: Path) -> Iterator[WanCluster]:
    topology = localise_topology(tmp_path, "127.0.47")
    cluster = WanCluster(tmp_path, topology, SITES, HUBS)
    try:
        cluster.start_all()
        yield cluster
    finally:
        cluster.stop_all()


@pytest.mark.slow
def test_every_daemon_on_the_shipped_topology_knows_every_tier_without_optimism(
    hubei: WanCluster,
) -> None:
    def all_measured() -> bool:
        views = hubei.views()
        links = accuracy.probed_links(views, hubei.model)
        return len(links) == len(SITES) * (len(SITES) - 1)

    wait_until(all_measured, MEASURED_S, "every daemon probing every other")
    time.sleep(20.0)  # a few more near rounds, so every near link has a window of samples
    views = hubei.views()

    pairs = accuracy.tier_pairs(views, hubei.model)
    summary = accuracy.tier_summary(pairs)
    assert summary["unknown"] == 0
    # The promise: no pair is ever put in a tighter tier than the truth.
    assert summary["optimistic"] == 0, summary["wrong"]
    # Nor in a tighter tier than what the emulation delivered on this busy host.
    for pair in pairs:
        delivered = delivered_rtt_ms(hubei, views, pair.node, pair.peer) / 2.0
        assert pair.said is not None
        assert TIERS.index(pair.said) >= TIERS.index(tier_of(delivered)), pair
    # How right the tiers are depends on how busy the host is: the conservative estimate adds
    # a margin for the jitter this host's scheduling adds to every emulated link (tenths of a
    # ms with 24 daemons on 2 cores), so pairs within that margin of a bound go one tier
    # looser. The benchmark reports the share; here, the best estimates (half the median RTT)
    # land in the delivered tier, and the conservative ones at most one tier looser.
    best_right = one_looser = 0
    for pair in pairs:
        assert pair.best_one_way_ms is not None
        truth = TIERS.index(tier_of(delivered_rtt_ms(hubei, views, pair.node, pair.peer) / 2.0))
        best_right += TIERS.index(tier_of(pair.best_one_way_ms)) == truth
        one_looser += TIERS.index(pair.said) <= truth + 1  # type: ignore[arg-type]
    assert best_right >= 0.9 * len(pairs), (best_right, len(pairs))
    assert one_looser >= 0.95 * len(pairs), (one_looser, len(pairs))

    # Probed links: the median error against what was delivered is a few hundredths of a ms.
    links = accuracy.probed_links(views, hubei.model)
    errors = [
        abs(link.measured_ms - delivered_rtt_ms(hubei, views, link.node, link.peer))
        for link in links
    ]
    assert statistics.median(errors) <= 0.05, sorted(errors)[:: max(1, len(errors) // 20)]

    # Coordinates: the distance between any two daemons' coordinates is near the truth.
    rel = [e.rel for e in accuracy.coordinate_errors(views, hubei.model)]
    assert len(rel) == len(SITES) * (len(SITES) - 1) // 2
    assert statistics.median(rel) <= 0.10

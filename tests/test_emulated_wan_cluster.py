"""Real daemons on the emulated WAN: what their probes measure, and the tiers they put peers in.

Two checks, both with real processes bound to their own loopback addresses:
- one emulated link between two daemons: the probes' median round trip matches the configured
  one within 5% or 0.05 ms;
- 24 daemons on the shipped topology (hosts moved to 127.0.47.x): every daemon has an estimate
  for every other; none puts a peer in a tighter tier than the truth (a broken promise); nearly
  every pair lands in its true tier; probed medians and coordinates are close to the truth.

The tier bound is the issue's target (99.5% of pairs in the right tier, none optimistic); the
link bound leaves 1% for a loaded test machine, and bench/latency reports the figures.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bench.latency import accuracy
from bench.latency.cluster import WanCluster, localise_topology

from hubhop.core.tiers import TIERS, tier_bound_ms
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
# A pair this close under its tier's bound may be put one tier looser: the conservative estimate
# adds a jitter margin of about this much (the topology keeps every pair 0.1 ms off a bound).
NEAR_BOUND_MS = 0.25
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


@pytest.fixture
def link(tmp_path: Path) -> Iterator[WanCluster]:
    with WanCluster(tmp_path, two_site_topology(tmp_path, 5.0), ["link-a", "link-b"]) as cluster:
        cluster.start_all()
        yield cluster


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
    with WanCluster(tmp_path, topology, SITES, HUBS) as cluster:
        cluster.start_all()
        yield cluster


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
    # The target is 99.5% of pairs in their true tier (bench/latency, 33 daemons:
    # 99.91%). Here, 552 pairs leave two of slack, and the slice holds one pair 0.11 ms under a
    # bound (jingzhou and hub-wuhu, both ways): so what is asserted is what the misses are,
    # pairs within a quarter of a ms of their tier's bound, put one tier looser by the jitter
    # margin, and that they stay rare.
    for p in pairs:
        if p.verdict == "pessimistic":
            assert tier_bound_ms(p.truth) - p.true_one_way_ms <= NEAR_BOUND_MS, p.as_dict()
    assert summary["right_share"] >= 0.99, summary
    assert all(
        p.said is not None and TIERS.index(p.said) <= TIERS.index(p.truth) + 1 for p in pairs
    )

    # Probed links: the target is each within 3% or 0.05 ms of the truth (bench, 33
    # daemons: every one of 1,056). A link probed while the machine was busiest may miss it.
    links = accuracy.probed_links(views, hubei.model)
    within = sum(link.within(0.03, 0.05) for link in links)
    assert within >= 0.99 * len(links), sorted(links, key=lambda link: -link.abs_ms)[:5]
    assert statistics.median(link.abs_ms for link in links) <= 0.05

    # Coordinates: the distance between any two daemons' coordinates is near the truth.
    rel = [e.rel for e in accuracy.coordinate_errors(views, hubei.model)]
    assert len(rel) == len(SITES) * (len(SITES) - 1) // 2
    assert statistics.median(rel) <= 0.10

"""The latency model: the shipped topology reproduces the published figures; jitter, loss,
partitions and overrides behave as documented. Deterministic: every rng is seeded."""

from __future__ import annotations

import itertools
import math
import random
import statistics
from pathlib import Path

import pytest

from hubhop.core.tiers import TIER_BOUNDS_MS, tier_of
from hubhop.wan.model import TIER_MARGIN_MS, WanModel, great_circle_km
from hubhop.wan.topology import load_topology, parse_topology

SHIPPED = Path(__file__).resolve().parents[2] / "topologies" / "hubei.toml"
WUHAN_DC = "wuhan-dc-1"


@pytest.fixture(scope="module")
def hubei() -> WanModel:
    return WanModel(load_topology(SHIPPED))


def sites_where(model: WanModel, **match: str) -> list[str]:
    return [
        s.name
        for s in model.topology.sites
        if all(getattr(s, key) == value for key, value in match.items())
    ]


def small_model(extra: str = "", model: str = "") -> WanModel:
    """Two sites on the equator 1000 km apart (8.993 degrees of longitude), plus `extra`."""
    text = (
        f'[topology]\nname = "small"\n[model]\n{model}\n'
        '[[sites]]\nname = "a"\nrole = "city"\nlat = 0.0\nlon = 0.0\ncity = "A"\n'
        'host = "127.0.41.1"\nhops = 1\n'
        '[[sites]]\nname = "b"\nrole = "edge"\nlat = 0.0\nlon = 8.993216\ncity = "B"\n'
        'host = "127.0.41.2"\nhops = 2\n'
        '[[sites]]\nname = "c"\nrole = "edge"\nlat = 0.0\nlon = 0.1\ncity = "A"\n'
        'host = "127.0.41.3"\n' + extra
    )
    return WanModel(parse_topology(text, "small.toml"))


# The published figures ---------------------------------------------------------------------


def test_wuhan_to_shiyan_and_enshi_is_3_to_3_5_ms(hubei: WanModel) -> None:
    for city in ("shiyan", "enshi"):
        assert 3.0 <= hubei.one_way_ms(WUHAN_DC, city) <= 3.5, city


def test_wuhan_to_shanghai_is_about_5_ms(hubei: WanModel) -> None:
    assert hubei.one_way_ms(WUHAN_DC, "shanghai") == pytest.approx(5.0, abs=0.3)


def test_wuhan_to_chengdu_is_a_little_under_7_ms_so_the_region_tier_holds(
    hubei: WanModel,
) -> None:
    one_way = hubei.one_way_ms(WUHAN_DC, "chengdu")
    assert 6.5 <= one_way <= 7.0 - TIER_MARGIN_MS
    assert hubei.true_tier(WUHAN_DC, "chengdu") == "region"


def test_wuhan_to_the_farthest_hubs_is_about_8_5_ms(hubei: WanModel) -> None:
    for hub in ("hub-zhangjiakou", "hub-zhongwei"):
        assert hubei.one_way_ms(WUHAN_DC, hub) == pytest.approx(8.5, abs=0.3), hub
    farthest = max(sites_where(hubei, role="hub"), key=lambda h: hubei.one_way_ms(WUHAN_DC, h))
    assert farthest in ("hub-zhangjiakou", "hub-zhongwei")


def test_the_tier_targets_hold_from_every_wuhan_site(hubei: WanModel) -> None:
    wuhan = sites_where(hubei, city="Wuhan")
    hubei_sites = sites_where(hubei, region="Hubei")
    key_cities = sites_where(hubei, region="Yangtze")
    hubs = sites_where(hubei, role="hub")
    for origin in wuhan:
        for site in hubei_sites:
            assert hubei.one_way_ms(origin, site) < 5.0, (origin, site)
        for site in key_cities:
            assert hubei.one_way_ms(origin, site) < 7.0, (origin, site)
        for site in hubs:
            assert hubei.one_way_ms(origin, site) < 10.0, (origin, site)


def test_intra_city_pairs_are_well_under_1_ms(hubei: WanModel) -> None:
    pairs = [(a, b) for a, b in itertools.combinations(hubei.topology.sites, 2) if a.city == b.city]
    assert len(pairs) >= 6 + 1  # four Wuhan sites, and Chongqing's key-city and hub sites
    for a, b in pairs:
        assert hubei.one_way_ms(a.name, b.name) < 0.5
        assert hubei.true_tier(a.name, b.name) == "city"


def test_no_site_pair_sits_within_the_margin_of_a_tier_bound(hubei: WanModel) -> None:
    # Tier classification needs a margin: a pair this close to a bound cannot be called.
    assert hubei.pairs_near_tier_bounds(TIER_MARGIN_MS) == []
    # The check is not vacuous: a wider margin does catch pairs.
    assert hubei.pairs_near_tier_bounds(0.2) != []


def test_the_jitter_cut_keeps_every_sample_in_its_true_tier(hubei: WanModel) -> None:
    rng = random.Random(4)
    for a, b in itertools.combinations(hubei.sites, 2):
        for _ in range(3):
            sample = hubei.sample_delay_ms(a, b, rng)
            assert sample is not None
            assert tier_of(sample) == hubei.true_tier(a, b)


# The formula --------------------------------------------------------------------------------


def test_great_circle_distances() -> None:
    assert great_circle_km(0.0, 0.0, 0.0, 1.0) == pytest.approx(111.195, abs=0.01)
    assert great_circle_km(30.59, 114.31, 31.23, 121.47) == pytest.approx(687, abs=1)
    assert great_circle_km(10.0, 20.0, 10.0, 20.0) == 0.0
    assert great_circle_km(0.0, 0.0, 0.0, 180.0) == pytest.approx(math.pi * 6371.0088)


def test_one_way_is_propagation_times_route_factor_plus_hops() -> None:
    model = small_model(model="route_factor = 1.5\nper_hop_ms = 0.1")
    # 1000 km x 5 us/km x 1.5 + 0.1 ms x (1 + 2) hops
    assert model.one_way_ms("a", "b") == pytest.approx(7.5 + 0.3, abs=1e-3)
    assert model.rtt_ms("a", "b") == pytest.approx(2 * 7.8, abs=2e-3)


def test_the_model_is_symmetric_and_a_site_is_0_ms_from_itself(hubei: WanModel) -> None:
    for a, b in itertools.combinations(hubei.sites, 2):
        assert hubei.one_way_ms(a, b) == hubei.one_way_ms(b, a)
    for site in hubei.sites:
        assert hubei.one_way_ms(site, site) == 0.0
        assert hubei.sample_delay_ms(site, site, random.Random(1)) == 0.0


def test_same_city_uses_the_intra_city_figure_not_the_distance() -> None:
    model = small_model(model="intra_city_ms = 0.25")
    assert model.one_way_ms("a", "c") == 0.25


def test_an_override_replaces_the_computed_figure_for_its_pair_only() -> None:
    model = small_model('[[overrides]]\nsites = ["b", "a"]\nrtt_ms = 3.0\n')
    assert model.one_way_ms("a", "b") == model.one_way_ms("b", "a") == 1.5
    assert model.rtt_ms("a", "b") == 3.0
    assert model.one_way_ms("b", "c") > 5.0


def test_unknown_sites_are_key_errors() -> None:
    model = small_model()
    with pytest.raises(KeyError):
        model.one_way_ms("a", "nowhere")


@pytest.mark.parametrize(
    ("one_way", "tier"),
    [
        (0.0, "city"),
        (1.0, "city"),
        (1.0001, "province"),
        (5.0, "province"),
        (6.99, "region"),
        (7.0, "region"),
        (10.0, "national"),
        (10.01, "any"),
        (math.inf, "any"),
    ],
)
def test_a_latency_falls_in_the_tightest_tier_that_holds_it(one_way: float, tier: str) -> None:
    assert tier_of(one_way) == tier
    assert one_way <= TIER_BOUNDS_MS[tier]


# Jitter, loss, partitions ------------------------------------------------------------------


def test_jitter_is_non_negative_small_and_cut() -> None:
    model = small_model(model="jitter_mean_ms = 0.02\njitter_max_ms = 0.1")
    rng = random.Random(7)
    base = model.one_way_ms("a", "b")
    samples = [model.sample_delay_ms("a", "b", rng) for _ in range(20_000)]
    jitter = [s - base for s in samples if s is not None]
    assert len(jitter) == 20_000
    assert min(jitter) >= 0.0
    assert max(jitter) == pytest.approx(0.1)  # the exponential's tail is cut
    # Exponential with mean 0.02 cut at 0.1: mean 0.02 x (1 - e^-5), median 0.02 ln 2.
    assert statistics.fmean(jitter) == pytest.approx(0.02 * (1 - math.exp(-5)), rel=0.03)
    assert statistics.median(jitter) == pytest.approx(model.jitter_median_ms, rel=0.03)


def test_no_jitter_configured_means_exactly_the_base() -> None:
    model = small_model(model="jitter_mean_ms = 0.0\njitter_max_ms = 0.0")
    rng = random.Random(1)
    assert {model.sample_delay_ms("a", "b", rng) for _ in range(100)} == {
        model.one_way_ms("a", "b")
    }


def test_loss_drops_that_share_of_datagrams() -> None:
    model = small_model(model="loss = 0.1")
    rng = random.Random(11)
    samples = [model.sample_delay_ms("a", "b", rng) for _ in range(20_000)]
    assert samples.count(None) / len(samples) == pytest.approx(0.1, abs=0.01)


def test_the_same_seed_replays_the_same_delays() -> None:
    model = small_model(model="loss = 0.2")
    runs = []
    for _ in range(2):
        rng = random.Random(3)
        runs.append([model.sample_delay_ms("a", "b", rng) for _ in range(500)])
    assert runs[0] == runs[1]
    assert None in runs[0] and len(set(runs[0])) > 100


def test_a_partition_drops_everything_between_its_pairs_while_active() -> None:
    model = small_model('[[partitions]]\nname = "cut"\npairs = [["a", "b"]]\n')
    rng = random.Random(5)
    assert model.partitions == ("cut",)
    assert model.active_partitions == frozenset()
    assert model.sample_delay_ms("a", "b", rng) is not None

    model.set_partition("cut", True)
    assert model.active_partitions == {"cut"}
    assert model.is_partitioned("b", "a")
    assert all(model.sample_delay_ms("a", "b", rng) is None for _ in range(50))
    assert all(model.sample_delay_ms("b", "a", rng) is None for _ in range(50))
    assert model.sample_delay_ms("a", "c", rng) is not None  # other pairs still talk
    # The base latency is a property of the link, not of the partition.
    assert model.one_way_ms("a", "b") > 0

    model.set_partition("cut", False)
    assert model.sample_delay_ms("a", "b", rng) is not None
    with pytest.raises(KeyError):
        model.set_partition("nope", True)


def test_a_partition_active_in_the_file_starts_active(hubei: WanModel) -> None:
    model = small_model(
        '[[partitions]]\nname = "cut"\nactive = true\nsides = [["a"], ["b", "c"]]\n'
    )
    assert model.is_partitioned("a", "b") and model.is_partitioned("a", "c")
    assert not model.is_partitioned("b", "c")
    # The shipped partitions exist and start off.
    assert set(hubei.partitions) == {"west-cut", "hospital-link"}
    assert hubei.active_partitions == frozenset()

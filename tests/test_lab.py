"""hubhop.lab's pure half and its topology handling: which backends each site fronts, which
sites a slice runs, and moving a topology's addresses. No processes: the cluster and the
backends run for real in tests/test_demo.py and the multi-process tests."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import pytest

from hubhop.core.config import parse_config
from hubhop.io import demo_backend
from hubhop.lab.cluster import SHIPPED_TOPOLOGY, WanCluster, localise_topology
from hubhop.lab.network_slice import SliceError, choose_slice
from hubhop.lab.profiles import (
    BATCH,
    CHAT,
    CT,
    backend_toml,
    core_city,
    demo_backend_args,
    profiles,
)
from hubhop.wan.model import WanModel
from hubhop.wan.topology import load_topology

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def hubei() -> WanModel:
    return WanModel(load_topology(SHIPPED_TOPOLOGY))


def test_the_shipped_topology_is_package_data_and_the_repository_path_still_reads_it() -> None:
    assert SHIPPED_TOPOLOGY.is_file()
    assert SHIPPED_TOPOLOGY.parent.parent.name == "wan"  # hubhop/wan/topologies/
    assert (REPO / "topologies" / "hubei.toml").read_text() == SHIPPED_TOPOLOGY.read_text()


def test_profiles_are_deterministic_and_mixed(hubei: WanModel) -> None:
    found = profiles(hubei.topology)
    again = profiles(load_topology(SHIPPED_TOPOLOGY))
    assert found == again
    assert list(found) == list(hubei.sites)
    assert all(len(backends) == 1 for backends in found.values())
    every = [b for backends in found.values() for b in backends]
    assert len({b.chip for b in every}) >= 4
    assert len({b.price for b in every}) >= 4
    assert len({b.green_share for b in every}) >= 4
    assert len({b.slots for b in every}) >= 4
    assert len({b.seed for b in every}) == len(every)  # every backend draws its own times


def test_profiles_follow_role_and_place(hubei: WanModel) -> None:
    found = {site: backends[0] for site, backends in profiles(hubei.topology).items()}
    assert core_city(hubei.topology) == "Wuhan"
    for site in hubei.topology.sites:
        p = found[site.name]
        if site.role == "edge":
            assert (p.chip, p.models, p.price) == ("cpu", (CHAT,), 0.0), site.name
        elif site.role == "hub":
            assert p.models == (BATCH,) and p.green_share >= 0.8, site.name
        elif site.region == "Hubei":  # every Hubei data centre can take a CT read in its city
            assert CT in p.models, site.name
        else:
            assert CT not in p.models, site.name
    assert found["wuhan-dc-1"].slots > found["yichang"].slots  # the provincial core is largest
    assert found["hub-wuhu"].price < found["changsha"].price < found["wuhan-dc-1"].price


def test_a_profile_becomes_a_valid_backend_config_and_demo_backend_command(
    hubei: WanModel,
) -> None:
    profile = profiles(hubei.topology)["wuhan-dc-2"][0]
    text = (
        '[node]\nname = "wuhan-dc-2"\nrole = "city"\n[http]\nlisten = "127.0.42.2:0"\n'
        + backend_toml(profile, "http://127.0.43.2:8000")
    )
    (backend,) = parse_config(text, "node.toml").backends
    assert (backend.name, backend.chip, backend.slots) == (profile.name, "nvidia-h100", 8)
    assert set(backend.models) == {CT, CHAT, BATCH}
    assert (backend.price, backend.green_share) == (profile.price, profile.green_share)
    parser = argparse.ArgumentParser()
    demo_backend.add_arguments(parser)
    ns = parser.parse_args(["--port", "0", *demo_backend_args(profile, "127.0.43.2")])
    assert (ns.host, ns.chip, ns.slots, ns.name) == ("127.0.43.2", "nvidia-h100", 8, profile.name)
    assert ns.models == f"{CT},{CHAT},{BATCH}"


def test_the_default_slice_has_hospitals_in_four_hubei_cities(hubei: WanModel) -> None:
    chosen = choose_slice(hubei, cities=4, key_cities=2, hubs=3)
    assert chosen.entries == (
        "wuhan-hospital", "yichang-hospital", "xiangyang-hospital", "shiyan-hospital",
    )  # fmt: skip
    assert chosen.datacentres == ("wuhan-dc-1", "wuhan-dc-2", "yichang", "xiangyang", "shiyan")
    assert chosen.sites[0] == "wuhan-dc-1"  # the seed
    assert len(chosen.key_cities) == 2 and len(chosen.hubs) == 3
    assert {hubei.topology.site(s).region for s in chosen.key_cities} == {"Yangtze"}
    assert {hubei.topology.site(s).role for s in chosen.hubs} == {"hub"}
    # every hospital has a CT-serving data centre inside the city tier
    for entry in chosen.entries:
        assert any(hubei.true_tier(entry, dc) == "city" for dc in chosen.datacentres), entry
    # the nearest hubs: none left out is nearer than one taken
    others = [s.name for s in hubei.topology.sites if s.role == "hub" and s.name not in chosen.hubs]
    farthest_taken = max(hubei.one_way_ms("wuhan-hospital", h) for h in chosen.hubs)
    assert all(hubei.one_way_ms("wuhan-hospital", h) >= farthest_taken for h in others)
    assert len(set(chosen.sites)) == len(chosen.sites) == 14


def test_a_slice_larger_than_the_topology_says_what_is_missing(hubei: WanModel) -> None:
    with pytest.raises(SliceError, match="4 Hubei cities have a hospital"):
        choose_slice(hubei, cities=5, key_cities=0, hubs=0)
    with pytest.raises(SliceError, match="10 hub clusters; 11 asked"):
        choose_slice(hubei, cities=1, key_cities=0, hubs=11)


def test_localise_moves_every_host_and_keeps_the_places(tmp_path: Path) -> None:
    copy = localise_topology(tmp_path, "127.0.99")
    moved = load_topology(copy)
    shipped = load_topology(SHIPPED_TOPOLOGY)
    assert (tmp_path / "places.csv").is_file()
    for before, after in zip(shipped.sites, moved.sites, strict=True):
        assert after.host == "127.0.99." + before.host.rsplit(".", 1)[1]
        assert (after.name, after.lat, after.lon) == (before.name, before.lat, before.lon)
    with pytest.raises(ValueError, match="not a /24"):
        localise_topology(tmp_path, "10.0.0")


def test_localise_refuses_a_topology_whose_sites_would_collide(tmp_path: Path) -> None:
    source = tmp_path / "src" / "two.toml"
    source.parent.mkdir()
    source.write_text(
        '[topology]\nname = "two"\n'
        '[[sites]]\nname = "a"\nrole = "city"\nlat = 30.0\nlon = 114.0\ncity = "A"\n'
        'host = "127.0.60.1"\n'
        '[[sites]]\nname = "b"\nrole = "city"\nlat = 31.0\nlon = 114.0\ncity = "B"\n'
        'host = "127.0.61.1"\n'
    )
    with pytest.raises(ValueError, match="share a last octet"):
        localise_topology(tmp_path / "out", "127.0.99", source)


def test_cluster_configs_name_the_site_the_seed_and_the_backends(tmp_path: Path) -> None:
    topology = localise_topology(tmp_path, "127.0.99")
    cluster = WanCluster(
        tmp_path, topology, ["wuhan-dc-1", "yichang-hospital"], ["hub-wuhu"],
        site_config=lambda site: f"# backends of {site}\n", links_republish_s=5.0,
    )  # fmt: skip
    text = cluster.config_text("yichang-hospital")
    config = parse_config(text.replace("# backends of yichang-hospital\n", ""), "c.toml")
    assert (config.node.name, config.node.role, config.node.city) == (
        "yichang-hospital", "edge", "yichang",
    )  # fmt: skip
    assert str(config.http.listen).startswith("127.0.99.35:")
    assert [str(s) for s in config.gossip.seeds] == ["127.0.99.1:7946"]
    assert (config.latency.hubs, config.latency.links_republish_s) == (("hub-wuhu",), 5.0)
    assert text.endswith("# backends of yichang-hospital\n")
    counts = Counter(line.split(" = ")[0] for line in text.splitlines() if " = " in line)
    assert counts["topology"] == 1  # the emulated WAN is on
